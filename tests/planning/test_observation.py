"""The policy observation built from bus messages equals highway-env's own Kinematics one."""

from __future__ import annotations

import numpy as np
import pytest

from planning.observation import KinematicsConfig, kinematics_from_bus
from planning.qlearning import QLEARNING_OBSERVATION
from sim.adapter import WorldReader
from sim.envs import make_env

CONFIGS = {
    "default": KinematicsConfig(),
    "dqn_shipped": KinematicsConfig(vehicles_count=7),
    "see_behind_heading": KinematicsConfig(
        vehicles_count=8,
        see_behind=True,
        features=("presence", "x", "y", "vx", "vy", "cos_h", "sin_h", "heading"),
    ),
    "absolute": KinematicsConfig(absolute=True),
    "qlearning_unnormalized": QLEARNING_OBSERVATION,
}


def _compare(env_id: str, config: KinematicsConfig, seed: int, steps: int) -> float:
    env = make_env(env_id, {"observation": config.to_highway_config()})
    reader = WorldReader(env)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    worst = 0.0
    try:
        for t in range(steps):
            ego = reader.ego_state(t)
            from_bus = kinematics_from_bus(ego, reader.objects(t, ego), reader.lanes(t), config)
            assert from_bus.shape == observation.shape and from_bus.dtype == np.float32
            worst = max(worst, float(np.abs(from_bus - observation).max()))
            observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    finally:
        env.close()
    return worst


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bus_observation_equals_highway_kinematics(name):
    assert _compare("highway-fast-v0", CONFIGS[name], seed=7, steps=15) <= 1e-6


@pytest.mark.slow
def test_bus_observation_equals_highway_kinematics_on_four_lanes():
    assert _compare("highway-v0", CONFIGS["dqn_shipped"], seed=3, steps=4) <= 1e-6


def test_config_round_trips_and_rejects_unknown_features():
    config = CONFIGS["see_behind_heading"]
    assert KinematicsConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown observation feature"):
        KinematicsConfig(features=("presence", "lat_off"))
    with pytest.raises(ValueError, match="unknown observation setting"):
        KinematicsConfig.from_dict({"vehicles": 3})


def test_pedestrians_do_not_enter_the_vehicle_observation():
    import msgspec

    from bus.messages import ObjectClass, ObjectState, Pose2D, Vector2

    config = CONFIGS["dqn_shipped"]
    env = make_env("highway-fast-v0", {"observation": config.to_highway_config()})
    try:
        observation, _ = env.reset(seed=5)
        reader = WorldReader(env)
        ego = reader.ego_state(0)
        objects = reader.objects(0, ego)
        walker = ObjectState(
            object_id=999,
            object_class=ObjectClass.PEDESTRIAN,
            pose=Pose2D(ego.pose.x + 3.0, ego.pose.y - 7.0, 0.0),
            velocity_mps=Vector2(0.0, 1.0),
            ego_pose=Pose2D(3.0, -7.0, 0.0),
            ego_velocity_mps=Vector2(-ego.speed_mps, 1.0),
            length_m=0.5,
            width_m=0.5,
        )
        with_walker = msgspec.structs.replace(objects, objects=objects.objects + (walker,))
        from_bus = kinematics_from_bus(ego, with_walker, reader.lanes(0), config)
    finally:
        env.close()
    np.testing.assert_allclose(from_bus, observation, atol=1e-6)
