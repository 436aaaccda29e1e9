"""The front camera: projection, box geometry, labels against rendered pixels, determinism."""

from __future__ import annotations

import math
import time

import msgspec
import numpy as np
import pytest

from bus.messages import (
    EgoState,
    Header,
    Lane,
    LaneGeometry,
    ObjectClass,
    ObjectList,
    ObjectState,
    Pose2D,
    Vector2,
)
from bus.messages.camera import DETECTION_CLASSES, Image, LabelClass
from bus.messages.world import Landmark, LandmarkShape
from sim.camera import (
    CameraConfig,
    CameraModel,
    FrontCamera,
    RandomizationConfig,
    SceneInput,
    image_array,
    meshes,
)
from sim.camera.raster import clip_near
from sim.camera.road import DASHED_LINE_WIDTH_M
from tests.factories import make_ego

FLAT = CameraConfig(pitch_deg=0.0, height_m=1.4, forward_m=1.0, hfov_deg=90.0)
"""A level camera with fx = fy = 320 px at 640x360."""
LANE_WIDTH_M = 4.0


def _ego(x: float = 0.0, y: float = 0.0, yaw: float = 0.0) -> EgoState:
    return make_ego(Pose2D(x, y, yaw), speed_mps=0.0)


def _vehicle(
    object_id: int,
    x: float,
    y: float = 0.0,
    length: float = 5.0,
    width: float = 2.0,
    object_class: ObjectClass = ObjectClass.CAR,
) -> ObjectState:
    return ObjectState(
        object_id=object_id,
        object_class=object_class,
        pose=Pose2D(x, y, 0.0),
        velocity_mps=Vector2(0.0, 0.0),
        ego_pose=Pose2D(x, y, 0.0),
        ego_velocity_mps=Vector2(0.0, 0.0),
        length_m=length,
        width_m=width,
    )


def _straight_lanes(count: int = 3, ego_lane: int = 1) -> LaneGeometry:
    """Lanes along +x; lane 0 leftmost (largest y); the ego lane centred on y = 0."""
    lanes = []
    for index in range(count):
        y = (ego_lane - index) * LANE_WIDTH_M
        lanes.append(
            Lane(
                lane_index=index,
                centerline=tuple((float(x), y) for x in range(-50, 201, 10)),
                width_m=LANE_WIDTH_M,
                speed_limit_mps=30.0,
                left_line="solid" if index == 0 else "dashed",
                right_line="solid" if index == count - 1 else "none",
            )
        )
    return LaneGeometry(header=Header(stamp_ns=0), lanes=tuple(lanes), ego_lane_index=ego_lane)


def _scene(objects: list[ObjectState], lanes: LaneGeometry | None = None) -> SceneInput:
    return SceneInput(
        _ego(),
        ObjectList(header=Header(stamp_ns=0), objects=tuple(objects)),
        lanes or _straight_lanes(),
    )


def _camera(config: CameraConfig = FLAT) -> FrontCamera:
    camera = FrontCamera(config, RandomizationConfig(enabled=False))
    camera.reset(0)
    return camera


def test_point_projects_to_the_expected_pixel():
    model = CameraModel(FLAT)
    assert model.fx == pytest.approx(320.0) and model.fy == pytest.approx(320.0)
    # 10 m ahead of the camera, 2 m to the left, at camera height: left of centre.
    pixels, ahead = model.project(np.array([[11.0, 2.0, 1.4]]), Pose2D(0.0, 0.0, 0.0))
    assert ahead[0]
    np.testing.assert_allclose(pixels[0], [320.0 - 320.0 * 2.0 / 10.0, 180.0], atol=1e-9)
    # The same point seen from an ego rotated by 90 degrees and moved: same pixel.
    pose = Pose2D(5.0, -3.0, math.pi / 2)
    rotated = np.array([[5.0 - 2.0, -3.0 + 11.0, 1.4]])
    np.testing.assert_allclose(model.project(rotated, pose)[0][0], pixels[0], atol=1e-9)
    # The road 20 m ahead lies fy * h / z below the centre.
    np.testing.assert_allclose(
        model.project(np.array([[21.0, 0.0, 0.0]]), Pose2D(0, 0, 0))[0][0],
        [320.0, 180.0 + 320.0 * 1.4 / 20.0],
    )


