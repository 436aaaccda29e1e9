"""The zoom window: a second look at the band where distant objects are, its merge with the
full-frame look, and the stacked training windows cut from a YOLO dataset."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.detector import Detections
from perception.zoom import (
    ZoomedDetector,
    ZoomWindow,
    parse_zoom,
    window_detections,
    write_zoom_dataset,
)
from sim.cli import main


def test_window_is_checked_and_read():
    assert parse_zoom("0.36,0.40,0.70,0.58") == ZoomWindow()
    assert ZoomWindow().pixels(640, 360) == (230, 144, 448, 209)
    for text in ("0.5,0.4,0.3,0.6", "0,0,1", "a,b,c,d", "0,0,1.5,1", "nan,0,1,1"):
        with pytest.raises(ValueError, match="zoom window"):
            parse_zoom(text)


def test_window_boxes_move_into_the_frame_and_edge_boxes_go():
    found = Detections(
        np.array([[10, 10, 20, 30], [0, 5, 8, 20], [100, 40, 118, 65]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([2, 0, 3]),
    )
    moved = window_detections(found, (230, 144, 448, 209), edge_px=2.0)
    # The second touches the left edge, the third the bottom (65 px tall window).
    np.testing.assert_allclose(moved.boxes_xyxy, [[240, 154, 250, 174]])
    assert list(moved.class_ids) == [2]


class _SizeLimitedDetector:
    """Finds white squares, but only those at least 12 px across in the image it is given
    scaled to 640 px wide, as a detector that misses small objects."""

    def detect(self, image_rgb: np.ndarray) -> Detections:
        scale = 640 / image_rgb.shape[1]
        mask = (image_rgb.min(axis=2) > 200).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [
            [x, y, x + w, y + h] for x, y, w, h, _ in stats[1:count] if min(w, h) * scale >= 12
        ]
        boxes = np.array(boxes, np.float32).reshape(-1, 4)
        return Detections(
            boxes, np.full(len(boxes), 0.9, np.float32), np.zeros(len(boxes), np.int64)
        )


def test_zoomed_detector_finds_small_far_objects_once():
    image = np.zeros((360, 640, 3), np.uint8)
    image[170:176, 400:406] = 255  # 6 px, in the window: only the second look sees it
    image[150:180, 100:130] = 255  # 30 px, outside the window
    image[160:190, 300:330] = 255  # 30 px, in the window: both looks see it
    plain = _SizeLimitedDetector().detect(image)
    zoomed = ZoomedDetector(_SizeLimitedDetector()).detect(image)

    assert len(plain) == 2
    assert len(zoomed) == 3
    boxes = sorted(map(tuple, zoomed.boxes_xyxy.astype(int).tolist()))
    assert boxes == [(100, 150, 130, 180), (300, 160, 330, 190), (400, 170, 406, 176)]


def test_eval_video_refuses_a_bad_zoom_window(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(
            ["eval-video", str(tmp_path), "--zoom", "0.7,0.4,0.3,0.6", "--out", str(tmp_path / "o")]
        )
    assert caught.value.code == 2
    assert "zoom window" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_zoom_dataset_stacks_windows_with_their_boxes(tmp_path):
    images, labels = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for index in range(2):
        cv2.imwrite(str(images / f"f{index}.jpg"), np.full((360, 640, 3), 80, np.uint8))
    # Frame 0: a box inside the window, one mostly outside it; frame 1: one inside.
    (labels / "f0.txt").write_text(
        "2 0.5 0.5 0.015625 0.05\n"  # x 315-325, y 171-189
        "0 0.1 0.5 0.1 0.1\n"
    )
    (labels / "f1.txt").write_text("3 0.5 0.5 0.015625 0.05\n")
    out = tmp_path / "zoom" / "images" / "train"
    assert write_zoom_dataset(images, labels, out, ZoomWindow(), stack=2) == 1

    (image_path,) = sorted(out.glob("*.jpg"))
    stacked = cv2.imread(str(image_path))
    assert stacked.shape[:2] == (130, 218)  # two 218 x 65 windows
    rows = [
        r.split()
        for r in (tmp_path / "zoom" / "labels" / "train" / f"{image_path.stem}.txt")
        .read_text()
        .splitlines()
    ]
    assert [r[0] for r in rows] == ["2", "3"]
    centres = np.array([[float(r[1]) * 218, float(r[2]) * 130] for r in rows])
    np.testing.assert_allclose(centres, [[90, 36], [90, 101]], atol=0.6)


def test_zoom_dataset_command_writes_a_dataset_ultralytics_reads(tmp_path, capsys):
    source = tmp_path / "src"
    for split in ("train", "val"):
        (source / "images" / split).mkdir(parents=True)
        (source / "labels" / split).mkdir(parents=True)
        cv2.imwrite(str(source / "images" / split / "a.jpg"), np.full((360, 640, 3), 80, np.uint8))
        (source / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.015625 0.05\n")
    out = tmp_path / "zoom"
    assert main(["zoom-dataset", str(source), "--stack", "2", "--out", str(out)]) == 0
    assert "1 train and 1 val images" in capsys.readouterr().out
    assert "train: images/train" in (out / "data.yaml").read_text()
    assert (out / "labels" / "val" / "zoom0_a.txt").read_text().startswith("0 ")
    assert main(["zoom-dataset", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "none" in capsys.readouterr().err


def test_windows_at_the_frame_edge_are_never_empty():
    for box in [(0.999, 0.999, 1.0, 1.0), (0.0, 0.9995, 1.0, 1.0), (0.999, 0.0, 1.0, 1.0)]:
        left, top, right, bottom = ZoomWindow(box).pixels(640, 360)
        assert 0 <= left < right <= 640 and 0 <= top < bottom <= 360
        assert right - left >= 2 and bottom - top >= 2
    image = np.zeros((360, 640, 3), np.uint8)
    ZoomedDetector(_SizeLimitedDetector(), ZoomWindow((0.999, 0.999, 1.0, 1.0))).detect(image)


def test_zoom_dataset_pads_narrow_windows_and_refuses_bad_rows(tmp_path):
    from perception.labels import LabelFormatError

    images, labels = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for name, (w, h) in {"a": (320, 180), "b": (1280, 720)}.items():
        cv2.imwrite(str(images / f"{name}.jpg"), np.full((h, w, 3), 80, np.uint8))
        (labels / f"{name}.txt").write_text("0 0.5 0.5 0.015625 0.05\n")
    out = tmp_path / "z" / "images" / "train"
    assert write_zoom_dataset(images, labels, out, ZoomWindow(), stack=2) == 1
    rows = (tmp_path / "z" / "labels" / "train" / "zoom_a.txt").read_text().splitlines()
    assert len(rows) == 2 and all(0 < float(v) <= 1 for r in rows for v in r.split()[1:])

    (labels / "a.txt").write_text("0 nan 0.5 0.1 0.1\n")
    with pytest.raises(LabelFormatError, match="a.txt"):
        write_zoom_dataset(images, labels, tmp_path / "z2" / "images" / "train", ZoomWindow())


def test_zoom_dataset_refuses_empty_sources_and_an_out_inside_them(tmp_path, capsys):
    source = tmp_path / "src"
    (source / "images" / "train").mkdir(parents=True)
    assert main(["zoom-dataset", str(source), "--out", str(tmp_path / "o")]) == 2
    assert "no training images" in capsys.readouterr().err
    assert not (tmp_path / "o" / "data.yaml").exists()
    assert main(["zoom-dataset", str(source), "--out", str(source / "zoom")]) == 2
    assert "inside the source" in capsys.readouterr().err
    assert main(["zoom-dataset", str(source), "--stack", "1000", "--out", str(tmp_path / "o")]) == 2
    assert "--stack" in capsys.readouterr().err


def test_parallel_looks_find_what_sequential_ones_do():
    image = np.zeros((360, 640, 3), np.uint8)
    image[170:176, 400:406] = 255
    image[150:180, 100:130] = 255
    sequential = ZoomedDetector(_SizeLimitedDetector()).detect(image)
    parallel = ZoomedDetector(_SizeLimitedDetector(), parallel=True).detect(image)
    np.testing.assert_array_equal(parallel.boxes_xyxy, sequential.boxes_xyxy)
