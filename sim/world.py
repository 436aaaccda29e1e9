"""World objects besides highway-env's cars: trucks, pedestrians, traffic signs and landmarks.

Everything is generated at episode reset from the road network and the episode seed, so the
same seed gives the same world. Signs and landmarks are static (``/sim/static``); pedestrians
move on a fixed schedule (a pure function of simulation time) and join the vehicles on
``/sim/objects``. Trucks are highway-env vehicles made longer and wider, so they drive and
collide as trucks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bus.messages import EgoState, Header, ObjectClass, ObjectList, ObjectState, Pose2D, Vector2
from bus.messages.world import Landmark, LandmarkShape, SignType, StaticWorld, TrafficSign
from sim.frames import rotate_to_ego, to_ego_frame, wrap_angle, xy_from_highway

logger = logging.getLogger(__name__)

PEDESTRIAN_ID_BASE = 10_000
SIGN_ID_BASE = 20_000
LANDMARK_ID_BASE = 30_000
"""Id ranges of the generated objects; highway-env vehicles get ids from 1 (sim/adapter.py)."""

PEDESTRIAN_LENGTH_M = 0.5
PEDESTRIAN_WIDTH_M = 0.6
SIGN_PLATE_SIZE_M = 0.9
SIGN_PLATE_CENTER_HEIGHT_M = 2.4
OTHER_SIGN_TYPES = (SignType.STOP, SignType.YIELD, SignType.NO_OVERTAKING, SignType.WARNING)

LANDMARK_COLORS_RGB = (
    (200, 40, 40),
    (240, 240, 235),
    (30, 90, 190),
    (245, 200, 30),
    (40, 150, 70),
    (120, 60, 160),
    (240, 120, 20),
    (30, 30, 35),
    (150, 200, 230),
    (170, 110, 70),
)
"""Palette the landmark colour patterns are drawn from."""


@dataclass(frozen=True)
class WorldConfig:
    """How the generated world is laid out (SI units).

    :param extent_m: objects are placed along the first ``extent_m`` of every road segment.
    :param sign_spacing_m: distance between signs on a segment; every other one is a speed
        limit showing the lane's limit, the others cycle through :data:`OTHER_SIGN_TYPES`.
    :param sign_offset_m: pole distance beyond the outer edge of the rightmost lane.
    :param landmark_spacing_m: range of the distance between consecutive landmarks.
    :param landmark_offset_m: range of the distance from the road edge to a landmark's near side.
    :param pedestrians_per_km: walkers on the shoulders per km of road segment.
    :param pedestrian_offset_m: range of a walker's distance beyond the road edge.
    :param crossings_s_m: positions along each segment where walkers cross the road
        (highway scenarios have none).
    :param truck_fraction: share of traffic vehicles turned into trucks at reset.
    :param truck_length_m, truck_width_m: ranges of truck dimensions.
    """

    extent_m: float = 2500.0
    sign_spacing_m: float = 150.0
    sign_offset_m: float = 2.0
    landmark_spacing_m: tuple[float, float] = (40.0, 90.0)
    landmark_offset_m: tuple[float, float] = (6.0, 25.0)
    pedestrians_per_km: float = 12.0
    pedestrian_offset_m: tuple[float, float] = (1.0, 3.0)
    pedestrian_speed_mps: tuple[float, float] = (0.6, 1.8)
    crossings_s_m: tuple[float, ...] = ()
    truck_fraction: float = 0.3
    truck_length_m: tuple[float, float] = (10.0, 16.5)
    truck_width_m: tuple[float, float] = (2.4, 2.6)
    truck_speed_mps: tuple[float, float] = (20.0, 26.0)


WORLD_PRESETS = {
    "stack": WorldConfig(),
    "plain": WorldConfig(truck_fraction=0.0, pedestrians_per_km=0.0),
}
"""``stack``: trucks and roadside pedestrians join highway-env's traffic (what the camera and
detector need). ``plain``: highway-env's own traffic, as in published baselines and in policy
training; signs and landmarks, which no vehicle reacts to, are present in both."""


def world_preset(name: str) -> WorldConfig:
    try:
        return WORLD_PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown world {name!r}; choose one of: {', '.join(WORLD_PRESETS)}"
        ) from None


@dataclass(frozen=True)
class _Walker:
    """A pedestrian's schedule: along a lane's edge (``crossing`` False) or across the road."""

    object_id: int
    lane: Any
    s_m: float
    lateral_m: float
    speed_mps: float
    crossing: bool
    span_m: float = 0.0


class World:
    """Generated objects of one episode. Call :meth:`reset` after each highway-env reset."""

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        self.static = StaticWorld(header=Header(stamp_ns=0))
        self._walkers: list[_Walker] = []

    def reset(self, env, seed: int, road_users: bool = True) -> StaticWorld:
        """Generate the episode's world from ``env``'s road network.

        :param road_users: also add pedestrians and turn some vehicles into trucks; False
            keeps a constructed scene's road users exactly as they were placed.
        """
        world = env.unwrapped
        rng = np.random.default_rng([seed, 0x5EED])
        segments = _outer_lanes(world.road.network)
        self.static = StaticWorld(
            header=Header(stamp_ns=0, frame_id="map"),
            signs=tuple(self._signs(segments)),
            landmarks=tuple(self._landmarks(segments, world.road.network, rng)),
        )
        self._walkers = self._pedestrians(segments, rng) if road_users else []
        trucks = convert_to_trucks(world, rng, self.config) if road_users else 0
        logger.debug(
            "world: %d signs, %d landmarks, %d pedestrians, %d trucks",
            len(self.static.signs),
            len(self.static.landmarks),
            len(self._walkers),
            trucks,
        )
        return self.static

    def _signs(self, segments) -> list[TrafficSign]:
        signs: list[TrafficSign] = []
        for road_id, _left, right in segments:
            other = 0
            s_values = np.arange(
                self.config.sign_spacing_m / 2,
                _extent(right, self.config),
                self.config.sign_spacing_m,
            )
            for index, s in enumerate(s_values):
                lateral = right.width_at(s) / 2 + self.config.sign_offset_m
                x, y = xy_from_highway(right.position(s, lateral))
                face_yaw = wrap_angle(-right.heading_at(s) + math.pi)
                if index % 2 == 0:
                    sign_type, limit = SignType.SPEED_LIMIT, float(right.speed_limit or 0.0)
                else:
                    sign_type, limit = OTHER_SIGN_TYPES[other % len(OTHER_SIGN_TYPES)], 0.0
                    other += 1
                signs.append(
                    TrafficSign(
                        sign_id=SIGN_ID_BASE + len(signs),
                        sign_type=sign_type,
                        pose=Pose2D(x, y, face_yaw),
                        plate_size_m=SIGN_PLATE_SIZE_M,
                        plate_center_height_m=SIGN_PLATE_CENTER_HEIGHT_M,
                        speed_limit_mps=limit,
                        road_id=road_id,
                    )
                )
        return signs

    def _landmarks(self, segments, network, rng: np.random.Generator) -> list[Landmark]:
        landmarks: list[Landmark] = []
        shapes = list(LandmarkShape)
        for _road_id, left, right in segments:
            s = float(rng.uniform(*self.config.landmark_spacing_m))
            while s < _extent(right, self.config):
                on_right = bool(rng.integers(2))
                shape = shapes[int(rng.integers(len(shapes)))]
                length, width, height = _landmark_size(shape, rng)
                edge_lane = right if on_right else left
                offset = float(rng.uniform(*self.config.landmark_offset_m))
                near = edge_lane.width_at(s) / 2 + offset
                lateral = near + width / 2
                position = edge_lane.position(s, lateral if on_right else -lateral)
                if not _near_any_lane(network, position, clearance_m=width / 2 + 1.0):
                    x, y = xy_from_highway(position)
                    yaw = wrap_angle(-edge_lane.heading_at(s))
                    count = 1 if shape == LandmarkShape.BILLBOARD else int(rng.integers(2, 5))
                    picks = rng.choice(len(LANDMARK_COLORS_RGB), size=2, replace=False)
                    colors = tuple(LANDMARK_COLORS_RGB[int(picks[i % 2])] for i in range(count))
                    landmarks.append(
                        Landmark(
                            landmark_id=LANDMARK_ID_BASE + len(landmarks),
                            shape=shape,
                            pose=Pose2D(x, y, yaw),
                            length_m=length,
                            width_m=width,
                            height_m=height,
                            colors_rgb=colors,
                        )
                    )
                s += float(rng.uniform(*self.config.landmark_spacing_m))
        return landmarks

    def _pedestrians(self, segments, rng: np.random.Generator) -> list[_Walker]:
        walkers: list[_Walker] = []
        cfg = self.config
        for _road_id, left, right in segments:
            extent = _extent(right, cfg)
            count = int(rng.poisson(cfg.pedestrians_per_km * extent / 1000.0))
            for _ in range(count):
                on_right = rng.random() < 0.7
                lane = right if on_right else left
                s = float(rng.uniform(0.0, extent))
                lateral = lane.width_at(s) / 2 + float(rng.uniform(*cfg.pedestrian_offset_m))
                direction = 1.0 if rng.random() < 0.5 else -1.0
                speed = float(rng.uniform(*cfg.pedestrian_speed_mps)) * direction
                walkers.append(
                    _Walker(
                        PEDESTRIAN_ID_BASE + len(walkers),
                        lane,
                        s,
                        lateral if on_right else -lateral,
                        speed,
                        False,
                    )
                )
            for s in cfg.crossings_s_m:
                # Walks from beyond the left edge to beyond the right edge and back.
                # TODO(#5): highway-env traffic does not see walkers, so crossings are only
                # safe for the ego's own planner to handle; none of the scenarios has any yet.
                span = _road_span_m(left, right, s) + 2 * cfg.pedestrian_offset_m[0]
                speed = float(rng.uniform(*cfg.pedestrian_speed_mps))
                walkers.append(
                    _Walker(
                        PEDESTRIAN_ID_BASE + len(walkers),
                        left,
                        float(s),
                        -left.width_at(s) / 2 - cfg.pedestrian_offset_m[0],
                        speed,
                        True,
                        span,
                    )
                )
        return walkers

    def pedestrian_states(self, time_s: float) -> list[tuple[int, Pose2D, Vector2]]:
        """(id, pose in ``map``, velocity in ``map`` [m/s]) of every pedestrian at ``time_s``."""
        states = []
        for walker in self._walkers:
            if walker.crossing:
                period = 2 * walker.span_m / walker.speed_mps
                phase = (time_s % period) * walker.speed_mps
                offset = phase if phase <= walker.span_m else 2 * walker.span_m - phase
                direction = 1.0 if phase <= walker.span_m else -1.0
                s, lateral = walker.s_m, walker.lateral_m + offset
                heading = walker.lane.heading_at(s) + direction * math.pi / 2
                speed = walker.speed_mps
            else:
                s = walker.s_m + walker.speed_mps * time_s
                lateral = walker.lateral_m
                heading = walker.lane.heading_at(s) + (0.0 if walker.speed_mps > 0 else math.pi)
                speed = abs(walker.speed_mps)
            x, y = xy_from_highway(walker.lane.position(s, lateral))
            yaw = wrap_angle(-heading)
            states.append(
                (
                    walker.object_id,
                    Pose2D(x, y, yaw),
                    Vector2(speed * math.cos(yaw), speed * math.sin(yaw)),
                )
            )
        return states

    def with_pedestrians(self, objects: ObjectList, ego: EgoState, time_s: float) -> ObjectList:
        """``objects`` with the pedestrians appended (class PEDESTRIAN, lane index -1)."""
        ego_velocity = Vector2(
            ego.speed_mps * math.cos(ego.pose.yaw), ego.speed_mps * math.sin(ego.pose.yaw)
        )
        walkers = []
        for object_id, pose, velocity in self.pedestrian_states(time_s):
            relative = Vector2(velocity.x - ego_velocity.x, velocity.y - ego_velocity.y)
            walkers.append(
                ObjectState(
                    object_id=object_id,
                    object_class=ObjectClass.PEDESTRIAN,
                    pose=pose,
                    velocity_mps=velocity,
                    ego_pose=to_ego_frame(ego.pose, pose),
                    ego_velocity_mps=rotate_to_ego(ego.pose, relative),
                    length_m=PEDESTRIAN_LENGTH_M,
                    width_m=PEDESTRIAN_WIDTH_M,
                )
            )
        return ObjectList(header=objects.header, objects=objects.objects + tuple(walkers))


def convert_to_trucks(world, rng: np.random.Generator, config: WorldConfig) -> int:
    """Turn a share of the traffic vehicles into trucks where the gaps in their lane allow.

    A truck keeps its centre, so it only grows into free space: the bumper gaps to the
    vehicles ahead and behind must stay above a car length. Returns the number of trucks.
    """
    trucks = 0
    ego = world.vehicle
    for vehicle in list(world.road.vehicles):
        if vehicle is ego or rng.random() >= config.truck_fraction:
            continue
        length = float(rng.uniform(*config.truck_length_m))
        width = float(rng.uniform(*config.truck_width_m))
        grow_m = (length - vehicle.LENGTH) / 2
        front, rear = world.road.neighbour_vehicles(vehicle, vehicle.lane_index)
        if any(
            other is not None and _bumper_gap_m(vehicle, other) < grow_m + 6.0
            for other in (front, rear)
        ):
            continue
        vehicle.LENGTH, vehicle.WIDTH = length, width
        vehicle.diagonal = float(np.hypot(length, width))
        if hasattr(vehicle, "target_speed"):
            vehicle.target_speed = min(
                float(vehicle.target_speed), float(rng.uniform(*config.truck_speed_mps))
            )
        trucks += 1
    return trucks


def _bumper_gap_m(vehicle, other) -> float:
    centre_gap = float(np.linalg.norm(np.asarray(other.position) - np.asarray(vehicle.position)))
    return centre_gap - (vehicle.LENGTH + other.LENGTH) / 2


def _outer_lanes(network) -> list[tuple[str, object, object]]:
    """(road id, leftmost lane, rightmost lane) of every road segment of the network."""
    segments = []
    for start, ends in network.graph.items():
        for end, lanes in ends.items():
            if lanes:
                segments.append((f"{start}-{end}", lanes[0], lanes[-1]))
    return segments


def _extent(lane, config: WorldConfig) -> float:
    return float(min(lane.length, config.extent_m))


def _road_span_m(left, right, s: float) -> float:
    """Distance from the left edge of ``left`` to the right edge of ``right`` at ``s``."""
    a = left.position(s, -left.width_at(s) / 2)
    b = right.position(s, right.width_at(s) / 2)
    return float(np.linalg.norm(b - a))


def _near_any_lane(network, position: np.ndarray, clearance_m: float) -> bool:
    """True when ``position`` (highway-env frame) is within ``clearance_m`` of a lane's area."""
    for ends in network.graph.values():
        for lanes in ends.values():
            for lane in lanes:
                s, lateral = lane.local_coordinates(position)
                inside_s = -clearance_m <= s <= lane.length + clearance_m
                if inside_s and abs(lateral) <= lane.width_at(s) / 2 + clearance_m:
                    return True
    return False


def _landmark_size(shape: LandmarkShape, rng: np.random.Generator) -> tuple[float, float, float]:
    """(length, width, height) [m] of a landmark of ``shape``."""
    if shape == LandmarkShape.TOWER:
        side = float(rng.uniform(3.0, 6.0))
        return side, side, float(rng.uniform(12.0, 25.0))
    if shape == LandmarkShape.SILO:
        diameter = float(rng.uniform(4.0, 8.0))
        return diameter, diameter, float(rng.uniform(8.0, 16.0))
    if shape == LandmarkShape.BILLBOARD:
        return float(rng.uniform(6.0, 10.0)), 0.4, float(rng.uniform(6.0, 9.0))
    length, width = float(rng.uniform(8.0, 14.0)), float(rng.uniform(6.0, 10.0))
    return length, width, float(rng.uniform(5.0, 8.0))
