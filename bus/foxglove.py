"""How message types appear in Foxglove: a table of per-type converters to Foxglove schemas.

By default the recorder writes each message as JSON in its own schema (``drivestack.<Type>``),
which Foxglove shows in raw-message and plot panels. Some types deserve Foxglove's own
schemas so that its image panel shows them: a camera image as ``foxglove.CompressedImage``
(JPEG or PNG), 2-D detections as ``foxglove.ImageAnnotations`` drawn over that image.

The stack's camera types get their views from :func:`register_default_views`. Registering
another type (e.g. the detector module for its detections message), once, before recording::

    from bus.foxglove import compressed_image_view, image_annotations_view, register_view

    register_view(Image, compressed_image_view(Image, image_format="jpeg"))
    register_view(Detections2D, image_annotations_view(list_field="detections"))

A view with ``suffix=""`` *replaces* the native channel (the topic is recorded only in the
Foxglove schema; ``decode`` turns it back into the typed message on replay, so it must be
given). A view with a suffix adds a *companion* channel ``topic + suffix`` beside the native
one (replay ignores it). Images replace (raw frames are too large for JSON); detections get a
companion so that the typed message replays exactly. The converters only need the field names
(``compressed_image_view(..., data_field=...)``, ``image_annotations_view(list_field=...,
bbox_field=..., label_field=..., score_field=...)``), so any image-like or box-list type fits.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from bus.messages import Header

_TIME = {
    "type": "object",
    "properties": {
        "sec": {"type": "integer", "minimum": 0},
        "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
    },
    "required": ["sec", "nsec"],
}
_COLOR = {
    "type": "object",
    "properties": {c: {"type": "number", "minimum": 0, "maximum": 1} for c in "rgba"},
}
_POINT2 = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}
_HEADER_SCHEMA = {
    "type": "object",
    "description": "the drivestack header, kept so that replay restores seq and valid",
    "properties": {
        "stamp_ns": {"type": "integer"},
        "seq": {"type": "integer"},
        "frame_id": {"type": "string"},
        "valid": {"type": "boolean"},
    },
}

COMPRESSED_IMAGE_SCHEMA: dict[str, Any] = {
    "title": "foxglove.CompressedImage",
    "description": "A compressed image",
    "type": "object",
    "properties": {
        "timestamp": _TIME,
        "frame_id": {"type": "string"},
        "data": {"type": "string", "contentEncoding": "base64"},
        "format": {"type": "string", "description": "jpeg, png or webp"},
        "drivestack_header": _HEADER_SCHEMA,
    },
    "required": ["timestamp", "frame_id", "data", "format"],
}

POINTS_LINE_LOOP = 2
"""``foxglove.PointsAnnotation`` type: a closed polyline."""

IMAGE_ANNOTATIONS_SCHEMA: dict[str, Any] = {
    "title": "foxglove.ImageAnnotations",
    "description": "Annotations drawn over an image, in its pixel coordinates",
    "type": "object",
    "properties": {
        "circles": {"type": "array", "items": {"type": "object"}},
        "points": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "timestamp": _TIME,
                    "type": {"type": "integer", "enum": [0, 1, 2, 3, 4]},
                    "points": {"type": "array", "items": _POINT2},
                    "outline_color": _COLOR,
                    "outline_colors": {"type": "array", "items": _COLOR},
                    "fill_color": _COLOR,
                    "thickness": {"type": "number", "minimum": 0},
                },
            },
        },
        "texts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "timestamp": _TIME,
                    "position": _POINT2,
                    "text": {"type": "string"},
                    "font_size": {"type": "number", "minimum": 0},
                    "text_color": _COLOR,
                    "background_color": _COLOR,
                },
            },
        },
    },
    "required": ["circles", "points", "texts"],
}


@dataclass(frozen=True)
class FoxgloveView:
    """How one message type is written in a Foxglove schema.

    :param schema_name: e.g. ``foxglove.CompressedImage``.
    :param schema: its JSON Schema.
    :param encode: message -> JSON-serialisable dict in that schema.
    :param decode: inverse of ``encode`` for replay (required when ``suffix`` is empty).
    :param suffix: empty to replace the native channel, else the companion channel's suffix.
    """

    schema_name: str
    schema: Mapping[str, Any]
    encode: Callable[[Any], dict[str, Any]]
    decode: Callable[[dict[str, Any]], Any] | None = None
    suffix: str = ""

    def __post_init__(self) -> None:
        if not self.suffix and self.decode is None:
            raise ValueError(
                f"view {self.schema_name}: a view that replaces the native channel "
                "needs a decode function so the topic can be replayed"
            )


_VIEWS: dict[type, list[FoxgloveView]] = {}
_DEFAULTS_REGISTERED = False
DEFAULT_JPEG_QUALITY = 90


def register_view(msg_type: type, view: FoxgloveView) -> None:
    """Record ``msg_type`` (also) in a Foxglove schema. A view with the same ``suffix`` (the
    same channel) registered before is replaced, so the last registration wins."""
    views = [v for v in _VIEWS.get(msg_type, []) if v.suffix != view.suffix]
    _VIEWS[msg_type] = [*views, view]


def register_default_views() -> None:
    """Views of the stack's own types (idempotent; the recorder and reader call it): camera
    images as JPEG ``foxglove.CompressedImage`` (quality :data:`DEFAULT_JPEG_QUALITY`; replay
    returns the JPEG-decoded pixels); the camera's ground-truth boxes and the detector's
    boxes as ``foxglove.ImageAnnotations`` companions (``/camera/truth/annotations``,
    ``/perception/detections/annotations``). Types registered by their own modules before this
    call keep their views."""
    global _DEFAULTS_REGISTERED
    if _DEFAULTS_REGISTERED:
        return
    _DEFAULTS_REGISTERED = True
    from bus.messages.camera import FrameLabels, Image
    from bus.messages.perception import Detections2D

    if replacing_view(Image) is None:
        register_view(Image, compressed_image_view(Image, "jpeg", DEFAULT_JPEG_QUALITY))
    if not views_for(FrameLabels):
        register_view(
            FrameLabels,
            image_annotations_view(
                list_field="boxes",
                label_field="label_class",
                score_field=None,
                color_rgba=(0.2, 1.0, 0.2, 1.0),
            ),
        )
    if not views_for(Detections2D):
        register_view(Detections2D, image_annotations_view())


def unregister_views(msg_type: type) -> None:
    _VIEWS.pop(msg_type, None)


def views_for(msg_type: type) -> tuple[FoxgloveView, ...]:
    return tuple(_VIEWS.get(msg_type, ()))


def replacing_view(msg_type: type) -> FoxgloveView | None:
    """The view recorded instead of the native schema, if one is registered."""
    return next((view for view in views_for(msg_type) if not view.suffix), None)


def foxglove_time(stamp_ns: int) -> dict[str, int]:
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return {"sec": max(sec, 0), "nsec": nsec if sec >= 0 else 0}


def compressed_image_view(
    msg_type: type[msgspec.Struct],
    image_format: str = "jpeg",
    jpeg_quality: int = 90,
    data_field: str = "data",
    height_field: str = "height",
    width_field: str = "width",
    encoding_field: str | None = "encoding",
) -> FoxgloveView:
    """A view writing an image message as ``foxglove.CompressedImage``.

    The message type must have ``header`` and the named fields: ``data`` holding HxWx3 uint8
    pixels row-major (``bytes`` or an array), ``height`` and ``width`` in pixels, and
    optionally ``encoding`` (``rgb8`` or ``bgr8``; ``rgb8`` when absent). Decoding builds the
    message from those fields only, with ``rgb8`` pixels, so its other fields need defaults.
    PNG replays exactly; JPEG is lossy.
    """
    import cv2

    if image_format not in ("jpeg", "png"):
        raise ValueError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
    extension = ".jpg" if image_format == "jpeg" else ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if image_format == "jpeg" else []

    def encode(message: Any) -> dict[str, Any]:
        height, width = int(getattr(message, height_field)), int(getattr(message, width_field))
        pixels = np.asarray(_as_array(getattr(message, data_field))).reshape(height, width, 3)
        is_bgr = encoding_field is not None and getattr(message, encoding_field) == "bgr8"
        # cvtColor, not a reversed view: OpenCV would copy the strided view element by element.
        bgr = pixels if is_bgr else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        ok, buffer = cv2.imencode(extension, bgr, params)
        if not ok:
            raise ValueError(f"could not encode a {width}x{height} image as {image_format}")
        header = message.header
        return {
            "timestamp": foxglove_time(header.stamp_ns),
            "frame_id": header.frame_id,
            "data": base64.b64encode(buffer.tobytes()).decode("ascii"),
            "format": image_format,
            "drivestack_header": msgspec.to_builtins(header),
        }

    def decode(data: dict[str, Any]) -> Any:
        buffer = np.frombuffer(base64.b64decode(data["data"]), dtype=np.uint8)
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"image data is not a valid {data.get('format')!r} image")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        header = msgspec.convert(data["drivestack_header"], Header)
        fields = {height_field: rgb.shape[0], width_field: rgb.shape[1], data_field: rgb.tobytes()}
        if encoding_field is not None:
            fields[encoding_field] = "rgb8"
        return msg_type(header=header, **fields)

    return FoxgloveView("foxglove.CompressedImage", COMPRESSED_IMAGE_SCHEMA, encode, decode)


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(value, dtype=np.uint8)
    return np.asarray(value, dtype=np.uint8)


def image_annotations_view(
    list_field: str = "detections",
    bbox_field: str = "bbox_xyxy",
    label_field: str | None = "class_name",
    score_field: str | None = "score",
    suffix: str = "/annotations",
    color_rgba: tuple[float, float, float, float] = (1.0, 0.2, 0.2, 1.0),
) -> FoxgloveView:
    """A companion view drawing 2-D boxes as ``foxglove.ImageAnnotations``.

    The message must have ``header`` and a sequence ``list_field`` of items with
    ``bbox_field`` = (x1, y1, x2, y2) in pixels of the image, and optionally a label and a
    score written above each box.
    """
    color = dict(zip("rgba", color_rgba, strict=True))
    text_background = {"r": 0.0, "g": 0.0, "b": 0.0, "a": 0.6}

    def encode(message: Any) -> dict[str, Any]:
        stamp = foxglove_time(message.header.stamp_ns)
        points, texts = [], []
        for item in getattr(message, list_field):
            x1, y1, x2, y2 = (float(v) for v in getattr(item, bbox_field))
            corners = [
                {"x": x1, "y": y1},
                {"x": x2, "y": y1},
                {"x": x2, "y": y2},
                {"x": x1, "y": y2},
            ]
            points.append(
                {
                    "timestamp": stamp,
                    "type": POINTS_LINE_LOOP,
                    "points": corners,
                    "outline_color": color,
                    "thickness": 2.0,
                }
            )
            label = _label(item, label_field, score_field)
            if label:
                texts.append(
                    {
                        "timestamp": stamp,
                        "position": {"x": x1, "y": y1},
                        "text": label,
                        "font_size": 12.0,
                        "text_color": color,
                        "background_color": text_background,
                    }
                )
        return {"circles": [], "points": points, "texts": texts}

    return FoxgloveView(
        "foxglove.ImageAnnotations", IMAGE_ANNOTATIONS_SCHEMA, encode, suffix=suffix
    )


def _label(item: Any, label_field: str | None, score_field: str | None) -> str:
    parts = []
    if label_field is not None and hasattr(item, label_field):
        value = getattr(item, label_field)
        parts.append(str(getattr(value, "value", value)))
    if score_field is not None and hasattr(item, score_field):
        parts.append(f"{float(getattr(item, score_field)):.2f}")
    return " ".join(parts)
