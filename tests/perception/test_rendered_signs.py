"""Rendered sign crops: plates cut from labelled simulated frames, their class names, the
split they keep, and what malformed datasets get."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from perception.geometry import plate_box
from perception.rendered_signs import (
    RenderedSignConfig,
    load_rendered_signs,
    merge_with_rendered,
    rendered_class_name,
)
from perception.sign_training import holdout_split
from perception.signs import SignDataset


def test_plate_box_is_the_top_of_a_sign_on_its_pole():
    # A plate 20 px wide on a pole: 20 x 62 px box.
    np.testing.assert_allclose(plate_box(np.array([100, 50, 120, 112])), [100, 50, 120, 70])
    # Seen at an angle the plate is narrower than tall: the top third is kept.
    np.testing.assert_allclose(plate_box(np.array([0, 0, 10, 60])), [0, 0, 10, 0.32 * 60])
    # A plate-only box (real crops, COCO stop signs) is kept whole.
    np.testing.assert_allclose(plate_box(np.array([5, 5, 35, 38])), [5, 5, 35, 38])


def test_class_names_of_simulated_signs():
    assert rendered_class_name("speed_limit", 110) == "speed limit 110"
    assert rendered_class_name("speed_limit", 0) is None  # a plate without its number
    assert rendered_class_name("stop", 0) == "stop"
    assert rendered_class_name("no_overtaking", 0) == "no overtaking"
    assert rendered_class_name("roundabout", 0) is None


def _box(cls, xyxy, sign_type="", kph=0, visible=1.0, truncation=0.0):
    return {
        "object_id": 1,
        "class": cls,
        "bbox_xyxy": list(xyxy),
        "visible_fraction": visible,
        "truncation": truncation,
        "distance_m": 20.0,
        "visible_px": 100,
        "sign_type": sign_type,
        "speed_limit_kph": kph,
    }


def _write_frame(root, split, name, boxes):
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
    image = np.full((360, 640, 3), 90, np.uint8)
    for box in boxes:
        x0, y0, x1, _ = (int(v) for v in box["bbox_xyxy"])
        cv2.circle(image, ((x0 + x1) // 2, y0 + (x1 - x0) // 2), (x1 - x0) // 2, (0, 0, 220), -1)
    cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), image)
    (root / "annotations" / split / f"{name}.json").write_text(json.dumps({"boxes": boxes}))


def test_rendered_crops_keep_readable_plates_and_their_split(tmp_path):
    _write_frame(
        tmp_path,
        "train",
        "a",
        [
            _box("traffic_sign", (100, 100, 130, 190), "speed_limit", 110),
            _box("traffic_sign", (200, 100, 230, 190), "stop"),
            _box("traffic_sign", (300, 100, 306, 118), "stop"),  # too small to read
            _box("traffic_sign", (400, 100, 430, 190), "yield", visible=0.5),  # half hidden
            _box("traffic_sign", (0, 100, 20, 190), "yield", truncation=0.3),  # cut by the edge
            _box("traffic_sign", (500, 100, 530, 190), "speed_limit", 0),  # blank plate
            _box("car", (200, 200, 300, 260)),
        ],
    )
    _write_frame(tmp_path, "val", "b", [_box("landmark", (50, 20, 90, 200))])
    crops = load_rendered_signs(tmp_path, RenderedSignConfig(negatives_per_frame=1))

    assert crops.images.shape[1:] == (32, 32, 3)
    signs = [(n, h) for n, h in zip(crops.names, crops.held_out, strict=True) if n]
    assert signs == [("speed limit 110", False), ("stop", False)]
    # The landmark top and one scenery patch per frame are "not a sign" (named "").
    assert crops.names.count("") == 3
    assert crops.held_out.sum() == 2  # the val frame's landmark and patch
    assert any(f.endswith("a.jpg#100,100,130,130") for f in crops.files)


def test_merged_classes_keep_the_real_indices(tmp_path):
    real = SignDataset(
        np.zeros((4, 32, 32, 3), np.uint8),
        np.array([0, 1, 1, 2]),
        ["non-sign", "stop", "speed limit 40"],
        ["a", "b", "c", "d"],
    )
    _write_frame(
        tmp_path,
        "val",
        "v",
        [
            _box("traffic_sign", (100, 100, 130, 190), "speed_limit", 110),
            _box("traffic_sign", (200, 100, 230, 190), "stop"),
        ],
    )
    crops = load_rendered_signs(tmp_path, RenderedSignConfig(negatives_per_frame=0))
    merged, fixed = merge_with_rendered(real, crops)

    assert merged.class_names == ["non-sign", "stop", "speed limit 40", "speed limit 110"]
    assert list(merged.labels) == [0, 1, 1, 2, 3, 1]
    assert list(fixed) == [-1, -1, -1, -1, 1, 1]
    split = holdout_split(merged.labels, 0.5, fixed)
    assert {4, 5} <= set(split.test) and not {4, 5} & set(split.train)


@pytest.mark.parametrize(
    "kind", ["empty", "bad_json", "bad_box", "no_image", "null_limit", "text_visible"]
)
def test_malformed_rendered_datasets_are_named(tmp_path, kind):
    if kind != "empty":
        _write_frame(tmp_path, "train", "a", [_box("traffic_sign", (100, 100, 130, 190), "stop")])
    annotation = tmp_path / "annotations" / "train" / "a.json"
    if kind == "bad_json":
        annotation.write_text("{not json")
    elif kind == "bad_box":
        annotation.write_text(json.dumps({"boxes": [{"bbox_xyxy": [1, 2, "x", 4]}]}))
    elif kind in ("null_limit", "text_visible"):
        box = _box("traffic_sign", (100, 100, 130, 190), "speed_limit", 110)
        box["speed_limit_kph" if kind == "null_limit" else "visible_fraction"] = (
            None if kind == "null_limit" else "high"
        )
        annotation.write_text(json.dumps({"boxes": [box]}))
    elif kind == "no_image":
        (tmp_path / "images" / "train" / "a.jpg").write_bytes(b"not a jpeg")
    error = OSError if kind in ("empty", "no_image") else ValueError
    with pytest.raises(error) as caught:
        load_rendered_signs(tmp_path)
    assert str(tmp_path) in str(caught.value)


@pytest.mark.slow
def test_shipped_classifier_reads_rendered_signs_of_new_episodes(tmp_path):
    """Episodes the shipped classifier was not trained on (its rendered crops came from
    seeds 30000 on): the plates of their signs, and scenery, are named right."""
    from perception.sign_training import predict
    from perception.signs import SignClassifier
    from sim.cli import main

    out = tmp_path / "signs"
    args = ["-q", "make-dataset", "--frames", "12", "--frames-per-episode", "4"]
    args += ["--interval-s", "0.4", "--only-with", "traffic_sign", "--only-with-height-px", "45"]
    args += ["--val-fraction", "0", "--seed", "60000", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    crops = load_rendered_signs(out)
    classifier = SignClassifier()
    index = {name: i for i, name in enumerate(classifier.class_names)} | {"": 0}
    truth = np.array([index[name] for name in crops.names])
    assert (truth > 0).sum() >= 5  # some signs, not only scenery
    accuracy = float(np.mean(predict(classifier.model, crops.images) == truth))
    assert accuracy >= 0.95


def test_plates_beyond_the_frame_and_large_minimum_sizes_do_not_crash(tmp_path):
    _write_frame(
        tmp_path,
        "train",
        "a",
        [
            _box("traffic_sign", (600, 100, 700, 400), "stop"),  # partly outside the frame
            _box("traffic_sign", (700, 100, 730, 190), "stop"),  # wholly outside
            _box("traffic_sign", (100, 100, 130, 190), "speed_limit", 10**30),  # absurd limit
            _box("traffic_sign", (200, 100, 230, 190), "yield"),
        ],
    )
    crops = load_rendered_signs(tmp_path, RenderedSignConfig(min_plate_px=16.0))
    assert sorted(n for n in crops.names if n) == ["stop", "yield"]
    with pytest.raises(OSError, match="no sign plate is large"):
        load_rendered_signs(tmp_path, RenderedSignConfig(min_plate_px=200.0))
