"""COCO ground truth of a make-dataset split, with the boxes left out of the YOLO labels as
``iscrowd`` ignore regions.

The YOLO labels drop boxes too small or too hidden to train on. An evaluation that simply
lacks them counts a detection of such an object as a false positive; COCO's crowd regions
(KITTI's DontCare) make such detections count neither way. ``coco/SPLIT.json`` holds every
box of the per-frame annotations: kept boxes as ordinary annotations, the others as crowd
regions (built by :func:`perception.evaluation.coco_ground_truth`, as eval-video scores), so
``eval-video --labels coco/SPLIT.json`` (or pycocotools) scores the split that way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from bus.atomic import write_json
from perception.classes import BOX_CLASS_NAMES
from perception.evaluation import coco_ground_truth
from perception.labels import IGNORE_CLASS_ID, BoxLabels

logger = logging.getLogger(__name__)


def split_ground_truth(
    root: Path, split: str, min_visible_fraction: float, min_height_px: float
) -> dict:
    """The COCO detection dict of ``root/annotations/split/*.json``: boxes at least
    ``min_height_px`` tall and ``min_visible_fraction`` visible are annotations, the other
    boxes of our classes crowd regions. Unreadable annotation files are skipped, named."""
    labels, sizes, names = [], [], []
    for path in sorted((root / "annotations" / split).glob("*.json")):
        try:
            frame = json.loads(path.read_text(encoding="utf-8"))
            width, height, boxes = int(frame["width"]), int(frame["height"]), frame["boxes"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("COCO export skips unreadable %s: %s", path, error)
            continue
        corners, class_ids = [], []
        for box in boxes:
            if box.get("class") not in BOX_CLASS_NAMES:
                continue
            x0, y0, x1, y1 = (float(v) for v in box["bbox_xyxy"])
            kept = (
                float(box.get("visible_fraction", 0.0)) >= min_visible_fraction
                and y1 - y0 >= min_height_px
                and x1 - x0 >= 1.0
            )
            corners.append((x0, y0, x1, y1))
            class_ids.append(BOX_CLASS_NAMES.index(box["class"]) if kept else IGNORE_CLASS_ID)
        labels.append(
            BoxLabels(np.array(corners, np.float32).reshape(-1, 4), np.array(class_ids, np.int64))
        )
        sizes.append((width, height))
        names.append(f"{path.stem}.jpg")
    data = coco_ground_truth(labels, sizes, names, image_ids=list(range(1, len(labels) + 1)))
    data["info"] = {
        "description": f"drivestack make-dataset {root.name}, split {split}",
        "ignore": (
            f"iscrowd boxes (one per class): lower than {min_height_px} px or less than "
            f"{min_visible_fraction} visible"
        ),
    }
    return data


def write_coco_splits(
    root: Path, splits: tuple[str, ...], min_visible_fraction: float, min_height_px: float
) -> list[Path]:
    """Write ``root/coco/SPLIT.json`` for the splits holding frames; returns their paths."""
    written = []
    for split in splits:
        data = split_ground_truth(root, split, min_visible_fraction, min_height_px)
        if not data["images"]:
            continue
        path = root / "coco" / f"{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, data)
        written.append(path)
    return written
