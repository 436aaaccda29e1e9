"""ByteTrack over constructed box sequences: stable ids, ids kept over short gaps, and
road-frame velocities of the right sign and size."""

from __future__ import annotations

import numpy as np
import pytest

from perception.detector import Detections
from perception.node import PerceptionNode
from perception.tracker import Tracker, TrackerConfig
from tests.perception.test_node import CAR_ID, BoxDetector, _render

FRAME_S = 0.1
CAR, PEDESTRIAN = 0, 2


def _frame(boxes_xyxy, class_ids, score: float = 0.9) -> Detections:
    boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    return Detections(boxes, np.full(len(boxes), score, np.float32), np.asarray(class_ids))


def _moving_boxes(step: int) -> list[list[float]]:
    """Three boxes: one drifting right, one growing (approaching), one still."""
    return [
        [100 + 6 * step, 200, 160 + 6 * step, 240],
        [300 - 2 * step, 180 - step, 340 + 2 * step, 210 + step],
        [500, 150, 520, 200],
    ]


def _track(tracker: Tracker, detections: Detections, step: int):
    positions = np.full((len(detections), 2), np.nan)
    return tracker.update(detections, positions, step * FRAME_S)


def test_ids_stay_stable_over_moving_boxes():
    tracker = Tracker()
    ids_per_box: list[set[int]] = [set(), set(), set()]
    for step in range(12):
        # The detector's output order changes from frame to frame; ids must not.
        order = np.roll(np.arange(3), step)
        boxes = np.array(_moving_boxes(step))[order]
        tracks = _track(tracker, _frame(boxes, np.array([CAR, CAR, PEDESTRIAN])[order]), step)
        assert len(tracks) == 3
        for track in tracks:
            ids_per_box[int(order[track.detection_index])].add(track.track_id)

    assert all(len(ids) == 1 for ids in ids_per_box)
    assert len(set.union(*ids_per_box)) == 3


@pytest.mark.parametrize("gap_frames", [1, 3])
def test_a_box_missing_for_a_few_frames_keeps_its_id(gap_frames):
    tracker = Tracker(TrackerConfig(max_lost_frames=5))
    seen: dict[int, list[int]] = {0: [], 1: []}
    for step in range(10 + gap_frames):
        boxes = _moving_boxes(step)[:2]
        visible = [0, 1] if not 4 <= step < 4 + gap_frames else [1]
        tracks = _track(tracker, _frame([boxes[i] for i in visible], [CAR] * len(visible)), step)
        for track in tracks:
            seen[visible[track.detection_index]].append(track.track_id)

    assert len(set(seen[0])) == 1
    assert len(seen[0]) == 10  # published in every frame it was detected
    assert set(seen[0]) != set(seen[1])


def test_a_track_lost_longer_than_its_buffer_gets_a_new_id():
    tracker = Tracker(TrackerConfig(max_lost_frames=2))
    box = [[100, 200, 160, 240]]
    first = _track(tracker, _frame(box, [CAR]), 0)[0].track_id
    for step in range(1, 6):
        _track(tracker, _frame([], []), step)
    for step in range(6, 8):
        later = _track(tracker, _frame(box, [CAR]), step)

    assert later[0].track_id != first


def test_low_score_detections_extend_a_track_but_start_none():
    tracker = Tracker(TrackerConfig(high_score=0.5, low_score=0.1))
    box = [[100, 200, 160, 240]]
    first = _track(tracker, _frame(box, [CAR], score=0.9), 0)[0].track_id
    weak = _track(tracker, _frame(box, [CAR], score=0.3), 1)
    alone = Tracker(TrackerConfig(high_score=0.5, low_score=0.1))

    assert [t.track_id for t in weak] == [first]
    assert _track(alone, _frame(box, [CAR], score=0.3), 0) == []


