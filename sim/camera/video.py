"""Labelled camera video: every simulation frame as H.264 MP4 plus per-frame ground truth.

For an episode written as ``OUT/camera_NNN.mp4``:

- ``OUT/camera_NNN_labels/FFFFFF.txt``: YOLO boxes of frame F (``class cx cy w h``
  normalised, classes in ``classes.txt``), an empty file for a frame without boxes;
- ``OUT/camera_NNN.jsonl``: one JSON object per frame (``frame``, ``stamp_ns`` and the exact
  labels: boxes with ids and visible fraction, lane lines as image and road polylines).

Frame F of the labels is frame F of the video (0-based, at the simulation frequency).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bus.atomic import atomic_path, write_text
from bus.messages.camera import DETECTION_CLASSES
from sim.camera.labels import labels_to_json, yolo_box_rows
from sim.video import Mp4Writer


class CameraVideoRecorder:
    """Records the camera of ``simulator`` (which needs ``SimConfig.camera``) for one episode.

    :param min_visible_fraction: boxes less visible than this are left out of the YOLO files
        (the JSON lines keep every box).
    """

    def __init__(
        self,
        simulator,
        out: str | os.PathLike,
        episode: int,
        min_visible_fraction: float = 0.25,
        min_height_px: float = 4.0,
    ) -> None:
        out = Path(out)
        self.simulator = simulator
        self.video_path = out / f"camera_{episode:03d}.mp4"
        self.labels_dir = out / f"camera_{episode:03d}_labels"
        self.jsonl_path = out / f"camera_{episode:03d}.jsonl"
        self.min_visible_fraction = min_visible_fraction
        self.min_height_px = min_height_px
        self.frames = 0
        self._video = Mp4Writer(self.video_path, fps=simulator.simulation_rate_hz)
        self._jsonl_context = atomic_path(self.jsonl_path)
        self._jsonl = self._jsonl_context.__enter__().open("w", encoding="utf-8")
        self.labels_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.labels_dir / "classes.txt", "".join(f"{n}\n" for n in DETECTION_CLASSES))
        simulator.sim_frame_hook = self.on_frame

    def on_frame(self, stamp_ns: int) -> None:
        """Render the current simulation frame and append it with its labels."""
        frame = self.simulator.camera_frame(stamp_ns)
        self._video.write(frame.pixels)
        rows = yolo_box_rows(frame.labels, self.min_visible_fraction, self.min_height_px)
        write_text(self.labels_dir / f"{self.frames:06d}.txt", "".join(r + "\n" for r in rows))
        record = {"frame": self.frames, **labels_to_json(frame.labels)}
        self._jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the MP4 and the JSON lines file; returns the video path (None if empty)."""
        self.simulator.sim_frame_hook = None
        self._jsonl.close()
        self._jsonl_context.__exit__(None, None, None)
        return self._video.close()

    def abort(self) -> None:
        """Discard the video and the JSON lines (per-frame files already written stay)."""
        self.simulator.sim_frame_hook = None
        self._jsonl.close()
        self._jsonl_context.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self._video.abort()
