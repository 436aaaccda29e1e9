"""COCO ground truth of a make-dataset split, with the boxes left out of the YOLO labels as
``iscrowd`` ignore regions.

The YOLO labels drop boxes too small or too hidden to train on. An evaluation that simply
lacks them counts a detection of such an object as a false positive; COCO's crowd regions
(KITTI's DontCare) make such detections count neither way. ``coco/SPLIT.json`` holds every
box of the per-frame annotations: kept boxes as ordinary annotations, the others as crowd
regions of their class, so ``eval-video --labels coco/SPLIT.json`` (or pycocotools) scores
the split that way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bus.atomic import write_json
from bus.messages.camera import DETECTION_CLASSES

logger = logging.getLogger(__name__)

BOX_CLASSES = DETECTION_CLASSES[:4]
"""The detector's box classes (lane lines are not boxes)."""


def coco_ground_truth(
    root: Path, split: str, min_visible_fraction: float, min_height_px: float
) -> dict[str, Any]:
    """The COCO detection dict of ``root/annotations/split/*.json``: boxes at least
    ``min_height_px`` tall and ``min_visible_fraction`` visible are annotations, the other
    boxes of our classes crowd regions. Unreadable annotation files are skipped, named."""
    images, annotations = [], []
    for image_id, path in enumerate(sorted((root / "annotations" / split).glob("*.json")), 1):
        try:
            frame = json.loads(path.read_text(encoding="utf-8"))
            width, height, boxes = int(frame["width"]), int(frame["height"]), frame["boxes"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("COCO export skips unreadable %s: %s", path, error)
            continue
        images.append(
            {"id": image_id, "file_name": f"{path.stem}.jpg", "width": width, "height": height}
        )
        for box in boxes:
            if box.get("class") not in BOX_CLASSES:
                continue
            x0, y0, x1, y1 = (float(v) for v in box["bbox_xyxy"])
            kept = (
                float(box.get("visible_fraction", 0.0)) >= min_visible_fraction
                and y1 - y0 >= min_height_px
                and x1 - x0 >= 1.0
            )
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": BOX_CLASSES.index(box["class"]) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0 if kept else 1,
                }
            )
    return {
        "info": {
            "description": f"drivestack make-dataset {root.name}, split {split}",
            "ignore": (
                f"iscrowd boxes: lower than {min_height_px} px or less than "
                f"{min_visible_fraction} visible"
            ),
        },
        "images": images,
        "annotations": annotations,
        "categories": [{"id": index + 1, "name": name} for index, name in enumerate(BOX_CLASSES)],
    }


def write_coco_splits(
    root: Path, splits: tuple[str, ...], min_visible_fraction: float, min_height_px: float
) -> list[Path]:
    """Write ``root/coco/SPLIT.json`` for the splits holding frames; returns their paths."""
    written = []
    for split in splits:
        data = coco_ground_truth(root, split, min_visible_fraction, min_height_px)
        if not data["images"]:
            continue
        path = root / "coco" / f"{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, data)
        written.append(path)
    return written
