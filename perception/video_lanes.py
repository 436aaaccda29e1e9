"""The lane step of ``drivestack eval-video``: a recorded clip carries no camera calibration,
so it is read from a file (:func:`read_camera_info`); with it, every frame gets the lane
estimate of :func:`perception.lanes.estimate_lane`, a line in ``lanes.jsonl``, the fitted
lines drawn into the annotated frame, and a ``lanes`` entry in the summary
(:class:`LaneStep`).

The calibration file holds a :class:`~bus.messages.camera.CameraInfo` as msgspec JSON, or
is a ``make-dataset`` episode record (``episodes/SEED.json``) whose ``camera_info`` entry
holds one. It is checked before any output is written: 9 numbers in ``k`` (an intrinsic
matrix), 16 in ``t_camera_ego`` (a rigid transform), every number finite, and the image
size of the clip's frames.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import cv2
import msgspec
import numpy as np

from bus.atomic import atomic_path
from bus.messages.camera import CameraInfo
from perception.frames import Frame
from perception.geometry import camera_matrices, road_to_pixels
from perception.lanes import LaneConfig, LaneMeasurement, estimate_lane

LANES_FILE = "lanes.jsonl"
LANE_COLOR_RGB = (0, 255, 120)
LANE_THICKNESS_PX = 2
LANE_DRAW_STEP_M = 1.0
"""Spacing of the road points projected to draw a fitted line [m]."""
MATRIX_TOLERANCE = 1e-6
"""Largest deviation from 0 0 1 (K's last row) and from a rotation accepted [-]."""
TIMING_NOTE = (
    "the lane step is timed separately (lanes.latency_ms); latency_ms and detector_fps are "
    "the detector's alone; end_to_end_fps includes both"
)


def read_camera_info(path: Path) -> CameraInfo:
    """The checked calibration in ``path`` (see the module docstring for the two layouts).

    :raises OSError: the file is missing or unreadable.
    :raises ValueError: not JSON, not a CameraInfo, or a calibration that cannot be used;
        the message names the file and what is wrong.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or error
        raise OSError(f"camera info {str(path)!r} cannot be read: {reason}") from None
    try:
        # The standard library's parser, not msgspec's: it reads NaN and Infinity, so that
        # they are reported as non-finite numbers below rather than as malformed JSON.
        document = json.loads(data)
    except ValueError as error:
        raise ValueError(f"camera info {str(path)!r} is not valid JSON ({error})") from None

    where = f"camera info {str(path)!r}"
    if isinstance(document, dict) and "camera_info" in document:
        document, where = document["camera_info"], f"{where} (its camera_info entry)"
    try:
        info = msgspec.convert(document, CameraInfo)
    except msgspec.ValidationError as error:
        raise ValueError(f"{where} is not a CameraInfo: {error}") from None

    problem = _calibration_problem(info)
    if problem is not None:
        raise ValueError(f"{where}: {problem}")
    return info


def _calibration_problem(info: CameraInfo) -> str | None:
    """What makes ``info`` unusable for the lane estimate, or None."""
    if len(info.k) != 9:
        return f"k must hold 9 numbers (3x3, row-major), got {len(info.k)}"
    if len(info.t_camera_ego) != 16:
        return f"t_camera_ego must hold 16 numbers (4x4, row-major), got {len(info.t_camera_ego)}"
    scalars = {f: getattr(info, f) for f in ("hfov_rad", "height_m", "pitch_rad", "forward_m")}
    not_finite = [
        name
        for name, values in (("k", info.k), ("t_camera_ego", info.t_camera_ego), *scalars.items())
        if not np.all(np.isfinite(values))
    ]
    if not_finite:
        return f"non-finite numbers (NaN or infinity) in {', '.join(not_finite)}"
    if info.width <= 0 or info.height <= 0:
        return f"the image size must be positive, got {info.width}x{info.height}"

    k, t_camera_ego = camera_matrices(info)
    if not (k[0, 0] > 0 and k[1, 1] > 0) or not np.allclose(k[2], [0, 0, 1], atol=MATRIX_TOLERANCE):
        return "k is not an intrinsic matrix (fx and fy must be positive, the last row 0 0 1)"
    rotation = t_camera_ego[:3, :3]
    if not np.allclose(t_camera_ego[3], [0, 0, 0, 1], atol=MATRIX_TOLERANCE) or not np.allclose(
        rotation @ rotation.T, np.eye(3), atol=MATRIX_TOLERANCE
    ):
        return "t_camera_ego is not a rigid transform (a rotation, and the last row 0 0 0 1)"
    return None


def check_frame_size(info: CameraInfo, path: Path, size_wh: tuple[int, int], what: str) -> None:
    """Refuse a frame of another size than the calibration's: K holds for that size only.

    :raises ValueError: naming the calibration file and ``what`` (the frame).
    """
    if (info.width, info.height) != size_wh:
        raise ValueError(
            f"camera info {str(path)!r} is for {info.width}x{info.height} images, but {what} "
            f"is {size_wh[0]}x{size_wh[1]}; pass the calibration of the camera that recorded "
            "the clip"
        )


class LaneStep:
    """The lane estimate over the frames of a clip, with the calibration read from ``path``.

    Use :meth:`writing` around the pass over the frames, then :meth:`step` once per frame.
    """

    def __init__(self, info: CameraInfo, path: Path, config: LaneConfig | None = None) -> None:
        self.info = info
        self.path = path
        self.config = config or LaneConfig()
        self.k, self.t_camera_ego = camera_matrices(info)
        self.estimates: list[LaneMeasurement | None] = []
        self.latencies_ms: list[float] = []
        self._lines: TextIO | None = None

    @contextlib.contextmanager
    def writing(self, out: Path) -> Iterator[None]:
        """Write ``out/lanes.jsonl`` atomically: it appears when the block ends, or not at
        all when the block raises."""
        with atomic_path(out / LANES_FILE) as path, path.open("w", encoding="utf-8") as lines:
            self._lines = lines
            try:
                yield
            finally:
                self._lines = None

    def step(self, frame: Frame) -> LaneMeasurement | None:
        """The frame's lane estimate, timed and written as one line of ``lanes.jsonl``.

        :raises ValueError: the frame's size differs from the calibration's.
        """
        size_wh = (frame.image_rgb.shape[1], frame.image_rgb.shape[0])
        check_frame_size(self.info, self.path, size_wh, f"frame {frame.name!r}")
        started = time.perf_counter()
        measurement = estimate_lane(frame.image_rgb, self.k, self.t_camera_ego, self.config)
        latency_ms = (time.perf_counter() - started) * 1000.0

        self.estimates.append(measurement)
        self.latencies_ms.append(latency_ms)
        if self._lines is not None:
            record = lane_record(frame.index, frame.name, measurement, latency_ms)
            self._lines.write(json.dumps(record) + "\n")
        return measurement

    def draw(self, image_rgb: np.ndarray, measurement: LaneMeasurement | None) -> np.ndarray:
        """A copy of the frame with the two fitted lines drawn from ``near_m`` to ``far_m``
        ahead (the stretch they were fitted on); the frame itself when there is no estimate."""
        if measurement is None:
            return image_rgb
        canvas = image_rgb.copy()
        ahead_m = np.arange(self.config.near_m, self.config.far_m + 1e-9, LANE_DRAW_STEP_M)
        for fit in (measurement.left, measurement.right):
            lateral_m = np.polyval(fit.coefficients[::-1], ahead_m)
            road_xy = np.column_stack([ahead_m, lateral_m])
            pixels = road_to_pixels(road_xy, self.k, self.t_camera_ego)
            pixels = pixels[np.all(np.isfinite(pixels), axis=1)]
            if len(pixels) >= 2:
                points = np.round(pixels).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(
                    canvas, [points], False, LANE_COLOR_RGB, LANE_THICKNESS_PX, cv2.LINE_AA
                )
        return canvas

    def summary(self) -> dict[str, Any]:
        """The ``lanes`` entry of ``summary.json``."""
        frames = len(self.estimates)
        widths = [m.lane_width_m for m in self.estimates if m is not None]
        latencies = np.array(self.latencies_ms or [math.nan])
        return {
            "camera_info": str(self.path),
            "frames": frames,
            "frames_with_estimate": len(widths),
            "share_with_estimate": len(widths) / frames if frames else None,
            "median_lane_width_m": float(np.median(widths)) if widths else None,
            "latency_ms": {
                "mean": float(latencies.mean()),
                "p95": float(np.percentile(latencies, 95)),
                "max": float(latencies.max()),
            },
            "timing": TIMING_NOTE,
        }


def lane_record(
    index: int, name: str, measurement: LaneMeasurement | None, latency_ms: float
) -> dict[str, Any]:
    """One line of ``lanes.jsonl``: ``lane`` is null when no estimate was found; the lines
    are ``(c0, c1, c2)`` of ``y = c0 + c1 x + c2 x^2`` [m], ego frame (x forward, y left)."""
    lane = None
    if measurement is not None:
        lane = {
            "lateral_offset_m": round(measurement.lateral_offset_m, 4),
            "heading_error_rad": round(measurement.heading_error_rad, 5),
            "lane_width_m": round(measurement.lane_width_m, 4),
            "curvature_1pm": round(measurement.curvature_1pm, 6),
            "left_line": [round(float(c), 6) for c in measurement.left.coefficients],
            "right_line": [round(float(c), 6) for c in measurement.right.coefficients],
        }
    return {"frame": index, "name": name, "latency_ms": round(latency_ms, 3), "lane": lane}


def banner_note(measurement: LaneMeasurement | None) -> str:
    """The lane part of an annotated frame's banner line."""
    if measurement is None:
        return "no lane"
    return f"lane {measurement.lane_width_m:.2f} m, offset {measurement.lateral_offset_m:+.2f} m"
