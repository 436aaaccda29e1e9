"""A second, magnified look where distant objects are (slicing-aided inference, as SAHI).

On a forward camera the far road, and every object small enough to be missed at full-frame
resolution, lies in a narrow band around the horizon straight ahead: in held-out simulated
frames every car, pedestrian and sign under 16 px tall is inside the window
``(0.36, 0.40, 0.70, 0.58)`` of the frame. :class:`ZoomedDetector` runs any detector once
on the frame and once on such a window, which the detector scales up to its input size
(2.9x for that window of a 640x360 frame at 640 px), keeps the window's boxes that do not
touch its edges, and merges both by non-maximum suppression.

:func:`write_zoom_dataset` cuts the same windows out of a YOLO dataset, so a detector can be
trained on objects at the scale the second look shows them. Several windows (of different
frames) are stacked into one image, which keeps ultralytics' mosaic from being mostly
padding.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bus.atomic import atomic_path, write_text
from perception.detector import Detections, class_nms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZoomWindow:
    """:param box_frac: the window (x0, y0, x1, y1) as fractions of the frame's width and
        height.
    :param edge_px: window boxes closer than this to a window edge are dropped: the object
        goes on outside, and the full-frame look sees it whole.
    :param frame_imgsz: input size of the whole-frame look for detectors that take one
        (YOLO), None for the detector's own. With the distant objects left to the window, the
        frame can be looked at smaller: the perception node uses 512 (640 for the window).
    """

    box_frac: tuple[float, float, float, float] = (0.36, 0.40, 0.70, 0.58)
    edge_px: float = 2.0
    frame_imgsz: int | None = None

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box_frac
        if not all(math.isfinite(v) for v in self.box_frac) or not (
            0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
        ):
            raise ValueError(
                f"zoom window {self.box_frac} must satisfy 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1"
            )
        if self.frame_imgsz is not None and not 32 <= self.frame_imgsz <= 4096:
            raise ValueError(f"frame look size must be in [32, 4096] px, got {self.frame_imgsz}")

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The window in pixels of a ``width`` x ``height`` frame: at least 2 px a side
        (where the frame has them), inside the frame."""
        x0, y0, x1, y1 = self.box_frac
        left = min(int(round(x0 * width)), max(width - 2, 0))
        top = min(int(round(y0 * height)), max(height - 2, 0))
        right = min(max(int(round(x1 * width)), left + 2), width)
        bottom = min(max(int(round(y1 * height)), top + 2), height)
        return left, top, right, bottom


class ZoomedDetector:
    """A :class:`perception.detector.Detector` that looks twice: at the frame, and at
    ``window`` of it (which ``detector`` scales up to its input size).

    :param parallel: take both looks at once, the window's on a second thread (PyTorch and
        onnxruntime release the GIL while they compute). On two cores with one compute thread
        per look this is faster than one look after the other with two threads each. The
        window's look then runs on a copy of ``detector`` (an ultralytics head keeps the
        anchors of the last input size, so one model must not see two sizes at once).
    """

    def __init__(self, detector, window: ZoomWindow = ZoomWindow(), parallel: bool = False):
        self.detector = detector
        if window.frame_imgsz is not None and hasattr(detector, "imgsz"):
            self.detector = copy.copy(detector)  # the same model, looking at another size
            self.detector.imgsz = window.frame_imgsz
        self.window = window
        self.name = f"{getattr(detector, 'name', type(detector).__name__)}+zoom"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="zoom") if parallel else None
        self._window_detector = detector
        if parallel:
            try:
                self._window_detector = copy.deepcopy(detector)
            except Exception:  # noqa: BLE001 -- e.g. an onnxruntime session, safe to share
                logger.debug("sharing %s between both looks", self.name)

    def detect(self, image_rgb: np.ndarray) -> Detections:
        height, width = image_rgb.shape[:2]
        window = self.window.pixels(width, height)
        left, top, right, bottom = window
        crop = np.ascontiguousarray(image_rgb[top:bottom, left:right])
        if self._pool is None:
            full, found = self.detector.detect(image_rgb), self._window_detector.detect(crop)
        else:
            pending = self._pool.submit(self._window_detector.detect, crop)
            full = self.detector.detect(image_rgb)
            found = pending.result()
        return merge(full, window_detections(found, window, self.window.edge_px))


def parse_zoom(text: str) -> ZoomWindow:
    """``X0,Y0,X1,Y1`` fractions -> a window.

    :raises ValueError: naming the text, when it is not four numbers of a valid window.
    """
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise ValueError(
            f"zoom window {text!r}: expected X0,Y0,X1,Y1 fractions, e.g. 0.36,0.40,0.70,0.58"
        )
    return ZoomWindow(box_frac=values)  # type: ignore[arg-type]


