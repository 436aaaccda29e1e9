"""What every planner does when its inputs are unhealthy: keep the lane and slow down."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bus.messages import DrivingAction, Header, MetaAction

FALLBACK_ACTION = MetaAction.SLOWER


def unhealthy_inputs(inputs: Mapping[str, Any], topics: Sequence[str]) -> list[str]:
    """Topics whose latest message is missing (dead) or marked invalid by its publisher."""
    return [
        topic for topic in topics if inputs.get(topic) is None or not inputs[topic].header.valid
    ]


def fallback_action(header: Header, planner: str, unhealthy: Sequence[str]) -> DrivingAction:
    return DrivingAction(
        header=header,
        action=FALLBACK_ACTION,
        planner=planner,
        fallback=True,
        reason="inputs missing or invalid: " + ", ".join(unhealthy),
    )
