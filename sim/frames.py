"""Conversion between highway-env's frame and the bus frame, done once at the simulator boundary.

highway-env uses screen axes: x forward, y to the right, headings clockwise when seen on the
screen. The bus uses ROS REP-103: x forward, y left, yaw counter-clockwise. Mirroring y maps
one onto the other: ``(x, y, yaw)_bus = (x, -y, -heading)_highway``.
"""

from __future__ import annotations

import math

import numpy as np

from bus.messages import Pose2D, Vector2


def wrap_angle(angle_rad: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


def pose_from_highway(position: np.ndarray, heading_rad: float) -> Pose2D:
    """Pose in the ``map`` frame of a highway-env position [m] and heading [rad]."""
    return Pose2D(float(position[0]), -float(position[1]), wrap_angle(-float(heading_rad)))


def vector_from_highway(vector: np.ndarray) -> Vector2:
    return Vector2(float(vector[0]), -float(vector[1]))


def xy_from_highway(position: np.ndarray) -> tuple[float, float]:
    return float(position[0]), -float(position[1])


def to_ego_frame(ego: Pose2D, pose: Pose2D) -> Pose2D:
    """Express a ``map``-frame pose relative to the ego pose (``ego`` frame)."""
    dx, dy = pose.x - ego.x, pose.y - ego.y
    cos_yaw, sin_yaw = math.cos(ego.yaw), math.sin(ego.yaw)
    return Pose2D(
        cos_yaw * dx + sin_yaw * dy,
        -sin_yaw * dx + cos_yaw * dy,
        wrap_angle(pose.yaw - ego.yaw),
    )


def rotate_to_ego(ego: Pose2D, vector: Vector2) -> Vector2:
    """Rotate a ``map``-frame vector into the ego's axes."""
    cos_yaw, sin_yaw = math.cos(ego.yaw), math.sin(ego.yaw)
    return Vector2(
        cos_yaw * vector.x + sin_yaw * vector.y, -sin_yaw * vector.x + cos_yaw * vector.y
    )
