"""The rollout shield: its model matches highway-env where nothing is hidden, it keeps the
policy's ranking when the road is free and vetoes what leads into a collision."""

from __future__ import annotations

import json

import gymnasium as gym
import highway_env  # noqa: F401  (registers the environments)
import numpy as np
import pytest

from planning.dqn import DQNPolicy
from planning.observation import KinematicsConfig
from planning.policy_io import PolicyFileError
from planning.rollout_shield import RolloutShield, RolloutShieldConfig
from planning.shield import FASTER, IDLE, LANE_LEFT, LANE_RIGHT, SLOWER
from tests.planning.scenes import place
from tests.planning.test_shield import LANES, OBSERVATION, table

EVERY_ACTION = [FASTER, IDLE, LANE_LEFT, LANE_RIGHT, SLOWER]


@pytest.fixture
def shield() -> RolloutShield:
    return RolloutShield(OBSERVATION, RolloutShieldConfig(horizon_steps=4, length_margin_m=0.0))


def test_a_free_road_keeps_the_policy_choice(shield):
    for first in EVERY_ACTION:
        ranked = [first] + [a for a in EVERY_ACTION if a != first]
        assert shield.filter(table(1, 25.0), ranked, LANES, 25.0, 1) == first


def test_a_close_slow_lead_vetoes_keeping_the_speed(shield):
    # 10 m bumper gap to a 15 m/s lead; both side lanes are taken alongside the ego.
    boxed = table(1, 25.0, [(15.0, 1, 15.0), (0.0, 0, 25.0), (0.0, 2, 25.0)])
    assert shield.crash_frame(boxed, LANES, 25.0, 1, [IDLE] * 4) is not None
    assert shield.filter(boxed, EVERY_ACTION, LANES, 25.0, 1) == SLOWER


def test_a_lane_change_into_a_vehicle_alongside_is_vetoed(shield):
    scene = table(1, 25.0, [(0.0, 0, 25.0)])
    assert shield.filter(scene, [LANE_LEFT, IDLE], LANES, 25.0, 1) == IDLE
    # The other side is free.
    assert shield.filter(scene, [LANE_RIGHT, IDLE], LANES, 25.0, 1) == LANE_RIGHT


def test_when_nothing_is_safe_the_latest_collision_wins(shield):
    # A stopped vehicle 8 m ahead, both sides taken: every action collides; braking latest.
    hopeless = table(1, 30.0, [(13.0, 1, 0.0), (0.0, 0, 30.0), (0.0, 2, 30.0)])
    frames = {
        a: min(
            shield.crash_frame(hopeless, LANES, 30.0, 1, [a] + [c] * 9) or 99
            for c in (IDLE, SLOWER, FASTER)
        )
        for a in EVERY_ACTION
    }
    assert all(f < 99 for f in frames.values())
    chosen = shield.filter(hopeless, EVERY_ACTION, LANES, 30.0, 1)
    assert frames[chosen] == max(frames.values())


@pytest.mark.parametrize(
    "others, actions",
    [
        ([(0, 30.0, 20.0)], [FASTER, FASTER, IDLE, IDLE]),  # catches a slower lead
        ([(0, 60.0, 20.0)], [IDLE, IDLE, IDLE, IDLE]),  # stays behind it
        ([(1, 0.0, 25.0)], [LANE_RIGHT, IDLE, IDLE, IDLE]),  # turns into a car alongside
        ([(1, 40.0, 25.0)], [LANE_RIGHT, FASTER, FASTER, IDLE]),  # passes behind it
    ],
)
def test_the_model_predicts_what_highway_env_does(others, actions):
    """With no hidden state (others hold their lane and speed), the rebuilt road collides
    exactly when highway-env's own does."""
    config = {
        "observation": OBSERVATION.to_highway_config(),
        "lanes_count": LANES,
        "simulation_frequency": 5,
        "policy_frequency": 1,
    }
    env = gym.make("highway-v0", config=config)
    env.reset(seed=0)
    world = env.unwrapped
    place(0, 25.0, others)(world)
    observation = world.observation_type.observe()
    shield = RolloutShield(OBSERVATION, RolloutShieldConfig(horizon_steps=4, length_margin_m=0.0))
    predicted = shield.crash_frame(observation, LANES, 25.0, 0, actions)

    crashed_at = None
    for step, action in enumerate(actions):
        env.step(action)
        if world.vehicle.crashed:
            crashed_at = step
            break
    assert (predicted is None) == (crashed_at is None)
    if predicted is not None:
        assert predicted // 5 == crashed_at
    env.close()


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="horizon_steps"):
        RolloutShieldConfig(horizon_steps=0)
    with pytest.raises(ValueError, match="simulation_hz"):
        RolloutShieldConfig(simulation_hz=float("nan"))
    with pytest.raises(ValueError, match="unknown rollout shield setting"):
        RolloutShieldConfig.from_dict({"horizon": 4})
    with pytest.raises(ValueError, match="must be a number"):
        RolloutShieldConfig.from_dict({"horizon_steps": "4"})
    assert RolloutShieldConfig.from_dict({"horizon_steps": 3.0}).horizon_steps == 3
    assert RolloutShieldConfig.from_dict(RolloutShieldConfig().to_dict()) == RolloutShieldConfig()
    with pytest.raises(ValueError, match="see_behind"):
        RolloutShield(KinematicsConfig(vehicles_count=5, see_behind=False))


