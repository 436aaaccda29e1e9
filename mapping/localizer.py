"""The landmark localizer: CNN observations of one camera frame, solved into a map pose.

1. :class:`~mapping.localizer_net.LocalizerNet` finds the image columns of landmark centres
   (with a rough range each) and the ego's lateral offset and heading relative to its lane.
2. Detections are associated with map landmarks through a pose prior (the fused estimate
   predicted to the frame's time): each map landmark's predicted column and its uncertainty,
   propagated from the prior covariance, gate the match; a rough range check breaks ties.
3. A robust Gauss-Newton solve over (x, y, yaw) minimises the column residuals of the matched
   landmarks, the lane offset and heading residuals, and a weak copy of the prior.

The fix's covariance is the inverse of the solve's information (measurements plus the
weakened prior), so fusing it in the EKF only lightly double-counts the prior.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from bus.messages import Header, LocalizerFix, Pose2D
from bus.messages.camera import CameraInfo
from mapping.hdmap import HdMap, MapIndex
from mapping.localizer_net import COLUMN_STRIDE, INPUT_WIDTH, LocalizerNet, to_input
from sim.camera.model import CameraConfig, CameraModel
from sim.frames import wrap_angle

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "localizer.pt"
"""Shipped weights, package data of :mod:`mapping.models`."""


# TODO(#7): longitudinal accuracy misses the target (median 1.5 m, p95 9 m on held-out
# drives against 0.5 m / 2 m): bearings to landmarks far ahead constrain x weakly and the
# detected centre columns have a heavy tail. Candidates: a range cue tied to the mapped size
# (a top-row head was tried once, undertrained, and was worse), more training data and epochs,
# and rejecting detections whose column residual stays large after the solve.
@dataclass(frozen=True)
class LocalizerConfig:
    """Detection thresholds and measurement noise of the pose solve.

    :param detection_threshold: minimum landmark-centre probability of a column peak.
    :param column_sigma_px: standard deviation of a detected centre column [px, full image].
    :param lane_offset_sigma_m: standard deviation of the lane offset measurement [m].
    :param lane_heading_sigma_rad: standard deviation of the lane-relative heading [rad].
    :param gate_sigmas: a detection matches a map landmark within this many standard
        deviations of the predicted column.
    :param range_tolerance: detected and predicted range may differ by this factor.
    :param max_range_m: map landmarks farther than this are not considered.
    :param prior_weakening: the prior's covariance is multiplied by this in the solve.
    :param huber_sigmas: column residuals beyond this many sigmas are down-weighted.
    :param iterations: Gauss-Newton iterations.
    """

    detection_threshold: float = 0.5
    column_sigma_px: float = 3.0
    lane_offset_sigma_m: float = 0.2
    lane_heading_sigma_rad: float = math.radians(0.6)
    gate_sigmas: float = 4.0
    range_tolerance: float = 1.8
    max_range_m: float = 170.0
    prior_weakening: float = 25.0
    huber_sigmas: float = 2.0
    iterations: int = 5


@dataclass(frozen=True)
class Observations:
    """What the CNN saw in one frame.

    :param u_px: (D,) detected landmark-centre columns [px, full image], left to right.
    :param range_m: (D,) rough ground range of each [m].
    :param score: (D,) centre probability of each.
    :param lane_phase: lateral offset from the nearest lane centre as a phase in [-pi, pi):
        2*pi*offset/w for the lane width w, offset left positive [m].
    :param lane_heading_rad: heading relative to the lane [rad].
    """

    u_px: np.ndarray
    range_m: np.ndarray
    score: np.ndarray
    lane_phase: float
    lane_heading_rad: float


class Localizer:
    """Localizes camera frames in an HD map.

    :param net: the trained network (eval mode is set here).
    :param camera: calibration of the frames (resolution, K, mount); the default camera when
        None.
    """

    def __init__(
        self,
        net: LocalizerNet,
        hd_map: HdMap,
        camera: CameraInfo | None = None,
        config: LocalizerConfig | None = None,
    ) -> None:
        self.net = net.eval()
        self.config = config or LocalizerConfig()
        self.set_map(hd_map)
        self.set_camera(camera)

    def set_map(self, hd_map: HdMap) -> None:
        self.map = hd_map
        self.index = MapIndex(hd_map)

    def set_camera(self, camera: CameraInfo | None) -> None:
        """Use a new calibration (the simulator jitters the mount per episode)."""
        if camera is None:
            self.camera = CameraModel(CameraConfig())
            return
        hfov_deg = math.degrees(camera.hfov_rad)
        self.camera = CameraModel(
            CameraConfig(
                width_px=camera.width,
                height_px=camera.height,
                hfov_deg=hfov_deg,
                height_m=camera.height_m,
                pitch_deg=math.degrees(camera.pitch_rad),
                forward_m=camera.forward_m,
            )
        )

    @torch.no_grad()
    def observe(self, pixels: np.ndarray) -> Observations:
        """Run the CNN on an HxWx3 uint8 RGB frame."""
        batch = torch.from_numpy(to_input(pixels))[None]
        output = self.net(batch)
        return decode(output, 0, pixels.shape[1], self.config.detection_threshold)

    def localize(
        self, pixels: np.ndarray, prior: Pose2D, prior_covariance: np.ndarray, stamp_ns: int = 0
    ) -> LocalizerFix:
        """Pose fix of one frame given a prior pose and its 3x3 covariance (x, y, yaw)."""
        start = time.perf_counter()
        observations = self.observe(pixels)
        pose, covariance, ids, lane_used = self.solve(observations, prior, prior_covariance)
        return LocalizerFix(
            header=Header(stamp_ns=stamp_ns, frame_id="map"),
            pose=pose,
            covariance=tuple(float(v) for v in covariance.ravel()),
            landmark_ids=ids,
            lane_used=lane_used,
            latency_s=time.perf_counter() - start,
        )

    def solve(
        self,
        observations: Observations,
        prior: Pose2D,
        prior_covariance: np.ndarray,
    ) -> tuple[Pose2D, np.ndarray, tuple[int, ...], bool]:
        """(pose, 3x3 covariance, matched landmark ids, lane used) from CNN observations."""
        cfg = self.config
        prior_xyyaw = np.array([prior.x, prior.y, prior.yaw])
        prior_cov = np.asarray(prior_covariance, dtype=float)
        matches = self._associate(observations, prior_xyyaw, prior_cov)
        lane = self.index.nearest_lane(prior.x, prior.y)
        lane_measurement = None
        if lane is not None:
            lane_measurement = _lane_measurement(observations, prior_xyyaw, lane)
        weak_prior_info = np.linalg.inv(prior_cov * cfg.prior_weakening)

        state = prior_xyyaw.copy()
        information = weak_prior_info
        for _ in range(cfg.iterations):
            residuals, jacobian = self._residuals(state, observations, matches, lane_measurement)
            weights = _huber_weights(residuals, cfg.huber_sigmas)
            prior_error = state - prior_xyyaw
            prior_error[2] = wrap_angle(float(prior_error[2]))
            information = weak_prior_info + jacobian.T @ (weights[:, None] * jacobian)
            gradient = weak_prior_info @ prior_error + jacobian.T @ (weights * residuals)
            step = -np.linalg.solve(information, gradient)
            state = state + step
            state[2] = wrap_angle(float(state[2]))
            if np.abs(step).max() < 1e-4:
                break
        covariance = np.linalg.inv(information)
        ids = tuple(int(self.index.landmark_ids[m]) for _, m in matches)
        return Pose2D(*(float(v) for v in state)), covariance, ids, lane_measurement is not None

    def _predicted_columns(self, state: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        pose = Pose2D(float(state[0]), float(state[1]), float(state[2]))
        pixels, ahead = self.camera.project(self.index.landmark_xyz[landmarks], pose)
        return np.where(ahead, pixels[:, 0], np.nan)

    def _column_jacobian(
        self,
        state: np.ndarray,
        landmarks: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted columns (M,) [px] and their Jacobian (M, 3) by central differences."""
        columns = self._predicted_columns(state, landmarks)
        jacobian = np.zeros((len(landmarks), 3))
        for axis, delta in enumerate((0.05, 0.05, 1e-4)):
            offset = np.zeros(3)
            offset[axis] = delta
            plus = self._predicted_columns(state + offset, landmarks)
            minus = self._predicted_columns(state - offset, landmarks)
            jacobian[:, axis] = (plus - minus) / (2 * delta)
        return columns, jacobian

    def _associate(
        self, observations: Observations, prior: np.ndarray, prior_cov: np.ndarray
    ) -> list[tuple[int, int]]:
        """(detection index, landmark index) pairs, greedy by Mahalanobis distance."""
        cfg = self.config
        if len(observations.u_px) == 0 or len(self.index.landmark_ids) == 0:
            return []
        camera_xy = self.camera.camera_position_map(Pose2D(*prior))[:2]
        ranges = np.hypot(*(self.index.landmark_xyz[:, :2] - camera_xy).T)
        nearby = np.flatnonzero(ranges < cfg.max_range_m)
        if len(nearby) == 0:
            return []
        columns, jacobian = self._column_jacobian(prior, nearby)
        variance = np.einsum("ij,jk,ik->i", jacobian, prior_cov, jacobian) + cfg.column_sigma_px**2
        candidates = []
        for d, (u, r) in enumerate(zip(observations.u_px, observations.range_m, strict=True)):
            distance = np.abs(u - columns) / np.sqrt(variance)
            ratio = np.maximum(r / ranges[nearby], ranges[nearby] / r)
            ok = (distance < cfg.gate_sigmas) & (ratio < cfg.range_tolerance) & ~np.isnan(columns)
            for m in np.flatnonzero(ok):
                candidates.append((float(distance[m] + math.log(ratio[m])), d, int(nearby[m])))
        matches, used_d, used_m = [], set(), set()
        for _, d, m in sorted(candidates):
            if d not in used_d and m not in used_m:
                matches.append((d, m))
                used_d.add(d)
                used_m.add(m)
        return matches

    def _residuals(
        self, state: np.ndarray, observations: Observations, matches, lane_measurement
    ) -> tuple[np.ndarray, np.ndarray]:
        """Whitened residuals (R,) and their Jacobian (R, 3) at ``state``."""
        cfg = self.config
        rows, jacobians = [], []
        if matches:
            landmarks = np.array([m for _, m in matches])
            measured = observations.u_px[[d for d, _ in matches]]
            columns, jacobian = self._column_jacobian(state, landmarks)
            valid = ~np.isnan(columns)
            rows.append(((columns - measured) / cfg.column_sigma_px)[valid])
            jacobians.append((jacobian / cfg.column_sigma_px)[valid])
        if lane_measurement is not None:
            (origin, normal, heading), offset_m, relative_heading = lane_measurement
            lateral = float(normal @ (state[:2] - origin))
            rows.append(
                np.array(
                    [
                        (lateral - offset_m) / cfg.lane_offset_sigma_m,
                        wrap_angle(state[2] - heading - relative_heading)
                        / cfg.lane_heading_sigma_rad,
                    ]
                )
            )
            jacobians.append(
                np.array(
                    [
                        [
                            normal[0] / cfg.lane_offset_sigma_m,
                            normal[1] / cfg.lane_offset_sigma_m,
                            0.0,
                        ],
                        [0.0, 0.0, 1.0 / cfg.lane_heading_sigma_rad],
                    ]
                )
            )
        if not rows:
            return np.zeros(0), np.zeros((0, 3))
        return np.concatenate(rows), np.concatenate(jacobians)


