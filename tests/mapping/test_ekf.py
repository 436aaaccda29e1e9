"""Pose EKF: uncertainty grows while dead reckoning and shrinks with fixes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mapping.ekf import EkfConfig, PoseEkf


def _filter() -> PoseEkf:
    return PoseEkf(np.array([0.0, 0.0, 0.0]), np.diag([0.25, 0.25, 0.001]))


def test_covariance_grows_without_fixes():
    ekf = _filter()
    stds = []
    for _ in range(10):
        ekf.predict(speed_mps=25.0, yaw_rate_rps=0.0, dt_s=1.0)
        stds.append(ekf.position_std_m)
    assert all(b > a for a, b in zip(stds, stds[1:], strict=False))
    assert ekf.state[0] == pytest.approx(250.0)


def test_covariance_shrinks_with_fixes_and_pulls_towards_them():
    ekf = _filter()
    for _ in range(5):
        ekf.predict(25.0, 0.0, 1.0)
    before = ekf.position_std_m
    truth = np.array([126.0, 0.5, 0.0])
    for _ in range(3):
        assert ekf.update(truth, np.diag([0.3**2, 0.3**2, 0.01**2]))
    assert ekf.position_std_m < before / 3
    assert np.linalg.norm(ekf.state[:2] - truth[:2]) < 0.3


def test_turning_motion_follows_the_arc():
    ekf = _filter()
    for _ in range(4):
        ekf.predict(speed_mps=math.pi / 2, yaw_rate_rps=math.pi / 4, dt_s=1.0)  # quarter circle/2s
    # Half a circle of radius 2 m: ends 4 m to the left, facing back.
    assert ekf.state[:2] == pytest.approx([0.0, 4.0], abs=0.05)
    assert abs(abs(ekf.state[2]) - math.pi) < 1e-6


def test_outlier_fix_is_rejected():
    ekf = PoseEkf(np.zeros(3), np.diag([0.25, 0.25, 0.001]), EkfConfig())
    assert not ekf.update(np.array([60.0, 0.0, 0.0]), np.diag([0.1, 0.1, 0.001]))
    assert ekf.rejected_fixes == 1
    assert ekf.state == pytest.approx([0.0, 0.0, 0.0])
