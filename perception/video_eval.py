"""Detection over a recorded clip, with outputs in ecosystem formats and, given labels,
COCO metrics; given the camera's calibration, the lane estimate too. The work behind
``drivestack eval-video``; tests call :func:`run_clip_eval` with any
:class:`perception.detector.Detector` (an oracle, a fake, a real model).

Inputs (frames, labels, calibration) are checked before ``out`` is created or touched.
Outputs in ``out``, each written atomically; ``summary.json`` is written last, so a run that
failed leaves no summary (the stale outputs of an earlier run are removed first, and an
``out`` the failed run created is removed again). A video that ends before the frame count
its header states (truncated or corrupt) is scored on the frames read and its summary says
``complete: false`` with the reason:

- ``annotated.mp4``: frames with boxes drawn (H.264).
- ``detections.jsonl``: one JSON object per frame.
- ``coco_results.json``: detections in COCO results format (``image_id`` = frame index).
- with labels: ``ground_truth_coco.json``, ``metrics.json``, ``pr_curve.png``.
- with a calibration (``camera_info``): ``lanes.jsonl``, one JSON object per frame (see
  :mod:`perception.video_lanes`); the fitted lane lines are drawn into ``annotated.mp4``
  and the summary's ``lanes`` entry counts the frames with an estimate (``lanes`` is null
  without a calibration: a recorded video does not carry one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from bus.atomic import atomic_path, check_writable_dir, write_json
from bus.messages.camera import CameraInfo
from perception.classes import BOX_CLASS_NAMES, CLASS_NAMES
from perception.detector import Detections, Detector
from perception.evaluation import (
    Evaluation,
    coco_ground_truth,
    coco_results,
    evaluate,
    plot_pr_curves,
)
from perception.frames import Frame, FrameSource
from perception.labels import BoxLabels, LabelFile, LabelSet, match_frames, read_labels
from perception.lanes import LaneMeasurement
from perception.video_lanes import (
    LANES_FILE,
    LaneStep,
    banner_note,
    check_frame_size,
    read_camera_info,
)

logger = logging.getLogger(__name__)

OUTPUT_FILES = (
    "summary.json",
    "annotated.mp4",
    "detections.jsonl",
    "coco_results.json",
    "ground_truth_coco.json",
    "metrics.json",
    "pr_curve.png",
    LANES_FILE,
)
CLASS_COLORS_RGB = ((255, 64, 64), (255, 160, 0), (64, 200, 255), (255, 255, 0), (200, 200, 200))
LABEL_COLOR_RGB = (255, 255, 255)
BOX_THICKNESS_PX = 2


@dataclass(frozen=True)
class ClipEvalConfig:
    """:param source: a video file or an image directory.
    :param labels: YOLO or KITTI label directory, or COCO JSON; None for detection only.
    :param write_video: whether to write ``annotated.mp4``.
    :param max_frames: stop after this many frames (None: all).
    :param camera_info: JSON file with the camera's calibration, for the lane estimate
        (see :func:`perception.video_lanes.read_camera_info`); None: no lane estimate.
    """

    source: Path
    out: Path
    labels: Path | None = None
    write_video: bool = True
    max_frames: int | None = None
    progress: bool = True
    camera_info: Path | None = None


@dataclass
class _Run:
    """What the pass over the frames collected."""

    names: list[str]
    sizes_wh: list[tuple[int, int]]
    detections: list[Detections]
    latencies_ms: list[float]
    max_frames: int | None = None
    frames_expected: int = 0
    wall_s: float = 0.0
    interrupted: bool = False
    truncated: bool = False
    lanes: LaneStep | None = None

    @property
    def read_all(self) -> bool:
        """Whether every frame of the clip was read (no stop, no early end)."""
        return not self.interrupted and not self.truncated and self.max_frames is None


class ClipInputs(NamedTuple):
    """The checked inputs of a run: the frames, the labels and the calibration (None
    without)."""

    source: FrameSource
    labels: LabelSet | None
    camera_info: CameraInfo | None = None


def check_inputs(config: ClipEvalConfig) -> ClipInputs:
    """Open the frames, read the labels and the calibration, checking that they match;
    touches no output.

    :raises OSError: unreadable input.
    :raises ValueError: malformed labels, labels that match no frame, unknown classes; a
        calibration that is malformed or for another image size than the first frame's.
    """
    source = FrameSource(config.source)
    label_set = read_labels(config.labels) if config.labels is not None else None
    if label_set is not None:
        match_frames(label_set, source.expected_names())
    camera_info = None
    if config.camera_info is not None:
        camera_info = read_camera_info(config.camera_info)
        first = f"the first frame of {str(config.source)!r}"
        check_frame_size(camera_info, config.camera_info, _first_frame_wh(source), first)
    return ClipInputs(source, label_set, camera_info)


def _first_frame_wh(source: FrameSource) -> tuple[int, int]:
    frames = iter(source)
    try:
        first = next(frames, None)
    finally:
        frames.close()
    if first is None:
        raise OSError(f"input {str(source.path)!r} yielded no frames")
    return first.image_rgb.shape[1], first.image_rgb.shape[0]


def run_clip_eval(
    config: ClipEvalConfig, detector: Detector, inputs: ClipInputs | None = None
) -> dict[str, Any]:
    """Detect over the clip, write the outputs, and return the summary.

    :param inputs: what :func:`check_inputs` returned for ``config`` (checked here if None).
    :raises OSError: unreadable input, or an output that cannot be written.
    :raises ValueError: malformed labels, labels that match no frame, unknown classes.
    """
    inputs = inputs or check_inputs(config)
    created_out = not config.out.exists()
    try:
        return _run_into(config, detector, inputs)
    except BaseException:
        if created_out and config.out.is_dir() and not any(config.out.iterdir()):
            config.out.rmdir()  # leave no empty folder that looks like a run's
        raise


def _run_into(config: ClipEvalConfig, detector: Detector, inputs: ClipInputs) -> dict[str, Any]:
    remove_stale_outputs(config.out)
    run = _detect_all(config, inputs, detector)
    summary = _base_summary(config, detector, inputs.source, run)
    summary["lanes"] = run.lanes.summary() if run.lanes is not None else None
    write_json(config.out / "coco_results.json", coco_results(run.detections))
    if inputs.labels is not None:
        evaluation = _evaluate(config, inputs.labels, run)
        summary["metrics"] = metrics_dict(evaluation)
        scored = len(evaluation_frames(inputs.labels, run))
        summary["labelled_frames"] = scored
        summary["labelled_frames_not_read"] = len(inputs.labels.frames) - scored
    summary["outputs"] = [name for name in OUTPUT_FILES[1:] if (config.out / name).exists()]
    write_json(config.out / "summary.json", summary)
    return summary


def _limit(names: list[str], max_frames: int | None) -> list[str]:
    return names if max_frames is None else names[:max_frames]


def remove_stale_outputs(out: Path) -> None:
    """Create ``out`` if needed, checking it can be written, and delete the outputs of an
    earlier run in it, so none is mistaken for this run's."""
    check_writable_dir(out)
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)


