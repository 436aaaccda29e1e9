"""Planner output."""

from __future__ import annotations

from enum import IntEnum

import msgspec

from bus.messages.common import Header


class MetaAction(IntEnum):
    """highway-env's discrete meta-actions, with highway-env's own action indices."""

    LANE_LEFT = 0
    IDLE = 1
    LANE_RIGHT = 2
    FASTER = 3
    SLOWER = 4


class DrivingAction(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The action to apply at the next control step.

    :param action: the meta-action.
    :param planner: name of the planner that chose it (``rule``, ``dqn``, ...).
    :param fallback: True when the planner's inputs were unhealthy and it fell back to a
        safe action instead of its normal decision.
    """

    header: Header
    action: MetaAction
    planner: str
    fallback: bool = False
    reason: str = ""