def window_detections(
    detections: Detections, window_px: tuple[int, int, int, int], edge_px: float
) -> Detections:
    """Detections made in the window's image, moved into the frame; those touching a
    window edge are dropped."""
    left, top, right, bottom = window_px
    boxes = detections.boxes_xyxy
    inside = (
        (boxes[:, 0] > edge_px)
        & (boxes[:, 1] > edge_px)
        & (boxes[:, 2] < right - left - edge_px)
        & (boxes[:, 3] < bottom - top - edge_px)
    )
    kept = detections.select(inside)
    offset = np.array([left, top, left, top], np.float32)
    return Detections(kept.boxes_xyxy + offset, kept.scores, kept.class_ids)


def merge(full: Detections, zoomed: Detections) -> Detections:
    """Both looks' detections, one box per object and class (the higher score wins)."""
    joined = Detections(
        np.concatenate([full.boxes_xyxy, zoomed.boxes_xyxy]).astype(np.float32),
        np.concatenate([full.scores, zoomed.scores]).astype(np.float32),
        np.concatenate([full.class_ids, zoomed.class_ids]).astype(np.int64),
    )
    return class_nms(joined)


def write_zoom_dataset(
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    out_images: str | os.PathLike,
    window: ZoomWindow,
    stack: int = 3,
    min_inside: float = 0.5,
    prefix: str = "zoom_",
) -> int:
    """Cut ``window`` out of every image of a YOLO split, stack ``stack`` windows (of
    consecutive frames) into one image and write it with its YOLO labels beside it
    (``out_images/../labels``, as ultralytics looks for them). Boxes are clipped to their
    window and kept when at least ``min_inside`` of their area is in it; windows narrower
    than the widest of their stack are padded on the right. A frame without a label file
    holds no objects. Returns the number of images written.

    :raises OSError: naming the folder, when it holds no images.
    :raises LabelFormatError: naming the file and line, for a malformed label row.
    """
    from perception.labels import read_yolo_txt

    images = sorted(
        p for p in Path(images_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    if not images:
        raise OSError(f"{str(images_dir)!r} holds no images")
    out_images = Path(out_images)
    out_labels = out_images.parent.parent / "labels" / out_images.name
    out_images.mkdir(parents=True, exist_ok=True)
    out_labels.mkdir(parents=True, exist_ok=True)
    written = 0
    for start in range(0, len(images), stack):
        tiles, rows = [], []
        for path in images[start : start + stack]:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                logger.warning("zoom dataset skips unreadable %s", path)
                continue
            height, width = frame.shape[:2]
            left, top, right, bottom = window.pixels(width, height)
            offset_y = sum(t.shape[0] for t in tiles)
            tiles.append(frame[top:bottom, left:right])
            label_path = Path(labels_dir) / f"{path.stem}.txt"
            labels = (
                read_yolo_txt(label_path).to_pixels(width, height) if label_path.is_file() else None
            )
            boxes = [] if labels is None else zip(labels.class_ids, labels.boxes_xyxy, strict=True)
            for cls, box in boxes:
                clipped = np.clip(box, [left, top, left, top], [right, bottom, right, bottom])
                area = (box[2] - box[0]) * (box[3] - box[1])
                inside = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
                if area <= 0 or inside < min_inside * area:
                    continue
                rows.append((cls, clipped - [left, top - offset_y, left, top - offset_y]))
        if not tiles:
            continue
        tile_w = max(t.shape[1] for t in tiles)
        image = np.concatenate([_pad_right(t, tile_w) for t in tiles])
        name = f"{prefix}{images[start].stem}"
        h, w = image.shape[:2]
        lines = [
            f"{cls} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} "
            f"{(b[2] - b[0]) / w:.6f} {(b[3] - b[1]) / h:.6f}\n"
            for cls, b in rows
        ]
        write_text(out_labels / f"{name}.txt", "".join(lines))
        with atomic_path(out_images / f"{name}.jpg") as tmp:  # the image last: it has labels
            if not cv2.imwrite(str(tmp), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f"cannot write image {out_images / f'{name}.jpg'}")
        written += 1
    return written


def _pad_right(tile: np.ndarray, width: int) -> np.ndarray:
    """``tile`` widened to ``width`` with grey columns on the right."""
    missing = width - tile.shape[1]
    if missing <= 0:
        return tile
    return cv2.copyMakeBorder(tile, 0, 0, 0, missing, cv2.BORDER_CONSTANT, value=(114, 114, 114))
