"""A small multi-object tracker over road-frame detections: greedy IoU association in the
image, per class, with stable integer ids and velocities from the road-frame positions.

ByteTrack-like in spirit (confident detections first, then low-score ones may extend
existing tracks), kept small because our frames come at the control rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.detector import Detections, box_iou


@dataclass(frozen=True)
class TrackerConfig:
    """:param match_iou: minimum IoU between a track's last box and a detection.
    :param high_score: detections at or above it may start tracks.
    :param max_missed: frames a track survives without a detection.
    :param velocity_smoothing: weight of the newest velocity in the running average.
    """

    match_iou: float = 0.3
    high_score: float = 0.5
    max_missed: int = 2
    velocity_smoothing: float = 0.5


@dataclass
class Track:
    """One tracked object: id, class, last box [px], road position [m, ego frame] and
    velocity relative to the ego [m/s, ego frame]."""

    track_id: int
    class_id: int
    box_xyxy: np.ndarray
    score: float
    position_m: np.ndarray
    stamp_s: float
    velocity_mps: np.ndarray = field(default_factory=lambda: np.zeros(2))
    hits: int = 1
    missed: int = 0


class Tracker:
    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks.clear()
        self._next_id = 1

    def update(
        self, detections: Detections, positions_m: np.ndarray, stamp_s: float
    ) -> list[Track]:
        """Associate one frame's detections (with their road positions (N, 2)) and return
        the tracks updated in this frame."""
        unmatched = set(range(len(detections)))
        updated: list[Track] = []
        high_first = sorted(unmatched, key=lambda i: -float(detections.scores[i]))
        for track in sorted(self.tracks, key=lambda t: -t.hits):
            best = self._best_match(track, detections, [i for i in high_first if i in unmatched])
            if best is None:
                track.missed += 1
                continue
            unmatched.discard(best)
            self._refresh(track, detections, positions_m, best, stamp_s)
            updated.append(track)
        for index in sorted(unmatched):
            if detections.scores[index] >= self.config.high_score:
                updated.append(self._start(detections, positions_m, index, stamp_s))
        self.tracks = [t for t in self.tracks if t.missed <= self.config.max_missed]
        return updated

    def _best_match(
        self, track: Track, detections: Detections, candidates: list[int]
    ) -> int | None:
        same_class = [i for i in candidates if detections.class_ids[i] == track.class_id]
        if not same_class:
            return None
        ious = box_iou(track.box_xyxy[None], detections.boxes_xyxy[same_class])[0]
        best = int(np.argmax(ious))
        return same_class[best] if ious[best] >= self.config.match_iou else None

    def _refresh(
        self,
        track: Track,
        detections: Detections,
        positions_m: np.ndarray,
        index: int,
        stamp_s: float,
    ) -> None:
        position = positions_m[index]
        dt = stamp_s - track.stamp_s
        if dt > 0 and np.all(np.isfinite(position)) and np.all(np.isfinite(track.position_m)):
            weight = self.config.velocity_smoothing if track.hits > 1 else 1.0
            track.velocity_mps = (1 - weight) * track.velocity_mps + weight * (
                position - track.position_m
            ) / dt
        track.box_xyxy = detections.boxes_xyxy[index]
        track.score = float(detections.scores[index])
        track.position_m = position
        track.stamp_s = stamp_s
        track.hits += 1
        track.missed = 0

    def _start(
        self, detections: Detections, positions_m: np.ndarray, index: int, stamp_s: float
    ) -> Track:
        track = Track(
            self._next_id,
            int(detections.class_ids[index]),
            detections.boxes_xyxy[index],
            float(detections.scores[index]),
            positions_m[index],
            stamp_s,
        )
        self._next_id += 1
        self.tracks.append(track)
        return track
