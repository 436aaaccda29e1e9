"""The landmark localizer: CNN observations of one camera frame, solved into a map pose.

1. :class:`~mapping.localizer_net.LocalizerNet` finds the image columns of landmark centres
   (with a rough range each) and the ego's lateral offset and heading relative to its lane.
2. Detections are associated with map landmarks through a pose prior (the fused estimate
   predicted to the frame's time): each map landmark's predicted column and its uncertainty,
   propagated from the prior covariance, gate the match; a rough range check breaks ties.
3. A robust Gauss-Newton solve over (x, y, yaw) minimises the column residuals of the matched
   landmarks, the lane offset and heading residuals, and a weak copy of the prior. The CNN's
   lane offset is known modulo a lane width, so the solve runs for the lane nearest the prior
   and its neighbours; lanes whose mapped boundary paint (solid, dashed) matches the paint
   seen beside the ego come first, then the lowest robust cost.
4. From that pose (good laterally and in heading, weak along the lane) the dash pattern of
   the mapped dashed lane lines gives the position along the lane modulo the dash period
   (:mod:`mapping.dashes`); the period nearest the prior combined with the landmarks is taken
   when that combination is certain enough, and the solve is repeated with it.

The fix's covariance is the inverse of the solve's information (measurements plus the
weakened prior), so fusing it in the EKF only lightly double-counts the prior.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from bus.messages import Header, LocalizerFix, Pose2D
from bus.messages.camera import CameraInfo
from mapping.dashes import (
    DashConfig,
    DashIndex,
    boundary_paint_seen,
    grey_image,
    measure_dashes,
)
from mapping.hdmap import HdMap, MapIndex
from mapping.localizer_net import LocalizerNet, Observations, decode, to_input
from mapping.localizer_net import load_net as load_net  # re-exported: the usual entry point
from sim.camera.model import CameraConfig, CameraModel
from sim.frames import wrap_angle

logger = logging.getLogger(__name__)


# TODO(#7): frames without a dash measurement (lines occluded, none mapped, or the start,
# while the along-lane sigma exceeds max_cycle_sigma_m) fall back to landmark bearings, which
# constrain x weakly: the single-frame fix keeps a tail of a few metres on held-out seeds
# 1100-1105 (the fused estimate stays within target). A range cue to landmarks would help.
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
    :param lane_hypotheses: lanes tried for the lane measurement (1: the one nearest the
        prior; 3: also the neighbours, the landmarks decide).
    :param lane_prior_weight: weight of the prior's Mahalanobis term when lanes are compared.
    :param use_dashes: measure the dash phase of mapped dashed lines (step 4).
    :param use_lane_paint: prefer lane solves whose mapped boundary paint (solid, dashed,
        none, left and right) matches the paint seen beside the ego (see
        :func:`~mapping.dashes.boundary_paint_seen`).
    :param max_cycle_sigma_m: the dash period is chosen only when the along-lane standard
        deviation of the prior combined with the landmarks is at most this [m].
    :param dashes: how the dash phase is measured.
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
    lane_hypotheses: int = 3
    lane_prior_weight: float = 0.04
    use_dashes: bool = True
    use_lane_paint: bool = True
    max_cycle_sigma_m: float = 2.0
    dashes: DashConfig = field(default_factory=DashConfig)


@dataclass(frozen=True)
class DashConstraint:
    """Along-lane position from the dashes: ``direction . (pose_xy - anchor_xy) = offset_m``
    with standard deviation ``sigma_m``; ``start_xyyaw`` (3,) is where the solve begins."""

    anchor_xy: np.ndarray
    direction: np.ndarray
    offset_m: float
    sigma_m: float
    start_xyyaw: np.ndarray


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
        self.dash_index = DashIndex(hd_map)

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
        candidates = self.solve_lanes(observations, prior, prior_covariance)
        grey = grey_image(pixels)
        if self.config.use_lane_paint and len(candidates) > 1:
            candidates = self._by_lane_paint(grey, candidates)
        pose, covariance, ids, lane_used = candidates[0]
        dash = None
        if self.config.use_dashes and len(self.dash_index) > 0:
            dash = self.dash_constraint(grey, pose, covariance, prior, prior_covariance)
        if dash is not None:
            pose, covariance, ids, lane_used = self.solve(
                observations, prior, prior_covariance, dash
            )
        return LocalizerFix(
            header=Header(stamp_ns=stamp_ns, frame_id="map"),
            pose=pose,
            covariance=tuple(float(v) for v in covariance.ravel()),
            landmark_ids=ids,
            lane_used=lane_used,
            dashes_used=dash is not None,
            latency_s=time.perf_counter() - start,
        )

    def _by_lane_paint(self, grey: np.ndarray, candidates: list) -> list:
        """``candidates`` (lane solves, best first) with those whose lane's mapped boundary
        paint matches the paint seen beside the ego moved to the front."""
        pose = candidates[0][0]
        camera_xy = self.camera.camera_position_map(pose)[:2]
        lane = self.index.nearest_lane(float(camera_xy[0]), float(camera_xy[1]))
        if lane is None:
            return candidates
        seen = boundary_paint_seen(grey, self.camera, pose, *lane, self.config.dashes)

        def matches(candidate) -> bool:
            kinds = self.index.nearest_lane_kinds(candidate[0].x, candidate[0].y)
            return kinds is not None and all(
                s is None or s == k for s, k in zip(seen, kinds, strict=True)
            )

        matching = [matches(candidate) for candidate in candidates]
        return [c for c, m in zip(candidates, matching, strict=True) if m] + [
            c for c, m in zip(candidates, matching, strict=True) if not m
        ]

    def dash_constraint(
        self,
        grey: np.ndarray,
        pose: Pose2D,
        covariance: np.ndarray,
        prior: Pose2D,
        prior_covariance: np.ndarray,
    ) -> DashConstraint | None:
        """The along-lane constraint the dashes seen in ``grey`` (see
        :func:`~mapping.dashes.grey_image`) from ``pose`` (a landmark solve, with its
        ``covariance``) give, or None when no dash is measured or the period is ambiguous.
        The period is the one nearest the landmark solve combined with the full-strength
        prior (one Newton step from the solve, which used a weakened prior)."""
        cfg = self.config
        measurement = measure_dashes(grey, self.camera, pose, self.dash_index, cfg.dashes)
        if measurement is None:
            return None
        solved = np.array([pose.x, pose.y, pose.yaw])
        prior_info = np.linalg.inv(np.asarray(prior_covariance, dtype=float))
        weak_prior_info = prior_info / cfg.prior_weakening
        information = np.linalg.inv(covariance) - weak_prior_info + prior_info
        error = solved - np.array([prior.x, prior.y, prior.yaw])
        error[2] = wrap_angle(float(error[2]))
        combined = solved - np.linalg.solve(information, (prior_info - weak_prior_info) @ error)
        direction = measurement.direction
        along_sigma_m = math.sqrt(direction @ np.linalg.inv(information)[:2, :2] @ direction)
        if along_sigma_m > cfg.max_cycle_sigma_m:
            logger.debug("dash period ambiguous: along-lane sigma %.2f m", along_sigma_m)
            return None
        cycles = round(
            (float(direction @ (combined[:2] - solved[:2])) - measurement.shift_m)
            / measurement.period_m
        )
        offset_m = measurement.shift_m + cycles * measurement.period_m
        start_xyyaw = solved.copy()
        start_xyyaw[:2] += offset_m * direction
        return DashConstraint(solved[:2], direction, offset_m, cfg.dashes.sigma_m, start_xyyaw)

    def solve(
        self,
        observations: Observations,
        prior: Pose2D,
        prior_covariance: np.ndarray,
        dash: DashConstraint | None = None,
    ) -> tuple[Pose2D, np.ndarray, tuple[int, ...], bool]:
        """(pose, 3x3 covariance, matched landmark ids, lane used) from CNN observations and,
        when given, a dash constraint (the solve then starts where it puts the ego)."""
        return self.solve_lanes(observations, prior, prior_covariance, dash)[0]

    def solve_lanes(
        self,
        observations: Observations,
        prior: Pose2D,
        prior_covariance: np.ndarray,
        dash: DashConstraint | None = None,
    ) -> list[tuple[Pose2D, np.ndarray, tuple[int, ...], bool]]:
        """:meth:`solve` for each lane the ego may be in, best first (one without lanes)."""
        cfg = self.config
        prior_xyyaw = np.array([prior.x, prior.y, prior.yaw])
        prior_cov = np.asarray(prior_covariance, dtype=float)
        matches = self._associate(observations, prior_xyyaw, prior_cov)
        weak_prior_info = np.linalg.inv(prior_cov * cfg.prior_weakening)
        if dash is None:
            start = prior_xyyaw
            hypotheses = self._lane_hypotheses(observations, prior_xyyaw)
        else:  # keep the lane the first solve chose
            start = dash.start_xyyaw
            hypotheses = self._lane_hypotheses(observations, start)[:1]
        prior_info = np.linalg.inv(prior_cov)
        ids = tuple(int(self.index.landmark_ids[m]) for _, m in matches)
        solutions = []
        for lane_measurement in hypotheses:
            state, information, cost = self._gauss_newton(
                start, prior_xyyaw, weak_prior_info, observations, matches, lane_measurement, dash
            )
            # Lanes are told apart by the measurements and the (scaled) prior.
            prior_error = state - prior_xyyaw
            prior_error[2] = wrap_angle(float(prior_error[2]))
            cost += 0.5 * cfg.lane_prior_weight * float(prior_error @ prior_info @ prior_error)
            pose = Pose2D(*(float(v) for v in state))
            solution = (pose, np.linalg.inv(information), ids, lane_measurement is not None)
            solutions.append((cost, len(solutions), solution))
        return [solution for _, _, solution in sorted(solutions)]

    def _lane_hypotheses(self, observations: Observations, reference: np.ndarray) -> list:
        """Lane measurements for the lanes the ego may be in, nearest ``reference`` first.

        The CNN's lateral offset is known modulo one lane width; after a lane change the
        prior may lag by most of a lane, so every candidate on the road is tried and the
        solve keeps the one the landmarks agree with best ([None] without lanes)."""
        lane = self.index.nearest_lane(float(reference[0]), float(reference[1]))
        if lane is None:
            return [None]
        measurements = _lane_measurements(observations, reference, lane)
        on_road = [m for m in measurements if self._on_road(m[0][0] + m[1] * m[0][1])]
        return (on_road or measurements)[: self.config.lane_hypotheses]

    def _on_road(self, point_xy: np.ndarray) -> bool:
        nearest = self.index.nearest_lane(float(point_xy[0]), float(point_xy[1]))
        return nearest is not None and abs(nearest[0]) <= 0.6 * nearest[2]

    def _gauss_newton(
        self, start, prior_xyyaw, weak_prior_info, observations, matches, lane_measurement, dash
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """(state (3,), information (3, 3), robust cost of the measurement residuals) of the
        iteratively reweighted Gauss-Newton solve from ``start``."""
        cfg = self.config
        state = np.array(start, dtype=float)
        information = weak_prior_info
        for _ in range(cfg.iterations):
            residuals, jacobian = self._residuals(
                state, observations, matches, lane_measurement, dash
            )
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
        residuals, _ = self._residuals(state, observations, matches, lane_measurement, dash)
        return state, information, _huber_cost(residuals, cfg.huber_sigmas)

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
        self,
        state: np.ndarray,
        observations: Observations,
        matches,
        lane_measurement,
        dash: DashConstraint | None = None,
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
        if dash is not None:
            along_m = float(dash.direction @ (state[:2] - dash.anchor_xy))
            rows.append(np.array([(along_m - dash.offset_m) / dash.sigma_m]))
            jacobians.append(np.array([[*(dash.direction / dash.sigma_m), 0.0]]))
        if not rows:
            return np.zeros(0), np.zeros((0, 3))
        return np.concatenate(rows), np.concatenate(jacobians)


def _huber_weights(residuals: np.ndarray, threshold: float) -> np.ndarray:
    magnitude = np.abs(residuals)
    return np.where(magnitude <= threshold, 1.0, threshold / np.maximum(magnitude, 1e-12))


def _huber_cost(residuals: np.ndarray, threshold: float) -> float:
    magnitude = np.abs(residuals)
    quadratic = 0.5 * magnitude**2
    linear = threshold * magnitude - 0.5 * threshold**2
    return float(np.where(magnitude <= threshold, quadratic, linear).sum())


def _lane_measurements(observations: Observations, prior: np.ndarray, lane) -> list:
    """[((lane origin (2,), left normal (2,), lane heading), measured lateral offset [m] from
    that origin line, relative heading [rad]), ...]. The CNN's offset is known modulo one
    lane width: the candidates in this lane and the two beside it, closest to the prior's
    offset first."""
    prior_offset_m, lane_heading, width_m = lane
    normal = np.array([-math.sin(lane_heading), math.cos(lane_heading)])
    origin = prior[:2] - prior_offset_m * normal  # a point on the lane centre line
    offset_m = observations.lane_phase / (2 * math.pi) * width_m
    candidates = offset_m + width_m * np.array([-1.0, 0.0, 1.0])
    order = np.argsort(np.abs(candidates - prior_offset_m))
    return [
        ((origin, normal, lane_heading), float(candidates[i]), observations.lane_heading_rad)
        for i in order
    ]
