"""The localization node: odometry plus landmark fixes -> ``/mapping/pose`` every control step.

Inputs: ``/sim/ego`` (trigger; its speed and yaw rate are the odometry, its first pose the
start prior), and, when a localizer is given, ``/camera/image`` and ``/camera/info``, and,
with a ``map_source``, ``/sim/static``: each new static world (a new episode) gets its HD
map from ``map_source`` (in simulation the map of that world is known). The
simulator publishes a step's image before its ego state, so the frame fused at a step is the
one taken at that step (a frame with another stamp is not used).

Outputs: ``/mapping/pose`` every step, and ``/mapping/fix`` for every localized frame. With no
fix the covariance grows and the status says ``dead_reckoning``; once the position standard
deviation exceeds ``lost_position_std_m`` the status is ``lost`` and ``header.valid`` False.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bus.messages import EgoState, Header, LocalizationStatus, LocalizerFix, Pose2D, PoseEstimate
from bus.messages.world import StaticWorld
from mapping.ekf import EkfConfig, PoseEkf
from mapping.hdmap import HdMap
from mapping.localizer import Localizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalizationConfig:
    """:param initial_sigma: (x [m], y [m], yaw [rad]) standard deviation of the start prior
        taken from the first ego pose (standing in for a GNSS fix).
    :param lost_position_std_m: position uncertainty above which the estimate is invalid.
    """

    initial_sigma: tuple[float, float, float] = (3.0, 0.5, math.radians(1.0))
    lost_position_std_m: float = 5.0
    ekf: EkfConfig = field(default_factory=EkfConfig)


def predict_odometry(ekf: PoseEkf, previous: EgoState, ego: EgoState) -> None:
    """Dead-reckon ``ekf`` from ``previous``'s stamp to ``ego``'s: EKF prediction with the mean
    of the two ego speeds [m/s] and ``ego``'s yaw rate [rad/s]. The node and its
    dead-reckoning baseline (:class:`PoseErrorMonitor`) both step by this."""
    dt_s = (ego.header.stamp_ns - previous.header.stamp_ns) / 1e9
    speed_mps = 0.5 * (ego.speed_mps + previous.speed_mps)
    ekf.predict(speed_mps, ego.yaw_rate_rps, dt_s)


# TODO(#7): the start pose is the first ego pose with `initial_sigma` (a GNSS stand-in)
# because the localizer has no global relocalization without a prior.
class LocalizationNode:
    """Node: ``/sim/ego`` (+ camera) -> ``/mapping/pose`` (+ ``/mapping/fix``)."""

    name = "localization"
    trigger = "/sim/ego"

    def __init__(
        self,
        config: LocalizationConfig | None = None,
        localizer: Localizer | None = None,
        map_source: Callable[[StaticWorld], HdMap] | None = None,
    ) -> None:
        self.config = config or LocalizationConfig()
        self.localizer = localizer
        self.map_source = map_source
        self.inputs: tuple[str, ...] = ("/sim/ego",)
        if localizer is not None:
            self.inputs += ("/camera/image", "/camera/info")
            if map_source is not None:
                self.inputs += ("/sim/static",)
        self._static: StaticWorld | None = None
        self.ekf: PoseEkf | None = None
        self._last_ego: EgoState | None = None
        self._last_fix_ns: int | None = None
        self._camera_info = None

    def reset(self) -> None:
        self.ekf = None
        self._last_ego = None
        self._last_fix_ns = None

    def step(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        ego: EgoState | None = inputs.get("/sim/ego")
        if ego is None:
            return {}
        if self._last_ego is not None and ego.header.stamp_ns < self._last_ego.header.stamp_ns:
            self.reset()  # a new episode
        static = inputs.get("/sim/static")
        if self.map_source is not None and static is not None and static is not self._static:
            self.localizer.set_map(self.map_source(static))
            self._static = static
        self._propagate(ego)
        outputs: dict[str, Any] = {}
        fix = self._localize(inputs, ego.header.stamp_ns)
        landmark_ids: tuple[int, ...] = ()
        tracking = False
        if fix is not None:
            outputs["/mapping/fix"] = fix
            fused = self.ekf.update(
                np.array([fix.pose.x, fix.pose.y, fix.pose.yaw]),
                np.asarray(fix.covariance).reshape(3, 3),
            )
            if fused and (fix.landmark_ids or fix.dashes_used):
                self._last_fix_ns = ego.header.stamp_ns
                landmark_ids = fix.landmark_ids
                tracking = True
        outputs["/mapping/pose"] = self._estimate(ego.header.stamp_ns, landmark_ids, tracking)
        return outputs

    def _propagate(self, ego: EgoState) -> None:
        if self.ekf is None:
            sigma = np.asarray(self.config.initial_sigma)
            start = np.array([ego.pose.x, ego.pose.y, ego.pose.yaw])
            self.ekf = PoseEkf(start, np.diag(sigma**2), self.config.ekf)
        elif self._last_ego is not None:
            predict_odometry(self.ekf, self._last_ego, ego)
        self._last_ego = ego

    def _localize(self, inputs: Mapping[str, Any], stamp_ns: int) -> LocalizerFix | None:
        image = inputs.get("/camera/image")
        if self.localizer is None or image is None or image.header.stamp_ns != stamp_ns:
            return None
        from sim.camera import image_array

        info = inputs.get("/camera/info")
        if info is not None and info is not self._camera_info:
            # Every episode publishes its own (jittered) calibration, each stamped 0.
            self.localizer.set_camera(info)
            self._camera_info = info
        try:
            pixels = image_array(image)
        except ValueError as error:
            logger.warning("localization: unusable image at t=%.2f s: %s", stamp_ns / 1e9, error)
            return None
        fix = self.localizer.localize(
            pixels, Pose2D(*self.ekf.state), self.ekf.covariance, stamp_ns
        )
        return fix

    def _estimate(
        self,
        stamp_ns: int,
        landmark_ids: tuple[int, ...],
        fused: bool,
    ) -> PoseEstimate:
        std_m = self.ekf.position_std_m
        if std_m > self.config.lost_position_std_m:
            status = LocalizationStatus.LOST
        else:
            status = LocalizationStatus.TRACKING if fused else LocalizationStatus.DEAD_RECKONING
        since_s = -1.0 if self._last_fix_ns is None else (stamp_ns - self._last_fix_ns) / 1e9
        return PoseEstimate(
            header=Header(
                stamp_ns=stamp_ns, frame_id="map", valid=status != LocalizationStatus.LOST
            ),
            pose=Pose2D(*(float(v) for v in self.ekf.state)),
            covariance=tuple(float(v) for v in self.ekf.covariance.ravel()),
            status=status,
            landmark_ids=landmark_ids,
            position_std_m=std_m,
            time_since_fix_s=since_s,
        )


class PoseErrorMonitor:
    """Errors of ``/mapping/pose`` against the simulator's true ``/sim/ego`` of the same
    stamp, for run summaries (subscribe it before the localization node).

    As a baseline it also dead-reckons each episode as the node does without fixes: from the
    first ego pose, integrating the same (noiseless) odometry, and reports that error for the
    same stamps.
    """

    def __init__(self, bus) -> None:
        self._truth: dict[int, Pose2D] = {}
        self._dead_reckoning: PoseEkf | None = None
        self._last_ego: EgoState | None = None
        self.position_m: list[float] = []
        self.heading_deg: list[float] = []
        self.dead_reckoning_position_m: list[float] = []
        self.tracking = 0
        bus.subscribe("/sim/ego", self._on_ego, label="pose-error-monitor")
        bus.subscribe("/mapping/pose", self._on_pose, label="pose-error-monitor")

    def _on_ego(self, ego: EgoState) -> None:
        self._truth = {ego.header.stamp_ns: ego.pose}
        last = self._last_ego
        if last is None or ego.header.stamp_ns < last.header.stamp_ns:  # a new episode
            start = np.array([ego.pose.x, ego.pose.y, ego.pose.yaw])
            self._dead_reckoning = PoseEkf(start, np.zeros((3, 3)))
        else:
            predict_odometry(self._dead_reckoning, last, ego)
        self._last_ego = ego

    def _on_pose(self, estimate: PoseEstimate) -> None:
        truth = self._truth.get(estimate.header.stamp_ns)
        if truth is None:
            return
        self.position_m.append(math.hypot(estimate.pose.x - truth.x, estimate.pose.y - truth.y))
        self.heading_deg.append(
            abs(math.degrees(math.remainder(estimate.pose.yaw - truth.yaw, 2 * math.pi)))
        )
        self.tracking += estimate.status == LocalizationStatus.TRACKING
        dead_x, dead_y, _ = self._dead_reckoning.state
        self.dead_reckoning_position_m.append(math.hypot(dead_x - truth.x, dead_y - truth.y))

    def report(self) -> dict[str, object]:
        """Frames, median / 95th-percentile position error [m], share within 1 m, median
        heading error [deg], the share of steps with a fused fix, and the dead-reckoning
        baseline's median / 95th-percentile position error [m]."""
        if not self.position_m:
            return {"frames": 0}
        position = np.asarray(self.position_m)
        dead_reckoning = np.asarray(self.dead_reckoning_position_m)
        return {
            "frames": len(position),
            "median_m": float(np.median(position)),
            "p95_m": float(np.percentile(position, 95)),
            "within_1m": float(np.mean(position <= 1.0)),
            "median_heading_deg": float(np.median(self.heading_deg)),
            "tracking_share": self.tracking / len(position),
            "dead_reckoning": {
                "odometry": "noiseless",
                "median_m": float(np.median(dead_reckoning)),
                "p95_m": float(np.percentile(dead_reckoning, 95)),
            },
        }
