"""Ground truth from the simulator: the ego, the other road users and the lanes around the ego.

All spatial fields use REP-103 axes (x forward, y left, yaw counter-clockwise). ``map``-frame
values are the world; ``ego``-frame values are relative to the ego's centre and heading.
Lane indices follow highway-env: lane 0 is the leftmost lane of a road segment.
"""

from __future__ import annotations

from enum import Enum

import msgspec

from bus.messages.common import Header, Pose2D, Vector2


class ObjectClass(str, Enum):  # noqa: UP042 - StrEnum would change str() and format()
    CAR = "car"
    TRUCK = "truck"
    PEDESTRIAN = "pedestrian"
    UNKNOWN = "unknown"


class EgoState(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """State of the ego vehicle in the ``map`` frame.

    :param pose: centre of the vehicle [m, m, rad].
    :param speed_mps: longitudinal speed [m/s].
    :param yaw_rate_rps: yaw rate [rad/s], finite difference over the last control step.
    :param lane_index: lane the vehicle is in (0 = leftmost of its road segment).
    :param target_lane_index: lane the vehicle is steering to; equals ``lane_index`` when
        no lane change is under way.
    :param lane_count: number of lanes of the ego's road segment.
    :param target_speed_mps: speed the vehicle's low-level controller tracks.
    :param odometer_m: distance travelled since the episode start [m].
    :param crashed: True once the ego has collided.
    :param on_road: False when the ego centre has left every lane.
    """

    header: Header
    pose: Pose2D
    speed_mps: float
    yaw_rate_rps: float
    length_m: float
    width_m: float
    lane_index: int
    target_lane_index: int
    lane_count: int
    target_speed_mps: float
    odometer_m: float
    crashed: bool
    on_road: bool


class ObjectState(msgspec.Struct, frozen=True, kw_only=True):
    """One road user other than the ego.

    :param object_id: stable for the object's lifetime.
    :param pose: centre and heading in the message frame.
    :param velocity_mps: velocity vector in the message frame [m/s].
    :param ego_pose: centre and heading relative to the ego (``ego`` frame).
    :param ego_velocity_mps: velocity relative to the ego, expressed in the ``ego`` frame.
    :param lane_index: lane the object is in, -1 when unknown (perception without a map).
    """

    object_id: int
    object_class: ObjectClass
    pose: Pose2D
    velocity_mps: Vector2
    ego_pose: Pose2D
    ego_velocity_mps: Vector2
    length_m: float
    width_m: float
    lane_index: int = -1
    score: float = 1.0


class ObjectList(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Road users around the ego. Ground truth (``/sim/objects``) and perception
    (``/perception/objects``) share this type so a planner runs on either."""

    header: Header
    objects: tuple[ObjectState, ...] = ()


class Lane(msgspec.Struct, frozen=True, kw_only=True):
    """One lane as a centre-line polyline in the ``map`` frame.

    :param centerline: points (x [m], y [m]) along the driving direction.
    :param width_m: lane width [m].
    :param speed_limit_mps: legal speed [m/s].
    :param left_line, right_line: marking on each side: ``solid``, ``dashed`` or ``none``.
    :param ends_ahead_m: distance from the ego to where the lane ends, None when it
        continues past the sampled stretch.
    :param forbidden: True when highway-env forbids entering the lane from its neighbours.
    """

    lane_index: int
    centerline: tuple[tuple[float, float], ...]
    width_m: float
    speed_limit_mps: float
    left_line: str
    right_line: str
    road_id: str = ""
    ends_ahead_m: float | None = None
    forbidden: bool = False


class LaneGeometry(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Lanes of the road segment the ego is on, sampled around the ego."""

    header: Header
    lanes: tuple[Lane, ...] = ()
    ego_lane_index: int = 0
