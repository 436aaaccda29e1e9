"""The detector interface shared by every backend (ONNX COCO models, our YOLO, oracles in
tests), and the factory that picks a backend from a weights file."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

logger = logging.getLogger(__name__)


class Detections(NamedTuple):
    """Boxes found in one image.

    :param boxes_xyxy: (N, 4) float32, corners x1, y1, x2, y2 in pixels of the input image.
    :param scores: (N,) float32 confidence in [0, 1].
    :param class_ids: (N,) int64 ids into :data:`perception.classes.CLASS_NAMES`.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.scores.shape[0])

    def select(self, keep: np.ndarray) -> Detections:
        """The detections at the boolean mask or index array ``keep``."""
        return Detections(self.boxes_xyxy[keep], self.scores[keep], self.class_ids[keep])


class Detector(Protocol):
    """Finds boxes of our classes in RGB images."""

    name: str

    def detect(self, image_rgb: np.ndarray) -> Detections:
        """Detect in one HxWx3 uint8 RGB image; boxes in its pixels."""
        ...


DEFAULT_CONF = 0.25
"""Default minimum score kept by the detectors."""

NMS_IOU = 0.45
"""IoU above which a lower-scored box of the same class is suppressed."""


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) of xyxy boxes (N, 4) and (M, 4)."""
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (boxes_a[:, 2:] - boxes_a[:, :2]).clip(0).prod(axis=1)
    area_b = (boxes_b[:, 2:] - boxes_b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return intersection / np.maximum(union, 1e-9)


def class_nms(
    detections: Detections, iou_threshold: float = NMS_IOU, agnostic: bool = False
) -> Detections:
    """Non-maximum suppression, highest scores first (OpenCV's NMSBoxesBatched), per class
    or, with ``agnostic``, across classes (one box per object: a car is not also a truck)."""
    import cv2

    if len(detections) == 0:
        return detections
    boxes = detections.boxes_xyxy
    boxes_xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxesBatched(
        boxes_xywh.tolist(),
        detections.scores.tolist(),
        detections.class_ids.tolist(),
        0.0,
        iou_threshold,
    )
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    return detections.select(np.sort(keep))


def load_detector(
    weights: str | os.PathLike,
    conf: float = DEFAULT_CONF,
    trust: bool = False,
    threads: int = 0,
    zoom=None,
    zoom_parallel: bool = False,
) -> Detector:
    """A detector for a weights file: ``.onnx`` (a COCO YOLOX or FastestDet export) or an
    ultralytics ``.pt``.

    :param trust: allow pickled ultralytics checkpoints, which run code when loaded.
    :param zoom: a :class:`perception.zoom.ZoomWindow` the detector also looks at, scaled
        up (for distant objects), or None.
    :param zoom_parallel: take the frame's and the window's look at once, on two threads.
    :param threads: onnxruntime intra-op threads (0: its default). PyTorch models use the
        process-wide ``torch.set_num_threads``, which only the caller (the CLI) sets.

    :raises OSError: when the file is missing or unreadable.
    :raises ValueError: when the file is not weights of a supported kind.
    """
    path = Path(weights)
    if path.is_dir():
        raise OSError(f"weights {str(path)!r} is a directory; expected a .pt or .onnx file")
    if not path.is_file():
        raise OSError(f"weights file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from perception.onnx_detector import OnnxCocoDetector

        return _zoomed(OnnxCocoDetector(path, conf=conf, threads=threads), zoom, zoom_parallel)
    if suffix == ".pt":
        from perception.yolo_detector import YoloDetector

        return _zoomed(YoloDetector(path, conf=conf, trust=trust), zoom, zoom_parallel)
    raise ValueError(
        f"weights {str(path)!r}: unsupported kind {suffix or '(no extension)'!r}; "
        "expected an ONNX COCO detector (.onnx) or an ultralytics YOLO checkpoint (.pt)"
    )


def _zoomed(detector: Detector, zoom, parallel: bool) -> Detector:
    if zoom is None:
        return detector
    from perception.zoom import ZoomedDetector

    return ZoomedDetector(detector, zoom, parallel=parallel)
