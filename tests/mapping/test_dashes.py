"""Dash phase of mapped dashed lines, measured in rendered camera frames."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bus.messages import Header, Lane, LaneGeometry, ObjectList, Pose2D
from mapping.dashes import DashIndex, grey_image, measure_dashes, paint_shares
from mapping.hdmap import DashedLine, HdMap
from sim.camera import FrontCamera, SceneInput
from sim.camera.road import DASH_LENGTH_M, DASH_PERIOD_M
from tests.factories import make_ego

LANE_WIDTH_M = 4.0
TRUTH = Pose2D(203.7, 0.0, 0.0)
"""Ego in lane 0 (y = 0) of a 3-lane road along +x; dashed boundaries at y = -2 and -6."""


def _road(inner_line: str) -> LaneGeometry:
    """3 straight lanes sampled every 10 m from x = 150 (the simulator's grid), with
    ``inner_line`` between them and solid road edges."""
    x = np.arange(150.0, 460.0, 10.0)
    lanes = []
    for index in range(3):
        centre = tuple((float(v), -LANE_WIDTH_M * index) for v in x)
        lanes.append(
            Lane(
                lane_index=index,
                centerline=centre,
                width_m=LANE_WIDTH_M,
                speed_limit_mps=30.0,
                left_line="solid" if index == 0 else inner_line,
                right_line="solid" if index == 2 else inner_line,
            )
        )
    return LaneGeometry(header=Header(stamp_ns=0), lanes=tuple(lanes))


def _map() -> HdMap:
    lines = tuple(
        DashedLine(
            road_id="0-1",
            boundary_index=boundary,
            start=(0.0, -LANE_WIDTH_M * (boundary - 0.5)),
            end=(10000.0, -LANE_WIDTH_M * (boundary - 0.5)),
            dash_length_m=DASH_LENGTH_M,
            period_m=DASH_PERIOD_M,
            phase_m=0.0,
        )
        for boundary in (1, 2)
    )
    return HdMap(dashed_lines=lines)


def _frame(inner_line: str) -> tuple[np.ndarray, FrontCamera]:
    camera = FrontCamera()
    camera.reset(3)
    scene = SceneInput(
        make_ego(TRUTH, lane_index=0), ObjectList(header=Header(stamp_ns=0)), _road(inner_line)
    )
    return camera.render(scene, 0).pixels, camera


@pytest.fixture(scope="module")
def dashed_frame():
    return _frame("dashed")


@pytest.mark.parametrize("behind_m", [-3.1, 0.0, 2.4, 7.3])
def test_dash_shift_recovers_x_modulo_the_period(dashed_frame, behind_m):
    pixels, camera = dashed_frame
    sampled_from = Pose2D(TRUTH.x - behind_m, TRUTH.y, TRUTH.yaw)
    measurement = measure_dashes(grey_image(pixels), camera.model, sampled_from, DashIndex(_map()))
    assert measurement is not None
    error_m = math.remainder(measurement.shift_m - behind_m, DASH_PERIOD_M)
    assert abs(error_m) < 0.1, f"shift {measurement.shift_m:.3f} m, expected {behind_m} mod 10"
    assert measurement.lines == 2 and measurement.correlation > 0.8


def test_solid_lines_give_no_measurement():
    pixels, camera = _frame("solid")
    assert measure_dashes(grey_image(pixels), camera.model, TRUTH, DashIndex(_map())) is None


def test_a_view_without_the_mapped_lines_gives_no_measurement(dashed_frame):
    pixels, camera = dashed_frame
    # Sampled from 2 m to the right, the mapped lines fall on bare lane surface.
    beside = Pose2D(TRUTH.x, TRUTH.y - 2.0, TRUTH.yaw)
    assert measure_dashes(grey_image(pixels), camera.model, beside, DashIndex(_map())) is None
    blank = np.full_like(pixels, 90)
    assert measure_dashes(grey_image(blank), camera.model, TRUTH, DashIndex(_map())) is None


def test_a_map_without_dashed_lines_gives_no_measurement(dashed_frame):
    pixels, camera = dashed_frame
    assert measure_dashes(grey_image(pixels), camera.model, TRUTH, DashIndex(HdMap())) is None


def test_localizer_fix_takes_x_from_the_dashes(dashed_frame):
    from mapping.localizer import Localizer, load_net

    pixels, camera = dashed_frame
    lanes = tuple(
        {
            "road_id": "0-1",
            "lane_index": i,
            "centerline": ((0.0, -LANE_WIDTH_M * i), (10000.0, -LANE_WIDTH_M * i)),
            "width_m": LANE_WIDTH_M,
            "speed_limit_mps": 30.0,
            "left_line": "solid" if i == 0 else "dashed",
            "right_line": "solid" if i == 2 else "dashed",
        }
        for i in range(3)
    )
    from mapping.hdmap import MapLane

    hd_map = HdMap(lanes=tuple(MapLane(**lane) for lane in lanes), dashed_lines=_map().dashed_lines)
    localizer = Localizer(load_net(), hd_map, camera.info())
    prior = Pose2D(TRUTH.x + 1.6, TRUTH.y + 0.1, TRUTH.yaw)
    fix = localizer.localize(pixels, prior, np.diag([1.0, 0.25, math.radians(1.0) ** 2]))
    assert fix.dashes_used
    assert abs(fix.pose.x - TRUTH.x) < 0.15
    assert abs(fix.pose.y - TRUTH.y) < 0.3
    assert math.sqrt(fix.covariance[0]) < 0.2  # the fix says x is now well known


def test_paint_shares_tell_solid_from_dashed_from_bare_road(dashed_frame):
    pixels, camera = dashed_frame
    # Lane 0: solid road edge 2 m left, dashed line 2 m right, bare lane centre under the ego.
    shares = paint_shares(
        grey_image(pixels), camera.model, TRUTH, np.array([1.0, 0.0]), np.array([2.0, -2.0, 0.0])
    )
    assert shares[0] > 0.9
    assert 0.2 < shares[1] < 0.6
    assert shares[2] < 0.05
