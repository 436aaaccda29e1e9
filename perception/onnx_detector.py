"""Pretrained COCO detectors exported to ONNX (YOLOX-Nano, FastestDet), run with
onnxruntime and mapped onto our classes.

Both models output raw per-cell predictions; the decoders below turn them into boxes in the
pixels of the original image. Layouts (see ../shared/data/SOURCES.md):

- YOLOX: input 1x3xSxS BGR 0-255, letterboxed at the top-left with pad value 114; output
  1xAx85 per anchor point over strides 8/16/32: ``xy = (out + grid) * stride``,
  ``wh = exp(out) * stride``, objectness and class scores already sigmoid-ed.
- FastestDet: input 1x3xHxW BGR 0-1, plain resize; output 1x85xGxG: objectness (sigmoid),
  4 box terms (x/y offsets through tanh, w/h through sigmoid as fractions of the image) and
  80 class probabilities (softmax); score = obj^0.6 * cls^0.4.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from perception.classes import COCO80_TO_CLASS_ID
from perception.detector import DEFAULT_CONF, Detections, class_nms

logger = logging.getLogger(__name__)

COCO_CLASSES = 80
YOLOX_STRIDES = (8, 16, 32)
YOLOX_PAD_VALUE = 114
FASTESTDET_OBJ_EXPONENT = 0.6
FASTESTDET_CLS_EXPONENT = 0.4

_KEPT_COCO = np.array(sorted(COCO80_TO_CLASS_ID), dtype=np.int64)
_KEPT_TO_OURS = np.array([COCO80_TO_CLASS_ID[i] for i in _KEPT_COCO], dtype=np.int64)


@dataclass(frozen=True)
class Candidates:
    """Per-cell predictions before thresholding: boxes xyxy in network-input pixels (N, 4)
    and scores (N, 80) per COCO class."""

    boxes_xyxy: np.ndarray
    class_scores: np.ndarray


class OnnxCocoDetector:
    """A COCO-80 ONNX detector whose classes are mapped onto ours (others dropped).

    :param path: the ``.onnx`` file; its layout (YOLOX or FastestDet) is recognised from the
        output shape.
    :param conf: minimum score kept.
    :param threads: onnxruntime intra-op threads (0 lets onnxruntime choose).
    :raises ValueError: when the file is not an ONNX model of a known layout.
    """

    def __init__(
        self, path: str | os.PathLike, conf: float = DEFAULT_CONF, threads: int = 0
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.conf = conf
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise ValueError(
                f"weights {str(self.path)!r} is not a readable ONNX model: {error}"
            ) from None
        self.layout, self.input_hw = _recognise_layout(self.session, self.path)
        self.input_name = self.session.get_inputs()[0].name
        self.name = f"{self.layout}:{self.path.name}"

    def detect(self, image_rgb: np.ndarray) -> Detections:
        """Detect in an HxWx3 uint8 RGB image; boxes in its pixels, our class ids."""
        height, width = image_rgb.shape[:2]
        image_bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        if self.layout == "yolox":
            blob, scale = _letterbox_top_left(image_bgr, self.input_hw)
            output = self.session.run(None, {self.input_name: blob})[0]
            candidates = decode_yolox(output[0], self.input_hw)
            boxes = candidates.boxes_xyxy / scale
        else:
            blob = _plain_resize(image_bgr, self.input_hw)
            output = self.session.run(None, {self.input_name: blob})[0]
            candidates = decode_fastestdet(output[0])
            boxes = candidates.boxes_xyxy * np.array([width, height, width, height], np.float32)
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        return _select(Candidates(boxes, candidates.class_scores), self.conf)


def _recognise_layout(session, path: Path) -> tuple[str, tuple[int, int]]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    input_shape, output_shape = inputs[0].shape, outputs[0].shape
    if (
        len(inputs) == 1
        and len(input_shape) == 4
        and all(isinstance(s, int) for s in input_shape[2:])
    ):
        input_hw = (int(input_shape[2]), int(input_shape[3]))
        channels = 5 + COCO_CLASSES
        if len(output_shape) == 3 and output_shape[-1] == channels:
            return "yolox", input_hw
        if len(output_shape) == 4 and output_shape[1] == channels:
            return "fastestdet", input_hw
    raise ValueError(
        f"weights {str(path)!r}: ONNX input {input_shape} / output {output_shape} is neither a "
        "YOLOX (1x3xSxS -> 1xAx85) nor a FastestDet (1x3xHxW -> 1x85xGxG) COCO detector"
    )


def _letterbox_top_left(
    image_bgr: np.ndarray, input_hw: tuple[int, int]
) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio, paste at the top-left of a padded canvas; returns
    the 1x3xHxW float32 blob (0-255) and the scale from image to network pixels."""
    height, width = image_bgr.shape[:2]
    scale = min(input_hw[0] / height, input_hw[1] / width)
    resized = cv2.resize(
        image_bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_LINEAR
    )
    canvas = np.full((*input_hw, 3), YOLOX_PAD_VALUE, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas.transpose(2, 0, 1)[None].astype(np.float32), scale


def _plain_resize(image_bgr: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    resized = cv2.resize(image_bgr, (input_hw[1], input_hw[0]), interpolation=cv2.INTER_AREA)
    return (resized.transpose(2, 0, 1)[None] / np.float32(255.0)).astype(np.float32)


def _yolox_grid(input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell offsets (A, 2) and strides (A, 1) of YOLOX's anchor points, stride by stride."""
    grids, strides = [], []
    for stride in YOLOX_STRIDES:
        rows, cols = input_hw[0] // stride, input_hw[1] // stride
        xs, ys = np.meshgrid(np.arange(cols), np.arange(rows))
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        strides.append(np.full((rows * cols, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_yolox(raw: np.ndarray, input_hw: tuple[int, int]) -> Candidates:
    """Decode YOLOX's (A, 85) output into boxes in network-input pixels."""
    grid, stride = _yolox_grid(input_hw)
    if raw.shape[0] != grid.shape[0]:
        raise ValueError(f"YOLOX output has {raw.shape[0]} anchor points, expected {grid.shape[0]}")
    centre = (raw[:, :2] + grid) * stride
    size = np.exp(np.clip(raw[:, 2:4], None, 20.0)) * stride
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    return Candidates(boxes, raw[:, 4:5] * raw[:, 5:])


def decode_fastestdet(raw: np.ndarray) -> Candidates:
    """Decode FastestDet's (85, G, G) output into boxes as fractions of the image."""
    _, rows, cols = raw.shape
    cells = raw.reshape(raw.shape[0], -1).T
    ys, xs = np.divmod(np.arange(rows * cols), cols)
    centre_x = (xs + np.tanh(cells[:, 1])) / cols
    centre_y = (ys + np.tanh(cells[:, 2])) / rows
    half_w = _sigmoid(cells[:, 3]) / 2
    half_h = _sigmoid(cells[:, 4]) / 2
    boxes = np.stack(
        [centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], 1
    )
    objectness = np.clip(cells[:, :1], 0, 1) ** FASTESTDET_OBJ_EXPONENT
    class_scores = np.clip(cells[:, 5:], 0, 1) ** FASTESTDET_CLS_EXPONENT
    return Candidates(boxes.astype(np.float32), objectness * class_scores)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def _select(candidates: Candidates, conf: float) -> Detections:
    """Best of our mapped classes per cell, score threshold, class-agnostic NMS (COCO
    models often see one vehicle as both car and truck)."""
    kept_scores = candidates.class_scores[:, _KEPT_COCO]
    best = kept_scores.argmax(axis=1)
    scores = kept_scores[np.arange(len(best)), best]
    mask = scores >= conf
    detections = Detections(
        candidates.boxes_xyxy[mask].astype(np.float32),
        scores[mask].astype(np.float32),
        _KEPT_TO_OURS[best[mask]],
    )
    return class_nms(detections, agnostic=True)
