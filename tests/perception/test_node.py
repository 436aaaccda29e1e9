"""The perception node on constructed camera frames: road-frame distance from the
calibrated camera, tracks with stable ids and velocities, published message types."""

from __future__ import annotations

import numpy as np
import pytest

from bus.messages import Header, ObjectClass, ObjectList
from bus.messages.perception import Detections2D
from perception.detector import Detections
from perception.geometry import box_ground_contact, camera_matrices
from perception.node import PerceptionNode
from sim.camera import CameraConfig, FrontCamera, RandomizationConfig, SceneInput
from tests.sim.test_camera import _ego, _straight_lanes, _vehicle

CAR_ID = 7
DISTANCE_TOLERANCE = 0.10


def _render(x_m: float, y_m: float = 0.0, stamp_ns: int = 0):
    camera = FrontCamera(CameraConfig(), RandomizationConfig(enabled=False))
    info = camera.reset(0)
    scene = SceneInput(
        _ego(),
        ObjectList(header=Header(stamp_ns=stamp_ns), objects=(_vehicle(CAR_ID, x_m, y_m),)),
        _straight_lanes(),
    )
    return camera.render(scene, stamp_ns), info


class BoxDetector:
    """A 'detector' that finds the car where the renderer's truth says it is."""

    name = "truth-boxes"

    def __init__(self) -> None:
        self.boxes: list[tuple[float, float, float, float]] = []

    def detect(self, image_rgb):
        return Detections(
            np.array(self.boxes, np.float32).reshape(-1, 4),
            np.full(len(self.boxes), 0.9, np.float32),
            np.zeros(len(self.boxes), np.int64),
        )


@pytest.mark.parametrize(("x_m", "y_m"), [(15.0, 0.0), (30.0, 4.0), (60.0, -4.0)])
def test_road_distance_of_a_car_within_ten_percent(x_m, y_m):
    frame, info = _render(x_m, y_m)
    car = next(b for b in frame.labels.boxes if b.object_id == CAR_ID)
    k, t_camera_ego = camera_matrices(info)

    contact = box_ground_contact(np.array([car.bbox_xyxy]), k, t_camera_ego)[0]

    rear_face_x = x_m - 2.5  # the car is 5 m long, its centre at x_m
    assert contact[0] == pytest.approx(rear_face_x, rel=DISTANCE_TOLERANCE)
    assert contact[1] == pytest.approx(y_m, abs=0.1 * x_m)


def test_node_publishes_tracked_objects_with_stable_ids_and_velocity():
    detector = BoxDetector()
    node = PerceptionNode(detector)
    published = []
    for step, x_m in enumerate((20.0, 22.0, 24.0)):  # the car gains 2 m per second
        frame, info = _render(x_m, stamp_ns=step * 1_000_000_000)
        detector.boxes = [next(b for b in frame.labels.boxes if b.object_id == CAR_ID).bbox_xyxy]
        published.append(node.step({"/camera/image": frame.image, "/camera/info": info}))

    objects = [p["/perception/objects"] for p in published]
    assert all(isinstance(o, ObjectList) and len(o.objects) == 1 for o in objects)
    assert len({o.objects[0].object_id for o in objects}) == 1
    last = objects[-1].objects[0]
    assert last.object_class == ObjectClass.CAR
    assert last.ego_pose.x == pytest.approx(24.0, rel=DISTANCE_TOLERANCE)
    assert last.ego_velocity_mps.x == pytest.approx(2.0, abs=0.5)
    detections = published[-1]["/perception/detections"]
    assert isinstance(detections, Detections2D)
    assert detections.detections[0].track_id == last.object_id


def test_without_calibration_objects_are_not_placed():
    detector = BoxDetector()
    frame, _ = _render(20.0)
    detector.boxes = [frame.labels.boxes[0].bbox_xyxy]
    outputs = PerceptionNode(detector).step({"/camera/image": frame.image})
    assert outputs["/perception/objects"].objects == ()
    assert not outputs["/perception/objects"].header.valid


