"""autolabel writes a YOLO dataset whose labels read back as the teacher's boxes."""

from __future__ import annotations

import numpy as np
import pytest

from perception.autolabel import AutolabelConfig, autolabel
from perception.labels import read_labels
from sim.cli import main
from tests.perception import clip_fixture as clip


def test_dataset_layout_and_labels_round_trip(tmp_path):
    frames = clip.write_frame_dir(tmp_path / "frames")
    config = AutolabelConfig(
        sources=(frames,), out=tmp_path / "ds", val_fraction=0.25, progress=False
    )

    summary = autolabel(config, clip.OracleDetector())

    assert summary["images"] == {"train": 3, "val": 1}
    assert summary["boxes"] == {"car": 3, "truck": 1, "pedestrian": 1, "traffic_sign": 1}
    assert (tmp_path / "ds/images/val/frames_frame_0003.jpg").is_file()
    labels = read_labels(tmp_path / "ds/labels/train")
    first = labels.frames["frames_frame_0000"].to_pixels(clip.WIDTH, clip.HEIGHT)
    np.testing.assert_allclose(first.boxes_xyxy, clip.frame_labels(0).boxes_xyxy, atol=0.01)
    assert "names:" in (tmp_path / "ds/data.yaml").read_text()


def test_cli_rejects_a_missing_input_before_loading_the_teacher(tmp_path, capsys):
    code = main(
        [
            "autolabel",
            str(tmp_path / "nope.mp4"),
            "--teacher",
            "x.onnx",
            "--out",
            str(tmp_path / "ds"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "nope.mp4" in capsys.readouterr().err


@pytest.mark.parametrize("conf", ["0", "1.5"])
def test_cli_rejects_a_bad_threshold(tmp_path, capsys, conf):
    frames = clip.write_frame_dir(tmp_path / "frames")
    code = main(
        [
            "autolabel",
            str(frames),
            "--teacher",
            "x.onnx",
            "--conf",
            conf,
            "--out",
            str(tmp_path / "ds"),
        ]
    )
    assert code == 2
    assert "--conf" in capsys.readouterr().err