def _detect_all(config: ClipEvalConfig, inputs: ClipInputs, detector: Detector) -> _Run:
    """The pass over the frames: detect (and estimate the lane), draw, append the JSON
    lines. On an exception the partial video and JSON lines are discarded; on Ctrl-C what is
    finished is kept."""
    from sim.progress import progress_bar
    from sim.video import Mp4Writer

    source = inputs.source
    total = _limit(source.expected_names(), config.max_frames)
    run = _Run([], [], [], [], max_frames=config.max_frames, frames_expected=len(total))
    if config.camera_info is not None:
        assert inputs.camera_info is not None, "inputs were checked for another config"
        run.lanes = LaneStep(inputs.camera_info, config.camera_info)
    video = Mp4Writer(config.out / "annotated.mp4", fps=source.fps) if config.write_video else None
    started = time.perf_counter()
    with (
        atomic_path(config.out / "detections.jsonl") as lines_path,
        lines_path.open("w", encoding="utf-8") as lines,
        run.lanes.writing(config.out) if run.lanes is not None else contextlib.nullcontext(),
        progress_bar(
            config.progress,
            total=len(total),
            unit="frame",
            leave=False,
            desc=config.source.name,
        ) as bar,
    ):
        try:
            for frame in source:
                if config.max_frames is not None and frame.index >= config.max_frames:
                    break
                detections, latency_ms = _timed_detect(detector, frame.image_rgb)
                lane = run.lanes.step(frame) if run.lanes is not None else None
                _record(run, frame.name, frame.image_rgb, detections, latency_ms)
                lines.write(
                    json.dumps(_frame_record(frame.index, frame.name, detections, latency_ms))
                    + "\n"
                )
                if video is not None:
                    annotated = _annotate(frame, detections, latency_ms, run.lanes, lane)
                    video.write(_fit(annotated, run.sizes_wh[0], frame.image_rgb.shape))
                bar.update(1)
                bar.set_postfix(fps=f"{1000.0 / max(np.mean(run.latencies_ms), 1e-6):.1f}")
        except KeyboardInterrupt:
            run.interrupted = True
            logger.warning("interrupted after %d frames: keeping what is finished", len(run.names))
        except BaseException:
            if video is not None:
                video.abort()
            raise
    if video is not None:
        video.close()
    run.wall_s = time.perf_counter() - started
    if not run.names:
        raise OSError(f"input {str(config.source)!r} yielded no frames")
    sizes = sorted(set(run.sizes_wh))
    if len(sizes) > 1:
        logger.warning(
            "%s: the frames differ in size (%s; %d of %d not %dx%d): annotated.mp4 shows them "
            "scaled to the first frame's size",
            config.source,
            ", ".join(f"{w}x{h}" for w, h in sizes),
            sum(size != run.sizes_wh[0] for size in run.sizes_wh),
            len(run.sizes_wh),
            *run.sizes_wh[0],
        )
    run.truncated = not run.interrupted and len(run.names) < run.frames_expected
    if run.truncated:
        logger.warning("%s", _truncation_reason(config.source, run))
    elif len(run.names) > run.frames_expected:
        logger.info(
            "%s: read %d frames, more than the %d its header states",
            config.source,
            len(run.names),
            run.frames_expected,
        )
    return run


