"""A policy's observation built from bus messages only.

:func:`kinematics_from_bus` rebuilds highway-env's ``Kinematics`` observation (the one our
policies train on) from ``/sim/ego``, an object list and ``/sim/lanes``, so a policy trained in
highway-env drives in the closed loop without ever touching the environment. A test pins the
equality with highway-env's own observation.

highway-env's frame has y pointing right; the bus uses REP-103 (y left). The features are
computed in highway-env's frame (y mirrored back) because that is what the policy was trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bus.messages import EgoState, LaneGeometry, ObjectClass, ObjectList, ObjectState
from planning.scene import project_onto_polyline

KINEMATICS_FEATURES = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h", "heading")
"""Features this module can compute, named as in highway-env."""

VEHICLE_MAX_SPEED_MPS = 40.0
"""highway-env's ``Vehicle.MAX_SPEED``: the normalisation ranges derive from it."""

LANE_WIDTH_M = 4.0
"""highway-env's ``AbstractLane.DEFAULT_WIDTH``, used for the lateral normalisation range."""

PERCEPTION_DISTANCE_M = 5.0 * VEHICLE_MAX_SPEED_MPS
"""Objects farther than this (Euclidean, centre to centre) are not observed."""

BEHIND_LIMIT_M = -2.0 * 5.0
"""Without ``see_behind``, objects more than two ego lengths (5 m each) behind are hidden."""


MAX_VEHICLES = 100
"""Most rows an observation may have (highway-env's own worlds hold up to 50 vehicles)."""


