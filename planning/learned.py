"""The node shell shared by the learned planners: it builds the policy's observation from bus
messages only and falls back to slowing down when an input is missing or invalid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bus.messages import DrivingAction, EgoState, Header, MetaAction, ObjectState
from planning.fallback import fallback_action, unhealthy_inputs
from planning.observation import KinematicsConfig, kinematics_from_bus, observed_vehicles


class ObservationPlanner:
    """Node: ``/sim/ego`` (trigger), objects, ``/sim/lanes`` -> ``/planning/action``.

    Subclasses set ``name`` and ``observation`` and implement :meth:`choose`.
    """

    name = "learned"
    trigger = "/sim/ego"
    observation: KinematicsConfig

    def __init__(self, objects_topic: str = "/sim/objects") -> None:
        self.objects_topic = objects_topic
        self.inputs = ("/sim/ego", objects_topic, "/sim/lanes")

    def choose(
        self, observation: np.ndarray, ego: EgoState, observed: list[ObjectState]
    ) -> MetaAction:
        """The action for one observation, shape ``observation.shape``, float32, whose rows
        after the ego are the ``observed`` objects."""
        raise NotImplementedError

    def step(self, inputs: Mapping[str, Any]) -> dict[str, DrivingAction]:
        ego: EgoState = inputs["/sim/ego"]
        objects, lanes = inputs.get(self.objects_topic), inputs.get("/sim/lanes")
        header = Header(stamp_ns=ego.header.stamp_ns, frame_id="ego")
        unhealthy = unhealthy_inputs(inputs, self.inputs)
        if unhealthy:
            return {"/planning/action": fallback_action(header, self.name, unhealthy)}

        assert objects is not None and lanes is not None
        observed = observed_vehicles(ego, objects, lanes, self.observation)
        observation = kinematics_from_bus(ego, objects, lanes, self.observation, observed)
        action = DrivingAction(
            header=header, action=self.choose(observation, ego, observed), planner=self.name
        )
        return {"/planning/action": action}
