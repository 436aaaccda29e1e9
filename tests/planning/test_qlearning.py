"""Tabular Q-learning: convergence on a known problem, the discretiser, the safe file format."""

from __future__ import annotations

import numpy as np
import pytest

from planning.policy_io import PolicyFileError
from planning.qlearning import Discretizer, QLearner, QTablePolicy, greedy_action

CHAIN_LENGTH = 5
LEFT, RIGHT = 0, 1


def _chain_step(state: int, action: int) -> tuple[int, float, bool]:
    """A corridor: RIGHT moves towards the goal (reward 1 on reaching it, episode ends), LEFT
    moves back to a small reward 0.1 at state 0 (episode ends). With gamma 0.9 going right
    is optimal from every state (0.9^3 > 0.1 from state 1)."""
    if action == RIGHT:
        nxt = state + 1
        return (nxt, 1.0, True) if nxt == CHAIN_LENGTH - 1 else (nxt, 0.0, False)
    nxt = state - 1
    return (0, 0.1, True) if nxt <= 0 else (nxt, 0.0, False)


def test_q_learning_converges_to_the_known_optimal_policy_and_values():
    learner = QLearner(CHAIN_LENGTH, 2, gamma=0.9, alpha=None)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        state, done = int(rng.integers(1, CHAIN_LENGTH - 1)), False
        while not done:
            action = learner.act(state, epsilon=0.5, rng=rng)
            nxt, reward, done = _chain_step(state, action)
            learner.update(state, action, reward, nxt, done)
            state = nxt
    policy = [greedy_action(learner.q_table[s]) for s in range(1, CHAIN_LENGTH - 1)]
    assert policy == [RIGHT] * (CHAIN_LENGTH - 2)
    optimal = [0.9 ** (CHAIN_LENGTH - 2 - s) for s in range(1, CHAIN_LENGTH - 1)]
    np.testing.assert_allclose(learner.q_table[1 : CHAIN_LENGTH - 1, RIGHT], optimal, atol=0.02)


def _observation(
    ego_lane: int, ego_speed: float, others: list[tuple[float, int, float]]
) -> np.ndarray:
    """Unnormalised Kinematics rows; ``others``: (dx m, relative lane, dvx m/s)."""
    rows = [[1.0, 500.0, 4.0 * ego_lane, ego_speed, 0.0]]
    rows += [[1.0, dx, 4.0 * lane, dvx, 0.0] for dx, lane, dvx in others]
    observation = np.zeros((8, 5))
    observation[: len(rows)] = rows
    return observation


def test_discretizer_separates_a_closing_lead_from_a_free_road():
    discretizer = Discretizer()
    free = discretizer.state(_observation(1, 25.0, []), lane_count=3)
    closing = discretizer.state(_observation(1, 25.0, [(15.0, 0, -5.0)]), lane_count=3)
    opening = discretizer.state(_observation(1, 25.0, [(15.0, 0, 3.0)]), lane_count=3)
    assert len({free, closing, opening}) == 3
    assert all(0 <= s < discretizer.n_states for s in (free, closing, opening))


def test_discretizer_marks_missing_and_blocked_lanes():
    discretizer = Discretizer()
    n_front = 2 * len(discretizer.gap_edges_m) + 1
    leftmost = discretizer.state(_observation(0, 25.0, [(2.0, 1, 0.0)]), lane_count=3)
    speed_front, left, right = leftmost // 16, (leftmost // 4) % 4, leftmost % 4
    assert (left, right) == (0, 1)  # no lane on the left, a car alongside on the right
    assert speed_front == 1 * n_front + 0  # middle speed bin, free ahead


def test_q_table_round_trips_through_npz(tmp_path):
    discretizer = Discretizer()
    q_table = np.random.default_rng(1).normal(size=(discretizer.n_states, 5))
    path = QTablePolicy(q_table, discretizer, {}).save(
        tmp_path / "q.npz", extra={"trained_steps": 3}
    )
    loaded = QTablePolicy.load(path)
    np.testing.assert_array_equal(loaded.q_table, q_table)
    assert loaded.discretizer == discretizer


@pytest.mark.parametrize("content", [b"\x00\x01garbage" * 10, b'{"format": "other"}'])
def test_loading_a_non_policy_file_fails_naming_it(tmp_path, content):
    path = tmp_path / "fake.npz"
    path.write_bytes(content)
    with pytest.raises(PolicyFileError, match="fake.npz"):
        QTablePolicy.load(path)


def test_loading_an_npz_without_metadata_fails(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, q_table=np.zeros((3, 5)))
    with pytest.raises(PolicyFileError, match="without policy metadata"):
        QTablePolicy.load(path)
