"""Tabular Q-learning over a small discretised driving state, and its closed-loop planner.

The state is built from the (unnormalised) Kinematics observation, itself rebuilt from bus
messages in the closed loop (:func:`planning.observation.kinematics_from_bus`), so the same
discretiser serves training in highway-env and driving on the bus:

- ego speed: 3 bins around highway-env's target speeds (20, 25, 30 m/s);
- the lead in the ego lane: none/far, or one of 3 gap bins x closing/opening (7 values);
- each adjacent lane: missing, blocked, occupied by a slower lead, or free (4 values each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bus.messages import EgoState, MetaAction, ObjectState
from planning.learned import ObservationPlanner
from planning.observation import KinematicsConfig
from planning.policy_io import PolicyFileError, load_npz_policy, save_npz_policy

QLEARNING_OBSERVATION = KinematicsConfig(
    vehicles_count=8,
    features=("presence", "x", "y", "vx", "vy"),
    normalize=False,
    clip=False,
    see_behind=True,
)
"""Observation the discretiser reads: metres and m/s, highway-env axes (y right)."""

ACTION_PREFERENCE = (1, 3, 4, 0, 2)
"""Tie-break order among equal Q-values (unvisited states): IDLE, FASTER, SLOWER, LEFT, RIGHT."""


@dataclass(frozen=True)
class Discretizer:
    """Bins of the discrete state (SI units).

    :param speed_edges_mps: ego speed bin edges.
    :param gap_edges_m: bumper gap edges for the lead in the ego lane; beyond the last = free.
    :param closing_threshold_mps: a lead approaching faster than this counts as closing.
    :param side_block_m: a vehicle in an adjacent lane within this gap (either way) blocks it.
    :param side_rear_m: a follower in an adjacent lane this close and faster blocks it.
    :param side_lead_m: a slower lead in an adjacent lane this close makes it "slow".
    :param lane_width_m: highway-env lane width, to assign vehicles to lanes.
    :param vehicle_length_m: highway-env vehicle length, to turn centre distances into gaps.
    """

    speed_edges_mps: tuple[float, ...] = (22.5, 27.5)
    gap_edges_m: tuple[float, ...] = (12.0, 25.0, 50.0)
    closing_threshold_mps: float = 1.0
    side_block_m: float = 8.0
    side_rear_m: float = 25.0
    side_lead_m: float = 40.0
    lane_width_m: float = 4.0
    vehicle_length_m: float = 5.0

    @property
    def n_states(self) -> int:
        return (len(self.speed_edges_mps) + 1) * (2 * len(self.gap_edges_m) + 1) * 4 * 4

    def state(self, observation: np.ndarray, lane_count: int) -> int:
        """Discrete state index of an unnormalised Kinematics observation.

        :param observation: (N, 5) float, columns presence, x, y, vx, vy; row 0 the ego in
            absolute coordinates, other rows relative to it (highway-env axes, y right).
        :param lane_count: lanes of the ego's road.
        """
        ego = observation[0]
        others = observation[1:][observation[1:, 0] > 0.5]
        speed_bin = int(np.searchsorted(self.speed_edges_mps, ego[3]))
        lane = int(np.clip(np.round(ego[2] / self.lane_width_m), 0, lane_count - 1))
        relative_lane = np.round(others[:, 2] / self.lane_width_m).astype(int)
        front = self._front_bin(others[relative_lane == 0])
        left = self._side_bin(others[relative_lane == -1], lane > 0)
        right = self._side_bin(others[relative_lane == 1], lane < lane_count - 1)
        n_front = 2 * len(self.gap_edges_m) + 1
        return ((speed_bin * n_front + front) * 4 + left) * 4 + right

    def _front_bin(self, same_lane: np.ndarray) -> int:
        ahead = same_lane[same_lane[:, 1] > 0]
        if len(ahead) == 0:
            return 0
        lead = ahead[np.argmin(ahead[:, 1])]
        gap = lead[1] - self.vehicle_length_m
        gap_bin = int(np.searchsorted(self.gap_edges_m, gap))
        if gap_bin == len(self.gap_edges_m):
            return 0
        closing = -lead[3] > self.closing_threshold_mps
        return 1 + 2 * gap_bin + int(closing)

    def _side_bin(self, lane_vehicles: np.ndarray, exists: bool) -> int:
        """0 missing, 1 blocked, 2 slower lead near, 3 free."""
        if not exists:
            return 0
        gaps = np.abs(lane_vehicles[:, 1]) - self.vehicle_length_m
        behind = lane_vehicles[:, 1] <= 0
        if np.any(gaps < self.side_block_m):
            return 1
        if np.any(behind & (gaps < self.side_rear_m) & (lane_vehicles[:, 3] > 0)):
            return 1
        if np.any(~behind & (gaps < self.side_lead_m) & (lane_vehicles[:, 3] < 0)):
            return 2
        return 3


def greedy_action(q_row: np.ndarray) -> int:
    """Best action of one Q-table row; ties broken by :data:`ACTION_PREFERENCE`."""
    best = np.flatnonzero(q_row >= q_row.max() - 1e-12)
    if len(best) == 1:
        return int(best[0])
    order = [a for a in ACTION_PREFERENCE if a in best] + sorted(set(best) - set(ACTION_PREFERENCE))
    return int(order[0])


class QLearner:
    """Tabular Q-learning: ``Q[s,a] += alpha * (r + gamma * max_a' Q[s',a'] - Q[s,a])``.

    :param n_states, n_actions: table size.
    :param alpha: learning rate; ``None`` uses 1/visits(s,a)^0.6 (decays per entry).
    """

    def __init__(
        self, n_states: int, n_actions: int, gamma: float, alpha: float | None = None
    ) -> None:
        self.q_table = np.zeros((n_states, n_actions), dtype=np.float64)
        self.visits = np.zeros((n_states, n_actions), dtype=np.int64)
        self.gamma = gamma
        self.alpha = alpha

    def act(self, state: int, epsilon: float, rng: np.random.Generator) -> int:
        if rng.random() < epsilon:
            return int(rng.integers(self.q_table.shape[1]))
        return greedy_action(self.q_table[state])

    def update(
        self, state: int, action: int, reward: float, next_state: int, terminal: bool
    ) -> float:
        """One TD update; returns the TD error."""
        self.visits[state, action] += 1
        alpha = self.alpha if self.alpha is not None else self.visits[state, action] ** -0.6
        bootstrap = 0.0 if terminal else self.gamma * self.q_table[next_state].max()
        error = reward + bootstrap - self.q_table[state, action]
        self.q_table[state, action] += alpha * error
        return float(error)


class QTablePolicy:
    """A greedy Q-table policy with its discretiser (loaded from ``.npz``)."""

    def __init__(
        self, q_table: np.ndarray, discretizer: Discretizer, metadata: dict[str, Any]
    ) -> None:
        self.q_table = q_table
        self.discretizer = discretizer
        self.metadata = metadata
        self.observation = QLEARNING_OBSERVATION

    def act_on_observation(self, observation: np.ndarray, lane_count: int) -> int:
        return greedy_action(self.q_table[self.discretizer.state(observation, lane_count)])

    def save(
        self, path: str | Path, visits: np.ndarray | None = None, extra: dict | None = None
    ) -> Path:
        arrays = {"q_table": self.q_table}
        if visits is not None:
            arrays["visits"] = visits
        metadata = {
            "algo": "qlearning",
            "discretizer": _discretizer_to_dict(self.discretizer),
            "observation": self.observation.to_dict(),
            **(extra or {}),
        }
        return save_npz_policy(path, arrays, metadata)

    @classmethod
    def load(cls, path: str | Path) -> QTablePolicy:
        """:raises PolicyFileError: naming the file when it is not a Q-learning policy of ours."""
        arrays, metadata = load_npz_policy(path, "qlearning")
        try:
            settings: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v
                for k, v in metadata["discretizer"].items()
            }
            discretizer = Discretizer(**settings)
        except (KeyError, TypeError) as error:
            raise PolicyFileError(f"{path}: bad discretizer metadata ({error!r})") from None
        q_table = arrays.get("q_table")
        if q_table is None or q_table.ndim != 2 or q_table.shape[0] != discretizer.n_states:
            raise PolicyFileError(
                f"{path}: Q-table missing or not of shape ({discretizer.n_states}, A)"
            )
        return cls(q_table.astype(np.float64), discretizer, metadata)


def _discretizer_to_dict(discretizer: Discretizer) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in discretizer.__dict__.items()}


class QLearningPlanner(ObservationPlanner):
    """Node: ``/sim/ego`` (trigger), objects, ``/sim/lanes`` -> ``/planning/action``."""

    name = "qlearning"

    def __init__(self, policy: QTablePolicy, objects_topic: str = "/sim/objects") -> None:
        super().__init__(objects_topic)
        self.policy = policy
        self.observation = policy.observation

    def choose(
        self, observation: np.ndarray, ego: EgoState, observed: list[ObjectState]
    ) -> MetaAction:
        return MetaAction(self.policy.act_on_observation(observation, ego.lane_count))
