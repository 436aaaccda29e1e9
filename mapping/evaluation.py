"""Closed-loop evaluation of the localizer on held-out generated drives.

Per drive: the filter starts from the true pose perturbed by the initial uncertainty (a
GNSS-grade prior), predicts with noisy odometry (a per-drive speed scale error and yaw-rate
bias plus per-step noise), and fuses a localizer fix per camera frame; the fix is solved
with the filter's predicted pose as prior. Dead reckoning integrates the same noisy odometry
from the same start. Errors are against the true ego pose of each frame.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bus.messages import Pose2D
from mapping.drives import DriveConfig, DriveOutcome, generate_drive, unperturbed
from mapping.ekf import EkfConfig, PoseEkf
from mapping.hdmap import HdMap
from mapping.localizer import Localizer, LocalizerConfig
from mapping.localizer_net import LocalizerNet
from sim.frames import wrap_angle

logger = logging.getLogger(__name__)

WITHIN_M = 1.0
"""Reported: share of frames whose position error is at most this [m]."""


@dataclass(frozen=True)
class OdometryNoise:
    """:param speed_scale_sigma: per-drive speed scale error, standard deviation (ratio).
    :param speed_sigma_mps: per-step speed noise [m/s].
    :param yaw_rate_bias_sigma_rps: per-drive yaw-rate bias, standard deviation [rad/s].
    :param yaw_rate_sigma_rps: per-step yaw-rate noise [rad/s].
    :param initial_sigma: (x [m], y [m], yaw [rad]) standard deviation of the start prior.
    """

    speed_scale_sigma: float = 0.02
    speed_sigma_mps: float = 0.2
    yaw_rate_bias_sigma_rps: float = 0.002
    yaw_rate_sigma_rps: float = 0.005
    initial_sigma: tuple[float, float, float] = (3.0, 0.5, math.radians(1.0))


@dataclass
class EvalResult:
    """Per-frame errors, pooled over drives. Position errors [m], heading errors [deg]."""

    fix_position_m: list[float] = field(default_factory=list)
    fix_heading_deg: list[float] = field(default_factory=list)
    fused_position_m: list[float] = field(default_factory=list)
    fused_heading_deg: list[float] = field(default_factory=list)
    dead_reckoning_position_m: list[float] = field(default_factory=list)
    dead_reckoning_heading_deg: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    frames: int = 0
    frames_with_landmarks: int = 0
    frames_with_dashes: int = 0
    drives: list[dict[str, object]] = field(default_factory=list)
    """Per drive: ``seed``, ``steps`` driven, ``end`` (see :class:`DriveOutcome`)."""

    def summary(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "drives": self.drives,
            "ended_early": [drive for drive in self.drives if drive["end"] != "completed"],
            "fix_with_landmarks_share": self.frames_with_landmarks / max(self.frames, 1),
            "fix_with_dashes_share": self.frames_with_dashes / max(self.frames, 1),
            "localizer": _stats(self.fix_position_m, self.fix_heading_deg),
            "fused": _stats(self.fused_position_m, self.fused_heading_deg),
            "dead_reckoning": _stats(
                self.dead_reckoning_position_m, self.dead_reckoning_heading_deg
            ),
            "localizer_hz": 1.0 / float(np.median(self.latency_s)) if self.latency_s else 0.0,
            "localizer_ms_p95": 1000 * float(np.percentile(self.latency_s, 95))
            if self.latency_s
            else 0.0,
        }


def _stats(position_m: Sequence[float], heading_deg: Sequence[float]) -> dict[str, float]:
    if not position_m:
        return {"frames": 0}
    position = np.asarray(position_m)
    stats = {
        "frames": len(position),
        "median_m": float(np.median(position)),
        "p95_m": float(np.percentile(position, 95)),
        "within_1m": float(np.mean(position <= WITHIN_M)),
    }
    if heading_deg:
        stats["median_heading_deg"] = float(np.median(np.abs(heading_deg)))
    return stats


def evaluate(
    net: LocalizerNet,
    seeds: Sequence[int],
    drive: DriveConfig | None = None,
    noise: OdometryNoise | None = None,
    localizer_config: LocalizerConfig | None = None,
    ekf_config: EkfConfig | None = None,
    on_frame: Callable[[], None] | None = None,
    maps: Mapping[int, tuple[HdMap, str]] | None = None,
) -> EvalResult:
    """Run the localizer and filter along the drives of ``seeds`` (one true view per step).

    :param maps: per seed, a map to localize against instead of the map built from the
        drive's world (with the file it came from). The caller checks that it is the map of
        that seed's world (:func:`mapping.hdmap.check_map_for`), before writing any output;
        it is not checked again here.
    """
    drive = unperturbed(drive or DriveConfig())
    noise = noise or OdometryNoise()
    result = EvalResult()
    for seed in seeds:
        outcome = DriveOutcome()
        hd_map, camera_info, frames = generate_drive(seed, drive, outcome)
        if maps and seed in maps:
            hd_map = maps[seed][0]
        localizer = Localizer(net, hd_map, camera_info, localizer_config)
        _run_drive(
            localizer,
            frames,
            np.random.default_rng([seed, 0x0D0]),
            noise,
            ekf_config,
            result,
            on_frame,
        )
        result.drives.append({"seed": seed, "steps": outcome.steps, "end": outcome.end})
        if outcome.end != "completed":
            logger.warning(
                "drive of seed %d ended after %d of %d steps (%s)",
                seed,
                outcome.steps,
                drive.steps,
                outcome.end,
            )
    return result


def _run_drive(
    localizer: Localizer,
    frames,
    rng: np.random.Generator,
    noise: OdometryNoise,
    ekf_config: EkfConfig | None,
    result: EvalResult,
    on_frame,
) -> None:
    speed_scale = 1.0 + rng.normal(0.0, noise.speed_scale_sigma)
    yaw_rate_bias = rng.normal(0.0, noise.yaw_rate_bias_sigma_rps)
    ekf = dead_reckoning = None
    previous = None
    for frame in frames:
        truth = np.array([frame.pose.x, frame.pose.y, frame.pose.yaw])
        if ekf is None:
            start = truth + rng.normal(0.0, noise.initial_sigma)
            ekf = PoseEkf(start, np.diag(np.square(noise.initial_sigma)), ekf_config)
            dead_reckoning = PoseEkf(start, np.diag(np.square(noise.initial_sigma)), ekf_config)
        else:
            dt_s = (frame.ego.header.stamp_ns - previous.header.stamp_ns) / 1e9
            mean_speed = 0.5 * (frame.ego.speed_mps + previous.speed_mps)
            speed = mean_speed * speed_scale + rng.normal(0.0, noise.speed_sigma_mps)
            yaw_rate = (
                frame.ego.yaw_rate_rps + yaw_rate_bias + rng.normal(0.0, noise.yaw_rate_sigma_rps)
            )
            ekf.predict(speed, yaw_rate, dt_s)
            dead_reckoning.predict(speed, yaw_rate, dt_s)
        previous = frame.ego

        started = time.perf_counter()
        fix = localizer.localize(frame.pixels, Pose2D(*ekf.state), ekf.covariance)
        result.latency_s.append(time.perf_counter() - started)
        fix_xyyaw = np.array([fix.pose.x, fix.pose.y, fix.pose.yaw])
        result.frames_with_landmarks += bool(fix.landmark_ids)
        result.frames_with_dashes += fix.dashes_used
        if fix.landmark_ids or fix.dashes_used:
            result.fix_position_m.append(float(np.hypot(*(fix_xyyaw[:2] - truth[:2]))))
            result.fix_heading_deg.append(math.degrees(wrap_angle(fix_xyyaw[2] - truth[2])))
        ekf.update(fix_xyyaw, np.asarray(fix.covariance).reshape(3, 3))

        result.frames += 1
        result.fused_position_m.append(float(np.hypot(*(ekf.state[:2] - truth[:2]))))
        result.fused_heading_deg.append(math.degrees(wrap_angle(ekf.state[2] - truth[2])))
        result.dead_reckoning_position_m.append(
            float(np.hypot(*(dead_reckoning.state[:2] - truth[:2])))
        )
        result.dead_reckoning_heading_deg.append(
            math.degrees(wrap_angle(dead_reckoning.state[2] - truth[2]))
        )
        if on_frame is not None:
            on_frame()
