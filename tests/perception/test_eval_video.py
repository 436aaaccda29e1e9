"""eval-video on a synthetic labelled clip: exact metrics for an oracle detector with known
misses, and a clear error (and no summary) for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perception.labels import LabelFormatError
from perception.video_eval import ClipEvalConfig, run_clip_eval
from sim.cli import main
from tests.perception import clip_fixture as clip

RECALL_POINTS = 101


def _eval(tmp_path: Path, detector, source: Path | None = None, labels: Path | None = None) -> dict:
    source = source or clip.write_frame_dir(tmp_path / "frames")
    labels = labels or clip.write_yolo_labels(tmp_path / "labels")
    config = ClipEvalConfig(source=source, out=tmp_path / "out", labels=labels, progress=False)
    return run_clip_eval(config, detector)


def _class(summary: dict, name: str) -> dict:
    return summary["metrics"]["classes"][name]


def test_perfect_detections_score_ap_one(tmp_path):
    summary = _eval(tmp_path, clip.OracleDetector())

    for name in ("car", "truck", "pedestrian", "traffic_sign"):
        metrics = _class(summary, name)
        assert metrics["ap50"] == pytest.approx(1.0)
        assert metrics["ap50_95"] == pytest.approx(1.0)
        assert metrics["precision"] == metrics["recall"] == pytest.approx(1.0)
    assert _class(summary, "car")["ground_truth"] == 3
    assert summary["frames"] == clip.FRAMES and summary["complete"]
    out = tmp_path / "out"
    for name in (
        "annotated.mp4",
        "detections.jsonl",
        "coco_results.json",
        "metrics.json",
        "pr_curve.png",
    ):
        assert (out / name).stat().st_size > 0, name
    lines = (out / "detections.jsonl").read_text().splitlines()
    assert len(lines) == clip.FRAMES
    assert json.loads(lines[0])["detections"][0]["bbox_xyxy"] == [10.0, 20.0, 50.0, 60.0]


def test_the_printed_table_says_where_precision_and_recall_are_taken(tmp_path):
    from sim.commands.eval_video import format_summary

    summary = _eval(tmp_path, clip.OracleDetector(drop=((1, 0),)))
    printed = format_summary(summary)
    header = next(line for line in printed.splitlines() if line.split()[:1] == ["class"])
    assert header.split()[:6] == ["class", "gt", "dets", "thr", "P", "R"]
    car = next(line for line in printed.splitlines() if line.split()[:1] == ["car"])
    threshold = _class(summary, "car")["f1_threshold"]
    assert car.split()[3] == f"{threshold:.3f}"
    assert "best-F1 score threshold" in printed


def test_a_missed_car_lowers_recall_and_ap_by_the_missing_share(tmp_path):
    summary = _eval(tmp_path, clip.OracleDetector(drop=((1, 0),)))

    car = _class(summary, "car")
    assert car["recall"] == pytest.approx(2 / 3)
    assert car["precision"] == pytest.approx(1.0)
    # 101-point interpolation: precision 1 at recall points 0 .. 0.66, 0 beyond.
    assert car["ap50"] == pytest.approx(67 / RECALL_POINTS)
    assert _class(summary, "truck")["ap50"] == pytest.approx(1.0)


def test_a_confident_false_positive_caps_precision(tmp_path):
    false_car = {2: [(0, 0.95, (60.0, 10.0, 90.0, 40.0))]}
    summary = _eval(tmp_path, clip.OracleDetector(extra=false_car))

    car = _class(summary, "car")
    assert car["ap50"] == pytest.approx(0.75)
    assert car["detections"] == 4
    assert summary["metrics"]["map50"] == pytest.approx((0.75 + 3) / 4)


def test_video_input_and_video_frame_numbers_match_labels(tmp_path):
    video = clip.write_video(tmp_path / "clip.mp4")
    labels = clip.write_yolo_labels(tmp_path / "labels", stem="{:06d}")
    summary = _eval(tmp_path, clip.OracleDetector(), source=video, labels=labels)

    assert summary["frames"] == clip.FRAMES
    assert _class(summary, "car")["ap50"] == pytest.approx(1.0)


def test_cli_with_onnx_teacher_writes_summary(tmp_path, shared_dir, capsys):
    frames = clip.write_frame_dir(tmp_path / "frames")
    weights = shared_dir / "models" / "fastestdet" / "FastestDet.onnx"

    code = main(
        [
            "eval-video",
            str(frames),
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )

    assert code == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["frames"] == clip.FRAMES and summary["detector"].startswith("fastestdet")
    assert len(summary["latency_ms"]["per_frame"]) == clip.FRAMES


# --- bad input: a clear error naming the file, and no output folder left behind -------------


def _cli_error(tmp_path: Path, capsys, args: list[str]) -> str:
    out = tmp_path / "out"
    code = main(["eval-video", *args, "--out", str(out), "--no-progress"])
    assert code == 2
    assert not out.exists()  # inputs are checked before --out is created
    return capsys.readouterr().err


def test_bad_input_leaves_an_earlier_run_untouched(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"command": "eval-video"}')
    (out / "detections.jsonl").write_text("{}\n")
    empty = tmp_path / "empty"
    empty.mkdir()

    code = main(["eval-video", str(empty), "--out", str(out), "--no-progress"])

    assert code == 2 and "holds no images" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == '{"command": "eval-video"}'
    assert (out / "detections.jsonl").read_text() == "{}\n"


def _fake_weights(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_corrupt_video_names_the_file(tmp_path, capsys):
    bad = _fake_weights(tmp_path, "broken.mp4", b"\x00\x00\x00\x18ftypmp42 not really a video")
    err = _cli_error(tmp_path, capsys, [bad, "--weights", _fake_weights(tmp_path, "w.onnx", b"x")])
    assert "broken.mp4" in err and "error" in err


def test_a_corrupt_video_gets_our_error_without_ffmpeg_noise(tmp_path):
    import os
    import subprocess
    import sys

    bad = _fake_weights(tmp_path, "broken.mp4", b"\x00\x00\x00\x18ftypmp42 not really a video")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    command = [sys.executable, "-m", "sim.cli", "eval-video", bad, "--out", str(tmp_path / "o")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"drivestack eval-video: error: video {bad!r} cannot be opened: not a video, or corrupt"
    ]


def test_empty_frame_directory_is_rejected(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _cli_error(
        tmp_path, capsys, [str(empty), "--weights", _fake_weights(tmp_path, "w.onnx", b"x")]
    )
    assert "holds no images" in err and "empty" in err


def test_labels_not_matching_frames(tmp_path):
    labels = clip.write_yolo_labels(tmp_path / "labels", stem="other_{:04d}")
    (labels / "other_0099.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(LabelFormatError, match="other_0099.txt"):
        _eval(tmp_path, clip.OracleDetector(), labels=labels)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_unknown_class_name_in_coco_labels(tmp_path):
    coco = tmp_path / "labels.json"
    coco.write_text(
        json.dumps(
            {
                "images": [
                    {
                        "id": 0,
                        "file_name": "frame_0000.png",
                        "width": clip.WIDTH,
                        "height": clip.HEIGHT,
                    }
                ],
                "annotations": [],
                "categories": [{"id": 1, "name": "spaceship"}],
            }
        )
    )
    with pytest.raises(LabelFormatError, match=r"labels\.json.*spaceship"):
        _eval(tmp_path, clip.OracleDetector(), labels=coco)


def test_coco_labels_for_another_image_size(tmp_path):
    coco = tmp_path / "labels.json"
    coco.write_text(
        json.dumps(
            {
                "images": [{"id": 0, "file_name": "frame_0000.png", "width": 640, "height": 360}],
                "annotations": [],
                "categories": [{"id": 1, "name": "car"}],
            }
        )
    )
    with pytest.raises(LabelFormatError, match="640x360"):
        _eval(tmp_path, clip.OracleDetector(), labels=coco)
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("model.onnx", b"not an onnx model", "not a readable ONNX model"),
        ("model.pt", b"not a torch file", "not a readable PyTorch file"),
        ("model.h5", b"keras", "unsupported kind"),
    ],
)
def test_weights_of_the_wrong_kind(tmp_path, capsys, name, content, message):
    frames = clip.write_frame_dir(tmp_path / "frames")
    err = _cli_error(
        tmp_path, capsys, [str(frames), "--weights", _fake_weights(tmp_path, name, content)]
    )
    assert message in err and name in err


def test_a_weights_directory_is_called_a_directory(tmp_path, capsys):
    frames = clip.write_frame_dir(tmp_path / "frames")
    (tmp_path / "emptydir").mkdir()
    err = _cli_error(tmp_path, capsys, [str(frames), "--weights", str(tmp_path / "emptydir")])
    assert "emptydir" in err and "is a directory" in err and "does not exist" not in err


def test_pickled_checkpoint_needs_trust(tmp_path, capsys):
    import torch

    path = tmp_path / "best.pt"
    torch.save({"model": Path("pickled object")}, path)
    frames = clip.write_frame_dir(tmp_path / "frames")
    err = _cli_error(tmp_path, capsys, [str(frames), "--weights", str(path)])
    assert "--trust-weights" in err and "best.pt" in err


def test_failure_mid_run_leaves_no_complete_outputs(tmp_path):
    class Crashing(clip.OracleDetector):
        def detect(self, image_rgb):
            if self.calls == 2:
                raise RuntimeError("detector crashed")
            return super().detect(image_rgb)

    with pytest.raises(RuntimeError):
        _eval(tmp_path, Crashing())
    assert not (tmp_path / "out").exists()  # the run created it, and removed it empty


def test_failure_mid_run_in_an_existing_folder_leaves_no_outputs_of_either_run(tmp_path):
    class Crashing(clip.OracleDetector):
        def detect(self, image_rgb):
            if self.calls == 2:
                raise RuntimeError("detector crashed")
            return super().detect(image_rgb)

    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")  # an earlier run's
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(RuntimeError):
        _eval(tmp_path, Crashing())
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_interrupted_run_keeps_what_it_finished(tmp_path):
    class Interrupted(clip.OracleDetector):
        def detect(self, image_rgb):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().detect(image_rgb)

    summary = _eval(tmp_path, Interrupted())

    assert summary["interrupted"] and not summary["complete"]
    assert summary["frames"] == 2
    lines = (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert _class(summary, "car")["ground_truth"] == 2  # only the frames read are scored


def test_truncated_video_is_scored_on_the_frames_read_and_reported_incomplete(tmp_path):
    video = clip.write_truncated_avi(tmp_path / "cut.avi", keep_frames=2)
    labels = clip.write_yolo_labels(tmp_path / "labels", stem="{:06d}")
    out = tmp_path / "out"

    summary = _eval(tmp_path, clip.OracleDetector(), source=video, labels=labels)

    assert not summary["complete"] and summary["truncated"] and not summary["interrupted"]
    assert (summary["frames_expected"], summary["frames_read"]) == (clip.FRAMES, 2)
    assert (
        "cut.avi" in summary["incomplete_reason"] and "2 of the 4" in summary["incomplete_reason"]
    )
    assert (summary["labelled_frames"], summary["labelled_frames_not_read"]) == (2, 2)
    assert _class(summary, "car")["ground_truth"] == 2 and _class(summary, "car")["ap50"] == 1.0
    assert len((out / "detections.jsonl").read_text().splitlines()) == 2
    results = json.loads((out / "coco_results.json").read_text())
    assert {r["image_id"] for r in results} == {0, 1}
    assert json.loads((out / "summary.json").read_text())["complete"] is False


def test_the_printed_summary_flags_a_truncated_video(tmp_path):
    from sim.commands.eval_video import format_summary

    video = clip.write_truncated_avi(tmp_path / "cut.avi", keep_frames=3)
    summary = run_clip_eval(
        ClipEvalConfig(source=video, out=tmp_path / "out", write_video=False, progress=False),
        clip.OracleDetector(),
    )

    assert summary["frames_read"] == 3 and not summary["complete"]
    assert "INCOMPLETE: video" in format_summary(summary)


def test_whole_video_is_complete(tmp_path):
    video = clip.write_video(tmp_path / "clip.mp4")
    summary = run_clip_eval(
        ClipEvalConfig(source=video, out=tmp_path / "out", write_video=False, progress=False),
        clip.OracleDetector(),
    )

    assert summary["complete"] and not summary["truncated"]
    assert summary["frames_expected"] == summary["frames_read"] == clip.FRAMES
    assert summary["incomplete_reason"] is None


def test_progress_bar_stays_out_of_a_redirected_stderr(tmp_path, capfd):
    config = ClipEvalConfig(
        source=clip.write_frame_dir(tmp_path / "frames"), out=tmp_path / "out", progress=True
    )
    run_clip_eval(config, clip.OracleDetector())

    err = capfd.readouterr().err
    assert "\r" not in err and "frame/s" not in err


def test_a_truncated_jpeg_frame_is_named_and_nothing_looks_complete(tmp_path):
    import cv2

    pngs = clip.write_frame_dir(tmp_path / "png")
    frames = tmp_path / "frames"
    frames.mkdir()
    for png in sorted(pngs.glob("*.png")):
        cv2.imwrite(str(frames / f"{png.stem}.jpg"), cv2.imread(str(png)))
    cut = sorted(frames.glob("*.jpg"))[2]
    cut.write_bytes(cut.read_bytes()[:-200])  # decodes, with grey rows at the bottom
    assert cv2.imread(str(cut)) is not None
    with pytest.raises(OSError, match=f"{cut.name}.*truncated"):
        _eval(tmp_path, clip.OracleDetector(), source=frames)
    assert not (tmp_path / "out").exists()


def test_frames_of_several_sizes_are_reported(tmp_path, caplog):
    import cv2

    frames = clip.write_frame_dir(tmp_path / "frames")
    last = sorted(frames.glob("*.png"))[-1]
    image = cv2.imread(str(last))
    cv2.imwrite(str(last), cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)))
    summary = _eval(tmp_path, clip.OracleDetector(), source=frames, labels=None)
    assert len(summary["frame_sizes_wh"]) == 2
    assert "differ in size" in caplog.text and "1 of" in caplog.text
