"""World objects: signs, landmarks, pedestrians and trucks, seeded and published on the bus."""

from __future__ import annotations

import numpy as np
import pytest

from bus import Bus
from bus.messages import ObjectClass, SignType
from sim.envs import make_env
from sim.frames import xy_from_highway
from sim.simulator import SimConfig, Simulator
from sim.world import (
    LANDMARK_ID_BASE,
    PEDESTRIAN_ID_BASE,
    SIGN_ID_BASE,
    World,
    WorldConfig,
    convert_to_trucks,
)


@pytest.fixture(scope="module")
def env():
    environment = make_env("highway-fast-v0")
    yield environment
    environment.close()


def _lateral_offsets(env, points_xy):
    """Lateral offset [m] of bus-frame points from the centre of the nearest lane of the
    straight highway (highway-env lanes run along x)."""
    network = env.unwrapped.road.network
    lanes = network.graph["0"]["1"]
    result = []
    for x, y in points_xy:
        position = np.array([x, -y])
        result.append(min(abs(lane.local_coordinates(position)[1]) for lane in lanes))
    return np.array(result)


def test_same_seed_gives_the_same_world_and_another_seed_another(env):
    env.reset(seed=1)
    first = World().reset(env, 1, road_users=False)
    env.reset(seed=1)
    again = World().reset(env, 1, road_users=False)
    env.reset(seed=2)
    other = World().reset(env, 2, road_users=False)
    assert first == again
    assert first.landmarks != other.landmarks


def test_signs_stand_beside_the_road_and_show_the_lane_speed_limit(env):
    env.reset(seed=0)
    static = World().reset(env, 0, road_users=False)
    lane_limit = env.unwrapped.road.network.graph["0"]["1"][-1].speed_limit
    kinds = {sign.sign_type for sign in static.signs}
    assert SignType.SPEED_LIMIT in kinds and len(kinds) >= 4
    for sign in static.signs:
        assert SIGN_ID_BASE <= sign.sign_id < LANDMARK_ID_BASE
        if sign.sign_type == SignType.SPEED_LIMIT:
            assert sign.speed_limit_mps == pytest.approx(lane_limit)
        # Right of the rightmost lane (bus y is left-positive), facing oncoming traffic.
        assert abs(abs(sign.pose.yaw) - np.pi) < 1e-6
    offsets = _lateral_offsets(env, [(s.pose.x, s.pose.y) for s in static.signs])
    assert np.all(offsets > 2.0 + 1.0)


def test_landmarks_are_off_the_road_with_distinct_ids_and_shapes(env):
    env.reset(seed=0)
    static = World().reset(env, 0, road_users=False)
    ids = [landmark.landmark_id for landmark in static.landmarks]
    assert len(ids) == len(set(ids)) >= 20
    assert len({landmark.shape for landmark in static.landmarks}) == 4
    offsets = _lateral_offsets(env, [(lm.pose.x, lm.pose.y) for lm in static.landmarks])
    half_widths = np.array([lm.width_m / 2 for lm in static.landmarks])
    assert np.all(offsets - half_widths > 2.0 + 5.0)


def test_pedestrians_walk_on_the_shoulders(env):
    env.reset(seed=0)
    world = World()
    world.reset(env, 0)
    start, later = world.pedestrian_states(0.0), world.pedestrian_states(10.0)
    assert len(start) >= 10
    assert all(PEDESTRIAN_ID_BASE <= object_id < SIGN_ID_BASE for object_id, _, _ in start)
    offsets = _lateral_offsets(env, [(pose.x, pose.y) for _, pose, _ in later])
    assert np.all(offsets > 2.0 + 0.9)
    moved = [
        np.hypot(b.x - a.x, b.y - a.y) for (_, a, _), (_, b, _) in zip(start, later, strict=True)
    ]
    assert 5.0 < np.mean(moved) < 20.0


def test_crossing_pedestrians_cross_the_road(env):
    env.reset(seed=0)
    world = World(WorldConfig(pedestrians_per_km=0.0, crossings_s_m=(300.0,)))
    world.reset(env, 0)
    ys = [world.pedestrian_states(t)[0][1].y for t in np.arange(0.0, 30.0, 0.5)]
    road = env.unwrapped.road.network.graph["0"]["1"]
    left_edge = xy_from_highway(road[0].position(300.0, -2.0))[1]
    right_edge = xy_from_highway(road[-1].position(300.0, 2.0))[1]
    assert max(ys) > left_edge and min(ys) < right_edge


def test_trucks_are_made_where_there_is_room_and_published_as_trucks():
    bus = Bus()
    objects = []
    static = []
    bus.subscribe("/sim/objects", objects.append)
    bus.subscribe("/sim/static", static.append)
    simulator = Simulator(SimConfig(env_id="highway-fast-v0"), bus)
    simulator.reset(4)
    simulator.close()
    vehicles = [o for o in objects[-1].objects if o.object_class != ObjectClass.PEDESTRIAN]
    trucks = [o for o in vehicles if o.object_class == ObjectClass.TRUCK]
    assert 1 <= len(trucks) < len(vehicles)
    assert all(t.length_m >= 10.0 and t.width_m >= 2.4 for t in trucks)
    assert any(o.object_class == ObjectClass.PEDESTRIAN for o in objects[-1].objects)
    assert len(static) == 1 and static[0].signs and static[0].landmarks
    # No vehicle overlaps another in its lane after the conversion.
    by_lane: dict[int, list] = {}
    for vehicle in vehicles:
        by_lane.setdefault(vehicle.lane_index, []).append(vehicle)
    for lane in by_lane.values():
        lane.sort(key=lambda o: o.pose.x)
        for rear, front in zip(lane[:-1], lane[1:], strict=True):
            assert front.pose.x - rear.pose.x > (front.length_m + rear.length_m) / 2


def test_truck_conversion_keeps_room_in_the_lane(env):
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    count = convert_to_trucks(env.unwrapped, rng, WorldConfig(truck_fraction=1.0))
    lengths = [v.LENGTH for v in env.unwrapped.road.vehicles]
    assert count == sum(length > 5.0 for length in lengths) >= 1
