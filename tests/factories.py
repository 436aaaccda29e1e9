"""Message builders shared by the tests: a plausible value for every field, overridable."""

from __future__ import annotations

from typing import Any

from bus.messages import EgoState, Header, Pose2D

ORIGIN = Pose2D(0.0, 0.0, 0.0)


def make_ego(
    pose: Pose2D = ORIGIN,
    speed_mps: float = 25.0,
    lane_index: int = 1,
    header: Header | None = None,
    **fields: Any,
) -> EgoState:
    """A 5 m x 2 m ego on a 3-lane road, not changing lane, tracking its current speed."""
    values: dict[str, Any] = {
        "yaw_rate_rps": 0.0,
        "length_m": 5.0,
        "width_m": 2.0,
        "target_lane_index": lane_index,
        "lane_count": 3,
        "target_speed_mps": speed_mps,
        "odometer_m": 0.0,
        "crashed": False,
        "on_road": True,
    }
    values.update(fields)
    return EgoState(
        header=header or Header(stamp_ns=0),
        pose=pose,
        speed_mps=speed_mps,
        lane_index=lane_index,
        **values,
    )
