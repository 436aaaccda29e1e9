"""Box label files: YOLO per-frame txt, KITTI label_2 and COCO JSON, read into one form.

Every reader returns :class:`LabelFile` per frame, keyed by the frame's file stem; a
malformed line or an unknown class raises :class:`LabelFormatError` naming the file and line.
Class ids are ours (:data:`perception.classes.CLASS_NAMES`); :data:`IGNORE_CLASS_ID` marks
regions where detections count neither way (KITTI ``DontCare``, COCO ``iscrowd``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bus.atomic import write_text
from perception.classes import (
    CLASS_NAMES,
    KITTI_IGNORE_TYPE,
    KITTI_TO_OURS,
    class_id,
    map_class_name,
)

logger = logging.getLogger(__name__)

IGNORE_CLASS_ID = -1
"""Class id of an ignore region."""

YOLO_FIELDS = 5
KITTI_FIELDS = (15, 16)
"""KITTI label_2 lines have 15 fields, 16 with a detection score."""
KITTI_FIELD_NAMES = (
    "type",
    "truncated",
    "occluded",
    "alpha",
    "x1",
    "y1",
    "x2",
    "y2",
    "height",
    "width",
    "length",
    "x",
    "y",
    "z",
    "rotation_y",
    "score",
)
"""Names of the fields of a KITTI label_2 line, for error messages."""

YOLO_TOLERANCE = 1e-3
"""How far normalised YOLO coordinates may stray outside [0, 1] (rounding in writers)."""

_TRAILING_NUMBER = re.compile(r"(\d+)$")


class LabelFormatError(ValueError):
    """A label file that cannot be read; the message names the file (and line)."""


class BoxLabels(NamedTuple):
    """Labelled boxes of one frame.

    :param boxes_xyxy: (N, 4) float32 pixels of the frame.
    :param class_ids: (N,) int64 our class ids, :data:`IGNORE_CLASS_ID` for ignore regions.
    """

    boxes_xyxy: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def empty(cls) -> BoxLabels:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))


class LabelFile(NamedTuple):
    """Labels of one frame as read from a file.

    :param source: the file they came from.
    :param boxes_xyxy: (N, 4) float32; fractions of the image when ``normalized`` (YOLO),
        else pixels.
    :param image_wh: (width, height) the file states for the image, None when it does not.
    """

    source: str
    boxes_xyxy: np.ndarray
    class_ids: np.ndarray
    normalized: bool
    image_wh: tuple[int, int] | None = None

    def to_pixels(self, width: int, height: int) -> BoxLabels:
        """The boxes in pixels of a ``width`` x ``height`` frame.

        :raises LabelFormatError: when the file states a different image size.
        """
        if self.image_wh is not None and tuple(self.image_wh) != (width, height):
            raise LabelFormatError(
                f"{self.source}: labels are for a {self.image_wh[0]}x{self.image_wh[1]} image "
                f"but the frame is {width}x{height}"
            )
        boxes = self.boxes_xyxy
        if self.normalized:
            boxes = boxes * np.array([width, height, width, height], np.float32)
        return BoxLabels(boxes.astype(np.float32), self.class_ids)


class LabelSet(NamedTuple):
    """Labels of a clip: format name (``yolo``, ``kitti``, ``coco``), path, and the labels
    of each frame keyed by file stem."""

    format: str
    path: str
    frames: dict[str, LabelFile]


def _labels(
    source: str,
    rows: list[tuple[float, float, float, float]],
    ids: list[int],
    normalized: bool,
    image_wh: tuple[int, int] | None = None,
) -> LabelFile:
    boxes = np.array(rows, np.float32).reshape(-1, 4)
    return LabelFile(source, boxes, np.array(ids, np.int64), normalized, image_wh)


def _floats(fields: list[str], where: str) -> list[float]:
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise LabelFormatError(f"{where}: expected numbers, got {' '.join(fields)!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise LabelFormatError(f"{where}: non-finite number in {' '.join(fields)!r}")
    return values


def read_yolo_txt(path: str | os.PathLike, class_names: tuple[str, ...] = CLASS_NAMES) -> LabelFile:
    """One YOLO label file: lines ``CLASS CX CY W H`` with coordinates normalised to [0, 1].

    :param class_names: the names of the file's class indices (its dataset's ``names``);
        they are mapped onto ours (COCO names allowed; COCO classes we do not detect dropped).
    """
    path = Path(path)
    mapping = _class_mapping(class_names, str(path))
    rows, ids = [], []
    for line_no, line in enumerate(_read_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_no}"
        if len(fields) != YOLO_FIELDS:
            raise LabelFormatError(f"{where}: expected 'CLASS CX CY W H', got {line.strip()!r}")
        if not fields[0].isdigit() or int(fields[0]) >= len(class_names):
            raise LabelFormatError(
                f"{where}: class index {fields[0]!r} is not in 0..{len(class_names) - 1}"
            )
        cx, cy, w, h = _floats(fields[1:], where)
        if (
            w <= 0
            or h <= 0
            or not all(-YOLO_TOLERANCE <= v <= 1 + YOLO_TOLERANCE for v in (cx, cy, w, h))
        ):
            raise LabelFormatError(f"{where}: box {cx} {cy} {w} {h} is not normalised to (0, 1]")
        ours = mapping[int(fields[0])]
        if ours is None:
            continue
        rows.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        ids.append(ours)
    return _labels(str(path), rows, ids, normalized=True)


def write_yolo_txt(path: str | os.PathLike, labels: BoxLabels, width: int, height: int) -> None:
    """Write one YOLO label file (atomically); ignore regions are not written."""
    lines = []
    for (x1, y1, x2, y2), cls in zip(labels.boxes_xyxy, labels.class_ids, strict=True):
        if cls == IGNORE_CLASS_ID:
            continue
        x1, x2 = np.clip([x1, x2], 0, width)
        y1, y2 = np.clip([y1, y2], 0, height)
        if x2 <= x1 or y2 <= y1:
            continue
        lines.append(
            f"{int(cls)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
        )
    write_text(path, "".join(line + "\n" for line in lines))


def read_kitti_label(path: str | os.PathLike) -> LabelFile:
    """One KITTI label_2 file: ``TYPE TRUNC OCCL ALPHA X1 Y1 X2 Y2 H W L X Y Z RY [SCORE]``.

    Types map through :data:`perception.classes.KITTI_TO_OURS`; ``DontCare`` becomes an
    ignore region; known KITTI types we do not detect (Cyclist, Tram, Misc) are dropped.
    """
    path = Path(path)
    rows, ids = [], []
    for line_no, line in enumerate(_read_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_no}"
        if len(fields) not in KITTI_FIELDS:
            raise LabelFormatError(f"{where}: expected 15 or 16 KITTI fields, got {len(fields)}")
        kitti_type = fields[0]
        if kitti_type not in KITTI_TO_OURS:
            raise LabelFormatError(
                f"{where}: unknown KITTI type {kitti_type!r}; known: {', '.join(KITTI_TO_OURS)}"
            )
        values = _kitti_numbers(fields, where)
        x1, y1, x2, y2 = values[3:7]
        if x2 < x1 or y2 < y1:
            raise LabelFormatError(
                f"{where}: box corners {x1} {y1} {x2} {y2} are not x1<=x2, y1<=y2"
            )
        ours = KITTI_TO_OURS[kitti_type]
        if kitti_type == KITTI_IGNORE_TYPE:
            ids.append(IGNORE_CLASS_ID)
        elif ours is None:
            continue
        else:
            ids.append(class_id(ours))
        rows.append((x1, y1, x2, y2))
    return _labels(str(path), rows, ids, normalized=False)


def _kitti_numbers(fields: list[str], where: str) -> list[float]:
    """The numeric fields of a KITTI line (all but the type), each checked by name."""
    values = []
    for name, text in zip(KITTI_FIELD_NAMES[1:], fields[1:], strict=False):
        try:
            value = float(text)
        except ValueError:
            raise LabelFormatError(
                f"{where}: KITTI field {name!r} is not a number: {text!r}"
            ) from None
        if not math.isfinite(value):
            raise LabelFormatError(f"{where}: KITTI field {name!r} is not finite: {text!r}")
        values.append(value)
    return values


def read_coco_json(path: str | os.PathLike) -> LabelSet:
    """A COCO detection file (``images``, ``annotations`` with ``bbox`` xywh in pixels,
    ``categories`` named by our class names or COCO names); keyed by image file stem."""
    path = Path(path)
    data = _load_json(path)
    try:
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = {
            int(i["id"]): (Path(str(i["file_name"])).stem, int(i["width"]), int(i["height"]))
            for i in data["images"]
        }
        annotations = list(data["annotations"])
    except (KeyError, TypeError, ValueError) as error:
        raise LabelFormatError(
            f"{path}: not a COCO detection file ({type(error).__name__}: {error})"
        ) from None
    mapping = {}
    for cat_id, name in categories.items():
        try:
            mapping[cat_id] = map_class_name(name)
        except ValueError as error:
            raise LabelFormatError(f"{path}: category {cat_id}: {error}") from None
    rows: dict[int, list] = {image_id: [] for image_id in images}
    ids: dict[int, list] = {image_id: [] for image_id in images}
    for number, annotation in enumerate(annotations):
        image_id, ours, box = _coco_annotation(
            annotation, mapping, images, f"{path}: annotations[{number}]"
        )
        if ours is None:
            continue
        rows[image_id].append(box)
        ids[image_id].append(ours)
    frames = {}
    for image_id, (stem, width, height) in images.items():
        if stem in frames:
            raise LabelFormatError(f"{path}: two images share the file name stem {stem!r}")
        frames[stem] = _labels(
            f"{path} (image {stem})",
            rows[image_id],
            ids[image_id],
            normalized=False,
            image_wh=(width, height),
        )
    return LabelSet("coco", str(path), frames)


def _coco_annotation(annotation, mapping, images, where: str):
    try:
        image_id = int(annotation["image_id"])
        category = int(annotation["category_id"])
        x, y, w, h = _floats([str(v) for v in annotation["bbox"]], where)
        crowd = bool(annotation.get("iscrowd", 0))
    except (KeyError, TypeError, ValueError) as error:
        raise LabelFormatError(
            f"{where}: malformed annotation ({type(error).__name__}: {error})"
        ) from None
    if image_id not in images:
        raise LabelFormatError(f"{where}: image_id {image_id} is not among the images")
    if category not in mapping:
        raise LabelFormatError(f"{where}: category_id {category} is not among the categories")
    if w < 0 or h < 0:
        raise LabelFormatError(f"{where}: negative box size {w}x{h}")
    ours = IGNORE_CLASS_ID if crowd else mapping[category]
    return image_id, ours, (x, y, x + w, y + h)


def read_label_dir(path: str | os.PathLike) -> LabelSet:
    """A directory of per-frame ``.txt`` files, KITTI label_2 or YOLO (recognised from the
    first non-empty line). YOLO class names come from ``classes.txt`` (one per line) or a
    ``data.yaml`` in the directory or its parents' ``names``, else ours in order."""
    path = Path(path)
    files = sorted(p for p in path.glob("*.txt") if p.name != "classes.txt")
    if not files:
        raise LabelFormatError(f"label directory {str(path)!r} holds no .txt label files")
    kitti = _looks_like_kitti(files)
    names = None if kitti else _yolo_class_names(path)
    frames = {}
    for file in files:
        frames[file.stem] = read_kitti_label(file) if kitti else read_yolo_txt(file, names)
    return LabelSet("kitti" if kitti else "yolo", str(path), frames)


