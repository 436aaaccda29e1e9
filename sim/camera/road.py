"""Road surface and painted lane boundaries from a ``LaneGeometry`` message (``map`` frame).

Lane 0 is the leftmost lane. Boundary 0 is the left edge of lane 0; boundary i+1 lies between
lane i and lane i+1 (the last one is the right road edge). Dashes are laid out by arc length
from the first centre-line sample; the simulator samples lanes on a fixed grid of
longitudinal positions, so the dashes stay put on the road from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bus.messages import LaneGeometry

DASH_LENGTH_M = 4.0
DASH_PERIOD_M = 10.0
"""A dash every 10 m; equal to the simulator's lane sampling step, so dashes stay in place."""
DASHED_LINE_WIDTH_M = 0.15
SOLID_LINE_WIDTH_M = 0.2
SHOULDER_M = 1.2

_LINE_RANK = {"none": 0, "dashed": 1, "solid": 2}


def shared_line(left_lane_right: str, right_lane_left: str) -> str:
    """Paint of the boundary between two adjacent lanes of a road: the stronger of the left
    lane's right line and the right lane's left line (``none`` < ``dashed`` < ``solid``; the
    left lane's on a tie). The renderer, the labels and the HD map all paint by this rule."""
    if _LINE_RANK.get(right_lane_left, 0) > _LINE_RANK.get(left_lane_right, 0):
        return right_lane_left
    return left_lane_right


@dataclass(frozen=True)
class Boundary:
    """A painted line: ``points`` (N, 2) map-frame samples [m] along the driving direction."""

    index: int
    kind: str
    points: np.ndarray


def _normals(points: np.ndarray) -> np.ndarray:
    """Left unit normals (N, 2) of a polyline (N, 2), N >= 2 (central differences inside)."""
    tangent = np.empty_like(points)
    tangent[1:-1] = points[2:] - points[:-2]
    tangent[0], tangent[-1] = points[1] - points[0], points[-1] - points[-2]
    length = np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-9)
    return np.stack([-tangent[:, 1] / length, tangent[:, 0] / length], axis=1)


def _offset(points: np.ndarray, lateral_m: float) -> np.ndarray:
    return points + _normals(points) * lateral_m


def resample(points: np.ndarray, step_m: float) -> np.ndarray:
    """The polyline with vertices every ``step_m`` of arc length, keeping the first one."""
    lengths = np.concatenate(([0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))))
    if lengths[-1] <= 0:
        return points
    s = np.arange(0.0, lengths[-1] + 1e-6, step_m)
    if s[-1] < lengths[-1] - 1e-6:
        s = np.append(s, lengths[-1])
    return np.stack([np.interp(s, lengths, points[:, 0]), np.interp(s, lengths, points[:, 1])], 1)


def _sorted_lanes(lanes: LaneGeometry):
    return [
        lane
        for lane in sorted(lanes.lanes, key=lambda lane: lane.lane_index)
        if len(lane.centerline) >= 2
    ]


_last_boundaries: tuple[LaneGeometry | None, list[Boundary]] = (None, [])


def boundaries(lanes: LaneGeometry) -> list[Boundary]:
    """Painted boundaries of the road, left to right (``none`` lines omitted). The renderer
    and the labels ask for the same message in turn, so the last answer is kept."""
    global _last_boundaries
    if _last_boundaries[0] is lanes:
        return _last_boundaries[1]
    result = _boundaries(lanes)
    _last_boundaries = (lanes, result)
    return result


def _boundaries(lanes: LaneGeometry) -> list[Boundary]:
    ordered = _sorted_lanes(lanes)
    result: list[Boundary] = []
    for i, lane in enumerate(ordered):
        centre = np.asarray(lane.centerline, dtype=float)
        if i == 0:
            result.append(Boundary(0, lane.left_line, _offset(centre, lane.width_m / 2)))
        kind = lane.right_line
        if i + 1 < len(ordered):
            kind = shared_line(kind, ordered[i + 1].left_line)
        result.append(Boundary(i + 1, kind, _offset(centre, -lane.width_m / 2)))
    return [b for b in result if b.kind in ("solid", "dashed")]


def surface_quads(
    lanes: LaneGeometry, shoulder_m: float = SHOULDER_M
) -> tuple[np.ndarray, np.ndarray]:
    """Road and shoulder strips as quads (M, 4, 2) [m]: returns (shoulder quads, lane quads).

    Lanes sampled alike (parallel lanes) share one strip across the road; others get one each.
    """
    shoulders: list[np.ndarray] = []
    surfaces: list[np.ndarray] = []
    ordered = _sorted_lanes(lanes)
    if not ordered:
        return np.zeros((0, 4, 2)), np.zeros((0, 4, 2))
    first, last = ordered[0], ordered[-1]
    first_centre = np.asarray(first.centerline, float)
    last_centre = np.asarray(last.centerline, float)
    if all(len(lane.centerline) == len(first_centre) for lane in ordered):
        for extra, target in ((shoulder_m, shoulders), (0.0, surfaces)):
            target.append(
                _strip(
                    _offset(first_centre, first.width_m / 2 + extra),
                    _offset(last_centre, -last.width_m / 2 - extra),
                )
            )
    else:
        for lane in ordered:
            centre = np.asarray(lane.centerline, dtype=float)
            half = lane.width_m / 2
            surfaces.append(_strip(_offset(centre, half), _offset(centre, -half)))
    empty = np.zeros((0, 4, 2))
    return (
        np.concatenate(shoulders) if shoulders else empty,
        np.concatenate(surfaces) if surfaces else empty,
    )


def _strip(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Quads (N-1, 4, 2) between two polylines, wound counter-clockwise seen from above."""
    return np.stack([right[:-1], right[1:], left[1:], left[:-1]], axis=1)


def marking_quads(boundary: Boundary) -> np.ndarray:
    """Quads (M, 4, 2) [m] of a boundary's paint: segments of a solid line, or dashes."""
    if boundary.kind == "solid":
        points = boundary.points
        if len(points) < 2:
            return np.zeros((0, 4, 2))
        half = SOLID_LINE_WIDTH_M / 2
        return _strip(_offset(points, half), _offset(points, -half))
    points = resample(boundary.points, 1.0)
    if len(points) < 2:
        return np.zeros((0, 4, 2))
    lengths = np.concatenate(([0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))))
    starts = np.arange(0.0, lengths[-1] - DASH_LENGTH_M + 1e-6, DASH_PERIOD_M)
    if len(starts) == 0:
        return np.zeros((0, 4, 2))
    ends = starts + DASH_LENGTH_M
    a = np.stack([np.interp(starts, lengths, points[:, k]) for k in (0, 1)], 1)
    b = np.stack([np.interp(ends, lengths, points[:, k]) for k in (0, 1)], 1)
    direction = (b - a) / np.maximum(np.linalg.norm(b - a, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-direction[:, 1], direction[:, 0]], 1) * (DASHED_LINE_WIDTH_M / 2)
    return np.stack([a - normal, b - normal, b + normal, a + normal], axis=1)
