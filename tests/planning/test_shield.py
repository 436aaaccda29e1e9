"""The safety shield: vetoes that a collision within its horizon calls for, and nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planning.dqn import DQNPolicy
from planning.dqn_train import TrainConfig
from planning.observation import KinematicsConfig
from planning.policy_io import PolicyFileError
from planning.shield import (
    FASTER,
    IDLE,
    LANE_LEFT,
    LANE_RIGHT,
    SLOWER,
    Shield,
    ShieldConfig,
    shield_wrapper,
)

OBSERVATION = KinematicsConfig(vehicles_count=5, see_behind=True)
LANES = 3


def table(ego_lane: int, ego_speed_mps: float, others=()) -> np.ndarray:
    """A normalised observation: ``others`` are (dx m, lane, speed m/s) relative to the ego."""
    rows = [[1.0, 1.0, ego_lane * 4.0 / 12.0, ego_speed_mps / 80.0, 0.0]]
    for dx_m, lane, speed_mps in others:
        dy_m = (lane - ego_lane) * 4.0
        rows.append([1.0, dx_m / 200.0, dy_m / 12.0, (speed_mps - ego_speed_mps) / 80.0, 0.0])
    out = np.zeros(OBSERVATION.shape, dtype=np.float32)
    out[: len(rows)] = rows
    return out


@pytest.fixture
def shield() -> Shield:
    return Shield(OBSERVATION, ShieldConfig(horizon_s=3.0))


def test_an_empty_road_allows_every_action(shield):
    obs = table(1, 25.0)
    for action in (LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER):
        assert shield.filter(obs, action, LANES) == action


def test_faster_behind_a_close_slow_lead_becomes_slower(shield):
    # 15 m bumper gap to a 20 m/s lead: holding 25 m/s closes it in 3 s, 30 m/s in 1.5 s.
    obs = table(1, 25.0, [(20.0, 1, 20.0), (-10.0, 0, 25.0), (-10.0, 2, 25.0)])
    assert shield.filter(obs, FASTER, LANES) == SLOWER
    assert shield.filter(obs, IDLE, LANES) == SLOWER
    # With a 25 m gap, keeping the speed is fine but speeding up is not.
    roomier = table(1, 25.0, [(30.0, 1, 20.0), (-10.0, 0, 25.0), (-10.0, 2, 25.0)])
    assert shield.filter(roomier, FASTER, LANES) == IDLE
    # The same lead far ahead does not matter.
    far = table(1, 25.0, [(120.0, 1, 20.0)])
    assert shield.filter(far, FASTER, LANES) == FASTER


def test_a_lane_change_needs_room_in_the_target_lane(shield):
    alongside = table(1, 25.0, [(2.0, 0, 25.0)])
    assert shield.filter(alongside, LANE_LEFT, LANES) == IDLE
    assert shield.filter(alongside, LANE_RIGHT, LANES) == LANE_RIGHT
    fast_follower = table(1, 25.0, [(-20.0, 2, 32.0)])
    assert shield.filter(fast_follower, LANE_RIGHT, LANES) == IDLE
    slow_follower = table(1, 25.0, [(-20.0, 2, 20.0)])
    assert shield.filter(slow_follower, LANE_RIGHT, LANES) == LANE_RIGHT


def test_no_lane_change_off_the_road(shield):
    assert shield.filter(table(0, 25.0), LANE_LEFT, LANES) == IDLE
    assert shield.filter(table(2, 25.0), LANE_RIGHT, LANES) == IDLE


def test_at_the_lowest_speed_a_slower_lead_forces_a_lane_change(shield):
    # Target speed cannot go below 20 m/s: only the free left lane avoids the 15 m/s lead.
    obs = table(2, 20.0, [(15.0, 2, 15.0), (3.0, 1, 20.0)])
    assert shield.filter(obs, FASTER, LANES) == SLOWER  # the middle lane is taken alongside
    free_left = table(1, 20.0, [(15.0, 1, 15.0), (3.0, 2, 20.0)])
    assert shield.filter(free_left, IDLE, LANES) == LANE_LEFT


def test_a_cut_in_counts_as_being_in_the_path(shield):
    cutting_in = table(1, 25.0, [(20.0, 0, 20.0)])
    cutting_in[1, 4] = 2.0 / 80.0  # 2 m/s towards the ego lane
    assert shield.filter(cutting_in, IDLE, LANES) == SLOWER
    staying = table(1, 25.0, [(20.0, 0, 20.0)])
    assert shield.filter(staying, IDLE, LANES) == IDLE


def test_the_shield_needs_relative_normalised_features():
    with pytest.raises(ValueError, match="relative normalised"):
        Shield(KinematicsConfig(features=("presence", "x", "y"), see_behind=True))
    with pytest.raises(ValueError, match="absolute=True"):
        Shield(KinematicsConfig(absolute=True, see_behind=True))
    # Without see_behind a fast follower 20 m back is invisible: refused, not silently unsafe.
    with pytest.raises(ValueError, match="see_behind=False"):
        Shield(KinematicsConfig(see_behind=False))


def test_the_wrapper_executes_the_filtered_action():
    from sim.envs import make_env

    config = {"observation": OBSERVATION.to_highway_config(), "initial_lane_id": 0}
    env = shield_wrapper(make_env("highway-fast-v0", config), Shield(OBSERVATION))
    try:
        env.reset(seed=0)
        assert env.unwrapped.vehicle.lane_index[2] == 0
        _, _, _, _, info = env.step(LANE_LEFT)  # off the road: vetoed
        assert info["shielded"] is True
        assert env.unwrapped.vehicle.target_lane_index[2] == 0
    finally:
        env.close()


def test_train_config_and_policy_carry_the_shield(tmp_path):
    config = TrainConfig(observation=OBSERVATION, shield=ShieldConfig(horizon_s=2.5))
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.shield == config.shield
    with pytest.raises(ValueError, match="unknown shield"):
        TrainConfig.from_dict({**config.to_dict(), "shield": {"horizon": 2}})


def test_a_policy_with_a_bad_shield_entry_is_refused(tmp_path):
    import torch

    from planning.dqn import NetworkSpec, build_q_network
    from planning.policy_io import save_dqn_policy

    spec = NetworkSpec(input_size=int(np.prod(OBSERVATION.shape)), hidden_sizes=(8,), n_actions=5)
    metadata = {
        "algo": "dqn",
        "network": spec.to_dict(),
        "observation": OBSERVATION.to_dict(),
        "shield": ShieldConfig().to_dict(),
    }
    state = {k: v.clone() for k, v in build_q_network(spec).state_dict().items()}
    good = save_dqn_policy(tmp_path / "good.pt", state, metadata)
    policy = DQNPolicy.load(good)
    assert policy.shield is not None
    # Whatever the network says, a left change from the left lane is not executed.
    assert policy.act(table(0, 25.0), lane_count=LANES) != LANE_LEFT
    with pytest.raises(ValueError, match="lane_count"):
        policy.act(table(0, 25.0))
    torch.manual_seed(0)
    bad = save_dqn_policy(tmp_path / "bad.pt", state, {**metadata, "shield": {"range": 3}})
    with pytest.raises(PolicyFileError, match=r"bad\.json: bad 'shield' entry"):
        DQNPolicy.load(bad)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("yes", "must be an object"),
        (5, "must be an object"),
        ({"horizon_s": -1}, "horizon_s must be a finite number"),
        ({"min_gap_m": float("nan")}, "min_gap_m must be a finite number"),
        ({"min_speed_mps": 40, "max_speed_mps": 10}, "must be below max_speed_mps"),
        ({"horizon_s": "3"}, "horizon_s must be a number"),
    ],
)
def test_bad_shield_settings_are_refused_by_name(entry, message):
    with pytest.raises(ValueError, match=message):
        ShieldConfig.from_dict(entry)
