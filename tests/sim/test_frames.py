"""The highway-env -> bus frame conversion (REP-103: x forward, y left, yaw CCW)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bus import Bus
from bus.messages import ObjectClass, Pose2D, Vector2
from sim.frames import pose_from_highway, rotate_to_ego, to_ego_frame, wrap_angle
from sim.simulator import SimConfig, Simulator
from tests.planning.scenes import place


def test_highway_y_right_becomes_bus_y_left_and_heading_flips():
    pose = pose_from_highway(np.array([10.0, 4.0]), 0.2)
    assert (pose.x, pose.y, pose.yaw) == pytest.approx((10.0, -4.0, -0.2))


def test_ego_frame_of_a_point_ahead_left_of_a_rotated_ego():
    ego = Pose2D(10.0, 0.0, math.pi / 2)  # facing +y (left)
    rel = to_ego_frame(ego, Pose2D(10.0, 5.0, math.pi / 2))
    assert (rel.x, rel.y, rel.yaw) == pytest.approx((5.0, 0.0, 0.0), abs=1e-12)
    rel = to_ego_frame(ego, Pose2D(7.0, 0.0, 0.0))
    assert (rel.x, rel.y) == pytest.approx((0.0, 3.0), abs=1e-12)
    v = rotate_to_ego(ego, Vector2(0.0, 2.0))
    assert (v.x, v.y) == pytest.approx((2.0, 0.0), abs=1e-12)


def test_wrap_angle_range():
    assert wrap_angle(3 * math.pi) == pytest.approx(-math.pi)
    assert wrap_angle(-0.5) == pytest.approx(-0.5)


def test_vehicle_in_the_right_lane_is_on_the_ego_right_in_the_bus():
    bus = Bus()
    received = {}
    for topic in ("/sim/ego", "/sim/objects", "/sim/lanes"):
        bus.subscribe(topic, lambda m, t=topic: received.__setitem__(t, m))
    config = SimConfig(env_id="highway-fast-v0", env_config={"vehicles_count": 0})
    simulator = Simulator(config, bus)
    simulator.reset(0, place(1, 25.0, [(2, 10.0, 20.0), (0, -10.0, 30.0)]))

    ego, objects, lanes = received["/sim/ego"], received["/sim/objects"], received["/sim/lanes"]
    vehicles = [o for o in objects.objects if o.object_class != ObjectClass.PEDESTRIAN]
    right, left = sorted(vehicles, key=lambda o: o.ego_pose.y)
    assert right.lane_index == 2 and right.ego_pose.y == pytest.approx(-4.0)
    assert right.ego_pose.x == pytest.approx(10.0)
    assert right.ego_velocity_mps.x == pytest.approx(-5.0)
    assert left.lane_index == 0 and left.ego_pose.y == pytest.approx(4.0)
    assert ego.lane_index == 1 and ego.lane_count == 3
    # Lane 0 (leftmost) has the largest y; the outer edges are solid lines.
    ys = [lane.centerline[0][1] for lane in lanes.lanes]
    assert ys == sorted(ys, reverse=True)
    assert lanes.lanes[0].left_line == "solid" and lanes.lanes[-1].right_line == "solid"
    assert lanes.lanes[1].left_line == "dashed"
    simulator.close()