@dataclass(frozen=True)
class KinematicsConfig:
    """highway-env ``Kinematics`` observation settings (the subset our policies use).

    :param vehicles_count: rows of the observation, the ego included.
    :param features: columns, a subset of :data:`KINEMATICS_FEATURES`.
    :param absolute: other vehicles in absolute coordinates instead of relative to the ego.
    :param normalize: map x, y, vx, vy to [-1, 1] with highway-env's default ranges.
    :param clip: clip normalised values to [-1, 1].
    :param see_behind: observe vehicles far behind the ego too.
    """

    vehicles_count: int = 5
    features: tuple[str, ...] = ("presence", "x", "y", "vx", "vy")
    absolute: bool = False
    normalize: bool = True
    clip: bool = True
    see_behind: bool = False
    order: str = field(default="sorted", init=False)

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in KINEMATICS_FEATURES]
        if unknown:
            raise ValueError(
                f"unknown observation feature(s) {unknown}; choose from {list(KINEMATICS_FEATURES)}"
            )
        if (
            isinstance(self.vehicles_count, bool)
            or not isinstance(self.vehicles_count, int)
            or not 1 <= self.vehicles_count <= MAX_VEHICLES
        ):
            raise ValueError(
                f"vehicles_count must be a whole number in [1, {MAX_VEHICLES}], "
                f"got {self.vehicles_count!r}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.vehicles_count, len(self.features))

    def to_highway_config(self) -> dict[str, Any]:
        """The ``observation`` entry of a highway-env config producing the same observation."""
        return {
            "type": "Kinematics",
            "vehicles_count": self.vehicles_count,
            "features": list(self.features),
            "absolute": self.absolute,
            "normalize": self.normalize,
            "clip": self.clip,
            "see_behind": self.see_behind,
            "order": self.order,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        data.pop("order")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KinematicsConfig:
        """Build from :meth:`to_dict` output, rejecting unknown keys by name."""
        allowed = {"vehicles_count", "features", "absolute", "normalize", "clip", "see_behind"}
        extra = sorted(set(data) - allowed - {"type", "order"})
        if extra:
            raise ValueError(f"unknown observation setting(s) {extra}; allowed: {sorted(allowed)}")
        if (
            data.get("type", "Kinematics") != "Kinematics"
            or data.get("order", "sorted") != "sorted"
        ):
            raise ValueError("only the sorted Kinematics observation is supported")
        kwargs = {k: v for k, v in data.items() if k in allowed}
        if "features" in kwargs:
            kwargs["features"] = tuple(kwargs["features"])
        return cls(**kwargs)


def _vehicle_row(x: float, y: float, vx: float, vy: float, heading: float) -> dict[str, float]:
    return {
        "presence": 1.0,
        "x": x,
        "y": y,
        "vx": vx,
        "vy": vy,
        "cos_h": math.cos(heading),
        "sin_h": math.sin(heading),
        "heading": heading,
    }


def _longitudinal_positions(
    ego: EgoState, objects_xy: np.ndarray, lanes: LaneGeometry
) -> np.ndarray:
    """Arc length along the ego lane of each point (last row is the ego) [m]."""
    lane = next((lane for lane in lanes.lanes if lane.lane_index == ego.lane_index), None)
    if lane is not None and len(lane.centerline) >= 2:
        s, _ = project_onto_polyline(objects_xy, np.asarray(lane.centerline, dtype=float))
        return s
    # No lane geometry: a straight lane along the ego heading.
    direction = np.array([math.cos(ego.pose.yaw), math.sin(ego.pose.yaw)])
    return objects_xy @ direction


def observed_vehicles(
    ego: EgoState, objects: ObjectList, lanes: LaneGeometry, config: KinematicsConfig
) -> list[ObjectState]:
    """The objects that fill the observation's rows after the ego, in row order: vehicles
    within perception distance (pedestrians are not part of highway-env's observation: the
    policy never saw any), closest along the ego lane first."""
    candidates = [
        o
        for o in objects.objects
        if o.object_class != ObjectClass.PEDESTRIAN
        and math.hypot(o.pose.x - ego.pose.x, o.pose.y - ego.pose.y) < PERCEPTION_DISTANCE_M
    ]
    if not candidates:
        return []
    points = np.array([[o.pose.x, o.pose.y] for o in candidates] + [[ego.pose.x, ego.pose.y]])
    s = _longitudinal_positions(ego, points, lanes)
    lane_distance = s[:-1] - s[-1]
    keep = [
        i for i in range(len(candidates)) if config.see_behind or lane_distance[i] > BEHIND_LIMIT_M
    ]
    keep.sort(key=lambda i: abs(lane_distance[i]))  # stable, like highway-env's sorted()
    return [candidates[i] for i in keep[: config.vehicles_count - 1]]


def kinematics_from_bus(
    ego: EgoState,
    objects: ObjectList,
    lanes: LaneGeometry,
    config: KinematicsConfig,
    observed: list[ObjectState] | None = None,
) -> np.ndarray:
    """highway-env's Kinematics observation rebuilt from bus messages.

    :param ego: ``/sim/ego`` (``map`` frame, REP-103).
    :param objects: an object list in the ``map`` frame (``/sim/objects``).
    :param lanes: ``/sim/lanes``; the ego lane's centre line orders objects along the road.
    :param observed: :func:`observed_vehicles` of these messages when already computed.
    :return: (vehicles_count, len(features)) float32; row 0 is the ego, then the closest
        vehicles along the ego lane, zero rows when fewer are observed. Values are in
        highway-env's frame (y right) and normalised as highway-env does.
    """
    # Ego in highway-env's axes (y and heading mirrored).
    heading = -ego.pose.yaw
    ego_row = _vehicle_row(
        ego.pose.x,
        -ego.pose.y,
        ego.speed_mps * math.cos(heading),
        ego.speed_mps * math.sin(heading),
        heading,
    )
    rows = [ego_row]
    # TODO(#4): trucks enter the network's input as vehicles of unknown length (Kinematics
    # has no length feature), so the Q-values of a policy trained on 5 m cars misjudge bumper
    # gaps to them; the rollout shield gets the true lengths from the object list.
    if observed is None:
        observed = observed_vehicles(ego, objects, lanes, config)
    for obj in observed:
        row = _vehicle_row(
            obj.pose.x, -obj.pose.y, obj.velocity_mps.x, -obj.velocity_mps.y, -obj.pose.yaw
        )
        if not config.absolute:
            for key in ("x", "y", "vx", "vy"):
                row[key] -= ego_row[key]
        rows.append(row)

    table = np.array([[row[f] for f in config.features] for row in rows], dtype=float)
    if config.normalize:
        table = _normalize(table, config, ego.lane_count)
    observation = np.zeros(config.shape, dtype=np.float32)
    observation[: len(table)] = table
    return observation


def _normalize(table: np.ndarray, config: KinematicsConfig, lane_count: int) -> np.ndarray:
    ranges = {
        "x": 5.0 * VEHICLE_MAX_SPEED_MPS,
        "y": LANE_WIDTH_M * lane_count,
        "vx": 2.0 * VEHICLE_MAX_SPEED_MPS,
        "vy": 2.0 * VEHICLE_MAX_SPEED_MPS,
    }
    table = table.copy()
    for column, feature in enumerate(config.features):
        half_range = ranges.get(feature)
        if half_range is None:
            continue
        table[:, column] = table[:, column] / half_range
        if config.clip:
            table[:, column] = np.clip(table[:, column], -1.0, 1.0)
    return table