@pytest.mark.parametrize("lateral_m", [0.0, 0.8, -1.2])
def test_lane_estimate_recovers_the_ego_offset(lateral_m):
    camera = FrontCamera(CameraConfig(), RandomizationConfig(enabled=False))
    info = camera.reset(0)
    ego = _ego(y=lateral_m)  # lanes are centred on y = 0 in the map frame
    frame = camera.render(
        SceneInput(ego, ObjectList(header=Header(stamp_ns=0)), _straight_lanes()), 0
    )

    lanes = PerceptionNode(BoxDetector()).step(
        {"/camera/image": frame.image, "/camera/info": info}
    )["/perception/lanes"]

    assert lanes.header.valid
    assert lanes.lateral_offset_m == pytest.approx(lateral_m, abs=0.1)
    assert lanes.lane_width_m == pytest.approx(4.0, abs=0.2)
    assert abs(lanes.heading_error_rad) < 0.02


def test_speed_limit_signs_are_published_in_mps():
    from perception.signs import SignPrediction

    class SignBox(BoxDetector):
        def detect(self, image_rgb):
            return Detections(
                np.array([[300, 100, 330, 130]], np.float32),
                np.array([0.8], np.float32),
                np.array([3]),
            )

    class FortyLimit:
        def classify(self, crops):
            return [SignPrediction(7, "speed limit 40", 0.97, 40) for _ in crops]

    frame, info = _render(20.0)
    signs = PerceptionNode(SignBox(), sign_classifier=FortyLimit()).step(
        {"/camera/image": frame.image, "/camera/info": info}
    )["/perception/signs"]

    assert len(signs.signs) == 1
    assert signs.signs[0].speed_limit_mps == pytest.approx(40 / 3.6)
    assert signs.signs[0].sign_class == "speed limit 40"


@pytest.fixture(scope="module")
def shipped_detector():
    from perception.yolo_detector import SHIPPED_DETECTOR, YoloDetector

    return YoloDetector(SHIPPED_DETECTOR, conf=0.5)


@pytest.mark.parametrize(("x_m", "y_m"), [(12.0, 0.0), (25.0, -4.0), (40.0, 0.0)])
def test_shipped_detector_finds_a_rendered_car(shipped_detector, x_m, y_m):
    from perception.detector import box_iou

    frame, _ = _render(x_m, y_m)
    truth = np.array([b.bbox_xyxy for b in frame.labels.boxes if b.object_id == CAR_ID])

    detections = shipped_detector.detect(frame.pixels)

    cars = detections.select(detections.class_ids == 0)
    assert len(cars) == 1
    assert box_iou(truth, cars.boxes_xyxy)[0, 0] >= 0.7


CUT_LATERAL_TOLERANCE_M = 0.6
"""Where the image border cuts a box, its bottom may be a point of the side, not the rear."""


@pytest.mark.parametrize(
    ("object_class", "length_m", "width_m", "x_m", "y_m", "lateral_tolerance_m"),
    [
        (ObjectClass.CAR, 5.0, 2.0, 20.0, 0.0, 0.25),  # straight ahead
        (ObjectClass.CAR, 5.0, 2.0, 20.0, 4.0, 0.25),  # next lane: its side shows too
        (ObjectClass.CAR, 5.0, 2.0, 30.0, -4.0, 0.25),
        (ObjectClass.TRUCK, 12.0, 2.5, 20.0, 4.0, 0.25),
        (ObjectClass.CAR, 5.0, 2.0, 15.0, 8.0, CUT_LATERAL_TOLERANCE_M),  # cut on the left
        (ObjectClass.CAR, 5.0, 2.0, 8.0, -4.0, CUT_LATERAL_TOLERANCE_M),  # cut on the right
        (ObjectClass.TRUCK, 12.0, 2.5, 18.0, 8.0, CUT_LATERAL_TOLERANCE_M),
        (ObjectClass.TRUCK, 12.0, 2.5, 12.0, -4.0, CUT_LATERAL_TOLERANCE_M),
    ],
)
def test_footprint_centre_of_a_vehicle_beside_the_ego(
    object_class, length_m, width_m, x_m, y_m, lateral_tolerance_m
):
    """The box's bottom centre alone puts these 0.35 to 3 m off laterally."""
    from perception.geometry import box_footprint_centre

    camera = FrontCamera(CameraConfig(), RandomizationConfig(enabled=False))
    info = camera.reset(0)
    vehicle = _vehicle(CAR_ID, x_m, y_m, length_m, width_m, object_class)
    scene = SceneInput(
        _ego(), ObjectList(header=Header(stamp_ns=0), objects=(vehicle,)), _straight_lanes()
    )
    box = next(b for b in camera.render(scene, 0).labels.boxes if b.object_id == CAR_ID)

    centre = box_footprint_centre(
        np.array(box.bbox_xyxy), (length_m, width_m), *camera_matrices(info), info.width
    )

    assert centre[0] == pytest.approx(x_m, rel=DISTANCE_TOLERANCE)
    assert centre[1] == pytest.approx(y_m, abs=lateral_tolerance_m)


