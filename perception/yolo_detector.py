"""Our YOLO detector (an ultralytics model built from its yaml) behind the
:class:`perception.detector.Detector` interface.

Weights come in two kinds:

- drivestack weights (``SHIPPED_DETECTOR`` and what ``drivestack train-detector`` writes): a
  plain dict of tensors and strings, loaded with ``torch.load(weights_only=True)``, so the
  file cannot run code. Keys: ``format``, ``model_yaml``, ``names``, ``imgsz``,
  ``state_dict`` (float16).
- ultralytics checkpoints (``best.pt``): pickles of whole Python objects. Loading one runs
  code from the file, so it is refused unless the caller says it trusts the file.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from perception.classes import map_class_name
from perception.detector import DEFAULT_CONF, NMS_IOU, Detections

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "drivestack-yolo/1"
MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED_DETECTOR = MODELS_DIR / "detector.pt"
STRIDE_PX = 32
PAD_VALUE = 114
MAX_DETECTIONS = 300
MAX_CLASS_LAYER_WIDTH = 256
"""Widest hidden class layers accepted where they differ from the yaml's (that happens only
below 100, where ultralytics sizes them by the class count)."""


class UntrustedWeightsError(ValueError):
    """A pickled checkpoint that would run code when loaded."""


def load_safe_weights(path: Path) -> dict[str, Any]:
    """Read drivestack weights with ``weights_only=True``.

    :raises UntrustedWeightsError: when the file is a pickle of Python objects (an
        ultralytics checkpoint).
    :raises ValueError: when it is not a weights file, or not ours.
    """
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"weights {str(path)!r} are not a readable PyTorch file (not a torch.save archive)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, ...
        if "Weights only load failed" in str(error) or "Unsupported global" in str(error):
            raise UntrustedWeightsError(
                f"weights {str(path)!r} are a pickled checkpoint (e.g. an ultralytics best.pt); "
                "loading one executes code stored in it. Pass --trust-weights if you trust "
                "the file"
            ) from None
        raise ValueError(
            f"weights {str(path)!r} are not a readable PyTorch file: {error}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(
            f"weights {str(path)!r} are not drivestack detector weights (format {WEIGHTS_FORMAT!r})"
        )
    problem = _payload_problem(payload)
    if problem:
        raise ValueError(f"weights {str(path)!r}: {problem}")
    return payload


MAX_CLASSES = 1000
MODEL_YAML_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.yaml$")
"""A model config is named, not given as a path: ultralytics finds it among its own."""


def _payload_problem(payload: dict[str, Any]) -> str | None:
    """What makes loaded drivestack weights unusable (before any layer is built), or None."""
    names, imgsz = payload.get("names"), payload.get("imgsz")
    model_yaml, state = payload.get("model_yaml"), payload.get("state_dict")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_CLASSES:
        return f"'names' must list 1 to {MAX_CLASSES} class names"
    if not all(isinstance(n, str) for n in names):
        return "'names' must be strings"
    if not isinstance(imgsz, int) or isinstance(imgsz, bool) or not 32 <= imgsz <= 4096:
        return f"'imgsz' must be a whole number of pixels in [32, 4096], got {imgsz!r}"
    if not isinstance(model_yaml, str) or not MODEL_YAML_NAME.match(model_yaml):
        return (
            "'model_yaml' must name an ultralytics model config (e.g. yolo11n.yaml), "
            f"got {model_yaml!r}"
        )
    if not isinstance(state, dict) or not state:
        return "'state_dict' must map parameter names to tensors"
    for key, tensor in state.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            return "'state_dict' must map parameter names to tensors"
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"parameter {key!r} holds NaN or infinite values"
    return None


def model_from_safe_weights(payload: dict[str, Any]):
    """The (unfused, trainable) DetectionModel of loaded drivestack weights, in float32.
    Weights fine-tuned from a checkpoint with wider class layers (a COCO nano model) keep
    that width: the model is built with it.

    :raises ValueError: when the weights do not fit the model their config builds.
    """
    from ultralytics.nn.modules.head import Detect

    try:
        model = build_model(payload["model_yaml"], len(payload["names"]))
    except Exception as error:  # ultralytics raises several kinds for unknown configs
        raise ValueError(
            f"model config {payload['model_yaml']!r} does not build: {error}"
        ) from None
    if not isinstance(model.model[-1], Detect):
        raise ValueError(f"model config {payload['model_yaml']!r} is not a detector")
    width = _class_layer_width(payload["state_dict"], model)
    if width is not None:
        if not 1 <= width <= MAX_CLASS_LAYER_WIDTH:
            raise ValueError(f"class layers {width} wide are not a YOLO detection head's")
        template = build_model(payload["model_yaml"], width)
        if not adopt_class_layers(model.model[-1], template.model[-1]) or (
            _class_layer_width(payload["state_dict"], model) is not None
        ):
            raise ValueError(f"class layers {width} wide do not fit {payload['model_yaml']}")
    try:
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
        )
    except RuntimeError as error:
        first = str(error).strip().splitlines()[:3]
        raise ValueError(
            f"the weights do not fit {payload['model_yaml']} with {len(payload['names'])} "
            f"classes: {' '.join(line.strip() for line in first)}"
        ) from None
    model.names = dict(enumerate(payload["names"]))
    return model


def adopt_class_layers(target_head, source_head) -> bool:
    """Give ``target_head`` (an ultralytics ``Detect``) copies of ``source_head``'s hidden
    class layers where their width differs, with a new output layer for the target's
    classes (its bias prior kept, weights zero until rows are copied or trained).

    Nano heads make their hidden class layers as wide as the class count (at least 64, at
    most 100): a COCO model's are 80 wide, ours 64, so without this the COCO class rows could
    not start ours. Returns whether anything was replaced."""
    import copy

    replaced = False
    # End-to-end heads (YOLO26, YOLOv10) hold a second set of class layers.
    for name in ("cv3", "one2one_cv3"):
        if not hasattr(target_head, name) or not hasattr(source_head, name):
            continue
        branches = []
        pairs = zip(getattr(source_head, name), getattr(target_head, name), strict=True)
        for source_branch, target_branch in pairs:
            source_out, target_out = source_branch[-1], target_branch[-1]
            if source_out.in_channels == target_out.in_channels:
                branches.append(target_branch)
                continue
            branch = copy.deepcopy(source_branch)
            output = torch.nn.Conv2d(source_out.in_channels, target_out.out_channels, 1)
            with torch.no_grad():
                output.weight.zero_()
                output.bias.copy_(target_out.bias)
            branch[-1] = output
            branches.append(branch)
            replaced = True
        setattr(target_head, name, torch.nn.ModuleList(branches))
    return replaced


def _class_layer_width(state_dict: dict[str, torch.Tensor], model) -> int | None:
    """The input width of the class output layers in ``state_dict`` where it differs from
    ``model``'s, else None."""
    index = len(model.model) - 1
    branch = model.model[-1].cv3[0]
    key = f"model.{index}.cv3.0.{len(branch) - 1}.weight"
    stored = state_dict.get(key)
    if stored is None or stored.ndim != 4 or stored.shape[1] == branch[-1].in_channels:
        return None
    return int(stored.shape[1])


