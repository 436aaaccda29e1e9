"""Our YOLO weights: safe export/load round trip, refusal of pickles and foreign classes,
COCO head rows mapped onto ours for fine-tuning, and train-detector's input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perception.classes import BOX_CLASS_NAMES, COCO80_NAMES
from perception.yolo_detector import (
    UntrustedWeightsError,
    YoloDetector,
    build_model,
    export_safe_weights,
    letterbox,
)
from sim.cli import main

MODEL_YAML = "yolov8n.yaml"
COCO_ROWS_COPIED = [
    "car -> car",
    "truck -> truck",
    "person -> pedestrian",
    "stop sign -> traffic_sign",
]
"""The COCO rows that start our classes: the nearest class mapping onto each."""


@pytest.fixture(scope="module")
def nano_model():
    return build_model(MODEL_YAML, 4)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory, nano_model) -> Path:
    path = tmp_path_factory.mktemp("w") / "detector.pt"
    export_safe_weights(nano_model, list(BOX_CLASS_NAMES), MODEL_YAML, 160, path)
    return path


def test_safe_weights_round_trip_and_detect(random_weights):
    detector = YoloDetector(random_weights, conf=0.0)
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)

    detections = detector.detect(image)

    assert detections.boxes_xyxy.dtype == np.float32
    assert np.all(detections.boxes_xyxy[:, 2] <= 160) and np.all(detections.boxes_xyxy[:, 3] <= 90)
    assert set(detections.class_ids.tolist()) <= {0, 1, 2, 3}
    state = torch.load(random_weights, weights_only=True)
    assert state["names"] == list(BOX_CLASS_NAMES)


def test_loading_the_detector_prints_no_ultralytics_notice(random_weights):
    import logging

    from ultralytics.utils import LOGGER

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    LOGGER.addHandler(handler)
    level = LOGGER.level
    try:
        YoloDetector(random_weights, conf=0.25)
    finally:
        LOGGER.removeHandler(handler)
    assert not [r.getMessage() for r in records if "Overriding" in r.getMessage()]
    assert LOGGER.level == level  # quiet only around our call


def test_pickled_module_is_refused_without_trust(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(UntrustedWeightsError, match="best.pt.*--trust-weights"):
        YoloDetector(path)


def test_foreign_class_names_are_refused(tmp_path, nano_model):
    path = tmp_path / "odd.pt"
    export_safe_weights(nano_model, ["car", "dragon", "truck", "person"], MODEL_YAML, 160, path)
    with pytest.raises(ValueError, match="odd.pt.*dragon"):
        YoloDetector(path)


def test_letterbox_keeps_aspect_and_pads_to_stride():
    blob, scale, (pad_x, pad_y) = letterbox(np.zeros((360, 640, 3), np.uint8), 416)
    assert blob.shape == (1, 3, 256, 416)
    assert scale == pytest.approx(0.65)
    assert pad_x == 0 and pad_y == pytest.approx(11.0, abs=1)


@pytest.mark.slow
def test_coco_head_rows_start_our_classes():
    from perception.detector_training import transfer_class_rows

    # yolov8s: its hidden class layers are 128 wide for any class count, so rows transfer.
    coco = build_model("yolov8s.yaml", 80)
    ours = build_model("yolov8s.yaml", 4)
    copied = transfer_class_rows(coco.model[-1], ours.model[-1], list(COCO80_NAMES))

    assert copied == COCO_ROWS_COPIED
    source = coco.model[-1].cv3[0][-1]
    target = ours.model[-1].cv3[0][-1]
    assert torch.equal(target.weight[0], source.weight[COCO80_NAMES.index("car")])
    assert torch.equal(target.bias[2], source.bias[COCO80_NAMES.index("person")])


@pytest.mark.slow
def test_nano_heads_take_the_coco_class_layers_and_rows(tmp_path, nano_model):
    import copy

    from perception.detector_training import transfer_class_rows
    from perception.yolo_detector import (
        adopt_class_layers,
        load_safe_weights,
        model_from_safe_weights,
    )

    coco = build_model(MODEL_YAML, 80)  # hidden class layers 80 wide; ours (4 classes) 64
    ours = copy.deepcopy(nano_model)
    assert transfer_class_rows(coco.model[-1], ours.model[-1], list(COCO80_NAMES)) == []

    assert adopt_class_layers(ours.model[-1], coco.model[-1])
    copied = transfer_class_rows(coco.model[-1], ours.model[-1], list(COCO80_NAMES))
    assert copied == COCO_ROWS_COPIED
    for source, target in zip(coco.model[-1].cv3, ours.model[-1].cv3, strict=True):
        assert target[-1].weight.shape == (4, 80, 1, 1)
        hidden, source_hidden = target[:-1].state_dict(), source[:-1].state_dict()
        assert all(torch.equal(hidden[k], source_hidden[k]) for k in source_hidden)
        assert torch.equal(target[-1].weight[2], source[-1].weight[COCO80_NAMES.index("person")])
    assert not adopt_class_layers(ours.model[-1], coco.model[-1])  # already as wide

    # The wider head survives export and loading.
    path = tmp_path / "wide.pt"
    export_safe_weights(ours, list(BOX_CLASS_NAMES), MODEL_YAML, 160, path)
    loaded = model_from_safe_weights(load_safe_weights(path)).eval()
    ours.eval()
    image = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        expected, got = ours(image)[0], loaded(image)[0]
    torch.testing.assert_close(got, expected, atol=0.05, rtol=0.05)  # float16 storage


def test_weights_with_class_layers_no_head_builds_are_refused(tmp_path, nano_model):
    from perception.yolo_detector import load_safe_weights, model_from_safe_weights

    path = tmp_path / "odd.pt"
    export_safe_weights(nano_model, list(BOX_CLASS_NAMES), MODEL_YAML, 160, path)
    payload = load_safe_weights(path)
    key = next(k for k in payload["state_dict"] if ".cv3.0.2.weight" in k)
    for width in (32, 5000):
        payload["state_dict"][key] = torch.zeros(4, width, 1, 1, dtype=torch.float16)
        with pytest.raises(ValueError, match=f"{width} wide"):
            model_from_safe_weights(payload)


def test_train_detector_rejects_foreign_datasets(tmp_path, capsys):
    (tmp_path / "data.yaml").write_text(
        "path: .\ntrain: images\nval: images\nnames:\n  0: cat\n  1: dog\n"
    )
    assert main(["train-detector", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "data.yaml" in capsys.readouterr().err
    assert (
        main(["train-detector", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        main(["train-detector", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "has no data.yaml" in capsys.readouterr().err


def test_train_detector_names_an_empty_split_before_training(tmp_path, capsys):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "train" / "a.jpg").write_bytes(b"")
    (tmp_path / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\n"
        "names:\n  0: car\n  1: truck\n  2: pedestrian\n  3: traffic_sign\n"
    )
    assert main(["train-detector", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "val split" in error and "has no images" in error
    assert not (tmp_path / "o").exists()


def test_fine_tuning_needs_trust(tmp_path, capsys):
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(BOX_CLASS_NAMES))
    (tmp_path / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames:\n{names}")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "coco.pt")  # a pickle, as ultralytics saves
    code = main(
        [
            "train-detector",
            "--data",
            str(tmp_path),
            "--weights",
            str(tmp_path / "coco.pt"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "--trust-weights" in capsys.readouterr().err


def test_fine_tuning_starts_from_drivestack_weights_without_trust(random_weights, nano_model):
    from perception.detector_training import load_source_model
    from perception.yolo_detector import is_safe_weights

    assert is_safe_weights(random_weights)
    source = load_source_model(random_weights)
    expected = nano_model.state_dict()
    for name, tensor in source.state_dict().items():
        if tensor.is_floating_point():
            # The file stores float16.
            torch.testing.assert_close(tensor.float(), expected[name].float(), atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("kind", ["text", "random", "truncated", "foreign_state_dict", "directory"])
def test_fine_tuning_refuses_broken_weights_without_suggesting_trust(
    tmp_path, capsys, random_weights, kind
):
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(BOX_CLASS_NAMES))
    (tmp_path / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames:\n{names}")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    weights = tmp_path / "w.pt"
    if kind == "text":
        weights.write_text("not weights")
    elif kind == "random":
        weights.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "truncated":
        weights.write_bytes(random_weights.read_bytes()[:20000])
    elif kind == "foreign_state_dict":
        torch.save({"layer.weight": torch.zeros(2, 2)}, weights)
    else:
        weights.mkdir()
    out = tmp_path / "o"
    code = main(
        ["train-detector", "--data", str(tmp_path), "--weights", str(weights), "--out", str(out)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "w.pt" in err
    assert "--trust-weights" not in err
    assert not out.exists()


def test_hyp_settings_are_read_and_checked():
    from perception.detector_training import parse_hyp

    assert parse_hyp(["scale=0.25", "optimizer=SGD", "close_mosaic=1", "cos_lr=true"]) == (
        ("close_mosaic", 1),
        ("cos_lr", True),
        ("optimizer", "SGD"),
        ("scale", 0.25),
    )
    assert parse_hyp(["lr0=1e-3"]) == (("lr0", 0.001),)
    for item, says in [
        ("scale", "KEY=VALUE"),
        ("=3", "KEY=VALUE"),
        ("no_such_setting=1", "no training setting"),
        ("epochs=3", "set by train-detector"),
        ("device=0", "set by train-detector"),
        ("lr0=inf", "finite"),
        ("lr0=nan", "finite"),
        ("lr0=abc", "invalid type"),
        ("lr0=[1, 2]", "invalid type"),
        ("lr0=-1", "between 0.0 and 1.0"),
        ("lr0=true", "takes a float"),
        ("cos_lr=3", "takes a bool"),
    ]:
        with pytest.raises(ValueError, match=says) as caught:
            parse_hyp([item])
        assert repr(item) in str(caught.value)


def test_train_detector_refuses_an_unknown_hyp_before_training(tmp_path, capsys):
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(BOX_CLASS_NAMES))
    (tmp_path / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames:\n{names}")
    out = tmp_path / "o"
    code = main(
        ["train-detector", "--data", str(tmp_path), "--hyp", "scael=0.3", "--out", str(out)]
    )
    assert code == 2
    assert "scael" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"names": ["car"] * 2_000_000}, "names"),
        ({"names": [1, 2, 3, 4]}, "names"),
        ({"imgsz": 20000}, "imgsz"),
        ({"imgsz": 0}, "imgsz"),
        ({"model_yaml": "/etc/passwd"}, "model_yaml"),
        ({"model_yaml": "../x.yaml"}, "model_yaml"),
        ({"state_dict": {}}, "state_dict"),
        ("nan", "NaN"),
        ("missing", "do not fit"),
        ({"model_yaml": "yolo11n-cls.yaml"}, "not a detector"),
        ({"names": ["car", "truck"]}, "do not fit"),
    ],
)
def test_crafted_weights_are_refused_by_name(tmp_path, random_weights, change, says):
    payload = torch.load(random_weights, weights_only=True)
    if change == "nan":
        key = next(iter(payload["state_dict"]))
        payload["state_dict"][key] = torch.full_like(payload["state_dict"][key], float("nan"))
    elif change == "missing":
        payload["state_dict"].pop(next(iter(payload["state_dict"])))
    else:
        payload.update(change)
    path = tmp_path / "crafted.pt"
    torch.save(payload, path)
    with pytest.raises(ValueError, match=says) as caught:
        YoloDetector(path)
    assert "crafted.pt" in str(caught.value)


def test_zoomed_yolo_detector_gives_the_same_boxes_in_parallel(random_weights):
    from perception.zoom import ZoomedDetector

    detector = YoloDetector(random_weights, conf=0.0)
    image = np.random.default_rng(1).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    sequential = ZoomedDetector(detector).detect(image)
    parallel = ZoomedDetector(detector, parallel=True)
    for _ in range(3):  # both looks at once, with input sizes that differ
        found = parallel.detect(image)
        np.testing.assert_allclose(found.boxes_xyxy, sequential.boxes_xyxy, atol=1e-3)
    assert len(sequential) > 0
