"""Build a planner node from a command-line spec such as ``rule`` or ``dqn:PATH``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bus.node import Node
from planning.rule import RulePlanner

_BUILDERS: dict[str, Callable[[str | None], Node]] = {}


def register(kind: str, builder: Callable[[str | None], Node]) -> None:
    _BUILDERS[kind] = builder


def planner_kinds() -> list[str]:
    return sorted(_BUILDERS)


POLICY_SUFFIXES = {".pt": "dqn", ".json": "dqn", ".npz": "qlearning"}
"""A bare policy path selects its planner by file extension."""


def planner_spec(model: str) -> str:
    """``KIND:PATH`` for a bare policy path (by extension); anything else unchanged."""
    kind = POLICY_SUFFIXES.get(Path(model).suffix) if ":" not in model else None
    return f"{kind}:{model}" if kind else model


def make_planner(spec: str) -> Node:
    """Build a planner from ``KIND``, ``KIND:ARGUMENT`` (e.g. a model path) or a bare policy
    path (``.pt``/``.json`` for DQN, ``.npz`` for Q-learning).

    :raises ValueError: for an unknown kind, listing the known ones.
    """
    kind, _, argument = planner_spec(spec).partition(":")
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ValueError(
            f"unknown planner {spec!r}; choose one of: {', '.join(planner_kinds())}, "
            "KIND:PATH, or a policy file (.pt/.json for DQN, .npz for Q-learning)"
        )
    return builder(argument or None)


def _rule(argument: str | None) -> Node:
    if argument:
        raise ValueError("the rule planner takes no argument (use 'rule')")
    return RulePlanner()


def _dqn(argument: str | None) -> Node:
    from planning.dqn import DQNPlanner, DQNPolicy, shipped_policy_path

    return DQNPlanner(DQNPolicy.load(argument or shipped_policy_path()))


def _qlearning(argument: str | None) -> Node:
    from planning.qlearning import QLearningPlanner, QTablePolicy

    if not argument:
        raise ValueError("the qlearning planner needs a Q-table: use 'qlearning:PATH.npz'")
    return QLearningPlanner(QTablePolicy.load(argument))


def _random(argument: str | None) -> Node:
    from planning.random_planner import RandomPlanner

    try:
        return RandomPlanner(seed=int(argument or 0))
    except ValueError:
        raise ValueError(
            f"the random planner takes an integer seed ('random:SEED'), got {argument!r}"
        ) from None


register("rule", _rule)
register("dqn", _dqn)
register("qlearning", _qlearning)
register("random", _random)