def is_safe_weights(path: Path) -> bool:
    """Whether ``path`` holds drivestack weights (checked without unpickling)."""
    try:
        load_safe_weights(path)
    except ValueError:
        return False
    return True


@contextmanager
def quiet_ultralytics(level: int = logging.WARNING) -> Iterator[None]:
    """Hold ultralytics' own logger (which prints to stdout by itself, e.g. "Overriding
    model.yaml nc=80 with nc=5" on every model build) at ``level`` or above for the block."""
    from ultralytics.utils import LOGGER

    previous = LOGGER.level
    LOGGER.setLevel(max(previous, level))
    try:
        yield
    finally:
        LOGGER.setLevel(previous)


def build_model(model_yaml: str, class_count: int):
    """An ultralytics DetectionModel from its yaml (no weights downloaded)."""
    from ultralytics.nn.tasks import DetectionModel

    with quiet_ultralytics():
        return DetectionModel(cfg=model_yaml, nc=class_count, verbose=False)


class YoloDetector:
    """Runs a YOLO detection model; its classes are mapped onto ours by name.

    :param path: drivestack weights, or (with ``trust``) an ultralytics checkpoint.
    :param imgsz: inference size (longest side, px); defaults to the training size.
    :raises ValueError: wrong kind of file, or classes that are neither ours nor COCO's.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        conf: float = DEFAULT_CONF,
        imgsz: int | None = None,
        trust: bool = False,
    ) -> None:
        self.path = Path(path)
        self.conf = conf
        try:
            payload = load_safe_weights(self.path)
        except UntrustedWeightsError:
            if not trust:
                raise
            payload = None
        if payload is not None:
            try:
                self.model = model_from_safe_weights(payload)
            except ValueError as error:
                raise ValueError(f"weights {str(self.path)!r}: {error}") from None
            names, self.imgsz = list(payload["names"]), int(imgsz or payload["imgsz"])
        else:
            self.model, names, self.imgsz = _load_trusted_ultralytics(self.path, imgsz)
        self.model.float().eval()
        self.model.fuse(verbose=False)  # fold batch norms into convolutions for inference
        # NHWC suits oneDNN's CPU convolutions: about 10 % faster here at 640x384.
        self.model = self.model.to(memory_format=torch.channels_last)
        self.class_map = _class_map(names, self.path)
        self.name = f"yolo:{self.path.name}"

    @torch.no_grad()
    def detect(self, image_rgb: np.ndarray) -> Detections:
        """Detect in an HxWx3 uint8 RGB image; boxes in its pixels, our class ids."""
        from ultralytics.utils.nms import non_max_suppression

        blob, scale, pad_xy = letterbox(image_rgb, self.imgsz)
        output = self.model(torch.from_numpy(blob))
        prediction = output[0] if isinstance(output, (list, tuple)) else output
        kept = non_max_suppression(
            prediction, conf_thres=self.conf, iou_thres=NMS_IOU, max_det=MAX_DETECTIONS
        )[0].numpy()
        boxes = (kept[:, :4] - np.array([*pad_xy, *pad_xy], np.float32)) / scale
        height, width = image_rgb.shape[:2]
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        ours = self.class_map[kept[:, 5].astype(np.int64)]
        keep = ours >= 0
        return Detections(boxes[keep], kept[keep, 4].astype(np.float32), ours[keep])


def letterbox(image_rgb: np.ndarray, size_px: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Scale the longest side to ``size_px``, pad each side to a multiple of the stride
    (centred, value 114). Returns the (1, 3, H, W) float32 [0, 1] RGB blob, the scale and
    the (x, y) padding in blob pixels."""
    height, width = image_rgb.shape[:2]
    scale = size_px / max(height, width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    out_w = -(-new_w // STRIDE_PX) * STRIDE_PX
    out_h = -(-new_h // STRIDE_PX) * STRIDE_PX
    pad_x, pad_y = (out_w - new_w) / 2, (out_h - new_h) / 2
    left, top = int(round(pad_x - 0.1)), int(round(pad_y - 0.1))
    canvas = cv2.copyMakeBorder(
        resized,
        top,
        out_h - new_h - top,
        left,
        out_w - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(PAD_VALUE,) * 3,
    )
    blob = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    return np.ascontiguousarray(blob), scale, (float(left), float(top))


def _class_map(names: list[str], path: Path) -> np.ndarray:
    """Model class index -> our class id, -1 for COCO classes we drop."""
    try:
        mapped = [map_class_name(str(n)) for n in names]
    except ValueError as error:
        raise ValueError(f"weights {str(path)!r}: {error}") from None
    return np.array([-1 if m is None else m for m in mapped], np.int64)


def _load_trusted_ultralytics(path: Path, imgsz: int | None):
    from ultralytics import YOLO

    logger.warning("loading pickled checkpoint %s (trusted by the caller)", path)
    try:
        with quiet_ultralytics():
            yolo = YOLO(str(path), task="detect")
    except Exception as error:  # ultralytics raises many types for foreign files
        raise ValueError(
            f"weights {str(path)!r} are not an ultralytics checkpoint: {error}"
        ) from None
    if yolo.task != "detect":
        raise ValueError(f"weights {str(path)!r} are a {yolo.task!r} model, not a detector")
    names = yolo.model.names
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    train_size = int(getattr(yolo.model, "args", {}).get("imgsz", 640) or 640)
    return yolo.model, names, int(imgsz or train_size)


def export_safe_weights(
    model,
    names: list[str],
    model_yaml: str,
    imgsz: int,
    path: Path,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write drivestack weights (float16 state_dict) for a trained DetectionModel."""
    from bus.atomic import atomic_path

    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    payload = {
        "format": WEIGHTS_FORMAT,
        "model_yaml": model_yaml,
        "names": list(names),
        "imgsz": int(imgsz),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
