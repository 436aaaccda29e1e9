"""make-dataset (YOLO detection + lane labels, resumable) and the labelled camera video."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bus import Bus
from bus.messages.camera import DETECTION_CLASSES
from sim.camera import CameraConfig
from sim.camera.video import CameraVideoRecorder
from sim.cli import main
from sim.commands.make_dataset import split_of
from sim.simulator import SimConfig, Simulator


def _make(out: Path, frames: int, env: str = "highway-fast-v0", *extra: str) -> int:
    return main(
        [
            "-q",
            "make-dataset",
            "--env",
            env,
            "--frames",
            str(frames),
            "--out",
            str(out),
            "--seed",
            "7",
            "--frames-per-episode",
            "2",
            "--val-fraction",
            "0.5",
            "--no-progress",
            *extra,
        ]
    )


def _episode_of(path: Path) -> str:
    return path.stem.split("_")[0]


def test_split_is_by_episode_and_spreads_val_evenly():
    splits = [split_of(i, 0.2) for i in range(10)]
    assert splits.count("val") == 2 and splits[4] == splits[9] == "val"
    assert all(split_of(i, 0.0) == "train" for i in range(5))


def test_make_dataset_writes_yolo_files_and_lane_labels(tmp_path):
    assert _make(tmp_path, 8) == 0
    yaml = (tmp_path / "data.yaml").read_text()
    assert "train: images/train" in yaml and "val: images/val" in yaml
    assert all(f"{i}: {name}" in yaml for i, name in enumerate(DETECTION_CLASSES))

    images = {
        split: sorted((tmp_path / "images" / split).glob("*.jpg")) for split in ("train", "val")
    }
    assert len(images["train"]) == len(images["val"]) == 4
    train_episodes = {_episode_of(p) for p in images["train"]}
    assert train_episodes.isdisjoint({_episode_of(p) for p in images["val"]})

    boxes = 0
    for split, paths in images.items():
        for image_path in paths:
            image = cv2.imread(str(image_path))
            assert image.shape == (360, 640, 3)
            rows = (tmp_path / "labels" / split / f"{image_path.stem}.txt").read_text().split("\n")
            for row in filter(None, rows):
                values = row.split()
                assert int(values[0]) in range(4)
                assert all(0.0 <= float(v) <= 1.0 for v in values[1:]) and len(values) == 5
                boxes += 1
            segments = tmp_path / "lane_seg" / "labels" / split / f"{image_path.stem}.txt"
            lines = list(filter(None, segments.read_text().split("\n")))
            assert lines and all(line.split()[0] == "4" for line in lines)
            assert all(len(line.split()) % 2 == 1 and len(line.split()) >= 7 for line in lines)
            record = json.loads(
                (tmp_path / "annotations" / split / f"{image_path.stem}.json").read_text()
            )
            assert record["width"] == 640 and record["lane_lines"]
            assert all(0.0 <= b["visible_fraction"] <= 1.0 for b in record["boxes"])
    assert boxes >= 8
    lane_images = sorted((tmp_path / "lane_seg" / "images" / "train").glob("*.jpg"))
    assert [p.name for p in lane_images] == [p.name for p in images["train"]]
    assert lane_images[0].read_bytes() == images["train"][0].read_bytes()
    summary = json.loads((tmp_path / "dataset.json").read_text())
    assert summary["frames"] == 8 and summary["splits"]["val"]["frames"] == 4
    _check_coco(tmp_path)


def _check_coco(root: Path) -> None:
    """coco/SPLIT.json holds the YOLO boxes as annotations and the boxes left out of them
    as crowd regions, and reads back as labels with ignore regions."""
    from perception.labels import IGNORE_CLASS_ID, read_labels

    for split in ("train", "val"):
        coco = json.loads((root / "coco" / f"{split}.json").read_text())
        stems = sorted(Path(i["file_name"]).stem for i in coco["images"])
        assert stems == sorted(p.stem for p in (root / "images" / split).glob("*.jpg"))
        yolo_rows = (
            sum(
                len((root / "labels" / split / f"{stem}.txt").read_text().split()) for stem in stems
            )
            // 5
        )
        kept = [a for a in coco["annotations"] if not a["iscrowd"]]
        assert len(kept) == yolo_rows
        for annotation in coco["annotations"]:
            if annotation["iscrowd"]:
                assert annotation["bbox"][3] < 4.0 or _visible(root, split, coco, annotation) < 0.25
        labels = read_labels(root / "coco" / f"{split}.json")
        crowd = sum(int(np.sum(f.class_ids == IGNORE_CLASS_ID)) for f in labels.frames.values())
        assert crowd == len(coco["annotations"]) - len(kept)


def _visible(root: Path, split: str, coco: dict, annotation: dict) -> float:
    (image,) = [i for i in coco["images"] if i["id"] == annotation["image_id"]]
    record = json.loads(
        (root / "annotations" / split / f"{Path(image['file_name']).stem}.json").read_text()
    )
    x, y, w, h = annotation["bbox"]
    (box,) = [b for b in record["boxes"] if b["bbox_xyxy"] == [x, y, x + w, y + h]][:1]
    return box["visible_fraction"]


def test_make_dataset_resumes_without_rewriting_finished_frames(tmp_path):
    assert _make(tmp_path, 4) == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "images").rglob("*.jpg")}
    assert _make(tmp_path, 4) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "images").rglob("*.jpg")} == before
    assert _make(tmp_path, 7) == 0
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "images").rglob("*.jpg")}
    assert len(after) == 7 and all(after[p] == t for p, t in before.items())
    # No temporary files are left behind.
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


@pytest.mark.slow
def test_make_dataset_runs_on_highway_v0(tmp_path):
    assert _make(tmp_path, 2, "highway-v0") == 0
    assert len(list((tmp_path / "images").rglob("*.jpg"))) == 2


def test_make_dataset_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["make-dataset", "--frames", "0", "--out", str(tmp_path)])
    assert main(["make-dataset", "--env", "nope-v0", "--frames", "1", "--out", str(tmp_path)]) == 2
    assert "unknown environment" in capsys.readouterr().err


def test_camera_video_has_a_label_file_and_json_line_per_frame(tmp_path):
    simulator = Simulator(
        SimConfig(
            env_id="highway-fast-v0",
            env_config={"duration": 2},
            camera=CameraConfig(width_px=320, height_px=180),
        ),
        Bus(),
    )
    recorder = CameraVideoRecorder(simulator, tmp_path, 0)
    simulator.reset(0)
    while not simulator.step().done:
        pass
    video = recorder.close()
    simulator.close()
    frames_expected = 1 + 2 * 5  # reset + 2 control steps of 5 simulation frames
    assert recorder.frames == frames_expected
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == frames_expected
    labels = sorted((tmp_path / "camera_000_labels").glob("0*.txt"))
    assert [p.stem for p in labels] == [f"{i:06d}" for i in range(frames_expected)]
    lines = (tmp_path / "camera_000.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(frames_expected))
    stamps = np.diff([r["stamp_ns"] for r in records])
    assert np.all(stamps == 200_000_000)


@pytest.mark.slow
def test_sim_camera_video_command(tmp_path):
    assert (
        main(
            [
                "-q",
                "sim",
                "--env",
                "highway-fast-v0",
                "--episodes",
                "1",
                "--camera-video",
                "--out",
                str(tmp_path),
                "--no-progress",
                "--no-record",
            ]
        )
        == 0
    )
    assert (tmp_path / "camera_000.mp4").stat().st_size > 10_000
    assert (tmp_path / "camera_000.jsonl").exists()
    assert (tmp_path / "camera_000_labels" / "classes.txt").exists()


def test_make_dataset_interval_samples_simulation_frames(tmp_path):
    assert (
        main(
            [
                "-q",
                "make-dataset",
                "--env",
                "highway-fast-v0",
                "--frames",
                "3",
                "--out",
                str(tmp_path),
                "--interval-s",
                "0.4",
                "--no-progress",
            ]
        )
        == 0
    )
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.rglob("annotations/*/*.json"))]
    assert [r["stamp_ns"] for r in records] == [0, 400_000_000, 800_000_000]


def test_holds_class_reads_class_and_height():
    from sim.commands.make_dataset import holds_class

    rows = ["0 0.5 0.5 0.1 0.2", "2 0.5 0.5 0.01 0.03"]
    assert holds_class(rows, ("car",), 0.1)
    assert not holds_class(rows, ("pedestrian",), 0.05)
    assert holds_class(rows, ("pedestrian", "truck"), 0.02)
    assert not holds_class(rows, ("traffic_sign",), 0.0)


def test_make_dataset_only_with_keeps_frames_holding_the_class(tmp_path, capsys):
    from sim.commands.make_dataset import holds_class

    out = tmp_path / "rare"
    only = ("--only-with", "traffic_sign", "--only-with-height-px", "10")
    assert _make(out, 4, "highway-fast-v0", *only) == 0
    labels = sorted(out.glob("labels/*/*.txt"))
    assert len(labels) == 4
    for path in labels:
        rows = path.read_text().splitlines()
        assert holds_class(rows, ("traffic_sign",), 10 / 360), path
    assert json.loads((out / "dataset.json").read_text())["only_with"] == ["traffic_sign"]
    # The dataset remembers the filter: a rerun without it is refused.
    assert _make(out, 5) == 2
    assert "--only-with" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _make(tmp_path / "bad", 1, "highway-fast-v0", "--only-with", "bus")
