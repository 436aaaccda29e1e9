"""Read a highway-env world into bus messages. The only module that touches vehicle internals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bus.messages import (
    EgoState,
    Header,
    Lane,
    LaneGeometry,
    ObjectClass,
    ObjectList,
    ObjectState,
    Vector2,
)
from sim.frames import (
    pose_from_highway,
    rotate_to_ego,
    to_ego_frame,
    vector_from_highway,
    wrap_angle,
    xy_from_highway,
)

TRUCK_MIN_LENGTH_M = 7.0
"""Vehicles at least this long are labelled trucks."""

_LINE_NAMES = {0: "none", 1: "dashed", 2: "solid", 3: "solid"}


@dataclass(frozen=True)
class LaneSampling:
    """Which stretch of each lane to publish, relative to the ego's longitudinal position."""

    behind_m: float = 50.0
    ahead_m: float = 200.0
    step_m: float = 10.0


class WorldReader:
    """Turns the state of one highway-env environment into bus messages.

    Object ids are assigned on first sight and kept for the object's lifetime in the episode.
    """

    def __init__(self, env, sampling: LaneSampling | None = None) -> None:
        self.env = env
        self.sampling = sampling or LaneSampling()
        self._ids: dict[int, int] = {}
        self._odometer_m = 0.0
        self._last_xy: tuple[float, float] | None = None
        self._last_yaw: float | None = None
        self._last_stamp_ns: int | None = None

    def reset(self) -> None:
        self._ids.clear()
        self._odometer_m = 0.0
        self._last_xy = self._last_yaw = self._last_stamp_ns = None

    def _object_id(self, vehicle) -> int:
        return self._ids.setdefault(id(vehicle), len(self._ids) + 1)

    def ego_state(self, stamp_ns: int, seq: int = 0) -> EgoState:
        vehicle = self.env.unwrapped.vehicle
        pose = pose_from_highway(vehicle.position, vehicle.heading)

        # Odometry and yaw rate from the previous control step.
        yaw_rate = 0.0
        if self._last_xy is not None and self._last_stamp_ns is not None:
            self._odometer_m += float(
                np.hypot(pose.x - self._last_xy[0], pose.y - self._last_xy[1])
            )
            dt_s = (stamp_ns - self._last_stamp_ns) / 1e9
            if dt_s > 0 and self._last_yaw is not None:
                yaw_rate = wrap_angle(pose.yaw - self._last_yaw) / dt_s
        self._last_xy, self._last_yaw, self._last_stamp_ns = (pose.x, pose.y), pose.yaw, stamp_ns

        lane_index = vehicle.lane_index
        target = getattr(vehicle, "target_lane_index", lane_index) or lane_index
        network = self.env.unwrapped.road.network
        return EgoState(
            header=Header(stamp_ns=stamp_ns, seq=seq, frame_id="map"),
            pose=pose,
            speed_mps=float(vehicle.speed),
            yaw_rate_rps=yaw_rate,
            length_m=float(vehicle.LENGTH),
            width_m=float(vehicle.WIDTH),
            lane_index=int(lane_index[2]),
            target_lane_index=int(target[2]),
            lane_count=len(network.graph[lane_index[0]][lane_index[1]]),
            target_speed_mps=float(getattr(vehicle, "target_speed", vehicle.speed)),
            odometer_m=self._odometer_m,
            crashed=bool(vehicle.crashed),
            on_road=bool(vehicle.on_road),
        )

    def objects(self, stamp_ns: int, ego: EgoState, seq: int = 0) -> ObjectList:
        """Every road user but the ego, in the ``map`` frame with ego-relative copies."""
        world = self.env.unwrapped
        ego_velocity = Vector2(
            ego.speed_mps * np.cos(ego.pose.yaw), ego.speed_mps * np.sin(ego.pose.yaw)
        )
        objects = []
        for vehicle in world.road.vehicles:
            if vehicle is world.vehicle:
                continue
            pose = pose_from_highway(vehicle.position, vehicle.heading)
            velocity = vector_from_highway(vehicle.velocity)
            relative_velocity = Vector2(velocity.x - ego_velocity.x, velocity.y - ego_velocity.y)
            length = float(vehicle.LENGTH)
            objects.append(
                ObjectState(
                    object_id=self._object_id(vehicle),
                    object_class=ObjectClass.TRUCK
                    if length >= TRUCK_MIN_LENGTH_M
                    else ObjectClass.CAR,
                    pose=pose,
                    velocity_mps=velocity,
                    ego_pose=to_ego_frame(ego.pose, pose),
                    ego_velocity_mps=rotate_to_ego(ego.pose, relative_velocity),
                    length_m=length,
                    width_m=float(vehicle.WIDTH),
                    lane_index=int(vehicle.lane_index[2]) if vehicle.lane_index else -1,
                )
            )
        header = Header(stamp_ns=stamp_ns, seq=seq, frame_id="map")
        return ObjectList(header=header, objects=tuple(objects))

    def lanes(self, stamp_ns: int, seq: int = 0) -> LaneGeometry:
        """Lanes of the ego's road segment, sampled from behind to ahead of the ego."""
        world = self.env.unwrapped
        start, end, ego_lane_id = world.vehicle.lane_index
        network = world.road.network
        segment = network.graph[start][end]
        ego_s, _ = segment[ego_lane_id].local_coordinates(world.vehicle.position)
        following = network.graph.get(end, {})
        next_lane_counts = [len(lanes) for lanes in following.values()]

        lanes = []
        for lane_id, lane in enumerate(segment):
            # On a fixed grid of s, so painted dashes drawn from the samples stay in place.
            first_s = np.floor(max(0.0, ego_s - self.sampling.behind_m) / self.sampling.step_m)
            s_values = np.arange(
                first_s * self.sampling.step_m,
                min(lane.length, ego_s + self.sampling.ahead_m) + 1e-6,
                self.sampling.step_m,
            )
            centerline = tuple(xy_from_highway(lane.position(s, 0.0)) for s in s_values)
            continues = any(count > lane_id for count in next_lane_counts)
            ends_ahead = None if continues else float(lane.length - ego_s)
            if ends_ahead is not None and ends_ahead > self.sampling.ahead_m:
                ends_ahead = None
            lanes.append(
                Lane(
                    lane_index=lane_id,
                    centerline=centerline,
                    width_m=float(lane.width_at(ego_s)),
                    speed_limit_mps=float(lane.speed_limit or 0.0),
                    left_line=_LINE_NAMES.get(int(lane.line_types[0]), "none"),
                    right_line=_LINE_NAMES.get(int(lane.line_types[1]), "none"),
                    road_id=f"{start}-{end}",
                    ends_ahead_m=ends_ahead,
                    forbidden=bool(getattr(lane, "forbidden", False)),
                )
            )
        return LaneGeometry(
            header=Header(stamp_ns=stamp_ns, seq=seq, frame_id="map"),
            lanes=tuple(lanes),
            ego_lane_index=int(ego_lane_id),
        )
