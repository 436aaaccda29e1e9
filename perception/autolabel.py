"""Auto-labelling: a teacher detector labels real frames, written as a YOLO dataset
(ultralytics layout) that ``drivestack train-detector`` reads.

Layout in ``out``: ``images/{train,val}/NAME.jpg``, ``labels/{train,val}/NAME.txt``
(normalised ``CLASS CX CY W H``, our class ids), ``data.yaml`` (written last but for the
summary) and ``summary.json``. Frame NAME is ``<source stem>_<frame name>``. The last
``val_fraction`` of each source's kept frames form the validation split, so that
neighbouring, nearly identical frames do not straddle the split.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bus.atomic import atomic_path, write_json, write_text
from perception.classes import BOX_CLASS_NAMES, CLASS_NAMES
from perception.detector import Detector
from perception.frames import FrameSource
from perception.labels import BoxLabels, write_yolo_txt

logger = logging.getLogger(__name__)

JPEG_QUALITY = 95
SPLITS = ("train", "val")


@dataclass(frozen=True)
class AutolabelConfig:
    """:param every: keep every N-th frame (consecutive video frames are near-duplicates).
    :param val_fraction: share of each source's kept frames put in the validation split.
    :param min_box_px: boxes with a side shorter than this are dropped [px].
    """

    sources: tuple[Path, ...]
    out: Path
    every: int = 1
    val_fraction: float = 0.1
    min_box_px: float = 4.0
    max_frames: int | None = None
    progress: bool = True
    teacher_name: str = ""
    conf: float = 0.4


@dataclass
class _Tally:
    images: Counter = field(default_factory=Counter)
    boxes: Counter = field(default_factory=Counter)


def _clear_earlier_run(out: Path) -> None:
    """Remove an earlier autolabel dataset in ``out`` so runs never mix; refuse to touch image
    or label folders that another tool wrote."""
    summary = out / "summary.json"
    ours = False
    if summary.is_file():
        try:
            ours = json.loads(summary.read_text(encoding="utf-8")).get("command") == "autolabel"
        except (OSError, ValueError, AttributeError):
            ours = False
    folders = [out / name for name in ("images", "labels") if (out / name).exists()]
    if folders and not ours:
        raise OSError(
            f"{out} already holds {', '.join(f.name for f in folders)}/ that autolabel did not "
            "write; choose another --out"
        )
    for folder in folders:
        shutil.rmtree(folder)
    for stale in ("data.yaml", "summary.json"):
        (out / stale).unlink(missing_ok=True)


def autolabel(config: AutolabelConfig, teacher: Detector) -> dict[str, Any]:
    """Label the sources' frames with ``teacher`` and write the dataset; returns the summary.

    :raises OSError: unreadable sources or an unwritable output.
    """
    sources = [FrameSource(path) for path in config.sources]
    _clear_earlier_run(config.out)
    tally = _Tally()
    for source in sources:
        _label_source(config, source, teacher, tally)
    data_yaml = _write_data_yaml(config.out)
    summary = {
        "command": "autolabel",
        "sources": [str(p) for p in config.sources],
        "teacher": config.teacher_name or teacher.name,
        "conf": config.conf,
        "every": config.every,
        "val_fraction": config.val_fraction,
        "images": dict(tally.images),
        "boxes": {CLASS_NAMES[c]: n for c, n in sorted(tally.boxes.items())},
        "data_yaml": str(data_yaml),
    }
    write_json(config.out / "summary.json", summary)
    return summary


def _label_source(
    config: AutolabelConfig, source: FrameSource, teacher: Detector, tally: _Tally
) -> None:
    from sim.progress import progress_bar

    expected = (
        source.expected_count
        if config.max_frames is None
        else min(source.expected_count, config.max_frames)
    )
    kept_indices = list(range(0, expected, config.every))
    val_start = len(kept_indices) - round(len(kept_indices) * config.val_fraction)
    val_from_index = kept_indices[val_start] if val_start < len(kept_indices) else expected
    with progress_bar(
        config.progress,
        total=len(kept_indices),
        unit="frame",
        desc=source.path.name,
        leave=False,
    ) as bar:
        for frame in source:
            if config.max_frames is not None and frame.index >= config.max_frames:
                break
            if frame.index % config.every:
                continue
            split = "val" if frame.index >= val_from_index else "train"
            labels = _teacher_labels(teacher, frame.image_rgb, config.min_box_px)
            name = f"{source.path.stem}_{frame.name}"
            _write_example(config.out, split, name, frame.image_rgb, labels)
            tally.images[split] += 1
            tally.boxes.update(int(c) for c in labels.class_ids)
            bar.update(1)


def _teacher_labels(teacher: Detector, image_rgb: np.ndarray, min_box_px: float) -> BoxLabels:
    detections = teacher.detect(image_rgb)
    sizes = detections.boxes_xyxy[:, 2:] - detections.boxes_xyxy[:, :2]
    keep = np.all(sizes >= min_box_px, axis=1)
    return BoxLabels(detections.boxes_xyxy[keep], detections.class_ids[keep])


def _write_example(
    out: Path, split: str, name: str, image_rgb: np.ndarray, labels: BoxLabels
) -> None:
    image_path = out / "images" / split / f"{name}.jpg"
    with atomic_path(image_path) as tmp:
        ok = cv2.imwrite(
            str(tmp),
            cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
        )
        if not ok:
            raise OSError(f"could not write image {image_path}")
    height, width = image_rgb.shape[:2]
    write_yolo_txt(out / "labels" / split / f"{name}.txt", labels, width, height)


def _write_data_yaml(out: Path) -> Path:
    """ultralytics dataset file; names are our box classes (ids as in the label files)."""
    lines = [f"path: {out.resolve()}", "train: images/train", "val: images/val", "names:"]
    lines += [f"  {i}: {name}" for i, name in enumerate(BOX_CLASS_NAMES)]
    path = out / "data.yaml"
    write_text(path, "\n".join(lines) + "\n")
    return path
