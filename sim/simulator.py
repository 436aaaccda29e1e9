"""The simulator node: highway-env as the world, driven through the bus.

Each control step it publishes the ego state, the ground-truth objects and the lane geometry
(lanes, then objects, then ego, so the ego message can trigger the planner with the rest of the
step already delivered), and it applies the latest action received on ``/planning/action``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bus import Bus
from bus.messages import DrivingAction, EgoState, MetaAction
from sim.adapter import LaneSampling, WorldReader
from sim.envs import make_env

logger = logging.getLogger(__name__)

DEFAULT_ACTION = MetaAction.IDLE
"""Applied when no action arrived for a step: keep lane and speed."""


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings.

    :param env_id: highway-env environment id.
    :param env_config: highway-env config overrides, e.g. ``{"lanes_count": 3}``.
    :param render: render top-down frames (needed for the video).
    """

    env_id: str = "highway-fast-v0"
    env_config: Mapping[str, Any] = field(default_factory=dict)
    render: bool = False
    lanes: LaneSampling = field(default_factory=LaneSampling)


@dataclass(frozen=True)
class StepOutcome:
    reward: float
    terminated: bool
    truncated: bool
    ego: EgoState
    action: MetaAction

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class Simulator:
    """Owns the environment; publishes ``/sim/*`` and applies ``/planning/action``."""

    def __init__(self, config: SimConfig, bus: Bus, env=None) -> None:
        self.config = config
        self.bus = bus
        self.env = env if env is not None else make_env(config.env_id, config.env_config, config.render)
        self.reader = WorldReader(self.env, config.lanes)
        self._pub_ego = bus.publisher("/sim/ego")
        self._pub_objects = bus.publisher("/sim/objects")
        self._pub_lanes = bus.publisher("/sim/lanes")
        self._pending: DrivingAction | None = None
        self.missing_actions = 0
        self.stamp_ns = 0
        self.frame_hook: Callable[[], None] | None = None
        bus.subscribe("/planning/action", self._on_action, label="simulator")

    @property
    def control_rate_hz(self) -> float:
        return float(self.env.unwrapped.config["policy_frequency"])

    @property
    def simulation_rate_hz(self) -> float:
        return float(self.env.unwrapped.config["simulation_frequency"])

    def _on_action(self, message: DrivingAction) -> None:
        self._pending = message

    def reset(self, seed: int, prepare: Callable[[Any], None] | None = None) -> EgoState:
        """Start an episode and publish its first state.

        :param prepare: called with the environment after highway-env's reset and before the
            first state is published, to construct a scene (place vehicles, set speeds).
        """
        self.env.reset(seed=seed)
        if prepare is not None:
            prepare(self.env.unwrapped)
        self.reader.reset()
        self._pending = None
        self.stamp_ns = 0
        return self._publish_state()

    def step(self) -> StepOutcome:
        """Apply the latest action for one control step, then publish the new state."""
        action = DEFAULT_ACTION
        if self._pending is None:
            self.missing_actions += 1
            if self.missing_actions == 1:
                logger.warning("no action on /planning/action for a step; applying %s", action.name)
        else:
            action = self._pending.action
        self._pending = None

        _, reward, terminated, truncated, _ = self.env.step(int(action))
        self.stamp_ns += int(round(1e9 / self.control_rate_hz))
        ego = self._publish_state()
        return StepOutcome(float(reward), bool(terminated), bool(truncated), ego, action)

    def _publish_state(self) -> EgoState:
        stamp = self.stamp_ns
        ego = self.reader.ego_state(stamp, self._pub_ego.seq())
        self.bus.publish("/sim/lanes", self.reader.lanes(stamp, self._pub_lanes.seq()))
        self.bus.publish("/sim/objects", self.reader.objects(stamp, ego, self._pub_objects.seq()))
        self.bus.publish("/sim/ego", ego)
        return ego

    def render(self) -> np.ndarray:
        """Top-down RGB frame, HxWx3 uint8."""
        return self.env.render()

    def close(self) -> None:
        self.env.close()

