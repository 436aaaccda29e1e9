"""A small extended Kalman filter on the planar ego pose (x, y, yaw) in the ``map`` frame.

Motion model: odometry (speed [m/s] and yaw rate [rad/s]) held constant over the step, so the
ego drives a circular arc (its chord points along the heading at the middle of the step).
Measurement model: a full pose fix (x, y, yaw) from the landmark localizer, with its own
covariance. Fixes whose Mahalanobis distance exceeds a chi-square gate are rejected rather
than fused (a wrong landmark association must not drag the estimate away).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from sim.frames import wrap_angle

logger = logging.getLogger(__name__)

CHI2_3DOF_999 = 16.27
"""99.9 % quantile of the chi-square distribution with 3 degrees of freedom."""


@dataclass(frozen=True)
class EkfConfig:
    """Noise model of the filter.

    :param speed_noise_ratio: odometry speed error, standard deviation as a share of speed.
    :param yaw_rate_noise_rps: odometry yaw-rate error, standard deviation [rad/s].
    :param lateral_noise_mps: unmodelled sideways motion, standard deviation per second of
        travel [m/s]; a lane change inside one control step moves the ego sideways although
        the yaw-rate difference over the step is near zero.
    :param yaw_noise_rps: unmodelled heading change, standard deviation per second [rad/s].
    :param gate_chi2: fixes with a squared Mahalanobis distance above this are rejected;
        ``inf`` fuses everything.
    """

    speed_noise_ratio: float = 0.03
    yaw_rate_noise_rps: float = 0.01
    lateral_noise_mps: float = 1.0
    yaw_noise_rps: float = 0.03
    gate_chi2: float = CHI2_3DOF_999


class PoseEkf:
    """Planar pose filter. ``state`` is (3,) float64 (x [m], y [m], yaw [rad]) in ``map``;
    ``covariance`` is (3, 3) float64 over the same."""

    def __init__(
        self, pose_xyyaw: np.ndarray, covariance: np.ndarray, config: EkfConfig | None = None
    ) -> None:
        self.config = config or EkfConfig()
        self.state = np.asarray(pose_xyyaw, dtype=float).copy()
        self.covariance = np.asarray(covariance, dtype=float).copy()
        self.rejected_fixes = 0

    def predict(self, speed_mps: float, yaw_rate_rps: float, dt_s: float) -> None:
        """Propagate the pose over ``dt_s`` with odometry; the covariance grows."""
        if dt_s <= 0:
            return
        cfg = self.config
        x, y, yaw = self.state
        half_turn = 0.5 * yaw_rate_rps * dt_s
        mid_yaw = yaw + half_turn
        # Chord of the circular arc driven at constant speed and yaw rate.
        chord_ratio = math.sin(half_turn) / half_turn if abs(half_turn) > 1e-9 else 1.0
        distance = speed_mps * dt_s * chord_ratio
        cos_mid, sin_mid = math.cos(mid_yaw), math.sin(mid_yaw)
        self.state = np.array(
            [x + distance * cos_mid, y + distance * sin_mid, wrap_angle(yaw + yaw_rate_rps * dt_s)]
        )

        # Jacobians with respect to the state and to the odometry (speed, yaw rate).
        f = np.array(
            [[1.0, 0.0, -distance * sin_mid], [0.0, 1.0, distance * cos_mid], [0.0, 0.0, 1.0]]
        )
        g = np.array(
            [
                [dt_s * cos_mid, -0.5 * distance * dt_s * sin_mid],
                [dt_s * sin_mid, 0.5 * distance * dt_s * cos_mid],
                [0.0, dt_s],
            ]
        )
        odometry_cov = np.diag(
            [(cfg.speed_noise_ratio * abs(speed_mps)) ** 2, cfg.yaw_rate_noise_rps**2]
        )

        # Unmodelled sideways motion and heading change, in the body frame.
        lateral = np.array([-sin_mid, cos_mid, 0.0]) * cfg.lateral_noise_mps * dt_s
        extra = np.outer(lateral, lateral)
        extra[2, 2] += (cfg.yaw_noise_rps * dt_s) ** 2
        self.covariance = f @ self.covariance @ f.T + g @ odometry_cov @ g.T + extra

    def update(self, fix_xyyaw: np.ndarray, fix_covariance: np.ndarray) -> bool:
        """Fuse a pose fix; returns False (and leaves the state) when the gate rejects it."""
        innovation = np.asarray(fix_xyyaw, dtype=float) - self.state
        innovation[2] = wrap_angle(float(innovation[2]))
        innovation_cov = self.covariance + np.asarray(fix_covariance, dtype=float)
        distance_sq = float(innovation @ np.linalg.solve(innovation_cov, innovation))
        if distance_sq > self.config.gate_chi2:
            self.rejected_fixes += 1
            logger.debug(
                "fix rejected: Mahalanobis^2 %.1f > %.1f", distance_sq, self.config.gate_chi2
            )
            return False
        gain = np.linalg.solve(innovation_cov, self.covariance).T
        self.state = self.state + gain @ innovation
        self.state[2] = wrap_angle(float(self.state[2]))
        # Joseph form keeps the covariance symmetric and positive definite.
        identity_minus = np.eye(3) - gain
        self.covariance = (
            identity_minus @ self.covariance @ identity_minus.T
            + gain @ np.asarray(fix_covariance, dtype=float) @ gain.T
        )
        return True

    @property
    def position_std_m(self) -> float:
        """Square root of the largest eigenvalue of the x-y covariance [m]."""
        return float(math.sqrt(max(np.linalg.eigvalsh(self.covariance[:2, :2]))))