def test_velocity_from_road_positions():
    tracker = Tracker(TrackerConfig(velocity_smoothing=0.5))
    box = np.array([[100, 200, 160, 240]], np.float32)
    for step in range(5):
        position = np.array([[30.0 - 4.0 * step * FRAME_S, 3.0]])  # closing at 4 m/s
        tracks = tracker.update(_frame(box + step, [CAR]), position, step * FRAME_S)

    assert tracks[0].velocity_mps[0] == pytest.approx(-4.0, abs=1e-6)
    assert tracks[0].velocity_mps[1] == pytest.approx(0.0, abs=1e-6)


def test_reset_restarts_ids():
    tracker = Tracker()
    box = [[100, 200, 160, 240]]
    _track(tracker, _frame([[10, 10, 40, 40], *box], [CAR, CAR]), 0)
    tracker.reset()
    assert _track(tracker, _frame(box, [CAR]), 0)[0].track_id == 1


def test_node_estimates_the_closing_speed_of_an_approaching_car():
    """A rendered car 2.5 m closer every 0.5 s: the node keeps one id and reports about
    -5 m/s relative to the ego, and the ego's speed added for the absolute velocity."""
    from bus.messages import Pose2D
    from tests.factories import make_ego

    detector = BoxDetector()
    node = PerceptionNode(detector)
    ego_speed_mps = 25.0
    ego = make_ego(Pose2D(0.0, 0.0, 0.0), speed_mps=ego_speed_mps)
    ids, objects = set(), None
    for step in range(6):
        stamp_ns = step * 500_000_000
        frame, info = _render(40.0 - 2.5 * step, stamp_ns=stamp_ns)
        detector.boxes = [next(b for b in frame.labels.boxes if b.object_id == CAR_ID).bbox_xyxy]
        objects = node.step({"/camera/image": frame.image, "/camera/info": info, "/sim/ego": ego})[
            "/perception/objects"
        ]
        ids.update(o.object_id for o in objects.objects)

    assert len(ids) == 1
    car = objects.objects[0]
    assert car.ego_velocity_mps.x == pytest.approx(-5.0, rel=0.15)
    assert abs(car.ego_velocity_mps.y) < 0.5
    assert car.velocity_mps.x == pytest.approx(ego_speed_mps - 5.0, rel=0.05)


def _pedestrian_box(distance_m: float) -> list[float]:
    """The box of a 1.7 m pedestrian standing 6 m right of the road centre, seen from 1.5 m
    up by a camera of focal length 457 px centred at (320, 180)."""
    focal, height_m, offset_m = 457.0, 1.7, 6.0
    u = 320 + focal * offset_m / distance_m
    bottom = 180 + focal * 1.5 / distance_m
    top = bottom - focal * height_m / distance_m
    half_width = focal * 0.3 / distance_m
    return [u - half_width, top, u + half_width, bottom]


@pytest.mark.parametrize("ego_speed", [None, 25.0])
def test_a_roadside_pedestrian_keeps_its_id_at_one_frame_a_second(ego_speed):
    """At 25 m/s and 1 Hz a standing pedestrian comes 25 m closer between frames: its boxes
    do not overlap. With the ego speed, the road-frame prediction keeps its id."""
    tracker = Tracker()
    ids = []
    for step, distance in enumerate([80.0, 55.0, 30.0]):
        detections = _frame([_pedestrian_box(distance)], [PEDESTRIAN])
        tracks = tracker.update(detections, np.array([[distance, -6.0]]), float(step), ego_speed)
        ids += [t.track_id for t in tracks]
    boxes = np.array([_pedestrian_box(d) for d in (80.0, 55.0)])
    assert boxes[0, 2] < boxes[1, 0] or boxes[0, 3] < boxes[1, 1] or _iou(*boxes) < 0.1
    kept = len(ids) == 3 and len(set(ids)) == 1  # published on every frame under one id
    assert kept == (ego_speed is not None)  # image overlap alone cannot follow it


def _iou(a, b) -> float:
    from perception.detector import box_iou

    return float(box_iou(np.array([a], np.float32), np.array([b], np.float32))[0, 0])
