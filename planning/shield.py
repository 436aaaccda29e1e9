"""A safety shield for learned policies: it vetoes meta-actions that the observation shows
would close a gap too fast, and replaces them with the nearest safe one.

Shielding a learned policy (Alshiekh et al., "Safe Reinforcement Learning via Shielding",
AAAI 2018) keeps the learner in charge of *when* to speed up or change lanes and leaves the
shield a narrow job: no action whose obvious consequence is a collision within a short horizon.
The shield reads only the policy's own Kinematics observation, so it acts identically during
training (as an environment wrapper) and in the closed loop (inside the planner node), where the
observation is rebuilt from bus messages.

Frame: highway-env's (x forward along the road, y to the right); lane ``i`` is centred at
``y = 4 i``, ``LANE_LEFT`` moves to lane ``i - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from planning.observation import LANE_WIDTH_M, VEHICLE_MAX_SPEED_MPS, KinematicsConfig

LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)
"""highway-env's ``DiscreteMetaAction`` indices."""

VEHICLE_LENGTH_M = 5.0
"""highway-env's vehicle length: bumper gaps are centre distances minus this."""

REQUIRED_FEATURES = ("presence", "x", "y", "vx", "vy")


def settings_from_json(
    data: Any, known: Iterable[str], what: str, text_keys: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """A shield's settings object from JSON, checked: None for null; otherwise a dict of
    known keys whose values are numbers (strings for ``text_keys``). Raises ValueError naming
    the ``what`` setting at fault."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"must be an object of settings or null, got {type(data).__name__}")
    extra = sorted(set(data) - set(known))
    if extra:
        raise ValueError(f"unknown {what} setting(s) {extra}")
    for key, value in data.items():
        if key in text_keys:
            if not isinstance(value, str):
                raise ValueError(f"{what} setting {key} must be a string, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{what} setting {key} must be a number, got {value!r}")
    return dict(data)


@dataclass(frozen=True)
class ShieldConfig:
    """Thresholds of the shield (SI units).

    :param horizon_s: how far ahead a closing speed is extrapolated.
    :param min_gap_m: bumper gap that must remain at the end of the horizon.
    :param path_half_width_m: a vehicle whose centre is this close laterally (now, or after
        ``horizon_s`` of its relative lateral speed) is in the ego's path.
    :param escape_horizon_s: at the lowest speed, a lead that this horizon shows closing in
        makes the shield change lanes as soon as one is free, before it is too late.
    :param speed_time_constant_s: how long the ego takes to settle on a lower target speed.
    :param speed_step_mps: change of target speed per FASTER/SLOWER (highway-env: 5 m/s).
    :param min_speed_mps: lowest target speed of the meta-actions: below it, only a lane
        change avoids a slower lead.
    :param max_speed_mps: highest target speed of the meta-actions.
    """

    horizon_s: float = 2.0
    min_gap_m: float = 4.0
    path_half_width_m: float = 3.0
    escape_horizon_s: float = 8.0
    speed_time_constant_s: float = 1.0
    speed_step_mps: float = 5.0
    min_speed_mps: float = 20.0
    max_speed_mps: float = 30.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"shield setting {name} must be a finite number >= 0, got {value}")
        if self.horizon_s <= 0.0 or self.speed_step_mps <= 0.0:
            raise ValueError("shield settings horizon_s and speed_step_mps must be positive")
        if self.min_speed_mps >= self.max_speed_mps:
            raise ValueError(
                f"shield min_speed_mps ({self.min_speed_mps}) must be below max_speed_mps "
                f"({self.max_speed_mps})"
            )

    @classmethod
    def from_dict(cls, data: Any) -> ShieldConfig | None:
        """Settings from JSON (None: no shield); raises ValueError naming what is wrong."""
        values = settings_from_json(data, cls.__dataclass_fields__, "shield")
        if values is None:
            return None
        return cls(**{key: float(value) for key, value in values.items()})


@dataclass(frozen=True)
class _Traffic:
    """Other vehicles in metres and m/s, relative to the ego (highway-env frame)."""

    dx_m: np.ndarray
    y_m: np.ndarray
    """Absolute lateral position [m]."""
    speed_mps: np.ndarray
    vy_rel_mps: np.ndarray


def check_observation(observation: KinematicsConfig) -> None:
    """The shield needs relative, normalised presence/x/y/vx/vy features, and vehicles behind
    (``see_behind``): without them a lane change's rear gap would always look free."""
    missing = [f for f in REQUIRED_FEATURES if f not in observation.features]
    if missing or observation.absolute or not observation.normalize or not observation.see_behind:
        raise ValueError(
            f"the shield needs relative normalised features {list(REQUIRED_FEATURES)} with "
            f"see_behind; got features {list(observation.features)}, "
            f"absolute={observation.absolute}, normalize={observation.normalize}, "
            f"see_behind={observation.see_behind}"
        )


@dataclass(frozen=True)
class Scene:
    """One normalised observation in metres and m/s (highway-env frame): the ego's lateral
    position and velocity, and the other vehicles' offsets ahead and absolute state."""

    ego_y_m: float
    ego_vx_mps: float
    ego_vy_mps: float
    dx_m: np.ndarray
    y_m: np.ndarray
    vx_mps: np.ndarray
    vy_mps: np.ndarray


def decode_scene(table: np.ndarray, observation: KinematicsConfig, lane_count: int) -> Scene:
    """Undo highway-env's normalisation of a relative Kinematics observation."""
    column = {f: i for i, f in enumerate(observation.features)}
    table = np.asarray(table, dtype=float).reshape(observation.shape)
    y_scale = LANE_WIDTH_M * lane_count
    v_scale = 2.0 * VEHICLE_MAX_SPEED_MPS
    ego_y = table[0, column["y"]] * y_scale
    ego_vx = table[0, column["vx"]] * v_scale
    ego_vy = table[0, column["vy"]] * v_scale
    others = table[1:][table[1:, column["presence"]] > 0.5]
    return Scene(
        ego_y_m=ego_y,
        ego_vx_mps=ego_vx,
        ego_vy_mps=ego_vy,
        dx_m=others[:, column["x"]] * 5.0 * VEHICLE_MAX_SPEED_MPS,
        y_m=ego_y + others[:, column["y"]] * y_scale,
        vx_mps=ego_vx + others[:, column["vx"]] * v_scale,
        vy_mps=ego_vy + others[:, column["vy"]] * v_scale,
    )


def _decode(
    table: np.ndarray, observation: KinematicsConfig, lane_count: int
) -> tuple[float, float, _Traffic]:
    """(ego y [m], ego speed [m/s], traffic) from one normalised observation."""
    scene = decode_scene(table, observation, lane_count)
    traffic = _Traffic(
        dx_m=scene.dx_m,
        y_m=scene.y_m,
        speed_mps=scene.vx_mps,
        vy_rel_mps=scene.vy_mps - scene.ego_vy_mps,
    )
    return scene.ego_y_m, scene.ego_vx_mps, traffic


class Shield:
    """Replaces unsafe meta-actions of a policy by the nearest safe one.

    :param observation: the policy's observation settings (relative, normalised).
    :param config: thresholds.
    """

    def __init__(self, observation: KinematicsConfig, config: ShieldConfig | None = None) -> None:
        check_observation(observation)
        self.observation = observation
        self.config = config or ShieldConfig()

    def filter(self, table: np.ndarray, action: int, lane_count: int) -> int:
        """The action to execute instead of ``action`` for observation ``table``.

        :param table: one observation, shape ``observation.shape``, normalised as in training.
        :param lane_count: lanes of the road (the lateral normalisation depends on it).
        """
        ego_y, ego_speed, traffic = _decode(table, self.observation, lane_count)
        lane = int(np.clip(round(ego_y / LANE_WIDTH_M), 0, lane_count - 1))
        if action in (LANE_LEFT, LANE_RIGHT):
            target = lane - 1 if action == LANE_LEFT else lane + 1
            if 0 <= target < lane_count and self._lane_change_safe(
                traffic, target * LANE_WIDTH_M, ego_speed
            ):
                return action
            action = IDLE
        path_y = ego_y
        if action == FASTER:
            faster = min(ego_speed + self.config.speed_step_mps, self.config.max_speed_mps)
            if self._ahead_safe(traffic, path_y, faster, ego_speed):
                return FASTER
            action = IDLE
        if action == IDLE and not self._ahead_safe(traffic, path_y, ego_speed, ego_speed):
            action = SLOWER
        if action == SLOWER:
            slower = max(ego_speed - self.config.speed_step_mps, self.config.min_speed_mps)
            horizon = self.config.horizon_s
            if slower <= self.config.min_speed_mps:
                horizon = max(horizon, self.config.escape_horizon_s)
            if not self._ahead_safe(traffic, path_y, slower, ego_speed, horizon):
                return self._escape(traffic, lane, lane_count, ego_speed)
        return action

    def _escape(self, traffic: _Traffic, lane: int, lane_count: int, ego_speed: float) -> int:
        """Even the slowest speed closes on the lead too fast: change to a safe lane if any."""
        for action, target in ((LANE_LEFT, lane - 1), (LANE_RIGHT, lane + 1)):
            if 0 <= target < lane_count and self._lane_change_safe(
                traffic, target * LANE_WIDTH_M, ego_speed
            ):
                return action
        return SLOWER

    def _in_path(self, traffic: _Traffic, path_y: float) -> np.ndarray:
        predicted_y = traffic.y_m + traffic.vy_rel_mps * self.config.horizon_s
        half_width = self.config.path_half_width_m
        return (np.abs(traffic.y_m - path_y) < half_width) | (
            np.abs(predicted_y - path_y) < half_width
        )

    def _ahead_safe(
        self,
        traffic: _Traffic,
        path_y: float,
        target_speed: float,
        ego_speed: float,
        horizon_s: float | None = None,
    ) -> bool:
        """No vehicle ahead in the path gets closer than ``min_gap_m`` within the horizon."""
        ahead = self._in_path(traffic, path_y) & (traffic.dx_m > -VEHICLE_LENGTH_M)
        if not ahead.any():
            return True
        # Speeding up counts at once; slowing down takes about one speed time constant.
        gap = traffic.dx_m[ahead] - VEHICLE_LENGTH_M
        horizon_s = self.config.horizon_s if horizon_s is None else horizon_s
        closed_m = (target_speed - traffic.speed_mps[ahead]) * horizon_s + max(
            ego_speed - target_speed, 0.0
        ) * self.config.speed_time_constant_s
        return bool(np.all(gap - np.maximum(closed_m, 0.0) >= self.config.min_gap_m))

    def _lane_change_safe(self, traffic: _Traffic, lane_y: float, ego_speed: float) -> bool:
        """The target lane has room ahead and behind for the ego at its current speed."""
        in_lane = self._in_path(traffic, lane_y)
        if not in_lane.any():
            return True
        dx = traffic.dx_m[in_lane]
        speed = traffic.speed_mps[in_lane]
        front, rear = dx >= 0.0, dx < 0.0
        horizon, min_gap = self.config.horizon_s, self.config.min_gap_m
        front_gap = dx[front] - VEHICLE_LENGTH_M - np.maximum(ego_speed - speed[front], 0) * horizon
        rear_gap = -dx[rear] - VEHICLE_LENGTH_M - np.maximum(speed[rear] - ego_speed, 0) * horizon
        return bool(np.all(front_gap >= min_gap) and np.all(rear_gap >= min_gap))


def shield_wrapper(env, shield: Shield):
    """A gymnasium wrapper executing ``shield.filter(last observation, action)``.

    The agent's own action is what the learner records; ``info["shielded"]`` says whether it
    was replaced.
    """
    import gymnasium as gym

    class ShieldWrapper(gym.Wrapper):
        def reset(self, **kwargs):
            observation, info = self.env.reset(**kwargs)
            self._last = observation
            return observation, info

        def step(self, action):
            world = self.env.unwrapped
            lane_count = len(world.road.network.all_side_lanes(world.vehicle.lane_index))
            safe = shield.filter(self._last, int(action), lane_count)
            observation, reward, terminated, truncated, info = self.env.step(safe)
            self._last = observation
            info["shielded"] = safe != int(action)
            return observation, reward, terminated, truncated, info

    return ShieldWrapper(env)