def read_labels(path: str | os.PathLike) -> LabelSet:
    """Labels from a COCO ``.json`` file or a directory of YOLO/KITTI ``.txt`` files.

    :raises OSError: when the path does not exist.
    :raises LabelFormatError: when it is of no known format or malformed.
    """
    path = Path(path)
    if not path.exists():
        raise OSError(f"labels {str(path)!r} do not exist")
    if path.is_dir():
        return read_label_dir(path)
    if path.suffix.lower() == ".json":
        return read_coco_json(path)
    raise LabelFormatError(
        f"labels {str(path)!r}: expected a COCO .json file or a directory of YOLO or KITTI "
        ".txt files"
    )


def _looks_like_kitti(files: list[Path]) -> bool:
    for file in files:
        for line in _read_lines(file):
            fields = line.split()
            if fields:
                return len(fields) in KITTI_FIELDS and not _is_number(fields[0])
    return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _yolo_class_names(directory: Path) -> tuple[str, ...]:
    classes_txt = directory / "classes.txt"
    if classes_txt.is_file():
        return tuple(line.strip() for line in _read_lines(classes_txt) if line.strip())
    for folder in (directory, *directory.parents[:3]):
        data_yaml = folder / "data.yaml"
        if data_yaml.is_file():
            return _names_from_yaml(data_yaml)
    return CLASS_NAMES


