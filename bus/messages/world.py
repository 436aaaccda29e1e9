"""Static world objects from the simulator: traffic signs and roadside landmarks.

Poses are in the ``map`` frame with REP-103 axes (x forward/east, y left, yaw
counter-clockwise). A sign's yaw is the direction its face points to (towards the traffic it
addresses); a landmark's yaw is the direction of its length axis.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from bus.messages.common import Header, Pose2D


class SignType(StrEnum):
    SPEED_LIMIT = "speed_limit"
    STOP = "stop"
    YIELD = "yield"
    NO_OVERTAKING = "no_overtaking"
    WARNING = "warning"


class LandmarkShape(StrEnum):
    TOWER = "tower"
    """Tall box with horizontal colour bands."""
    SILO = "silo"
    """Octagonal prism (a cylinder at camera resolution) with colour bands."""
    BILLBOARD = "billboard"
    """Flat panel on two posts, facing the road."""
    HOUSE = "house"
    """Box with a gabled roof."""


class TrafficSign(msgspec.Struct, frozen=True, kw_only=True):
    """A sign plate on a pole.

    :param sign_id: unique among the episode's objects (signs use ids from 20000).
    :param pose: foot of the pole in ``map``; yaw is where the plate's face points [rad].
    :param plate_size_m: plate width (and height) [m].
    :param plate_center_height_m: height of the plate centre above the road [m].
    :param speed_limit_mps: the limit shown, for ``speed_limit`` signs; 0 otherwise.
    :param road_id: the road segment it stands beside (``start-end`` node names).
    """

    sign_id: int
    sign_type: SignType
    pose: Pose2D
    plate_size_m: float
    plate_center_height_m: float
    speed_limit_mps: float = 0.0
    road_id: str = ""


class Landmark(msgspec.Struct, frozen=True, kw_only=True):
    """A distinct roadside structure at a known position.

    :param landmark_id: unique among the episode's objects (landmarks use ids from 30000).
    :param pose: centre of the footprint on the ground in ``map``; yaw of the length axis.
    :param length_m, width_m, height_m: extent along yaw, across it, and up [m].
    :param colors_rgb: the colour pattern, bands from the ground up (0-255 RGB).
    """

    landmark_id: int
    shape: LandmarkShape
    pose: Pose2D
    length_m: float
    width_m: float
    height_m: float
    colors_rgb: tuple[tuple[int, int, int], ...]


class StaticWorld(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Everything that does not move, published once per episode (latched)."""

    header: Header
    signs: tuple[TrafficSign, ...] = ()
    landmarks: tuple[Landmark, ...] = ()
