"""MP4 output through imageio-ffmpeg (H.264, yuv420p), so browsers and players open it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from bus.atomic import atomic_path

logger = logging.getLogger(__name__)


class Mp4Writer:
    """Collects RGB frames into an H.264 MP4 written under a temporary name and renamed on
    :meth:`close`; :meth:`abort` discards it.

    :param path: final file name.
    :param fps: playback frame rate; use the simulation frequency for real-time playback.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._context = atomic_path(self.path)
        self._tmp = self._context.__enter__()
        self._writer = None
        self._size: tuple[int, int] | None = None

    def write(self, frame_rgb: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame; odd sizes are padded to even for yuv420p."""
        import imageio_ffmpeg

        height, width = frame_rgb.shape[:2]
        if self._writer is None:
            self._size = (width + width % 2, height + height % 2)
            self._writer = imageio_ffmpeg.write_frames(
                str(self._tmp),
                self._size,
                fps=self.fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                macro_block_size=1,
                quality=7,
                ffmpeg_log_level="error",
            )
            self._writer.send(None)
        assert self._size is not None
        if (width, height) != self._size:
            frame_rgb = cv2.copyMakeBorder(
                frame_rgb, 0, self._size[1] - height, 0, self._size[0] - width, cv2.BORDER_REPLICATE
            )
        self._writer.send(np.ascontiguousarray(frame_rgb))
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns its path, or None if empty."""
        if self._writer is None:
            self._context.__exit__(RuntimeError, RuntimeError("no frames"), None)
            return None
        self._writer.close()
        self._context.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._context.__exit__(RuntimeError, RuntimeError("aborted"), None)


OVERLAY_ROW_PX = 20


def draw_overlay(frame_rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """Return the frame with a dark banner of text lines stacked above it."""
    banner = np.full((OVERLAY_ROW_PX * len(lines) + 4, frame_rgb.shape[1], 3), 24, np.uint8)
    for row, text in enumerate(lines):
        origin = (6, 15 + OVERLAY_ROW_PX * row)
        cv2.putText(
            banner, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
        )
    return np.vstack([banner, frame_rgb])
