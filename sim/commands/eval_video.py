"""``drivestack eval-video``: detection over a recorded clip, with metrics given labels and
the lane estimate given the camera's calibration."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sim.commands.args import output_dir, positive_int, thread_count, zoom_window

logger = logging.getLogger(__name__)

DETECT_CONF = 0.25
"""Default score threshold when only detecting."""

SCORING_CONF = 0.01
"""Default score threshold when scoring against labels (COCO-style AP wants low-score
detections too). Precision and recall are not taken at this threshold but, per class, at
the score threshold that maximises F1 (see :class:`perception.evaluation.ClassMetrics`)."""

OPERATING_POINT_NOTE = (
    "P, R: precision and recall at IoU 0.5 at each class's best-F1 score threshold (thr); "
    "dets: every detection kept (score >= --conf); AP over all of them"
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval-video",
        help="run the detector over a video or image sequence and score it against labels",
        description=(
            "Detect cars, trucks, pedestrians and traffic signs in every frame of a video "
            "file or a directory of images. Writes OUT/annotated.mp4, OUT/detections.jsonl "
            "(one line per frame: boxes xyxy in pixels, class, score, latency), "
            "OUT/coco_results.json (COCO results format, image_id = frame index) and, last, "
            "OUT/summary.json (per-frame latency, detector FPS). With --labels it also "
            "computes per-class AP@0.5 and AP@0.5:0.95 with pycocotools over the labelled "
            "frames, and precision and recall at IoU 0.5 at the score threshold that "
            "maximises the class's F1 (printed as thr; not at --conf) (OUT/metrics.json, "
            "OUT/pr_curve.png). With --camera-info it also estimates the ego lane in every "
            "frame (OUT/lanes.jsonl, the fitted lines drawn into OUT/annotated.mp4, a lanes "
            "entry in the summary). Inputs are checked "
            "before OUT is created; a run that fails leaves no summary.json. A video that ends "
            "before the frame count its header states is scored on the frames read, and its "
            "summary says complete: false, with frames_expected, frames_read and the reason."
        ),
    )
    parser.add_argument(
        "input",
        metavar="VIDEO_OR_FRAME_DIR",
        help="video file (MP4, AVI, ...) or directory of PNG/JPEG frames in name order",
    )
    parser.add_argument(
        "--labels",
        metavar="PATH",
        help=(
            "ground truth: a directory of YOLO .txt files (normalised 'CLASS CX CY W H'; class "
            "names from classes.txt or data.yaml, else ours: car truck pedestrian "
            "traffic_sign lane_line), a KITTI label_2 directory, or a COCO JSON file. Label "
            "files match frames by file stem, or by trailing frame number for videos "
            "(000012.txt = 13th frame); only labelled frames are scored"
        ),
    )
    parser.add_argument(
        "--camera-info",
        metavar="PATH",
        help=(
            "the calibration of the camera that recorded the clip, for the lane estimate: a "
            "JSON file holding a CameraInfo (image width and height [px], k: 3x3 intrinsics "
            "row-major [px], t_camera_ego: 4x4 ego-to-camera transform row-major [m]) as "
            "msgspec writes it, or a make-dataset episodes/SEED.json whose camera_info entry "
            "holds one. Its image size must match the frames'. Each frame then gets a line in "
            "OUT/lanes.jsonl (lateral_offset_m, heading_error_rad, lane_width_m, "
            "curvature_1pm, the fitted lines; null where no lane is found), the lines are "
            "drawn into annotated.mp4, and summary.json gets a lanes entry (frames with an "
            "estimate, their share, median lane width, the lane step's latency, timed "
            "separately from the detector's). Without it no lane estimate is made (lanes: "
            "null)"
        ),
    )
    parser.add_argument(
        "--weights",
        metavar="W",
        help=(
            "detector weights: drivestack YOLO weights (.pt, default: the shipped model), an "
            "ultralytics checkpoint (.pt, needs --trust-weights), or a COCO ONNX detector "
            "(YOLOX or FastestDet export, .onnx; COCO classes mapped onto ours)"
        ),
    )
    parser.add_argument(
        "--trust-weights",
        action="store_true",
        help="allow pickled ultralytics checkpoints, which run code when loaded",
    )
    parser.add_argument(
        "--conf",
        type=float,
        help=(
            f"minimum detection score kept (default: {DETECT_CONF} without labels, "
            f"{SCORING_CONF} with labels so that AP integrates the whole PR curve; precision "
            "and recall are reported at each class's best-F1 threshold, not at --conf)"
        ),
    )
    parser.add_argument(
        "--zoom",
        type=zoom_window,
        metavar="X0,Y0,X1,Y1",
        help=(
            "also detect in this window of each frame (fractions of width and height), "
            "scaled up to the detector's input size, for distant objects; for drivestack's "
            "front camera 0.36,0.40,0.70,0.58 (the band around the horizon ahead; the "
            "perception node's default). Default: one look at the whole frame"
        ),
    )
    parser.add_argument(
        "--threads",
        type=thread_count,
        default=1,
        help=(
            "CPU threads the detector uses (default: %(default)s; on a shared or busy CPU one "
            "thread is often faster than several). With --zoom and 2 or more, the frame's and "
            "the window's looks run at once, on half the threads each"
        ),
    )
    parser.add_argument(
        "--max-frames", type=positive_int, metavar="N", help="stop after the first N frames"
    )
    parser.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    parser.add_argument(
        "--out",
        type=output_dir,
        default="runs/eval_video",
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from perception.video_eval import ClipEvalConfig, check_inputs, run_clip_eval

    if args.conf is None:
        args.conf = SCORING_CONF if args.labels else DETECT_CONF
    if not 0.0 <= args.conf <= 1.0:
        raise ValueError(f"--conf must be between 0 and 1, got {args.conf}")
    config = ClipEvalConfig(
        source=Path(args.input),
        out=Path(args.out),
        labels=Path(args.labels) if args.labels else None,
        write_video=not args.no_video,
        max_frames=args.max_frames,
        progress=not args.no_progress,
        camera_info=Path(args.camera_info) if args.camera_info else None,
    )
    # Frames, labels, calibration and weights are checked before --out is created or touched.
    inputs = check_inputs(config)
    detector = resolve_detector(
        args.weights, args.conf, args.trust_weights, args.threads, zoom=args.zoom
    )
    summary = run_clip_eval(config, detector, inputs)
    print(format_summary(summary))
    print(f"summary: {config.out / 'summary.json'}")
    return 130 if summary["interrupted"] else 0


def resolve_detector(weights: str | None, conf: float, trust: bool, threads: int = 1, zoom=None):
    """The detector for ``--weights``, or the shipped model, using ``threads`` CPU threads
    (and a second look at the ``zoom`` window, if given)."""
    import torch

    from perception.detector import load_detector
    from perception.yolo_detector import SHIPPED_DETECTOR

    if weights is None:
        if not SHIPPED_DETECTOR.is_file():
            raise OSError(f"no shipped detector at {SHIPPED_DETECTOR}; pass --weights")
        weights = str(SHIPPED_DETECTOR)
    # With a zoom window and two threads or more, each look gets half the threads and both
    # run at once: on two cores that beats two threads taking the looks in turn.
    parallel = zoom is not None and threads >= 2
    per_look = threads // 2 if parallel else threads
    torch.set_num_threads(per_look)
    return load_detector(
        weights, conf=conf, trust=trust, threads=per_look, zoom=zoom, zoom_parallel=parallel
    )


def format_summary(summary: dict) -> str:
    latency = summary["latency_ms"]
    lines = [
        f"{summary['frames']} frames with {summary['detector']}: detector "
        f"{summary['detector_fps']:.1f} FPS (latency mean {latency['mean']:.1f} ms, "
        f"p95 {latency['p95']:.1f} ms), end-to-end {summary['end_to_end_fps']:.1f} FPS"
    ]
    if summary.get("truncated"):
        lines.append(f"INCOMPLETE: {summary['incomplete_reason']}")
    lanes = summary.get("lanes")
    if lanes:
        width = lanes["median_lane_width_m"]
        lines.append(
            f"lanes: estimate on {lanes['frames_with_estimate']} of {lanes['frames']} frames, "
            f"median width {'-' if width is None else f'{width:.2f} m'}, lane step "
            f"{lanes['latency_ms']['mean']:.1f} ms mean (not in the detector latency)"
        )
    metrics = summary.get("metrics")
    if metrics:
        lines.append(
            f"{'class':>13} {'gt':>5} {'dets':>5} {'thr':>6} {'P':>6} {'R':>6} {'AP50':>6} "
            f"{'AP50-95':>8}"
        )
        for name, c in metrics["classes"].items():
            if c["ground_truth"] == 0 and c["detections"] == 0:
                continue
            lines.append(
                f"{name:>13} {c['ground_truth']:>5d} {c['detections']:>5d} "
                f"{_fmt(c.get('f1_threshold'))} {_fmt(c['precision'])} "
                f"{_fmt(c['recall'])} {_fmt(c['ap50'])} {_fmt(c['ap50_95'], 8)}"
            )
        lines.append(
            f"mAP50 {_fmt(metrics['map50']).strip()}  mAP50-95 {_fmt(metrics['map50_95']).strip()}"
        )
        lines.append(OPERATING_POINT_NOTE)
    return "\n".join(lines)


def _fmt(value: float | None, width: int = 6) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.3f}"
