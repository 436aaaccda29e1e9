"""The rule planner in constructed scenes: it keeps its gap, passes when safe, and never
cuts into an occupied lane."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from bus.messages import (
    EgoState,
    Header,
    Lane,
    LaneGeometry,
    MetaAction,
    ObjectClass,
    ObjectList,
    ObjectState,
    Pose2D,
    Vector2,
)
from planning.rule import RulePlanner
from planning.scene import build_scene, project_onto_polyline
from sim.loop import ClosedLoop
from sim.simulator import SimConfig
from tests.factories import make_ego
from tests.planning.scenes import place

LANE_WIDTH_M = 4.0


def _lanes(count: int) -> LaneGeometry:
    # Lane 0 is leftmost: in the bus frame (y left) it has the largest y.
    lanes = tuple(
        Lane(
            lane_index=i,
            centerline=tuple((x, -LANE_WIDTH_M * i) for x in range(0, 400, 10)),
            width_m=LANE_WIDTH_M,
            speed_limit_mps=30.0,
            left_line="dashed",
            right_line="dashed",
        )
        for i in range(count)
    )
    return LaneGeometry(header=Header(stamp_ns=0), lanes=lanes, ego_lane_index=1)


def _ego(lane: int, x_m: float, speed_mps: float) -> EgoState:
    return make_ego(Pose2D(x_m, -LANE_WIDTH_M * lane, 0.0), speed_mps, lane)


def _car(object_id: int, lane: int, x_m: float, speed_mps: float, ego: EgoState) -> ObjectState:
    pose = Pose2D(x_m, -LANE_WIDTH_M * lane, 0.0)
    return ObjectState(
        object_id=object_id,
        object_class=ObjectClass.CAR,
        pose=pose,
        velocity_mps=Vector2(speed_mps, 0.0),
        ego_pose=Pose2D(x_m - ego.pose.x, pose.y - ego.pose.y, 0.0),
        ego_velocity_mps=Vector2(speed_mps - ego.speed_mps, 0.0),
        length_m=5.0,
        width_m=2.0,
        lane_index=lane,
    )


def _decide(ego: EgoState, cars: list[ObjectState]) -> MetaAction:
    inputs = {
        "/sim/ego": ego,
        "/sim/objects": ObjectList(header=Header(stamp_ns=0), objects=tuple(cars)),
        "/sim/lanes": _lanes(3),
    }
    return RulePlanner().step(inputs)["/planning/action"].action


def test_polyline_projection_gives_arc_length_and_left_positive_offset():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    s, d = project_onto_polyline(np.array([[15.0, 2.0], [5.0, -1.0], [25.0, 0.0]]), line)
    assert s == pytest.approx([15.0, 5.0, 25.0])
    assert d == pytest.approx([2.0, -1.0, 0.0])


def test_scene_assigns_relative_lanes_and_bumper_gaps():
    ego = _ego(1, 100.0, 25.0)
    scene = build_scene(
        ego,
        ObjectList(
            header=Header(stamp_ns=0),
            objects=(
                _car(1, 1, 140.0, 20.0, ego),
                _car(2, 0, 90.0, 25.0, ego),
                _car(3, 2, 100.0, 25.0, ego),
            ),
        ),
        _lanes(3),
    )
    lead = scene.lead(0)
    assert lead is not None and lead.object_id == 1 and lead.gap_m == pytest.approx(35.0)
    assert scene.follower(1).object_id == 2  # lane 0 is to the left
    assert scene.alongside(-1)


def test_vehicles_alongside_block_lane_changes():
    ego = _ego(1, 100.0, 25.0)
    cars = [_car(1, 1, 130.0, 15.0, ego), _car(2, 0, 101.0, 25.0, ego), _car(3, 2, 98.0, 25.0, ego)]
    assert _decide(ego, cars) not in (MetaAction.LANE_LEFT, MetaAction.LANE_RIGHT)


def test_slow_lead_with_free_left_lane_is_passed_on_the_left():
    ego = _ego(1, 100.0, 25.0)
    cars = [_car(1, 1, 130.0, 15.0, ego), _car(3, 2, 98.0, 25.0, ego)]
    assert _decide(ego, cars) == MetaAction.LANE_LEFT


def test_fast_vehicle_approaching_from_behind_blocks_the_lane_change():
    ego = _ego(1, 100.0, 25.0)
    cars = [_car(1, 1, 130.0, 15.0, ego), _car(2, 0, 80.0, 32.0, ego), _car(3, 2, 98.0, 25.0, ego)]
    assert _decide(ego, cars) == MetaAction.SLOWER


def test_missing_inputs_fall_back_to_slowing_down():
    message = RulePlanner().step({"/sim/ego": _ego(1, 0.0, 25.0)})["/planning/action"]
    assert message.action == MetaAction.SLOWER and message.fallback


def _drive(config: dict, prepare) -> tuple[list, list]:
    loop = ClosedLoop(SimConfig(env_id="highway-v0", env_config=config), RulePlanner())
    egos: list[EgoState] = []
    actions: list[MetaAction] = []
    loop.bus.subscribe("/sim/ego", egos.append)
    loop.bus.subscribe("/planning/action", lambda m: actions.append(m.action))
    loop.run_episode(0, 0, prepare=prepare)
    loop.close()
    return egos, actions


def test_slow_lead_in_single_lane_makes_ego_brake_without_collision_for_20_s():
    config = {
        "lanes_count": 1,
        "vehicles_count": 0,
        "duration": 20,
        "action": {"type": "DiscreteMetaAction", "target_speeds": list(range(0, 35, 5))},
    }
    egos, actions = _drive(config, place(0, 25.0, [(0, 40.0, 15.0)]))
    assert egos[-1].header.stamp_ns == 20_000_000_000
    assert not any(e.crashed for e in egos)
    assert MetaAction.SLOWER in actions
    assert egos[-1].speed_mps <= 16.0


def test_slow_lead_with_free_lanes_is_passed_without_collision_for_20_s():
    config = {"lanes_count": 3, "vehicles_count": 0, "duration": 20}
    egos, _ = _drive(config, place(1, 25.0, [(1, 40.0, 15.0)]))
    assert not any(e.crashed for e in egos)
    assert any(e.lane_index != 1 for e in egos)
    # Passed: the ego ends far ahead of where following the lead would have left it.
    assert egos[-1].odometer_m > 20 * 15.0 + 100.0


def test_vehicle_cutting_in_from_the_next_lane_is_treated_as_lead():
    ego = _ego(1, 100.0, 30.0)
    merging = _car(1, 2, 112.0, 20.0, ego)
    steady = msgspec.structs.replace(merging, object_id=2)
    merging = msgspec.structs.replace(merging, velocity_mps=Vector2(20.0, 1.5))  # drifting left
    blockers = [_car(3, 0, 100.0, 30.0, ego)]  # no escape to the left
    assert _decide(ego, [steady, *blockers]) != MetaAction.SLOWER
    assert _decide(ego, [merging, *blockers]) == MetaAction.SLOWER