def test_pitch_moves_the_horizon_up_by_fy_tan_pitch():
    model = CameraModel(CameraConfig(pitch_deg=3.0, hfov_deg=90.0))
    far_ahead = np.array([[1e6, 0.0, 1.4]])
    pixel = model.project(far_ahead, Pose2D(0, 0, 0))[0][0]
    assert pixel[1] == pytest.approx(180.0 - 320.0 * math.tan(math.radians(3.0)), abs=1e-3)


def test_camera_info_transform_matches_the_model():
    model = CameraModel(CameraConfig())
    info = model.camera_info()
    k = np.array(info.k).reshape(3, 3)
    transform = np.array(info.t_camera_ego).reshape(4, 4)
    point_ego = np.array([12.0, -1.5, 0.7, 1.0])
    camera_point = transform @ point_ego
    uv = (k @ camera_point[:3])[:2] / camera_point[2]
    expected = model.project(point_ego[None, :3], Pose2D(0, 0, 0))[0][0]
    np.testing.assert_allclose(uv, expected, atol=1e-9)


@pytest.mark.parametrize("distance_m", [8.0, 15.0, 30.0, 60.0])
def test_car_straight_ahead_has_the_expected_box_size(distance_m):
    camera = _camera()
    # The rear face distance_m ahead of the camera (which is 1 m ahead of the ego centre).
    car = _vehicle(7, 1.0 + distance_m + 2.5)
    labels = camera.render(_scene([car]), 0).labels
    (box,) = [b for b in labels.boxes if b.object_id == 7]
    # Boxes are the filled pixels: whole pixels, at most one more than the exact outline.
    x0, y0, x1, y1 = box.bbox_xyxy
    assert y1 - y0 == pytest.approx(320.0 * meshes.CAR_HEIGHT_M / distance_m, abs=1.5)
    assert x1 - x0 == pytest.approx(320.0 * 2.0 / distance_m, abs=1.5)
    assert (x0 + x1) / 2 == pytest.approx(320.0, abs=0.5)
    outline = camera.render(_scene([car]), 0).render.objects[0].outline_xyxy
    assert outline[3] - outline[1] == pytest.approx(320.0 * meshes.CAR_HEIGHT_M / distance_m)
    assert outline[2] - outline[0] == pytest.approx(320.0 * 2.0 / distance_m)
    assert box.label_class == LabelClass.CAR and box.visible_fraction == 1.0
    assert box.distance_m == pytest.approx(distance_m)


def test_truck_is_taller_than_a_car_at_the_same_distance():
    camera = _camera()
    truck = _vehicle(3, 1.0 + 20.0 + 6.0, length=12.0, width=2.5, object_class=ObjectClass.TRUCK)
    (box,) = camera.render(_scene([truck]), 0).labels.boxes
    assert box.label_class == LabelClass.TRUCK
    assert box.bbox_xyxy[3] - box.bbox_xyxy[1] == pytest.approx(
        320.0 * meshes.TRUCK_HEIGHT_M / 20.0, abs=1.5
    )


def _highway_frame(seed: int, steps: int, randomised: bool = True):
    from bus import Bus
    from sim.simulator import SimConfig, Simulator

    simulator = Simulator(
        SimConfig(
            env_id="highway-fast-v0",
            camera=CameraConfig(),
            camera_randomization=RandomizationConfig(enabled=randomised),
        ),
        Bus(),
    )
    simulator.reset(seed)
    for _ in range(steps):
        simulator.step()
    frame = simulator.camera_frame(simulator.stamp_ns)
    simulator.close()
    return frame


