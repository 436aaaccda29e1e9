"""Sign crops from simulated frames, to train the sign classifier on the signs the simulator
draws next to the real crops.

A make-dataset directory labels every traffic sign with its type and, for speed limits, the
number on its plate (``annotations/SPLIT/*.json``). The classifier sees what the perception
node gives it: the plate part of a detected sign box (:func:`perception.geometry.plate_box`), so
the crops here are cut the same way from the labelled boxes. Only plates the camera shows
whole and large enough to read are kept. Landmark tops and patches of roadside scenery
become "not a sign" crops, as the false detections the classifier must turn away.

Crops keep their dataset split: the val split (whole episodes) is the held-out set.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from perception.geometry import crop_box, plate_box
from perception.signs import CROP_PX, SignDataset

logger = logging.getLogger(__name__)

SIGN_TYPE_NAMES = {
    "stop": "stop",
    "yield": "yield",
    "no_overtaking": "no overtaking",
    "warning": "warning (red triangle)",
}
"""Simulator sign type -> classifier class name ("stop" is also a class of the real crops);
speed limits are named ``speed limit N`` by their plate's number."""


@dataclass(frozen=True)
class RenderedSignConfig:
    """:param min_plate_px: least plate width and height [px] (speed-limit numbers are
        written from about 16 px on).
    :param min_visible: least visible fraction of the sign.
    :param negatives_per_frame: scenery patches taken per frame as "not a sign".
    """

    min_plate_px: float = 16.0
    min_visible: float = 0.9
    negatives_per_frame: int = 1
    seed: int = 0


def rendered_class_name(sign_type: str, speed_limit_kph: int) -> str | None:
    """The classifier class of a simulated sign; None when its plate shows nothing to tell
    (a speed-limit plate without a number) or its type is unknown."""
    if sign_type == "speed_limit":
        return f"speed limit {speed_limit_kph}" if 5 <= speed_limit_kph <= 300 else None
    return SIGN_TYPE_NAMES.get(sign_type)


@dataclass(frozen=True)
class RenderedCrops:
    """(N, 32, 32, 3) uint8 RGB crops, their class names ("" for not a sign), whether each
    comes from the held-out (val) split, and where each was cut from."""

    images: np.ndarray
    names: list[str]
    held_out: np.ndarray
    files: list[str]


def load_rendered_signs(
    root: str | os.PathLike, config: RenderedSignConfig = RenderedSignConfig()
) -> RenderedCrops:
    """Cut sign plates and "not a sign" patches out of a make-dataset directory.

    :raises OSError: when ``root`` has no annotations or an annotated image is unreadable.
    :raises ValueError: when an annotation file is malformed (named).
    """
    root = Path(root)
    rng = np.random.default_rng(config.seed)
    images: list[np.ndarray] = []
    names: list[str] = []
    held_out: list[bool] = []
    files: list[str] = []
    annotation_files = sorted((root / "annotations").glob("*/*.json"))
    if not annotation_files:
        raise OSError(
            f"{str(root)!r} holds no annotations/SPLIT/*.json (write it with make-dataset)"
        )
    for annotation in annotation_files:
        split = annotation.parent.name
        boxes = _boxes(annotation)
        image_path = root / "images" / split / f"{annotation.stem}.jpg"
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"frame {str(image_path)!r} of {str(annotation)!r} is not readable")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        cuts = []
        for box in boxes:
            if box.get("visible_fraction", 0.0) < config.min_visible:
                continue
            if box.get("truncation", 1.0) > 0.0:  # a cut plate may hide its number
                continue
            plate = np.clip(
                plate_box(np.asarray(box["bbox_xyxy"], float)),
                0,
                [rgb.shape[1], rgb.shape[0], rgb.shape[1], rgb.shape[0]],
            )
            if min(plate[2] - plate[0], plate[3] - plate[1]) < config.min_plate_px:
                continue
            if box.get("class") == "traffic_sign":
                name = rendered_class_name(
                    str(box.get("sign_type", "")), int(box.get("speed_limit_kph", 0))
                )
                if name is not None:
                    cuts.append((plate, name))
            elif box.get("class") == "landmark":
                cuts.append((plate, ""))
        cuts += [(patch, "") for patch in _scenery_patches(rgb.shape, boxes, config, rng)]
        for plate, name in cuts:
            images.append(_crop(rgb, plate))
            names.append(name)
            held_out.append(split == "val")
            files.append(f"{image_path}#{','.join(str(int(v)) for v in plate)}")
    if not images:
        raise OSError(f"{str(root)!r}: no sign plate is large and visible enough to use")
    return RenderedCrops(np.stack(images), names, np.array(held_out), files)


