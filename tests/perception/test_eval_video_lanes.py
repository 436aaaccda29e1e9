"""eval-video's lane step on a clip rendered by make-dataset: with the camera's calibration
(``--camera-info``) each frame gets a lane estimate that matches the true lane, the lines are
drawn into the video, and a bad calibration file is refused, naming it, before any output."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.detector import Detections
from perception.geometry import road_to_pixels
from perception.video_eval import ClipEvalConfig, run_clip_eval
from perception.video_lanes import LANE_COLOR_RGB
from sim.cli import main

FRAMES = 6
HIGHWAY_LANE_WIDTH_M = 4.0
"""highway-env's lanes are 4 m wide."""
WIDTH_TOLERANCE_M = 0.3
OFFSET_TOLERANCE_M = 0.3
TRUTH_POINTS = 10
"""Nearest road points of a labelled lane line fitted to find where it passes the ego."""


class NoDetections:
    """A detector that finds nothing: the lane step is what these tests look at."""

    name = "none"

    def detect(self, image_rgb: np.ndarray) -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A make-dataset directory: one episode of FRAMES frames, all in the train split."""
    out = tmp_path_factory.mktemp("dataset")
    args = ["-q", "make-dataset", "--env", "highway-fast-v0", "--frames", str(FRAMES)]
    args += ["--frames-per-episode", str(FRAMES), "--val-fraction", "0", "--seed", "0"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    return out


def _frames(dataset: Path) -> Path:
    return dataset / "images" / "train"


def _episode(dataset: Path) -> Path:
    return dataset / "episodes" / "000000.json"


def _camera_info(dataset: Path) -> dict:
    return json.loads(_episode(dataset).read_text())["camera_info"]


def _bare_camera_info(tmp_path: Path, dataset: Path, **changes) -> Path:
    """The episode's CameraInfo alone in a file, with ``changes`` to its fields."""
    path = tmp_path / "camera.json"
    path.write_text(json.dumps({**_camera_info(dataset), **changes}))
    return path


def _eval(tmp_path: Path, dataset: Path, camera_info: Path | None, **options) -> dict:
    config = ClipEvalConfig(
        source=_frames(dataset),
        out=tmp_path / "out",
        camera_info=camera_info,
        progress=False,
        **options,
    )
    return run_clip_eval(config, NoDetections())


def _lane_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "lanes.jsonl").read_text().splitlines()]


def _true_lane(dataset: Path, name: str) -> tuple[float, float]:
    """(lateral offset, width) [m] of the true ego lane at the ego, from the labelled lines."""
    labels = json.loads((dataset / "annotations" / "train" / f"{name}.json").read_text())
    crossings = []
    for line in labels["lane_lines"]:
        points = np.array(line["road_points"][:TRUTH_POINTS], float)
        if len(points) >= 2:
            crossings.append(float(np.polyval(np.polyfit(points[:, 0], points[:, 1], 1), 0.0)))
    left = min(y for y in crossings if y > 0)
    right = max(y for y in crossings if y <= 0)
    return -(left + right) / 2, left - right