def test_every_box_contains_its_rendered_pixels_and_counts_them():
    frame = _highway_frame(seed=3, steps=2)
    ids = frame.render.instance_ids
    assert len(frame.labels.boxes) >= 5
    classes = {box.label_class for box in frame.labels.boxes}
    assert {LabelClass.CAR, LabelClass.TRAFFIC_SIGN} <= classes
    for box in frame.labels.boxes:
        rows, cols = np.nonzero(ids == box.object_id)
        assert len(rows) == box.visible_px
        if len(rows) == 0:
            continue
        x0, y0, x1, y1 = box.bbox_xyxy
        assert cols.min() >= x0 and cols.max() + 1 <= x1, box
        assert rows.min() >= y0 and rows.max() + 1 <= y1, box
        # A tight box: an unoccluded object reaches every side.
        if box.visible_fraction == 1.0:
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)


def test_hidden_object_gets_a_low_visible_fraction():
    camera = _camera()
    truck = _vehicle(1, 1.0 + 12.0 + 6.0, length=12.0, width=2.5, object_class=ObjectClass.TRUCK)
    hidden_car = _vehicle(2, 1.0 + 40.0 + 2.5)
    half_hidden = _vehicle(3, 1.0 + 30.0 + 2.5, y=-2.5)
    boxes = {
        b.object_id: b
        for b in camera.render(_scene([truck, hidden_car, half_hidden]), 0).labels.boxes
    }
    assert boxes[1].visible_fraction == 1.0
    assert boxes[2].visible_fraction < 0.05
    assert 0.05 < boxes[3].visible_fraction < 0.95


def test_same_seed_renders_identical_frames_and_another_seed_does_not():
    first, again = _highway_frame(seed=5, steps=1), _highway_frame(seed=5, steps=1)
    other = _highway_frame(seed=6, steps=1)
    assert np.array_equal(first.pixels, again.pixels)
    assert first.labels == again.labels
    assert not np.array_equal(first.pixels, other.pixels)


def test_object_beside_and_behind_the_camera_is_clipped_not_smeared():
    camera = _camera()
    # A truck whose body runs from behind the camera to 6 m ahead, in the next lane.
    truck = _vehicle(4, 0.0, y=-3.5, length=14.0, width=2.5, object_class=ObjectClass.TRUCK)
    start = time.perf_counter()
    labels = camera.render(_scene([truck]), 0).labels
    assert time.perf_counter() - start < 1.0
    (box,) = labels.boxes
    assert box.truncation > 0.3
    assert box.bbox_xyxy[0] > 320.0  # on the right half only


def test_clip_near_keeps_the_part_in_front():
    square = np.array([[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, 3.0], [-1.0, 0.0, 3.0]])
    clipped = clip_near(square, 0.5)
    assert len(clipped) == 4
    assert clipped[:, 2].min() == pytest.approx(0.5)
    assert len(clip_near(square - [0, 0, 10], 0.5)) == 0


def test_lane_labels_lie_on_the_painted_lines():
    camera = _camera()
    frame = camera.render(_scene([]), 0)
    marking = frame.pixels.reshape(-1, 3).max(axis=0)  # the paint is the brightest ground
    lines = frame.labels.lane_lines
    assert [line.line_index for line in lines] == [0, 1, 2, 3]
    assert [line.kind for line in lines] == ["solid", "dashed", "dashed", "solid"]
    for line in lines:
        points = np.asarray(line.image_points)
        road = np.asarray(line.road_points)
        # Ego frame: boundaries at y = +6, +2, -2, -6 m, starting near the camera.
        assert road[:, 1] == pytest.approx(road[0, 1], abs=1e-6)
        assert road[0, 1] == pytest.approx(6.0 - 4.0 * line.line_index, abs=1e-6)
        if line.kind != "solid":
            continue
        # Where the paint is wider than 2 px, the label's pixels are paint.
        near = points[points[:, 1] > 180.0 + 320.0 * 1.4 / 15.0]
        cols, rows = near[:, 0].astype(int).clip(0, 639), near[:, 1].astype(int).clip(0, 359)
        colors = frame.pixels[rows, cols]
        assert len(near) >= 3
        assert np.all(np.abs(colors.astype(int) - marking).max(axis=1) < 40)
    assert DASHED_LINE_WIDTH_M > 0