def merge_with_rendered(
    real: SignDataset, rendered: RenderedCrops
) -> tuple[SignDataset, np.ndarray]:
    """The real crops followed by the rendered ones, under the real class names plus the new
    rendered ones (appended, so the real classes keep their indices). Returns the dataset and
    a fixed-split array: -1 for real crops (held out by :func:`holdout_split`'s per-class
    rule), 0 for rendered training crops, 1 for rendered held-out crops."""
    class_names = list(real.class_names)
    for name in sorted(set(rendered.names) - {""} - set(class_names)):
        class_names.append(name)
    index = {name: i for i, name in enumerate(class_names)}
    index[""] = 0  # class 0 is "not a sign"
    labels = np.array([index[name] for name in rendered.names], np.int64)
    dataset = SignDataset(
        np.concatenate([real.images, rendered.images]),
        np.concatenate([real.labels, labels]),
        class_names,
        list(real.files) + list(rendered.files),
    )
    fixed = np.concatenate([np.full(len(real.labels), -1), rendered.held_out.astype(np.int64)])
    return dataset, fixed


def _boxes(annotation: Path) -> list[dict]:
    try:
        boxes = json.loads(annotation.read_text(encoding="utf-8"))["boxes"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"annotation {str(annotation)!r} is malformed: {error}") from None
    if not isinstance(boxes, list) or not all(isinstance(b, dict) and _is_box(b) for b in boxes):
        raise ValueError(
            f"annotation {str(annotation)!r}: boxes need a bbox_xyxy of 4 numbers, numeric "
            "visible_fraction and truncation, and a whole speed_limit_kph"
        )
    return boxes


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _is_box(box: dict) -> bool:
    corners = box.get("bbox_xyxy")
    return (
        isinstance(corners, list)
        and len(corners) == 4
        and all(_is_number(v) for v in corners)
        and all(_is_number(box.get(key, 0.0)) for key in ("visible_fraction", "truncation"))
        and isinstance(box.get("speed_limit_kph", 0), int)
        and not isinstance(box.get("speed_limit_kph", 0), bool)
    )


def _scenery_patches(shape, boxes, config: RenderedSignConfig, rng) -> list[np.ndarray]:
    """Square patches of plate size in the band where signs stand, overlapping no labelled
    object."""
    height, width = shape[:2]
    taken = np.array([b["bbox_xyxy"] for b in boxes], float).reshape(-1, 4)
    patches = []
    largest = min(4 * config.min_plate_px, width, 0.5 * height)
    if largest < config.min_plate_px:
        return patches
    for _ in range(config.negatives_per_frame * 20):
        if len(patches) == config.negatives_per_frame:
            break
        side = float(rng.uniform(config.min_plate_px, largest))
        x0 = float(rng.uniform(0, width - side))
        y0 = float(rng.uniform(0.2 * height, 0.7 * height - side))
        patch = np.array([x0, y0, x0 + side, y0 + side])
        overlaps = (
            (taken[:, 0] < patch[2])
            & (taken[:, 2] > patch[0])
            & (taken[:, 1] < patch[3])
            & (taken[:, 3] > patch[1])
        )
        if not overlaps.any():
            patches.append(patch)
    return patches


def _crop(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    return cv2.resize(crop_box(rgb, box), (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA)