def _annotate(
    frame: Frame,
    detections: Detections,
    latency_ms: float,
    lanes: LaneStep | None,
    lane: LaneMeasurement | None,
) -> np.ndarray:
    """The frame of ``annotated.mp4``: the fitted lane lines (given a calibration) under
    the boxes, and the banner."""
    if lanes is None:
        return draw_detections(frame.image_rgb, detections, frame.index, latency_ms)
    image_rgb = lanes.draw(frame.image_rgb, lane)
    return draw_detections(image_rgb, detections, frame.index, latency_ms, banner_note(lane))


def _truncation_reason(source: Path, run: _Run) -> str:
    return (
        f"video {str(source)!r} ends after {len(run.names)} of the {run.frames_expected} "
        "frames its header states (truncated or corrupt); results cover the frames read"
    )


def _fit(
    annotated: np.ndarray, first_wh: tuple[int, int], frame_shape: tuple[int, ...]
) -> np.ndarray:
    """Resize an annotated frame of an image sequence whose images differ in size to the
    size the first frame had (a video's frames must share one size)."""
    if (frame_shape[1], frame_shape[0]) == first_wh:
        return annotated
    banner_px = annotated.shape[0] - frame_shape[0]
    return cv2.resize(
        annotated, (first_wh[0], first_wh[1] + banner_px), interpolation=cv2.INTER_AREA
    )


def _timed_detect(detector: Detector, image_rgb: np.ndarray) -> tuple[Detections, float]:
    started = time.perf_counter()
    detections = detector.detect(image_rgb)
    return detections, (time.perf_counter() - started) * 1000.0


def _record(
    run: _Run, name: str, image_rgb: np.ndarray, detections: Detections, latency_ms: float
) -> None:
    run.names.append(name)
    run.sizes_wh.append((image_rgb.shape[1], image_rgb.shape[0]))
    run.detections.append(detections)
    run.latencies_ms.append(latency_ms)