def _landmark(shape: LandmarkShape) -> Landmark:
    return Landmark(
        landmark_id=30000,
        shape=shape,
        pose=Pose2D(0, 0, 0),
        length_m=6.0,
        width_m=5.0,
        height_m=9.0,
        colors_rgb=((200, 0, 0), (0, 0, 200)),
    )


def test_convex_templates_are_wound_outwards():
    """Back-face culling needs each polygon wound counter-clockwise seen from outside."""
    convex = [
        meshes.car_template(),
        meshes.landmark_template(_landmark(LandmarkShape.TOWER)),
        meshes.landmark_template(_landmark(LandmarkShape.SILO)),
    ]
    for template in convex:
        verts = meshes.place(template, np.zeros((1, 3)), np.array([[5.0, 2.0, 1.0]]))[0]
        centre = verts.mean(axis=0)
        for start, count, decal in zip(
            template.starts, template.counts, template.decals, strict=True
        ):
            polygon = verts[start : start + count]
            normal = sum(np.cross(polygon[i], polygon[(i + 1) % count]) for i in range(count))
            assert np.dot(normal, polygon.mean(axis=0) - centre) > 0 or decal


def test_detection_classes_match_the_detector():
    classes = pytest.importorskip("perception.classes")
    assert tuple(classes.CLASS_NAMES) == DETECTION_CLASSES


def test_simulator_publishes_camera_topics_before_the_ego():
    from bus import Bus
    from sim.simulator import SimConfig, Simulator

    bus = Bus()
    order: list[str] = []
    messages: dict[str, list] = {}
    for topic in (
        "/sim/lanes",
        "/sim/objects",
        "/camera/image",
        "/camera/truth",
        "/sim/ego",
        "/camera/info",
        "/sim/static",
    ):
        bus.subscribe(
            topic, lambda m, t=topic: (order.append(t), messages.setdefault(t, []).append(m))
        )
    simulator = Simulator(SimConfig(env_id="highway-fast-v0", camera=CameraConfig()), bus)
    simulator.reset(1)
    simulator.step()
    simulator.close()
    step = ["/sim/lanes", "/sim/objects", "/camera/image", "/camera/truth", "/sim/ego"]
    assert order == ["/sim/static", "/camera/info", *step, *step]
    image, truth = messages["/camera/image"][-1], messages["/camera/truth"][-1]
    assert image.header == truth.header and image.header.frame_id == "camera"
    assert image_array(image).shape == (360, 640, 3)
    info = messages["/camera/info"][0]
    assert info.width == 640 and abs(info.height_m - 1.4) <= 0.1 + 1e-9


def test_image_array_rejects_malformed_messages():
    good = Image(header=Header(stamp_ns=0), height=2, width=3, data=bytes(18))
    assert image_array(good).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="expected 18"):
        image_array(Image(header=Header(stamp_ns=0), height=2, width=3, data=bytes(17)))
    with pytest.raises(ValueError, match="encoding"):
        image_array(Image(header=Header(stamp_ns=0), height=2, width=3, encoding="mono8"))


def test_lane_lines_follow_a_curved_road():
    radius_m = 200.0
    angles = np.arange(-0.25, 1.0, 10.0 / radius_m)
    lanes = []
    for index, offset in enumerate((2.0, -2.0)):  # left lane, right lane; curving left
        r = radius_m - offset
        centre = tuple((float(r * np.sin(a)), float(radius_m - r * np.cos(a))) for a in angles)
        lanes.append(
            Lane(
                lane_index=index,
                centerline=centre,
                width_m=LANE_WIDTH_M,
                speed_limit_mps=30.0,
                left_line="solid" if index == 0 else "dashed",
                right_line="solid" if index == 1 else "none",
            )
        )
    geometry = LaneGeometry(header=Header(stamp_ns=0), lanes=tuple(lanes))
    labels = _camera().render(_scene([], geometry), 0).labels
    assert len(labels.lane_lines) == 3
    for line in labels.lane_lines:
        road = np.asarray(line.road_points)
        # Every point lies on its circle about (0, R) in the ego frame.
        radii = np.hypot(road[:, 0], road[:, 1] - radius_m)
        expected = radius_m - 4.0 + 4.0 * line.line_index
        # (within the sag of the simulator's 10 m chords: 10^2 / (8 R) = 0.06 m)
        np.testing.assert_allclose(radii, expected, atol=0.1)
    # The line under the camera runs up the image and bends left (a straight one would not).
    middle = np.asarray(labels.lane_lines[1].image_points)
    assert middle[0, 0] == pytest.approx(320.0, abs=15.0)  # 10 m chords sag 0.06 m
    assert middle[-1, 0] < middle[0, 0] - 50.0


