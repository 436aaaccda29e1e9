"""The header every message carries, and small geometric structs shared by the domains."""

from __future__ import annotations

import msgspec


class Header(msgspec.Struct, frozen=True, kw_only=True):
    """Common message header.

    :param stamp_ns: simulation time of the data, integer nanoseconds since the episode start.
    :param seq: per-topic sequence number, assigned by the topic's publisher, starting at 0.
    :param frame_id: coordinate frame of the spatial fields (``map``, ``ego``, ``camera``).
    :param valid: False when the publisher's own inputs were dead or invalid.
    """

    stamp_ns: int
    seq: int = 0
    frame_id: str = "map"
    valid: bool = True


class Pose2D(msgspec.Struct, frozen=True, array_like=True):
    """Planar pose in REP-103 axes: x forward/east [m], y left/north [m], yaw CCW [rad]."""

    x: float
    y: float
    yaw: float


class Vector2(msgspec.Struct, frozen=True, array_like=True):
    """Planar vector (a velocity in m/s, an extent in m) in the frame of its message."""

    x: float
    y: float
