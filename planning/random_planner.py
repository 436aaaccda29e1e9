"""Uniformly random meta-actions: the lower baseline of policy evaluations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bus.messages import DrivingAction, EgoState, Header, MetaAction


class RandomPlanner:
    """Node: ``/sim/ego`` (trigger) -> ``/planning/action`` drawn uniformly from the 5 meta-actions.

    :param seed: seed of the action stream; :meth:`reset` restarts it, so an episode's actions
        depend only on the seed and the episode count.
    """

    name = "random"
    trigger = "/sim/ego"
    inputs = ("/sim/ego",)

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._episode = 0
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self._rng = np.random.default_rng([self.seed, self._episode])
        self._episode += 1

    def step(self, inputs: Mapping[str, Any]) -> dict[str, DrivingAction]:
        ego: EgoState = inputs["/sim/ego"]
        action = MetaAction(int(self._rng.integers(len(MetaAction))))
        header = Header(stamp_ns=ego.header.stamp_ns, frame_id="ego")
        return {"/planning/action": DrivingAction(header=header, action=action, planner=self.name)}
