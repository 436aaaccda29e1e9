"""Constructed highway-env scenes for planner tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def place(
    ego_lane: int,
    ego_speed_mps: float,
    others: list[tuple[int, float, float]],
    ego_x_m: float = 100.0,
) -> Callable:
    """Scene builder for :meth:`Simulator.reset`: the ego at ``ego_x_m`` in ``ego_lane`` and
    one IDM vehicle per ``(lane, dx_m, speed_mps)`` that keeps its lane and speed."""
    from highway_env.vehicle.behavior import IDMVehicle

    def prepare(env) -> None:
        road, ego = env.road, env.vehicle
        lane = road.network.get_lane(("0", "1", ego_lane))
        ego.lane_index = ego.target_lane_index = ("0", "1", ego_lane)
        ego.lane = lane
        ego.position = lane.position(ego_x_m, 0.0)
        ego.heading = lane.heading_at(ego_x_m)
        ego.speed = ego.target_speed = ego_speed_mps
        ego.speed_index = int(np.argmin(np.abs(ego.target_speeds - ego_speed_mps)))
        road.vehicles = [ego]
        for lane_id, dx_m, speed_mps in others:
            other_lane = road.network.get_lane(("0", "1", lane_id))
            vehicle = IDMVehicle(
                road,
                other_lane.position(ego_x_m + dx_m, 0.0),
                heading=other_lane.heading_at(ego_x_m + dx_m),
                speed=speed_mps,
                target_speed=speed_mps,
                target_lane_index=("0", "1", lane_id),
                enable_lane_change=False,
            )
            road.vehicles.append(vehicle)

    return prepare
