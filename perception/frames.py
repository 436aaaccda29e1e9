"""Frames of a recorded clip: a video file or a directory of images, read as RGB.

Video frames are named by their zero-padded index (``000012``); image frames by their
file stem. Unreadable input raises :class:`OSError` naming the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_FRAME_NAME = "{:06d}"
DEFAULT_FPS = 10.0
"""Playback rate assumed for image sequences and videos that do not state one [Hz]."""


class Frame(NamedTuple):
    """One frame: its index in the clip, its name, and HxWx3 uint8 RGB pixels."""

    index: int
    name: str
    image_rgb: np.ndarray


class FrameSource:
    """Iterates the frames of a video file or an image directory.

    :param path: a video file (anything FFmpeg reads) or a directory of images.
    :raises OSError: when the path is missing, the video cannot be opened or holds no
        readable frame, or the directory holds no images.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise OSError(f"input {str(self.path)!r} does not exist")
        self.is_video = not self.path.is_dir()
        if self.is_video:
            self.fps, self.expected_count = _probe_video(self.path)
            self.image_files: list[Path] = []
        else:
            self.image_files = sorted(
                (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                key=lambda p: p.name,
            )
            if not self.image_files:
                raise OSError(
                    f"image directory {str(self.path)!r} holds no images "
                    f"({', '.join(IMAGE_SUFFIXES)})"
                )
            self.fps, self.expected_count = DEFAULT_FPS, len(self.image_files)

    def expected_names(self) -> list[str]:
        """Frame names known before reading (a video's count comes from its header)."""
        if self.is_video:
            return [VIDEO_FRAME_NAME.format(i) for i in range(self.expected_count)]
        return [p.stem for p in self.image_files]

    def __iter__(self) -> Iterator[Frame]:
        return self._video_frames() if self.is_video else self._image_frames()

    def _image_frames(self) -> Iterator[Frame]:
        for index, file in enumerate(self.image_files):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"image {str(file)!r} is not a readable image")
            if file.suffix.lower() in (".jpg", ".jpeg") and not _has_jpeg_end(file):
                # OpenCV decodes a cut JPEG with grey rows and only a warning on stderr.
                raise OSError(f"image {str(file)!r} is truncated (no JPEG end marker)")
            yield Frame(index, file.stem, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    def _video_frames(self) -> Iterator[Frame]:
        capture = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                yield Frame(
                    index, VIDEO_FRAME_NAME.format(index), cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                )
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise OSError(f"video {str(self.path)!r} holds no readable frame")


def _has_jpeg_end(path: Path, tail_bytes: int = 64) -> bool:
    """Whether a JPEG file's end-of-image marker (FF D9) is among its last bytes (some
    writers pad after it)."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(handle.tell() - tail_bytes, 0))
        return b"\xff\xd9" in handle.read()


def _probe_video(path: Path) -> tuple[float, int]:
    """(fps, frame count from the header) of a video that opens and yields a first frame."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise OSError(f"video {str(path)!r} cannot be opened: not a video, or corrupt")
        ok, _ = capture.read()
        if not ok:
            raise OSError(f"video {str(path)!r} holds no readable frame (empty or corrupt)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return (fps if 0 < fps < 1000 else DEFAULT_FPS), max(count, 1)
