"""Label readers and writers: the real KITTI samples, YOLO round trips, COCO files, and
errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perception.classes import CLASS_IDS
from perception.labels import (
    IGNORE_CLASS_ID,
    BoxLabels,
    LabelFormatError,
    match_frames,
    read_coco_json,
    read_kitti_label,
    read_labels,
    read_yolo_txt,
    write_yolo_txt,
)


def test_kitti_samples_read_with_classes_and_ignore_regions(shared_dir):
    labels = read_labels(shared_dir / "data/images/kitti_object/label_2")

    assert labels.format == "kitti"
    assert sorted(labels.frames) == ["000000", "000001", "000002", "000008"]
    frame_8 = labels.frames["000008"]
    assert np.sum(frame_8.class_ids == CLASS_IDS["car"]) == 6
    assert np.sum(frame_8.class_ids == IGNORE_CLASS_ID) == 4
    # 000001: Truck, Car, Cyclist (dropped), 4 DontCare
    assert sorted(labels.frames["000001"].class_ids.tolist()) == [-1, -1, -1, -1, 0, 1]
    pedestrian = labels.frames["000000"].to_pixels(1224, 370)
    assert pedestrian.class_ids.tolist() == [CLASS_IDS["pedestrian"]]
    np.testing.assert_allclose(
        pedestrian.boxes_xyxy[0], [712.40, 143.00, 810.73, 307.92], atol=1e-3
    )


def test_yolo_round_trip_in_pixels(tmp_path):
    boxes = np.array([[10, 20, 50, 60], [0, 0, 160, 96]], np.float32)
    labels = BoxLabels(boxes, np.array([0, 3]))
    write_yolo_txt(tmp_path / "a.txt", labels, 160, 96)

    back = read_yolo_txt(tmp_path / "a.txt").to_pixels(160, 96)

    np.testing.assert_allclose(back.boxes_xyxy, boxes, atol=1e-3)
    assert back.class_ids.tolist() == [0, 3]


def test_yolo_with_coco_names_maps_to_ours(tmp_path):
    (tmp_path / "classes.txt").write_text("person\nbicycle\nbus\n")
    (tmp_path / "f.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n2 0.3 0.3 0.1 0.1\n")

    labels = read_labels(tmp_path)

    assert labels.format == "yolo"
    assert labels.frames["f"].class_ids.tolist() == [CLASS_IDS["pedestrian"], CLASS_IDS["truck"]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", "expected 'CLASS CX CY W H'"),
        ("9 0.5 0.5 0.2 0.2", "class index '9'"),
        ("0 0.5 abc 0.2 0.2", "expected numbers"),
        ("0 0.5 0.5 1.7 0.2", "box 0.5 0.5 1.7 0.2 is not normalised"),
        ("0 0.5 nan 0.2 0.2", "non-finite"),
    ],
)
def test_malformed_yolo_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "000003.txt"
    path.write_text("1 0.5 0.5 0.2 0.2\n" + line + "\n")
    with pytest.raises(LabelFormatError, match=rf"000003\.txt:2: {message}"):
        read_yolo_txt(path)


def test_unknown_yolo_class_name(tmp_path):
    (tmp_path / "classes.txt").write_text("car\nunicorn\n")
    (tmp_path / "f.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(LabelFormatError, match="unicorn"):
        read_labels(tmp_path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "Spaceship 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01",
            "unknown KITTI type 'Spaceship'",
        ),
        ("Car 0.00 0 -0.20 712.40 143.00 810.73", "expected 15 or 16 KITTI fields"),
        (
            "Car 0.00 0 -0.20 712.40 143.00 x 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01",
            "KITTI field 'x2' is not a number: 'x'",
        ),
        (
            "Car 0.00 0 abc 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01",
            "KITTI field 'alpha' is not a number: 'abc'",
        ),
        (
            "Car 0.00 partly -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01",
            "KITTI field 'occluded' is not a number: 'partly'",
        ),
        (
            "Car 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01 high",
            "KITTI field 'score' is not a number: 'high'",
        ),
        (
            "Car 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 nan",
            "KITTI field 'rotation_y' is not finite: 'nan'",
        ),
        (
            "Car 0.00 0 -0.20 812.40 143.00 710.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01",
            "box corners .* are not x1<=x2",
        ),
    ],
)
def test_malformed_kitti_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "000007.txt"
    path.write_text(line + "\n")
    with pytest.raises(LabelFormatError, match=rf"000007\.txt:1: {message}"):
        read_kitti_label(path)


def _coco(tmp_path, annotations, categories=({"id": 3, "name": "car"},)):
    path = tmp_path / "gt.json"
    path.write_text(
        json.dumps(
            {
                "images": [
                    {"id": 7, "file_name": "dir/frame_0001.jpg", "width": 100, "height": 50}
                ],
                "annotations": annotations,
                "categories": list(categories),
            }
        )
    )
    return path


def test_coco_json_reads_boxes_in_pixels_and_crowd_as_ignore(tmp_path):
    path = _coco(
        tmp_path,
        [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 5, 20, 10]},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [50, 5, 20, 10], "iscrowd": 1},
        ],
    )
    labels = read_coco_json(path).frames["frame_0001"].to_pixels(100, 50)
    np.testing.assert_allclose(labels.boxes_xyxy, [[10, 5, 30, 15], [50, 5, 70, 15]])
    assert labels.class_ids.tolist() == [CLASS_IDS["car"], IGNORE_CLASS_ID]


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ({"id": 1, "image_id": 8, "category_id": 3, "bbox": [1, 1, 2, 2]}, "image_id 8"),
        ({"id": 1, "image_id": 7, "category_id": 4, "bbox": [1, 1, 2, 2]}, "category_id 4"),
        ({"id": 1, "image_id": 7, "category_id": 3}, "malformed annotation"),
    ],
)
def test_malformed_coco_annotation_names_file_and_entry(tmp_path, annotation, message):
    with pytest.raises(LabelFormatError, match=rf"gt\.json: annotations\[0\].*{message}"):
        read_coco_json(_coco(tmp_path, [annotation]))


def test_not_json_is_a_clear_error(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text("{not json")
    with pytest.raises(LabelFormatError, match="gt.json: not valid JSON"):
        read_labels(path)


def test_frames_match_by_stem_or_trailing_number(tmp_path):
    for name in ("000000", "000002"):
        (tmp_path / f"{name}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    labels = read_labels(tmp_path)

    assert sorted(match_frames(labels, ["frame_0", "frame_1", "frame_2"])) == [0, 2]
    with pytest.raises(LabelFormatError, match="000002.txt"):
        match_frames(labels, ["000000", "000001"])


def test_labels_named_like_frames_are_never_matched_by_number(tmp_path):
    """--max-frames reads only some frames: the labels of the others must be left out,
    not given to a read frame whose name ends in the same number."""
    for name in ("e000001_0000", "e000001_0001", "e000003_0000"):
        (tmp_path / f"{name}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    labels = read_labels(tmp_path)
    matched = match_frames(labels, ["e000001_0000", "e000001_0001"], strict=False)
    assert {i: Path(f.source).stem for i, f in matched.items()} == {
        0: "e000001_0000",
        1: "e000001_0001",
    }
