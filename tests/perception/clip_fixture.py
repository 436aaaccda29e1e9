"""A short synthetic labelled clip and an oracle detector, for eval-video tests."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from perception.detector import Detections
from perception.labels import BoxLabels, write_yolo_txt

WIDTH, HEIGHT = 160, 96
FRAMES = 4
GRAY = 90

# Per frame: (class id, x1, y1, x2, y2) in pixels. Frame 2 has no objects.
BOXES = (
    ((0, 10, 20, 50, 60), (2, 100, 30, 120, 80)),
    ((0, 16, 20, 56, 60), (1, 90, 10, 150, 50)),
    (),
    ((0, 30, 40, 70, 80), (3, 120, 5, 140, 25)),
)


def frame_labels(index: int) -> BoxLabels:
    rows = BOXES[index]
    boxes = np.array([r[1:] for r in rows], np.float32).reshape(-1, 4)
    return BoxLabels(boxes, np.array([r[0] for r in rows], np.int64))


def render(index: int) -> np.ndarray:
    """RGB frame with a coloured rectangle per labelled box."""
    image = np.full((HEIGHT, WIDTH, 3), GRAY, np.uint8)
    for cls, x1, y1, x2, y2 in BOXES[index]:
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), (60 * cls + 40, 200, 255 - 50 * cls), -1)
    return image


def write_frame_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(FRAMES):
        cv2.imwrite(
            str(directory / f"frame_{index:04d}.png"),
            cv2.cvtColor(render(index), cv2.COLOR_RGB2BGR),
        )
    return directory


def write_video(path: Path) -> Path:
    from sim.video import Mp4Writer

    writer = Mp4Writer(path, fps=10)
    for index in range(FRAMES):
        writer.write(render(index))
    writer.close()
    return path


def write_truncated_avi(path: Path, keep_frames: int) -> Path:
    """The clip as MJPEG AVI, cut right after its first ``keep_frames`` frames: the header
    still states all :data:`FRAMES` frames, as in a copy that was cut short."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (WIDTH, HEIGHT))
    for index in range(FRAMES):
        writer.write(cv2.cvtColor(render(index), cv2.COLOR_RGB2BGR))
    writer.release()
    data = path.read_bytes()
    movi = data.index(b"movi")
    frame_chunks = [m.start() for m in re.finditer(b"00dc", data) if m.start() > movi]
    path.write_bytes(data[: frame_chunks[keep_frames]])
    return path


def write_yolo_labels(directory: Path, stem: str = "frame_{:04d}") -> Path:
    for index in range(FRAMES):
        write_yolo_txt(directory / f"{stem.format(index)}.txt", frame_labels(index), WIDTH, HEIGHT)
    return directory


class OracleDetector:
    """Returns the labels of frame i on its i-th call, with scores; ``drop`` lists
    (frame, box index) pairs to miss and ``extra`` adds false positives per frame."""

    name = "oracle"

    def __init__(
        self,
        drop: tuple[tuple[int, int], ...] = (),
        extra: dict[int, list[tuple[int, float, tuple[float, ...]]]] | None = None,
    ) -> None:
        self.calls = 0
        self.drop = set(drop)
        self.extra = extra or {}

    def detect(self, image_rgb: np.ndarray) -> Detections:
        index = self.calls
        self.calls += 1
        labels = frame_labels(index)
        keep = [i for i in range(len(labels.class_ids)) if (index, i) not in self.drop]
        boxes = [labels.boxes_xyxy[i] for i in keep]
        classes = [int(labels.class_ids[i]) for i in keep]
        scores = [0.9] * len(keep)
        for cls, score, box in self.extra.get(index, []):
            boxes.append(np.array(box, np.float32))
            classes.append(cls)
            scores.append(score)
        return Detections(
            np.array(boxes, np.float32).reshape(-1, 4),
            np.array(scores, np.float32),
            np.array(classes, np.int64),
        )