def test_objects_behind_or_beyond_range_are_culled():
    camera = _camera()
    behind = _vehicle(1, -10.0)
    too_far = _vehicle(2, 1.0 + FLAT.far_m + 20.0)
    in_range = _vehicle(3, 1.0 + FLAT.far_m - 20.0)
    ids = {b.object_id for b in camera.render(_scene([behind, too_far, in_range]), 0).labels.boxes}
    assert ids == {3}


def test_near_speed_limit_plate_shows_its_number_on_its_own_pixels():
    from bus.messages import SignType, StaticWorld, TrafficSign
    from sim.camera.plates import speed_limit_text

    assert speed_limit_text(30.0) == "110" and speed_limit_text(27.78) == "100"

    def render(limit_mps: float):
        sign = TrafficSign(
            sign_id=20000,
            sign_type=SignType.SPEED_LIMIT,
            pose=Pose2D(9.0, -4.0, math.pi),
            plate_size_m=0.9,
            plate_center_height_m=2.4,
            speed_limit_mps=limit_mps,
        )
        scene = _scene([])
        static = StaticWorld(header=Header(stamp_ns=0), signs=(sign,))
        return _camera().render(SceneInput(scene.ego, scene.objects, scene.lanes, static), 0)

    with_number, blank = render(30.0), render(0.0)
    changed = np.any(with_number.pixels != blank.pixels, axis=2)
    assert changed.sum() > 30
    assert np.all(with_number.render.instance_ids[changed] == 20000)
    # The labels differ only by the number the plate shows.
    (sign_box,) = [b for b in with_number.labels.boxes if b.object_id == 20000]
    (blank_box,) = [b for b in blank.labels.boxes if b.object_id == 20000]
    assert sign_box.speed_limit_kph == 110 and blank_box.speed_limit_kph == 0
    assert msgspec.structs.replace(sign_box, speed_limit_kph=0) == blank_box


def _published_images(seed: int, steps: int, video_dir=None) -> list[bytes]:
    """``/camera/image`` pixels of ``steps`` control steps, with or without a camera video
    rendering every simulation frame in between."""
    from bus import Bus
    from sim.camera.video import CameraVideoRecorder
    from sim.simulator import SimConfig, Simulator

    bus = Bus()
    images: list[bytes] = []
    bus.subscribe("/camera/image", lambda image: images.append(image.data))
    simulator = Simulator(SimConfig(env_id="highway-fast-v0", camera=CameraConfig()), bus)
    video = CameraVideoRecorder(simulator, video_dir, 0) if video_dir else None
    simulator.reset(seed)
    for _ in range(steps):
        simulator.step()
    if video:
        assert video.frames > steps + 1  # it did render the intermediate frames
        video.close()
    simulator.close()
    return images


def test_a_camera_video_does_not_change_the_published_images(tmp_path):
    plain = _published_images(seed=4, steps=2)
    with_video = _published_images(seed=4, steps=2, video_dir=tmp_path)
    assert len(plain) == 3
    assert all(a == b for a, b in zip(plain, with_video, strict=True))
    assert plain[1] != plain[2]  # noise and scene do change from frame to frame


def test_video_frame_of_a_control_step_is_the_published_image():
    from bus import Bus
    from sim.simulator import SimConfig, Simulator

    bus = Bus()
    images: list[Image] = []
    bus.subscribe("/camera/image", images.append)
    simulator = Simulator(SimConfig(env_id="highway-fast-v0", camera=CameraConfig()), bus)
    simulator.reset(2)
    simulator.step()
    frame = simulator.camera_frame(simulator.stamp_ns)
    simulator.close()
    assert frame.image.data == images[-1].data
