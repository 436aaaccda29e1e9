"""Front camera: the image, its calibration and its exact per-frame ground truth.

Camera frame (``frame_id="camera"``): OpenCV axes, x right, y down, z forward (optical axis).
Image coordinates are pixels with (0, 0) at the top-left corner of the top-left pixel; boxes
are ``bbox_xyxy`` = (x_min, y_min, x_max, y_max) in pixels of the published image.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from bus.messages.common import Header

DETECTION_CLASSES: tuple[str, ...] = ("car", "truck", "pedestrian", "traffic_sign", "lane_line")
"""Detector classes; the index is the YOLO class id (shared with ``perception/classes.py``)."""


class LabelClass(StrEnum):
    CAR = "car"
    TRUCK = "truck"
    PEDESTRIAN = "pedestrian"
    TRAFFIC_SIGN = "traffic_sign"
    LANE_LINE = "lane_line"
    LANDMARK = "landmark"
    """Not a detector class: labelled for the landmark localizer."""


class Image(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An uncompressed image.

    :param encoding: ``rgb8``: ``data`` holds height x width x 3 uint8, row-major.
    """

    header: Header
    height: int
    width: int
    encoding: str = "rgb8"
    data: bytes = b""


class CameraInfo(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Calibration of the camera (latched; republished when an episode jitters the mount).

    :param k: 3x3 intrinsic matrix, row-major (fx, 0, cx, 0, fy, cy, 0, 0, 1) [px].
    :param t_camera_ego: 4x4 homogeneous transform, row-major, taking a point in the ``ego``
        frame (REP-103, origin at the vehicle centre on the road surface) to the camera frame.
    :param height_m: optical centre above the road [m].
    :param pitch_rad: downward tilt of the optical axis [rad].
    """

    header: Header
    width: int
    height: int
    k: tuple[float, ...]
    t_camera_ego: tuple[float, ...]
    hfov_rad: float
    height_m: float
    pitch_rad: float
    forward_m: float


class BoxLabel(msgspec.Struct, frozen=True, kw_only=True):
    """Ground truth for one object in the image.

    :param object_id: the id it has on ``/sim/objects`` or ``/sim/static``.
    :param bbox_xyxy: bounds of the pixels the object covers in the image when nothing is in
        front of it (its full extent, clipped to the image) [px].
    :param visible_fraction: rendered pixels of the object / pixels it would cover in the image
        with nothing in front of it, in [0, 1].
    :param truncation: share of the box of its projected outline that lies outside the image,
        in [0, 1].
    :param distance_m: distance from the camera to the closest point of the object's
        footprint, on the ground [m].
    :param sign_type: a :class:`~bus.messages.world.SignType` value for traffic signs, else "".
    :param speed_limit_kph: the number a speed-limit sign's plate shows [km/h], else 0.
    """

    object_id: int
    label_class: LabelClass
    bbox_xyxy: tuple[float, float, float, float]
    visible_fraction: float
    truncation: float
    distance_m: float
    visible_px: int = 0
    sign_type: str = ""
    speed_limit_kph: int = 0


class LaneLineLabel(msgspec.Struct, frozen=True, kw_only=True):
    """One painted lane boundary, as a continuous line (dash gaps are not split).

    :param line_index: boundaries counted from the leftmost road edge (0) to the right.
    :param kind: ``solid`` or ``dashed``.
    :param image_points: (u, v) [px] from near to far, inside the image.
    :param road_points: (x, y) [m] in the ``ego`` frame on the road surface, near to far,
        the stretch in front of the camera that ``image_points`` shows.
    """

    line_index: int
    kind: str
    image_points: tuple[tuple[float, float], ...]
    road_points: tuple[tuple[float, float], ...]


class FrameLabels(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Exact ground truth of one camera frame; ``header`` equals the image's header.

    Boxes are listed for every object in front of the camera and in range whose projection
    touches the image, including fully hidden ones (``visible_fraction`` 0).
    """

    header: Header
    width: int
    height: int
    boxes: tuple[BoxLabel, ...] = ()
    lane_lines: tuple[LaneLineLabel, ...] = ()
