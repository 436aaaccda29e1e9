"""A planner's view of the road built from bus messages only: who is in which lane, where.

Objects are placed relative to the ego lane's centre line (longitudinal ``s`` and lateral
offset, left positive), so lane membership works on curved and merging roads and for
perceived objects that carry no lane index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bus.messages import EgoState, Lane, LaneGeometry, ObjectClass, ObjectList


def project_onto_polyline(
    points_xy: np.ndarray, polyline_xy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Arc length and signed lateral offset of points relative to a polyline.

    :param points_xy: (M, 2) points [m].
    :param polyline_xy: (N, 2) vertices along the direction of travel [m], N >= 2.
    :return: ``s`` (M,) arc length of the closest point [m] and ``d`` (M,) lateral offset,
        positive to the left of the direction of travel [m].
    """
    starts, ends = polyline_xy[:-1], polyline_xy[1:]
    seg = ends - starts
    seg_len = np.maximum(np.linalg.norm(seg, axis=1), 1e-9)
    cum_len = np.concatenate(([0.0], np.cumsum(seg_len)))[:-1]
    rel = points_xy[:, None, :] - starts[None, :, :]
    t = (rel * seg[None]).sum(-1) / seg_len**2
    # Extend the first and last segments so points beyond the ends still project.
    t_clipped = np.clip(t, 0.0, 1.0)
    t_clipped[:, 0] = np.minimum(t[:, 0], 1.0)
    t_clipped[:, -1] = np.maximum(t[:, -1], 0.0)
    closest = starts[None] + t_clipped[..., None] * seg[None]
    dist = np.linalg.norm(points_xy[:, None, :] - closest, axis=-1)
    best = np.argmin(dist, axis=1)
    rows = np.arange(len(points_xy))
    s = cum_len[best] + t_clipped[rows, best] * seg_len[best]
    cross = seg[best, 0] * rel[rows, best, 1] - seg[best, 1] * rel[rows, best, 0]
    return s, cross / seg_len[best]


@dataclass(frozen=True)
class Neighbour:
    """An object relative to the ego along the ego lane.

    :param gap_m: bumper-to-bumper distance, positive ahead of the ego, negative behind.
    :param speed_mps: the object's speed along the lane.
    :param relative_lane: lanes to the left of the ego lane (right is negative).
    :param lateral_m: offset from the ego lane's centre line, left positive.
    :param is_vehicle: False for pedestrians and unknown objects.
    :param lateral_speed_mps: speed across the ego lane, left positive.
    """

    object_id: int
    gap_m: float
    speed_mps: float
    relative_lane: int
    lateral_m: float = 0.0
    is_vehicle: bool = True
    lateral_speed_mps: float = 0.0


CUT_IN_LANE_FRACTION = 0.8
"""A vehicle whose centre is, or within :data:`CUT_IN_HORIZON_S` will be, within this many
lane widths of the ego lane's centre line is cutting in and counts as a lead."""

CUT_IN_HORIZON_S = 3.0
"""How far ahead [s] lateral motion of neighbours is extrapolated to detect cut-ins."""