def _names_from_yaml(path: Path) -> tuple[str, ...]:
    import yaml

    try:
        names = yaml.safe_load(path.read_text(encoding="utf-8"))["names"]
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise LabelFormatError(f"{path}: no readable 'names' list ({error})") from None
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    return tuple(str(n) for n in names)


def _class_mapping(class_names: tuple[str, ...], source: str) -> list[int | None]:
    try:
        return [map_class_name(name) for name in class_names]
    except ValueError as error:
        raise LabelFormatError(f"{source}: {error}") from None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LabelFormatError(f"{path}: not a UTF-8 text file") from None


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LabelFormatError(f"{path}: not valid JSON ({error})") from None


def match_frames(
    labels: LabelSet, frame_names: list[str], strict: bool = True
) -> dict[int, LabelFile]:
    """Frame index -> labels, matching label keys to frame names exactly; when no key
    names a frame, by the trailing number of both (``000012.txt`` labels frame ``frame_12``,
    or frame 12 of a video, whose frames are named by index). Labels named like the frames
    are never matched by number: ``e000003_0000`` is not frame ``e000001_0000``.

    :param strict: raise for label files that match no frame; when False they are left
        out (a run stopped early has read only some frames).
    :raises LabelFormatError: naming the label files that match no frame.
    """
    by_name = {name: index for index, name in enumerate(frame_names)}
    by_number: dict[int, int] = {}
    for index, name in enumerate(frame_names):
        number = _trailing_number(name)
        if number is not None:
            by_number[number] = index if number not in by_number else -1
    matched: dict[int, LabelFile] = {}
    unmatched = []
    by_names = any(key in by_name for key in labels.frames)
    for key, label_file in labels.frames.items():
        index = by_name.get(key)
        if index is None and by_names:
            index = -1
        elif index is None:
            number = _trailing_number(key)
            index = by_number.get(number, -1) if number is not None else -1
        if index < 0:
            unmatched.append(label_file.source)
        else:
            matched[index] = label_file
    if unmatched and strict:
        shown = ", ".join(unmatched[:3]) + (
            f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else ""
        )
        raise LabelFormatError(
            f"labels {labels.path!r}: {len(unmatched)} label file(s) match no frame of the "
            f"{len(frame_names)} frames ({frame_names[0]} .. {frame_names[-1]}): {shown}"
        )
    return matched


def _trailing_number(name: str) -> int | None:
    match = _TRAILING_NUMBER.search(name)
    return int(match.group(1)) if match else None