def _frame_record(
    index: int, name: str, detections: Detections, latency_ms: float
) -> dict[str, Any]:
    return {
        "frame": index,
        "name": name,
        "latency_ms": round(latency_ms, 3),
        "detections": [
            {
                "class": CLASS_NAMES[int(c)],
                "class_id": int(c),
                "score": round(float(s), 5),
                "bbox_xyxy": [round(float(v), 2) for v in box],
            }
            for box, s, c in zip(
                detections.boxes_xyxy, detections.scores, detections.class_ids, strict=True
            )
        ],
    }


def draw_detections(
    image_rgb: np.ndarray, detections: Detections, index: int, latency_ms: float, note: str = ""
) -> np.ndarray:
    """A copy of the frame with boxes, class names and scores, and a banner line (ending in
    ``note``)."""
    from sim.video import draw_overlay

    canvas = image_rgb.copy()
    for box, score, cls in zip(
        detections.boxes_xyxy, detections.scores, detections.class_ids, strict=True
    ):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        color = CLASS_COLORS_RGB[int(cls) % len(CLASS_COLORS_RGB)]
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, BOX_THICKNESS_PX)
        cv2.putText(
            canvas,
            f"{CLASS_NAMES[int(cls)]} {score:.2f}",
            (x1, max(y1 - 4, 10)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            color,
            1,
            cv2.LINE_AA,
        )
    banner = f"frame {index}  {len(detections)} detections  {latency_ms:.1f} ms"
    return draw_overlay(canvas, [f"{banner}  {note}" if note else banner])


def _evaluate(config: ClipEvalConfig, label_set: LabelSet, run: _Run) -> Evaluation:
    """COCO evaluation over the frames that have labels; writes the ground truth in COCO
    form, the metrics and the PR plot."""
    matched = evaluation_frames(label_set, run)
    frames = sorted(matched)
    labels: list[BoxLabels] = [matched[i].to_pixels(*run.sizes_wh[i]) for i in frames]
    ground_truth = coco_ground_truth(
        labels, [run.sizes_wh[i] for i in frames], [run.names[i] for i in frames], image_ids=frames
    )
    evaluation = evaluate(ground_truth, coco_results([run.detections[i] for i in frames], frames))
    write_json(config.out / "ground_truth_coco.json", ground_truth)
    write_json(config.out / "metrics.json", metrics_dict(evaluation))
    plot_pr_curves(evaluation, config.out / "pr_curve.png", f"{config.source.name}: PR at IoU 0.5")
    return evaluation


def evaluation_frames(label_set: LabelSet, run: _Run) -> dict[int, LabelFile]:
    """Frame index -> labels, for the frames read that have labels."""
    return match_frames(label_set, run.names, strict=run.read_all)


def metrics_dict(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "map50": evaluation.map50,
        "map50_95": evaluation.map50_95,
        "classes": {c.name: c._asdict() for c in evaluation.classes},
        "implementation": "pycocotools COCOeval (bbox, 101-point interpolated AP)",
    }


def _base_summary(
    config: ClipEvalConfig, detector: Detector, source: FrameSource, run: _Run
) -> dict[str, Any]:
    latencies = np.array(run.latencies_ms)
    return {
        "command": "eval-video",
        "input": str(config.source),
        "labels": None if config.labels is None else str(config.labels),
        "detector": detector.name,
        "classes": list(BOX_CLASS_NAMES),
        "frames": len(run.names),
        "frames_expected": run.frames_expected,
        "frames_read": len(run.names),
        "complete": not run.interrupted and not run.truncated,
        "interrupted": run.interrupted,
        "truncated": run.truncated,
        "incomplete_reason": (
            "interrupted"
            if run.interrupted
            else _truncation_reason(config.source, run)
            if run.truncated
            else None
        ),
        "frame_size_wh": list(run.sizes_wh[0]),
        "frame_sizes_wh": [list(size) for size in sorted(set(run.sizes_wh))],
        "video_fps": source.fps,
        "latency_ms": {
            "mean": float(latencies.mean()),
            "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)),
            "max": float(latencies.max()),
            "per_frame": [round(v, 3) for v in run.latencies_ms],
        },
        "detector_fps": float(1000.0 / latencies.mean()) if latencies.mean() > 0 else None,
        "end_to_end_fps": len(run.names) / run.wall_s if run.wall_s > 0 else None,
    }
