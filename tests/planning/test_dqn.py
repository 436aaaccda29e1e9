"""DQN: a short training run gives a policy that loads and drives; resume; safe loading."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from bus.messages import MetaAction
from planning.dqn import DQNPlanner, DQNPolicy, shipped_policy_path
from planning.dqn_train import DQNHyperparameters, TrainConfig, train_dqn
from planning.observation import KinematicsConfig
from planning.policy_io import PolicyFileError
from sim.loop import ClosedLoop
from sim.simulator import SimConfig

TINY = TrainConfig(
    observation=KinematicsConfig(vehicles_count=4),
    hyper=DQNHyperparameters(
        hidden_sizes=(32,),
        learning_starts=50,
        buffer_size=1000,
        batch_size=16,
        target_update_interval=50,
    ),
    steps=200,
    seed=3,
    eval_freq=150,
    eval_episodes=1,
    checkpoint_freq=100,
)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dqn_run")
    summary = train_dqn(TINY, out, progress=False)
    return out, summary


@pytest.mark.slow
def test_short_training_writes_a_policy_that_loads_and_drives(trained_run):
    out, summary = trained_run
    assert summary["steps"] == TINY.steps
    assert json.loads((out / "config.json").read_text())["hyper"]["double_q"] is True
    assert any((out / "tb").rglob("events.out.tfevents.*"))
    policy = DQNPolicy.load(out / "policy.pt")
    assert policy.observation == TINY.observation
    assert policy.act(np.zeros(TINY.observation.shape, dtype=np.float32)) in range(5)

    loop = ClosedLoop(
        SimConfig(env_id="highway-fast-v0", env_config={"duration": 5}), DQNPlanner(policy)
    )
    try:
        result = loop.run_episode(0, seed=11)
    finally:
        loop.close()
    assert result.steps >= 1 and loop.simulator.missing_actions == 0


@pytest.mark.slow
def test_resume_continues_the_step_count_and_keeps_the_replay_buffer(trained_run):
    out, _ = trained_run
    longer = TrainConfig.from_dict({**TINY.to_dict(), "steps": 260})
    summary = train_dqn(longer, out, resume=True, progress=False)
    assert summary["start_steps"] == TINY.steps
    assert summary["steps"] == 260
    assert json.loads((out / "checkpoints" / "state.json").read_text())["num_timesteps"] == 260


def test_exported_weights_are_plain_tensors(tmp_path):
    import torch

    from planning.dqn import NetworkSpec, build_q_network
    from planning.policy_io import save_dqn_policy

    spec = NetworkSpec(input_size=25, hidden_sizes=(8,), n_actions=5)
    network = build_q_network(spec)
    save_dqn_policy(
        tmp_path / "p.pt",
        network.state_dict(),
        {"algo": "dqn", "network": spec.to_dict(), "observation": KinematicsConfig().to_dict()},
    )
    state = torch.load(tmp_path / "p.pt", weights_only=True)
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    policy = DQNPolicy.load(tmp_path / "p.json")
    observation = np.random.default_rng(0).normal(size=(5, 5)).astype(np.float32)
    expected = network(torch.as_tensor(observation.reshape(1, -1)))[0].detach().numpy()
    np.testing.assert_allclose(policy.q_values(observation), expected, rtol=1e-6)


def _write_valid_metadata(path):
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "format": "drivestack-policy",
                "version": 1,
                "algo": "dqn",
                "network": {"input_size": 25, "hidden_sizes": [8], "n_actions": 5},
                "observation": KinematicsConfig().to_dict(),
            }
        )
    )


def test_random_bytes_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _write_valid_metadata(path)
    with pytest.raises(PolicyFileError, match="noise.pt"):
        DQNPolicy.load(path)


def test_a_foreign_zip_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.pkl", b"not ours")
    _write_valid_metadata(path)
    with pytest.raises(PolicyFileError, match="other.pt"):
        DQNPolicy.load(path)


def test_a_json_that_is_not_a_policy_is_refused(tmp_path):
    (tmp_path / "config.pt").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"algo": "dqn", "steps": 3}))
    with pytest.raises(PolicyFileError, match="config.json.*not a drivestack policy"):
        DQNPolicy.load(tmp_path / "config.json")


def test_a_pickled_object_is_not_executed(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('executed')",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"0.weight": Boom()}))
    _write_valid_metadata(path)
    with pytest.raises(PolicyFileError, match="evil.pt"):
        DQNPolicy.load(path)


def test_the_shipped_policy_loads_and_drives_one_step():
    path = shipped_policy_path()
    if not path.exists():
        pytest.fail(f"shipped policy {path} is missing")
    policy = DQNPolicy.load(path)
    assert policy.shield is not None  # the recipe trains the policy with its rule shield
    assert policy.rollout_shield is not None  # and runs it with the rollout shield
    observation = np.zeros(policy.observation.shape, dtype=np.float32)
    observation[0, :4] = [1.0, 1.0, 4.0 / 12.0, 25.0 / 80.0]  # lane 1 of 3 at 25 m/s
    action = policy.act(observation, lane_count=3, target_speed_mps=25.0, target_lane=1)
    assert MetaAction(action) in MetaAction


def test_training_reward_shapes_the_training_env_only():
    config = TrainConfig.from_dict({"training_reward": {"high_speed_reward": 0.8}})
    assert config.training_env_config(shaped=True)["high_speed_reward"] == 0.8
    assert "high_speed_reward" not in config.training_env_config(shaped=False)
    with pytest.raises(ValueError, match="unknown training_reward key"):
        TrainConfig.from_dict({"training_reward": {"speed_bonus": 1.0}})


def test_training_reward_values_are_checked_by_name():
    with pytest.raises(ValueError, match="high_speed_reward has a bad value 'fast'"):
        TrainConfig.from_dict({"training_reward": {"high_speed_reward": "fast"}})
    with pytest.raises(ValueError, match="reward_speed_range has a bad value"):
        TrainConfig.from_dict({"training_reward": {"reward_speed_range": [20]}})
    ok = TrainConfig.from_dict({"training_reward": {"reward_speed_range": [20, 30]}})
    assert ok.training_reward["reward_speed_range"] == [20, 30]


def _shipped_copy(tmp_path, edit=None, weights=None):
    """A copy of the shipped policy with its JSON edited (``edit(metadata)``) or its weights
    replaced (``weights(state_dict)``)."""
    import torch

    source = shipped_policy_path()
    target = tmp_path / "policy.pt"
    state = torch.load(source, weights_only=True)
    if weights is not None:
        weights(state)
    torch.save(state, target)
    metadata = json.loads(source.with_suffix(".json").read_text())
    if edit is not None:
        edit(metadata)
    target.with_suffix(".json").write_text(json.dumps(metadata))
    return target


@pytest.mark.parametrize(
    "network, message",
    [
        ({"input_size": 35, "hidden_sizes": [20000, 20000], "n_actions": 5}, "has shape"),
        ({"input_size": 35, "hidden_sizes": [-5], "n_actions": 5}, "hidden_sizes must be in"),
        ({"input_size": 35, "hidden_sizes": [256, 256], "n_actions": -1}, "n_actions"),
        ({"input_size": 35, "hidden_sizes": "256", "n_actions": 5}, "list of layer widths"),
        ({"input_size": 35, "hidden_sizes": [256.7, 256], "n_actions": 5}, "whole numbers"),
        ({"input_size": 35, "hidden_sizes": [10**400], "n_actions": 5}, "hidden_sizes"),
    ],
)
def test_a_declared_network_is_checked_against_the_weights_first(tmp_path, network, message):
    def edit(metadata):
        metadata["network"] = network

    with pytest.raises(PolicyFileError, match=message):
        DQNPolicy.load(_shipped_copy(tmp_path, edit))


def test_weights_that_are_not_finite_are_refused(tmp_path):
    def poison(state):
        state["0.weight"][0, 0] = float("nan")

    with pytest.raises(PolicyFileError, match="non-finite"):
        DQNPolicy.load(_shipped_copy(tmp_path, weights=poison))


@pytest.mark.parametrize(
    "entry",
    [
        {"policy_hz": 0.001, "simulation_hz": 1000},
        {"horizon_steps": float("inf")},
        {"horizon_steps": 1e300},
        {"policy_hz": 1e-320},
        {"horizon_steps": float("nan")},
    ],
)
def test_rollout_shield_settings_that_would_hang_or_overflow_are_refused(tmp_path, entry):
    def edit(metadata):
        metadata["rollout_shield"] = entry

    with pytest.raises(PolicyFileError, match="rollout_shield"):
        DQNPolicy.load(_shipped_copy(tmp_path, edit))


def test_an_observation_of_absurd_size_is_refused(tmp_path):
    def edit(metadata):
        metadata["observation"]["vehicles_count"] = 10**400

    with pytest.raises(PolicyFileError, match="vehicles_count"):
        DQNPolicy.load(_shipped_copy(tmp_path, edit))