def test_heading_follows_the_direction_of_motion():
    from tests.factories import make_ego

    detector = BoxDetector()
    node = PerceptionNode(detector)
    ego = make_ego(speed_mps=20.0)
    for step in range(5):  # 1 m/s to the left while keeping pace with the ego
        frame, info = _render(20.0, 0.5 * step, stamp_ns=step * 500_000_000)
        detector.boxes = [next(b for b in frame.labels.boxes if b.object_id == CAR_ID).bbox_xyxy]
        objects = node.step({"/camera/image": frame.image, "/camera/info": info, "/sim/ego": ego})

    car = objects["/perception/objects"].objects[0]
    assert car.ego_velocity_mps.y == pytest.approx(1.0, abs=0.2)
    assert car.ego_pose.yaw == pytest.approx(np.arctan2(1.0, 20.0), abs=0.01)


def test_objects_too_slow_to_tell_their_heading_get_the_ego_heading():
    detector = BoxDetector()
    node = PerceptionNode(detector)
    for step in range(3):  # a stopped ego behind a stopped car
        frame, info = _render(20.0, 0.02 * step, stamp_ns=step * 500_000_000)
        detector.boxes = [next(b for b in frame.labels.boxes if b.object_id == CAR_ID).bbox_xyxy]
        objects = node.step({"/camera/image": frame.image, "/camera/info": info})

    assert objects["/perception/objects"].objects[0].ego_pose.yaw == 0.0


def test_a_parked_car_stays_parked_while_the_ego_turns():
    from tests.factories import make_ego

    detector = BoxDetector()
    node = PerceptionNode(detector)
    yaw_rate_rps, dt_s = 0.1, 0.5
    ego = make_ego(speed_mps=0.0, yaw_rate_rps=yaw_rate_rps)
    for step in range(5):  # the ego turns left on the spot: the car swings to the right
        angle = -yaw_rate_rps * dt_s * step
        x_m, y_m = 30.0 * np.cos(angle), 30.0 * np.sin(angle)
        frame, info = _render(x_m, y_m, stamp_ns=step * 500_000_000)
        detector.boxes = [next(b for b in frame.labels.boxes if b.object_id == CAR_ID).bbox_xyxy]
        objects = node.step({"/camera/image": frame.image, "/camera/info": info, "/sim/ego": ego})

    car = objects["/perception/objects"].objects[0]
    # Seen from the turning ego the car drifts sideways at about 3 m/s; in the world it does
    # not move (the rest is the smoothed finite difference lagging the box).
    assert abs(car.velocity_mps.x) < 1.0 and abs(car.velocity_mps.y) < 1.0


def test_in_the_loop_a_stale_image_is_not_perceived_again():
    from perception.node import PerceptionConfig
    from tests.factories import make_ego

    detector = BoxDetector()
    node = PerceptionNode(detector, PerceptionConfig(trigger="/sim/ego"))
    frame, info = _render(20.0, 0.0, stamp_ns=0)
    detector.boxes = [next(b for b in frame.labels.boxes if b.object_id == CAR_ID).bbox_xyxy]
    later = make_ego(header=Header(stamp_ns=1_000_000_000))
    assert node.step({"/camera/image": frame.image, "/camera/info": info, "/sim/ego": later}) == {}
    now = make_ego(header=Header(stamp_ns=0))
    assert "/perception/objects" in node.step(
        {"/camera/image": frame.image, "/camera/info": info, "/sim/ego": now}
    )
