"""Localization node: status, validity and covariance on the bus message."""

from __future__ import annotations

import math

import numpy as np

from bus.messages import EgoState, Header, LocalizationStatus, LocalizerFix, Pose2D
from bus.messages.camera import Image
from mapping.node import LocalizationConfig, LocalizationNode
from tests.factories import make_ego


def _ego(step: int, speed_mps: float = 25.0) -> EgoState:
    return make_ego(
        Pose2D(step * speed_mps, -4.0, 0.0),
        speed_mps,
        header=Header(stamp_ns=step * 10**9),
        odometer_m=step * speed_mps,
    )


def _image(step: int) -> Image:
    return Image(
        header=Header(stamp_ns=step * 10**9, frame_id="camera"), height=4, width=4, data=bytes(48)
    )


class _TruthLocalizer:
    """Stands in for the CNN localizer: returns the true pose with 0.3 m noise."""

    def __init__(self) -> None:
        self.truth = Pose2D(0.0, 0.0, 0.0)

    def set_camera(self, info) -> None:
        pass

    def localize(self, pixels, prior, prior_covariance, stamp_ns=0) -> LocalizerFix:
        covariance = np.diag([0.09, 0.09, math.radians(0.5) ** 2])
        return LocalizerFix(
            header=Header(stamp_ns=stamp_ns),
            pose=self.truth,
            covariance=tuple(covariance.ravel()),
            landmark_ids=(30001,),
        )


def test_without_fixes_uncertainty_grows_until_lost_and_invalid():
    node = LocalizationNode(LocalizationConfig(lost_position_std_m=4.0))
    estimates = [node.step({"/sim/ego": _ego(k)})["/mapping/pose"] for k in range(20)]
    stds = [e.position_std_m for e in estimates]
    assert all(b > a for a, b in zip(stds, stds[1:], strict=False))
    assert estimates[1].status == LocalizationStatus.DEAD_RECKONING
    assert estimates[1].header.valid
    assert estimates[-1].status == LocalizationStatus.LOST
    assert not estimates[-1].header.valid
    covariance = np.asarray(estimates[-1].covariance).reshape(3, 3)
    assert np.allclose(covariance, covariance.T)


def test_fixes_shrink_uncertainty_and_report_landmarks():
    localizer = _TruthLocalizer()
    node = LocalizationNode(localizer=localizer)
    assert node.inputs == ("/sim/ego", "/camera/image", "/camera/info")
    for k in range(5):
        node.step({"/sim/ego": _ego(k)})
    dead_reckoning_std = node.ekf.position_std_m
    for k in range(5, 8):
        ego = _ego(k)
        localizer.truth = ego.pose
        out = node.step({"/sim/ego": ego, "/camera/image": _image(k)})
    estimate = out["/mapping/pose"]
    assert out["/mapping/fix"].landmark_ids == (30001,)
    assert estimate.status == LocalizationStatus.TRACKING
    assert estimate.landmark_ids == (30001,)
    assert estimate.time_since_fix_s == 0.0
    assert estimate.position_std_m < dead_reckoning_std / 2


def test_stale_image_is_not_used():
    node = LocalizationNode(localizer=_TruthLocalizer())
    node.step({"/sim/ego": _ego(0)})
    out = node.step({"/sim/ego": _ego(1), "/camera/image": _image(0)})
    assert "/mapping/fix" not in out
    assert out["/mapping/pose"].status == LocalizationStatus.DEAD_RECKONING
