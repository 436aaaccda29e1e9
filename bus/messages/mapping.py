"""Localization: fixes from the landmark localizer and the fused pose estimate.

Poses are in the ``map`` frame (REP-103: x forward/east, y left, yaw counter-clockwise) of the
HD map (:mod:`mapping.hdmap`). Covariances are 3x3 over (x [m], y [m], yaw [rad]), row-major.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from bus.messages.common import Header, Pose2D


class LocalizationStatus(StrEnum):
    UNINITIALIZED = "uninitialized"
    """No pose yet: neither an initial pose nor a fix has arrived."""
    TRACKING = "tracking"
    """The last control step fused a localizer fix."""
    DEAD_RECKONING = "dead_reckoning"
    """No fix this step: the pose is propagated with odometry and its covariance grows."""
    LOST = "lost"
    """Dead reckoning for so long that the position uncertainty exceeds the filter's limit;
    ``header.valid`` is False."""


class LocalizerFix(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One camera frame's pose measurement.

    :param pose: ego centre and heading in ``map``.
    :param covariance: 3x3 row-major over (x, y, yaw) [m^2, rad^2].
    :param landmark_ids: map landmarks matched in the image and used in the solve.
    :param lane_used: True when the lane-relative measurement constrained the solve.
    :param dashes_used: True when the dash phase of mapped dashed lines constrained the
        position along the lane.
    :param latency_s: wall-clock time the localizer took for this frame [s].
    """

    header: Header
    pose: Pose2D
    covariance: tuple[float, ...]
    landmark_ids: tuple[int, ...] = ()
    lane_used: bool = False
    dashes_used: bool = False
    latency_s: float = 0.0


class PoseEstimate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Fused ego pose (``/mapping/pose``).

    :param pose: ego centre and heading in ``map``.
    :param covariance: 3x3 row-major over (x, y, yaw) [m^2, rad^2].
    :param status: whether a fix was fused this step (see :class:`LocalizationStatus`).
    :param landmark_ids: landmarks of the fix fused this step (empty when none).
    :param position_std_m: square root of the largest eigenvalue of the x-y covariance [m].
    :param time_since_fix_s: simulation time since the last fused fix [s]; -1 when none yet.
    """

    header: Header
    pose: Pose2D
    covariance: tuple[float, ...]
    status: LocalizationStatus
    landmark_ids: tuple[int, ...] = ()
    position_std_m: float = 0.0
    time_since_fix_s: float = -1.0
