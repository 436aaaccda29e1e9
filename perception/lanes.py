"""Lane estimate from the camera: painted lines found as narrow bright stripes, projected
onto the flat road with the camera model, fitted as polynomials in the ego frame.

This is a compact geometric lane head, not a learned one: a horizontal top-hat filter
keeps pixels brighter than the road a few pixels to either side (paint, not the wide
shoulder or a white truck), their rays are intersected with the road, and the two lines
nearest the ego on either side are fitted as ``y = c0 + c1 x + c2 x^2`` (x forward, y left,
ego frame). From them: lateral offset, heading error, lane width and curvature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from perception.geometry import pixels_to_road

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaneConfig:
    """:param near_m, far_m: stretch of road ahead of the ego centre used [m].
    :param max_lateral_m: points farther to the side are ignored [m].
    :param tophat_px: width of the top-hat kernel; wider stripes are not paint [px].
    :param min_contrast: brightness a stripe must exceed its surroundings by [0-255].
    :param bin_m: lateral histogram bin for finding lines [m].
    :param band_m: half-width of the band of points assigned to a line [m].
    :param min_points: fewest road points a fitted line needs.
    """

    near_m: float = 4.0
    far_m: float = 40.0
    max_lateral_m: float = 9.0
    tophat_px: int = 25
    min_contrast: float = 40.0
    bin_m: float = 0.25
    band_m: float = 0.6
    min_points: int = 25


class LaneFit(NamedTuple):
    """A fitted line ``y = c0 + c1 x + c2 x^2`` [m] in the ego frame, with its point count."""

    coefficients: np.ndarray
    points: int


class LaneMeasurement(NamedTuple):
    """The ego lane from the camera.

    :param lateral_offset_m: ego centre left of the lane centre [m] (REP-103: + = left).
    :param heading_error_rad: ego heading minus lane direction, counter-clockwise [rad].
    :param lane_width_m: distance between the two lines at the ego [m].
    :param curvature_1pm: lane curvature [1/m], + = turning left.
    """

    lateral_offset_m: float
    heading_error_rad: float
    lane_width_m: float
    curvature_1pm: float
    left: LaneFit
    right: LaneFit


def paint_pixels(image_rgb: np.ndarray, horizon_v: float, config: LaneConfig) -> np.ndarray:
    """(N, 2) pixel centres (u, v) of narrow bright stripes below the horizon."""
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (config.tophat_px, 1))
    tophat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel)
    top = int(np.clip(np.ceil(horizon_v) + 2, 0, gray.shape[0]))
    rows, cols = np.nonzero(tophat[top:] > config.min_contrast)
    return np.column_stack([cols + 0.5, rows + top + 0.5])


def horizon_row(k: np.ndarray, t_camera_ego: np.ndarray) -> float:
    """Image row [px] of the horizon (a level ray), at the image centre column."""
    forward_camera = t_camera_ego[:3, :3] @ np.array([1.0, 0.0, 0.0])
    return float(k[1, 1] * forward_camera[1] / forward_camera[2] + k[1, 2])


def estimate_lane(
    image_rgb: np.ndarray,
    k: np.ndarray,
    t_camera_ego: np.ndarray,
    config: LaneConfig = LaneConfig(),
) -> LaneMeasurement | None:
    """The ego lane, or None when the lines on both sides are not found."""
    pixels = paint_pixels(image_rgb, horizon_row(k, t_camera_ego), config)
    if len(pixels) < config.min_points:
        return None
    road = pixels_to_road(pixels, k, t_camera_ego)
    keep = (
        np.isfinite(road[:, 0])
        & (road[:, 0] >= config.near_m)
        & (road[:, 0] <= config.far_m)
        & (np.abs(road[:, 1]) <= config.max_lateral_m)
    )
    road = road[keep]
    left = _fit_nearest(road, config, side=1.0)
    right = _fit_nearest(road, config, side=-1.0)
    if left is None or right is None:
        return None
    return _measurement(left, right)


def _fit_nearest(road: np.ndarray, config: LaneConfig, side: float) -> LaneFit | None:
    """Fit the line nearest the ego on one side (+1 left, -1 right)."""
    lateral = road[:, 1] * side
    points = road[lateral > 0]
    if len(points) < config.min_points:
        return None
    edges = np.arange(0.0, config.max_lateral_m + config.bin_m, config.bin_m)
    counts, _ = np.histogram(points[:, 1] * side, bins=edges)
    peaks = [
        i
        for i in range(len(counts))
        if counts[i] >= config.min_points / 2
        and counts[i] >= counts[max(i - 1, 0)]
        and counts[i] >= counts[min(i + 1, len(counts) - 1)]
    ]
    if not peaks:
        return None
    centre = side * (edges[peaks[0]] + config.bin_m / 2)
    band = points[np.abs(points[:, 1] - centre) <= config.band_m]
    if len(band) < config.min_points:
        return None
    coefficients = _polyfit(band)
    residual = np.abs(band[:, 1] - np.polyval(coefficients[::-1], band[:, 0]))
    inliers = band[residual <= config.band_m / 2]
    if len(inliers) >= config.min_points:
        coefficients = _polyfit(inliers)
    return LaneFit(coefficients, len(inliers))


def _polyfit(points: np.ndarray) -> np.ndarray:
    """Coefficients (c0, c1, c2) of y(x); quadratic only when the stretch is long enough."""
    span = np.ptp(points[:, 0])
    degree = 2 if span > 15.0 else 1
    coefficients = np.polyfit(points[:, 0], points[:, 1], degree)[::-1]
    return np.pad(coefficients, (0, 3 - len(coefficients)))


def _measurement(left: LaneFit, right: LaneFit) -> LaneMeasurement:
    centre = (left.coefficients + right.coefficients) / 2
    return LaneMeasurement(
        lateral_offset_m=float(-centre[0]),
        heading_error_rad=float(-np.arctan(centre[1])),
        lane_width_m=float(left.coefficients[0] - right.coefficients[0]),
        curvature_1pm=float(2 * centre[2]),
        left=left,
        right=right,
    )
