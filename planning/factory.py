"""Build a planner node from a command-line spec such as ``rule`` or ``dqn:PATH``."""

from __future__ import annotations

from collections.abc import Callable

from bus.node import Node
from planning.rule import RulePlanner

_BUILDERS: dict[str, Callable[[str | None], Node]] = {}


def register(kind: str, builder: Callable[[str | None], Node]) -> None:
    _BUILDERS[kind] = builder


def planner_kinds() -> list[str]:
    return sorted(_BUILDERS)


def make_planner(spec: str) -> Node:
    """Build a planner from ``KIND`` or ``KIND:ARGUMENT`` (e.g. a model path).

    :raises ValueError: for an unknown kind, listing the known ones.
    """
    kind, _, argument = spec.partition(":")
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ValueError(f"unknown planner {spec!r}; choose one of: {', '.join(planner_kinds())}")
    return builder(argument or None)


def _rule(argument: str | None) -> Node:
    if argument:
        raise ValueError("the rule planner takes no argument (use 'rule')")
    return RulePlanner()


register("rule", _rule)