@dataclass(frozen=True)
class Scene:
    """The road around the ego.

    :param merging: relative lanes (+1 left, -1 right) that end ahead of the ego, mapped to
        the distance to their end [m]; their traffic must merge into the ego lane.
    """

    ego: EgoState
    ego_lane: Lane | None
    lanes: dict[int, Lane]
    neighbours: tuple[Neighbour, ...]
    lane_width_m: float = 4.0
    merging: dict[int, float] = field(default_factory=dict)

    def lead(self, relative_lane: int) -> Neighbour | None:
        ahead = [n for n in self.neighbours if self._in_lane(n, relative_lane) and n.gap_m >= -1e-6]
        return min(ahead, key=lambda n: n.gap_m, default=None)

    def _in_lane(self, neighbour: Neighbour, relative_lane: int) -> bool:
        if neighbour.relative_lane == relative_lane:
            return neighbour.is_vehicle or abs(
                neighbour.lateral_m - relative_lane * self.lane_width_m
            ) < (0.5 * self.lane_width_m)
        if relative_lane != 0 or not neighbour.is_vehicle:
            return False
        # Vehicles cutting in, or about to merge from a lane that ends, are leads of the ego.
        predicted_m = neighbour.lateral_m + CUT_IN_HORIZON_S * neighbour.lateral_speed_mps
        if abs(predicted_m) > abs(neighbour.lateral_m):
            predicted_m = neighbour.lateral_m  # moving away: only where it is now counts
        cutting_in = min(abs(neighbour.lateral_m), abs(predicted_m)) < (
            CUT_IN_LANE_FRACTION * self.lane_width_m
        ) or np.sign(predicted_m) != np.sign(neighbour.lateral_m)
        lane_end_m = self.merging.get(neighbour.relative_lane)
        return cutting_in or (lane_end_m is not None and neighbour.gap_m < lane_end_m)

    def follower(self, relative_lane: int) -> Neighbour | None:
        behind = [n for n in self.neighbours if n.relative_lane == relative_lane and n.gap_m < 0]
        return max(behind, key=lambda n: n.gap_m, default=None)

    def alongside(self, relative_lane: int) -> bool:
        """True when an object in the lane overlaps the ego longitudinally."""
        return any(
            n.relative_lane == relative_lane and -1e-6 <= n.gap_m <= 0 for n in self.neighbours
        )


def _heading_at(polyline_xy: np.ndarray, s_m: float) -> float:
    """Heading [rad] of the polyline segment at arc length ``s_m``."""
    seg = np.diff(polyline_xy, axis=0)
    cum = np.cumsum(np.linalg.norm(seg, axis=1))
    index = min(int(np.searchsorted(cum, s_m)), len(seg) - 1)
    return float(np.arctan2(seg[index, 1], seg[index, 0]))


def build_scene(ego: EgoState, objects: ObjectList, lanes: LaneGeometry) -> Scene:
    """Place each object relative to the ego lane, from the three simulator-shaped messages."""
    lane_by_index = {lane.lane_index: lane for lane in lanes.lanes}
    ego_lane = lane_by_index.get(ego.lane_index)
    if not objects.objects:
        return Scene(ego, ego_lane, lane_by_index, (), ego_lane.width_m if ego_lane else 4.0)

    positions = np.array(
        [[o.pose.x, o.pose.y] for o in objects.objects] + [[ego.pose.x, ego.pose.y]]
    )
    if ego_lane is not None and len(ego_lane.centerline) >= 2:
        s, d = project_onto_polyline(positions, np.asarray(ego_lane.centerline, dtype=float))
        width = ego_lane.width_m
        lane_yaw = _heading_at(np.asarray(ego_lane.centerline, dtype=float), s[-1])
    else:
        # No map: straight lane along the ego heading.
        cos_yaw, sin_yaw = np.cos(ego.pose.yaw), np.sin(ego.pose.yaw)
        rel = positions - positions[-1]
        s, d = rel @ np.array([cos_yaw, sin_yaw]), rel @ np.array([-sin_yaw, cos_yaw])
        width = 4.0
        lane_yaw = ego.pose.yaw
    ego_s = s[-1]
    across = np.array([-np.sin(lane_yaw), np.cos(lane_yaw)])

    neighbours = []
    for index, obj in enumerate(objects.objects):
        relative_lane = int(np.round(d[index] / width))
        centre_gap = s[index] - ego_s
        half_lengths = 0.5 * (obj.length_m + ego.length_m)
        if centre_gap >= 0:
            gap = max(centre_gap - half_lengths, 0.0)
        else:
            gap = min(centre_gap + half_lengths, 0.0)
        speed = float(np.hypot(obj.velocity_mps.x, obj.velocity_mps.y))
        is_vehicle = obj.object_class in (ObjectClass.CAR, ObjectClass.TRUCK)
        neighbours.append(
            Neighbour(
                obj.object_id,
                float(gap),
                speed,
                relative_lane,
                float(d[index]),
                is_vehicle,
                float(across @ np.array([obj.velocity_mps.x, obj.velocity_mps.y])),
            )
        )
    merging = {
        side: lane.ends_ahead_m
        for side in (1, -1)
        if (lane := lane_by_index.get(ego.lane_index - side)) is not None
        and lane.ends_ahead_m is not None
    }
    return Scene(ego, ego_lane, lane_by_index, tuple(neighbours), width, merging)
