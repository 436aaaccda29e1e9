"""Perception outputs: 2-D detections in the camera image, and traffic signs read from it.

Perceived road users are published as :class:`bus.messages.sim.ObjectList` in the ``ego``
frame (the type ground truth uses), so any planner runs on either.
"""

from __future__ import annotations

import msgspec

from bus.messages.common import Header


class Detection2D(msgspec.Struct, frozen=True, kw_only=True):
    """One detected object in the image.

    :param bbox_xyxy: box corners (x_min, y_min, x_max, y_max) in pixels of the image.
    :param class_name: one of ``car``, ``truck``, ``pedestrian``, ``traffic_sign``.
    :param score: detector confidence in [0, 1].
    :param track_id: stable id of the object's track, -1 when untracked.
    :param distance_m: ground distance from the ego centre to the object's near face
        along the ego x axis [m], NaN when the box bottom is above the horizon.
    :param sign_class: sign type from the sign classifier (traffic_sign only), else "".
    """

    bbox_xyxy: tuple[float, float, float, float]
    class_name: str
    class_id: int
    score: float
    track_id: int = -1
    distance_m: float = float("nan")
    sign_class: str = ""


class Detections2D(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Detections of one camera frame; ``header`` stamps equal the image's.

    :param detector: name of the model that produced them.
    :param latency_ms: wall time the detector took on this frame [ms].
    """

    header: Header
    width: int
    height: int
    detector: str
    latency_ms: float
    detections: tuple[Detection2D, ...] = ()


class SignObservation(msgspec.Struct, frozen=True, kw_only=True):
    """A classified traffic sign.

    :param speed_limit_mps: the limit it imposes [m/s], None when it is not a speed limit.
    :param distance_m: ground distance ahead of the ego centre [m].
    """

    track_id: int
    sign_class: str
    probability: float
    distance_m: float
    speed_limit_mps: float | None = None


class SignList(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Traffic signs seen in the latest camera frame."""

    header: Header
    signs: tuple[SignObservation, ...] = ()


class LaneEstimate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The ego lane seen by the camera, in the ``ego`` frame (x forward, y left).

    ``header.valid`` is False when the lines on both sides were not found; the numbers are
    then NaN.

    :param lateral_offset_m: ego centre left of the lane centre [m].
    :param heading_error_rad: ego heading minus lane direction, counter-clockwise [rad].
    :param lane_width_m: distance between the lane's two lines at the ego [m].
    :param curvature_1pm: curvature of the lane [1/m], positive turning left.
    :param left_line, right_line: ``(c0, c1, c2)`` of ``y = c0 + c1 x + c2 x^2`` [m].
    """

    header: Header
    lateral_offset_m: float
    heading_error_rad: float
    lane_width_m: float
    curvature_1pm: float
    left_line: tuple[float, float, float] = (float("nan"),) * 3
    right_line: tuple[float, float, float] = (float("nan"),) * 3