def test_a_policy_file_carries_the_rollout_shield(tmp_path):
    from planning.dqn import shipped_policy_path

    source = shipped_policy_path()
    metadata = json.loads(source.with_suffix(".json").read_text())
    target = tmp_path / "p.pt"
    target.write_bytes(source.read_bytes())
    metadata["rollout_shield"] = {"horizon_steps": 3}
    target.with_suffix(".json").write_text(json.dumps(metadata))
    policy = DQNPolicy.load(target)
    assert policy.rollout_shield is not None
    assert policy.rollout_shield.config.horizon_steps == 3
    observation = np.zeros(policy.observation.shape, dtype=np.float32)
    observation[0, :3] = [1.0, 1.0, 1 * 4.0 / 12.0]
    observation[0, 3] = 25.0 / 80.0
    assert policy.act(observation, 3, 25.0, 1) in range(5)
    with pytest.raises(ValueError, match="target_speed_mps"):
        policy.act(observation, 3)

    metadata["rollout_shield"] = {"horizon_steps": -1}
    target.with_suffix(".json").write_text(json.dumps(metadata))
    with pytest.raises(PolicyFileError, match="rollout_shield"):
        DQNPolicy.load(target)


def test_train_config_carries_the_rollout_shield():
    from planning.dqn_train import TrainConfig

    config = TrainConfig(
        observation=OBSERVATION, rollout_shield=RolloutShieldConfig(length_margin_m=4.0)
    )
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.rollout_shield == config.rollout_shield
    with pytest.raises(ValueError, match="unknown rollout shield"):
        TrainConfig.from_dict({**config.to_dict(), "rollout_shield": {"margin": 4}})
    with pytest.raises(ValueError, match="see_behind"):
        TrainConfig.from_dict(
            {
                **config.to_dict(),
                "observation": KinematicsConfig(see_behind=False).to_dict(),
            }
        )


def test_the_length_margin_makes_near_misses_collisions():
    # A car 5.5 m ahead (0.5 m bumper gap) in the lane to the right, at the ego's speed.
    scene = table(1, 25.0, [(5.5, 2, 25.0)])
    plan = [LANE_RIGHT] + [IDLE] * 3
    exact = RolloutShield(OBSERVATION, RolloutShieldConfig(horizon_steps=4, length_margin_m=0.0))
    careful = RolloutShield(OBSERVATION, RolloutShieldConfig(horizon_steps=4, length_margin_m=2.0))
    assert exact.crash_frame(scene, LANES, 25.0, 1, plan) is None
    assert careful.crash_frame(scene, LANES, 25.0, 1, plan) is not None


def test_a_long_truck_alongside_blocks_a_lane_change_a_car_would_not():
    # A vehicle centred 9 m behind in the lane to the left: a 5 m car leaves room, a 16 m
    # truck reaches past the ego's rear.
    scene = table(1, 25.0, [(-9.0, 0, 25.0)])
    plan = [LANE_LEFT] + [IDLE] * 3
    shield = RolloutShield(OBSERVATION, RolloutShieldConfig(horizon_steps=4, length_margin_m=0.0))
    assert shield.crash_frame(scene, LANES, 25.0, 1, plan, [5.0]) is None
    assert shield.crash_frame(scene, LANES, 25.0, 1, plan, [16.0]) is not None
    assert shield.filter(scene, [LANE_LEFT, IDLE], LANES, 25.0, 1, [16.0]) == IDLE
    with pytest.raises(ValueError, match="lengths"):
        shield.crash_frame(scene, LANES, 25.0, 1, plan, [5.0, 5.0])


def test_lane_changes_under_way_are_continued():
    from planning.rollout_shield import lane_steered_to

    assert lane_steered_to(8.0, 0.2) == 2  # keeping its lane
    assert lane_steered_to(8.0, -2.0) == 1  # starting to the left
    assert lane_steered_to(7.2, -6.0) == 1  # fast, early in the change
    assert lane_steered_to(1.0, 6.4) == 1  # to the right, from lane 0
    assert lane_steered_to(4.3, -0.5) == 1  # settling in its new lane

    # A car cutting in from the left 12 m ahead at 20 m/s: the ego keeping 25 m/s hits it
    # even when no driver starts a lane change, since this one has already started.
    def cut_in(vy_mps: float) -> np.ndarray:
        scene = table(1, 25.0, [(12.0, 0, 20.0)])
        scene[1, 2] = (2.0 - 4.0) / 12.0  # at y = 2 m, halfway into the ego lane
        scene[1, 4] = vy_mps / 80.0
        return scene

    shield = RolloutShield(OBSERVATION, RolloutShieldConfig(horizon_steps=4, length_margin_m=0.0))
    plan = [IDLE] * 4
    assert shield.crash_frame(cut_in(3.0), LANES, 25.0, 1, plan, lane_changes=False) is not None
    # Moving back out of the ego lane it is no danger.
    assert shield.crash_frame(cut_in(-3.0), LANES, 25.0, 1, plan, lane_changes=False) is None


def test_the_traffic_setting_is_checked():
    assert RolloutShieldConfig.from_dict({"traffic": "keep_lane"}).traffic == "keep_lane"
    with pytest.raises(ValueError, match="traffic must be one of"):
        RolloutShieldConfig.from_dict({"traffic": "polite"})
    with pytest.raises(ValueError, match="traffic must be a string"):
        RolloutShieldConfig.from_dict({"traffic": 1})
