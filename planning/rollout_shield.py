"""A shield that looks ahead by simulation: each candidate meta-action is tried on a small
highway-env road rebuilt from the policy's own observation, and the policy's best-ranked
action that leaves the ego a crash-free way through the next seconds is executed.

The rule shield (:mod:`planning.shield`) extrapolates constant speeds and so has to keep wide
margins. Here the other vehicles are highway-env's IDM/MOBIL drivers, as in the world, so
braking chains and lane changes of the traffic are part of the prediction. What the
observation does not show is guessed: every other driver keeps its present speed as target,
with highway-env's default IDM parameters, continuing a lane change its lateral speed shows,
and vehicles beyond the observed ones are absent.
The ego's own controller targets (speed and lane) come from ``/sim/ego`` in the closed loop.

An action is safe when, after it, holding one of IDLE, SLOWER or FASTER for the rest of the
horizon brings no collision of the ego. When no ranked action is safe, the one whose best
continuation collides latest is taken.

Frame: highway-env's (x forward along the road, y to the right, lane ``i`` centred at
``y = 4 i``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from planning.observation import LANE_WIDTH_M, KinematicsConfig
from planning.shield import (
    FASTER,
    IDLE,
    SLOWER,
    check_observation,
    decode_scene,
    settings_from_json,
)

ACTION_NAMES = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
CONTINUATIONS = (IDLE, SLOWER, FASTER)
MAX_FRAMES_PER_DECISION = 100
"""Most simulation steps per decision a rollout shield may be set to run."""
TRAFFIC_MODELS = {"mobil": (True,), "keep_lane": (False,), "both": (True, False)}
"""Traffic setting -> whether the other drivers may start lane changes, per model run."""
ROAD_LENGTH_M = 100_000.0
EGO_START_X_M = 1_000.0
"""Where the rebuilt road puts the ego (others are placed relative to it)."""
LANE_CHANGE_SPEED_MPS = 1.0
"""Lateral speed above which a driver is taken to be changing lanes. highway-env's lateral
controller asks for the offset to the target lane's centre over 0.6 s, so a driver keeping
its lane stays well below this, and one changing lanes is above it until the last 0.6 m."""


@dataclass(frozen=True)
class RolloutShieldConfig:
    """:param horizon_steps: decisions simulated ahead, the first included.
    :param policy_hz: decisions per second (highway-env's ``policy_frequency``).
    :param simulation_hz: simulation steps per second of the model.
    :param length_margin_m: added to every other vehicle's length in the model, a margin
        for what the model gets wrong.
    :param traffic: how the other drivers are modelled: ``mobil`` (they change lanes by
        highway-env's MOBIL rule; when they reconsider is unknown), ``keep_lane`` (they finish
        a lane change under way and start none), or ``both``: an action must be safe under
        each, so a driver is neither counted on to make room nor assumed never to cut in.
    """

    horizon_steps: int = 10
    policy_hz: float = 1.0
    simulation_hz: float = 5.0
    length_margin_m: float = 2.0
    traffic: str = "both"

    def __post_init__(self) -> None:
        if isinstance(self.horizon_steps, bool) or not isinstance(self.horizon_steps, int):
            shown = str(self.horizon_steps)[:24]
            raise ValueError(f"horizon_steps must be a whole number, got {shown}")
        if not 1 <= self.horizon_steps <= 20:
            raise ValueError(f"horizon_steps must be in [1, 20], got {self.horizon_steps}")
        for name in ("policy_hz", "simulation_hz"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.01 <= value <= 100.0):
                raise ValueError(f"{name} must be a number in [0.01, 100], got {value}")
        if not 1 <= round(self.simulation_hz / self.policy_hz) <= MAX_FRAMES_PER_DECISION:
            raise ValueError(
                f"simulation_hz / policy_hz must be in [1, {MAX_FRAMES_PER_DECISION}], got "
                f"{self.simulation_hz} / {self.policy_hz}"
            )
        if not (math.isfinite(self.length_margin_m) and 0.0 <= self.length_margin_m <= 10.0):
            raise ValueError(f"length_margin_m must be in [0, 10], got {self.length_margin_m}")
        if self.traffic not in TRAFFIC_MODELS:
            raise ValueError(
                f"traffic must be one of {sorted(TRAFFIC_MODELS)}, got {self.traffic!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RolloutShieldConfig | None:
        """Settings from JSON (None: no rollout shield); raises ValueError naming the fault."""
        values = settings_from_json(
            data, cls.__dataclass_fields__, "rollout shield", text_keys=("traffic",)
        )
        if values is None:
            return None
        for key, value in values.items():
            if key == "traffic":
                continue
            if not math.isfinite(value):
                raise ValueError(f"rollout shield setting {key} must be finite, got {value!r}")
            if key == "horizon_steps" and isinstance(value, float) and value.is_integer():
                values[key] = int(value) if abs(value) < 1e6 else value
        return cls(**values)


def lane_steered_to(y_m: float, vy_mps: float) -> int:
    """The lane a driver at lateral position ``y_m`` moving at ``vy_mps`` steers to (may lie
    off the road; callers clip): the next lane centre in the direction of a lane change under
    way, else the nearest lane."""
    position = y_m / LANE_WIDTH_M
    if vy_mps > LANE_CHANGE_SPEED_MPS:
        return math.floor(position) + 1
    if vy_mps < -LANE_CHANGE_SPEED_MPS:
        return math.ceil(position) - 1
    return round(position)


class RolloutShield:
    """Executes the best-ranked action of a policy that a short simulation shows to be safe.

    :param observation: the policy's observation settings (relative, normalised, see_behind).
    :param config: look-ahead settings.
    """

    def __init__(
        self, observation: KinematicsConfig, config: RolloutShieldConfig | None = None
    ) -> None:
        check_observation(observation)
        self.observation = observation
        self.config = config or RolloutShieldConfig()
        self._frames = max(1, round(self.config.simulation_hz / self.config.policy_hz))

    def filter(
        self,
        table: np.ndarray,
        ranked_actions: list[int],
        lane_count: int,
        target_speed_mps: float,
        target_lane: int,
        lengths_m: list[float] | None = None,
    ) -> int:
        """The first of ``ranked_actions`` (best first) with a crash-free continuation.

        :param table: one observation, shape ``observation.shape``.
        :param lane_count: lanes of the road.
        :param target_speed_mps: the speed the ego's controller tracks now.
        :param target_lane: the lane the ego steers to now (0 = leftmost).
        :param lengths_m: lengths of the observed vehicles in row order (highway-env's 5 m
            when None, as in its own worlds).
        """
        scene = (table, lane_count, target_speed_mps, target_lane)
        latest: dict[int, int] = {}
        for action in ranked_actions:
            crash_frames = []
            for continuation in CONTINUATIONS:
                plan = [action] + [continuation] * self.config.horizon_steps
                frames = [
                    self.crash_frame(*scene, plan, lengths_m, lane_changes)
                    for lane_changes in TRAFFIC_MODELS[self.config.traffic]
                ]
                crashes = [f for f in frames if f is not None]
                if not crashes:
                    return action
                crash_frames.append(min(crashes))
            latest[action] = max(crash_frames)
        return max(ranked_actions, key=lambda a: latest[a])

    def crash_frame(
        self,
        table: np.ndarray,
        lane_count: int,
        target_speed_mps: float,
        target_lane: int,
        actions: list[int],
        lengths_m: list[float] | None = None,
        lane_changes: bool = True,
    ) -> int | None:
        """The simulation frame at which the ego collides while executing ``actions`` (one per
        decision, the first ``horizon_steps`` used), or None when it does not.

        :param lane_changes: whether the other drivers may start lane changes (MOBIL).
        """
        road, ego = self._build(
            table, lane_count, target_speed_mps, target_lane, lengths_m, lane_changes
        )
        dt = 1.0 / self.config.simulation_hz
        for step in range(self.config.horizon_steps):
            ego.act(ACTION_NAMES[actions[step]])
            for frame in range(self._frames):
                road.act()
                road.step(dt)
                if ego.crashed:
                    return step * self._frames + frame
        return None

    def _build(
        self,
        table: np.ndarray,
        lane_count: int,
        target_speed_mps: float,
        target_lane: int,
        lengths_m: list[float] | None,
        lane_changes: bool,
    ):
        from highway_env.road.road import Road, RoadNetwork
        from highway_env.vehicle.behavior import IDMVehicle
        from highway_env.vehicle.controller import MDPVehicle

        scene = decode_scene(table, self.observation, lane_count)
        network = RoadNetwork.straight_road_network(lanes=lane_count, length=ROAD_LENGTH_M)
        road = Road(network=network, np_random=np.random.RandomState(0), record_history=False)
        lane_index = ("0", "1", int(np.clip(target_lane, 0, lane_count - 1)))
        ego = MDPVehicle(
            road,
            [EGO_START_X_M, scene.ego_y_m],
            heading=math.atan2(scene.ego_vy_mps, max(scene.ego_vx_mps, 1e-6)),
            speed=math.hypot(scene.ego_vx_mps, scene.ego_vy_mps),
            target_lane_index=lane_index,
            target_speed=target_speed_mps,
        )
        road.vehicles.append(ego)
        if lengths_m is None:
            lengths_m = [IDMVehicle.LENGTH] * len(scene.dx_m)
        if len(lengths_m) != len(scene.dx_m):
            raise ValueError(
                f"{len(lengths_m)} vehicle lengths for {len(scene.dx_m)} observed vehicles"
            )
        rows = zip(scene.dx_m, scene.y_m, scene.vx_mps, scene.vy_mps, lengths_m, strict=True)
        for dx, y, vx, vy, length in rows:
            steering_to = lane_steered_to(y, vy)
            other = IDMVehicle(
                road,
                [EGO_START_X_M + dx, y],
                heading=math.atan2(vy, max(vx, 1e-6)),
                speed=math.hypot(vx, vy),
                target_lane_index=("0", "1", int(np.clip(steering_to, 0, lane_count - 1))),
                target_speed=vx,
                enable_lane_change=lane_changes,
            )
            # When a driver next reconsiders its lane is hidden: the model has every driver
            # decide at once, the earliest it could.
            other.timer = 1.001 * other.LANE_CHANGE_DELAY
            other.LENGTH = float(length) + self.config.length_margin_m
            other.diagonal = math.hypot(other.LENGTH, other.WIDTH)  # its collision pre-check
            road.vehicles.append(other)
        return road, ego