def _huber_weights(residuals: np.ndarray, threshold: float) -> np.ndarray:
    magnitude = np.abs(residuals)
    return np.where(magnitude <= threshold, 1.0, threshold / np.maximum(magnitude, 1e-12))


def _lane_measurement(observations: Observations, prior: np.ndarray, lane):
    """((lane origin (2,), left normal (2,), lane heading), measured lateral offset [m] from
    that origin line, relative heading [rad]). The CNN's offset is known modulo one lane
    width; the candidate closest to the prior's offset is taken."""
    prior_offset_m, lane_heading, width_m = lane
    normal = np.array([-math.sin(lane_heading), math.cos(lane_heading)])
    origin = prior[:2] - prior_offset_m * normal  # a point on the lane centre line
    offset_m = observations.lane_phase / (2 * math.pi) * width_m
    candidates = offset_m + width_m * np.array([-1.0, 0.0, 1.0])
    chosen = float(candidates[np.argmin(np.abs(candidates - prior_offset_m))])
    return (origin, normal, lane_heading), chosen, observations.lane_heading_rad


def decode(output, row: int, image_width_px: int, threshold: float) -> Observations:
    """Observations of batch item ``row`` of a :class:`~mapping.localizer_net.NetOutput`."""
    probability = torch.sigmoid(output.column_logit[row]).numpy()
    offset = torch.sigmoid(output.column_offset[row]).numpy()
    log_range = output.column_log_range[row].numpy()
    padded = np.pad(probability, 1)
    peaks = np.flatnonzero(
        (probability >= threshold) & (probability >= padded[:-2]) & (probability > padded[2:])
    )
    scale = image_width_px / INPUT_WIDTH
    u_px = (peaks + offset[peaks]) * COLUMN_STRIDE * scale
    lane = output.lane[row].numpy()
    return Observations(
        u_px=u_px,
        range_m=10.0 ** log_range[peaks],
        score=probability[peaks],
        lane_phase=float(math.atan2(lane[0], lane[1])),
        lane_heading_rad=float(lane[2]),
    )


def load_net(path: str | Path | None = None) -> LocalizerNet:
    """The network with weights from ``path`` (a state_dict), or the shipped weights.

    :raises OSError: the file is missing or not a loadable state_dict (names the file).
    """
    if path is None:
        path = resources.files("mapping.models") / DEFAULT_WEIGHTS
    net = LocalizerNet()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except FileNotFoundError:
        raise OSError(
            f"localizer weights {str(path)!r} do not exist; train them with "
            "'drivestack train-localizer'"
        ) from None
    except pickle.UnpicklingError:
        raise OSError(
            f"localizer weights {str(path)!r} are not a weights-only torch state_dict file"
        ) from None
    except (RuntimeError, KeyError, ValueError, EOFError, TypeError, AttributeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "loading state_dict" in reason:
            reason = "its tensors do not match the localizer network (weights of another model?)"
        raise OSError(f"localizer weights {str(path)!r} cannot be loaded: {reason}") from None
    return net