@pytest.mark.parametrize("layout", ["episode record", "bare CameraInfo"])
def test_lane_estimate_on_a_simulated_clip_matches_the_true_lane(tmp_path, dataset, layout):
    camera_info = _episode(dataset) if layout == "episode record" else None
    camera_info = camera_info or _bare_camera_info(tmp_path, dataset)
    summary = _eval(tmp_path, dataset, camera_info, write_video=False)

    records = _lane_lines(tmp_path / "out")
    assert [r["frame"] for r in records] == list(range(FRAMES))
    estimated = [r for r in records if r["lane"] is not None]
    assert len(estimated) >= FRAMES - 1
    for record in estimated:
        true_offset_m, true_width_m = _true_lane(dataset, record["name"])
        lane = record["lane"]
        assert true_width_m == pytest.approx(HIGHWAY_LANE_WIDTH_M, abs=0.01)
        assert lane["lane_width_m"] == pytest.approx(true_width_m, abs=WIDTH_TOLERANCE_M)
        assert lane["lateral_offset_m"] == pytest.approx(true_offset_m, abs=OFFSET_TOLERANCE_M)
        assert abs(lane["heading_error_rad"]) < 0.05 and len(lane["left_line"]) == 3

    lanes = summary["lanes"]
    assert lanes["frames"] == FRAMES and lanes["frames_with_estimate"] == len(estimated)
    assert lanes["share_with_estimate"] == pytest.approx(len(estimated) / FRAMES)
    assert lanes["median_lane_width_m"] == pytest.approx(
        HIGHWAY_LANE_WIDTH_M, abs=WIDTH_TOLERANCE_M
    )
    assert lanes["latency_ms"]["mean"] > 0 and "timed separately" in lanes["timing"]
    assert "lanes.jsonl" in summary["outputs"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["lanes"] == lanes


def test_the_fitted_lines_are_drawn_into_the_annotated_video(tmp_path, dataset):
    def first_video_frame(out: Path) -> np.ndarray:
        capture = cv2.VideoCapture(str(out / "annotated.mp4"))
        ok, image = capture.read()
        capture.release()
        assert ok
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    _eval(tmp_path / "plain", dataset, None)
    _eval(tmp_path / "lanes", dataset, _episode(dataset))
    plain = first_video_frame(tmp_path / "plain" / "out")
    drawn = first_video_frame(tmp_path / "lanes" / "out")

    # Sample the fitted lines 6-30 m ahead where the camera model puts them (below the banner).
    info = _camera_info(dataset)
    k, t_camera_ego = np.reshape(info["k"], (3, 3)), np.reshape(info["t_camera_ego"], (4, 4))
    banner_px = drawn.shape[0] - info["height"]
    lane = _lane_lines(tmp_path / "lanes" / "out")[0]["lane"]
    ahead_m = np.arange(6.0, 30.0)
    green_minus_red = {"plain": [], "drawn": []}
    for line in ("left_line", "right_line"):
        road_xy = np.column_stack([ahead_m, np.polyval(lane[line][::-1], ahead_m)])
        u, v = np.round(road_to_pixels(road_xy, k, t_camera_ego)).astype(int).T
        for name, image in (("plain", plain), ("drawn", drawn)):
            rgb = image[v + banner_px, u].astype(int)
            green_minus_red[name].append(np.mean(rgb[:, 1] - rgb[:, 0]))
    expected = LANE_COLOR_RGB[1] - LANE_COLOR_RGB[0]
    assert min(green_minus_red["drawn"]) > 0.6 * expected
    assert max(green_minus_red["plain"]) < 0.2 * expected


def test_without_camera_info_lanes_is_null_and_a_stale_lanes_file_is_removed(tmp_path, dataset):
    out = tmp_path / "out"
    out.mkdir()
    (out / "lanes.jsonl").write_text('{"frame": 0, "lane": null}\n')  # an earlier run's

    summary = _eval(tmp_path, dataset, None, write_video=False)

    assert summary["lanes"] is None
    assert not (out / "lanes.jsonl").exists() and "lanes.jsonl" not in summary["outputs"]


def test_a_frame_of_another_size_fails_the_run_naming_the_calibration(tmp_path, dataset):
    frames = tmp_path / "frames"
    frames.mkdir()
    for image in sorted(_frames(dataset).glob("*.jpg"))[:2]:
        (frames / image.name).write_bytes(image.read_bytes())
    small = cv2.resize(cv2.imread(str(image)), (320, 180))
    cv2.imwrite(str(frames / "z_small.jpg"), small)
    config = ClipEvalConfig(
        source=frames, out=tmp_path / "out", camera_info=_episode(dataset), progress=False
    )

    with pytest.raises(ValueError, match=r"000000\.json.*640x360.*'z_small' is 320x180"):
        run_clip_eval(config, NoDetections())
    assert not (tmp_path / "out").exists()


def test_cli_with_camera_info_prints_and_writes_the_lanes(tmp_path, dataset, shared_dir, capsys):
    weights = shared_dir / "models" / "fastestdet" / "FastestDet.onnx"
    out = tmp_path / "out"

    code = main(
        [
            "eval-video",
            str(_frames(dataset)),
            "--camera-info",
            str(_episode(dataset)),
            "--weights",
            str(weights),
            "--no-video",
            "--out",
            str(out),
            "--no-progress",
        ]
    )

    assert code == 0
    assert f"lanes: estimate on {FRAMES} of {FRAMES} frames" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lanes"]["camera_info"] == str(_episode(dataset))
    assert len(_lane_lines(out)) == FRAMES


def test_help_explains_camera_info(capsys):
    with pytest.raises(SystemExit):
        main(["eval-video", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--camera-info PATH" in text
    assert "episodes/SEED.json" in text and "lanes.jsonl" in text


# --- a bad calibration file: exit code 2, a message naming it, and no output ---------------


def _fields(**changes):
    return lambda info: {**info, **changes}


def _rigid_scaled(info: dict) -> dict:
    transform = list(info["t_camera_ego"])
    transform[0:3] = [2 * v for v in transform[0:3]]
    return {**info, "t_camera_ego": transform}


BAD_FIELDS = {
    "k of 8 numbers": (_fields(k=[457.0, 0, 320, 0, 457, 180, 0, 0]), "k must hold 9 numbers"),
    "t_camera_ego of 15 numbers": (
        lambda info: {**info, "t_camera_ego": info["t_camera_ego"][:15]},
        "t_camera_ego must hold 16 numbers",
    ),
    "NaN in k": (
        lambda info: {**info, "k": [float("nan"), *info["k"][1:]]},
        "non-finite numbers (NaN or infinity) in k",
    ),
    "infinite height": (_fields(height_m=float("inf")), "non-finite numbers"),
    "text in k": (_fields(k=["fx", 0, 320, 0, 457, 180, 0, 0, 1]), "is not a CameraInfo"),
    "missing fields": (lambda info: {"k": info["k"]}, "is not a CameraInfo"),
    "zero focal length": (_fields(k=[0.0, 0, 320, 0, 457, 180, 0, 0, 1]), "not an intrinsic"),
    "scaled rotation": (_rigid_scaled, "not a rigid transform"),
    "other image size": (_fields(width=320, height=180), "is for 320x180 images"),
}


def _cli_error(tmp_path: Path, dataset: Path, capsys, camera_info: Path) -> str:
    out = tmp_path / "out"
    weights = tmp_path / "never_loaded.onnx"
    weights.write_bytes(b"x")  # the calibration is checked first: no model is loaded
    args = [str(_frames(dataset)), "--camera-info", str(camera_info), "--weights", str(weights)]
    code = main(["eval-video", *args, "--out", str(out), "--no-progress"])
    assert code == 2
    assert not out.exists()  # checked before --out is created
    return capsys.readouterr().err


@pytest.mark.parametrize("case", list(BAD_FIELDS))
@pytest.mark.parametrize("layout", ["episode record", "bare CameraInfo"])
def test_a_bad_calibration_is_refused_naming_the_file(tmp_path, dataset, capsys, case, layout):
    change, message = BAD_FIELDS[case]
    info = change(_camera_info(dataset))
    path = tmp_path / "bad_calibration.json"
    path.write_text(
        json.dumps({"seed": 0, "camera_info": info} if layout == "episode record" else info)
    )

    err = _cli_error(tmp_path, dataset, capsys, path)

    assert "bad_calibration.json" in err and message in err, err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read: No such file or directory"),
        ("{not json", "is not valid JSON"),
        ("", "is not valid JSON"),
        ("[1, 2, 3]", "is not a CameraInfo"),
    ],
)
def test_an_unreadable_calibration_file_is_refused_naming_it(
    tmp_path, dataset, capsys, content, message
):
    path = tmp_path / "bad_calibration.json"
    if content is not None:
        path.write_text(content)

    err = _cli_error(tmp_path, dataset, capsys, path)

    assert "bad_calibration.json" in err and message in err, err


def test_a_bad_calibration_leaves_an_earlier_run_untouched(tmp_path, dataset, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"command": "eval-video"}')
    (out / "lanes.jsonl").write_text("{}\n")
    path = _bare_camera_info(tmp_path, dataset, width=320)

    args = [str(_frames(dataset)), "--camera-info", str(path), "--out", str(out)]
    code = main(["eval-video", *args, "--no-progress"])

    assert code == 2 and "camera.json" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == '{"command": "eval-video"}'
    assert (out / "lanes.jsonl").read_text() == "{}\n"
