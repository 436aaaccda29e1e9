"""``drivestack autolabel``: a YOLO dataset from real frames labelled by a teacher model."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from bus.atomic import check_writable_dir
from sim.commands.args import positive_int

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "autolabel",
        help="label real frames with a pretrained teacher detector into a YOLO dataset",
        description=(
            "Run a teacher detector (a COCO ONNX model such as YOLOX-Nano or FastestDet; COCO "
            "car -> car, bus/truck -> truck, person -> pedestrian, stop sign/traffic light -> "
            "traffic_sign) over videos or image directories and write a YOLO dataset in the "
            "ultralytics layout: OUT/images/{train,val}, OUT/labels/{train,val}, OUT/data.yaml, "
            "and OUT/summary.json last. The last --val-fraction of each source's frames is "
            "the validation split."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="VIDEO_OR_DIR",
        help="one or more video files or image directories",
    )
    parser.add_argument(
        "--teacher",
        required=True,
        metavar="MODEL.onnx",
        help="teacher weights (.onnx COCO detector, or drivestack .pt)",
    )
    parser.add_argument(
        "--conf",
        type=float,
        default=0.4,
        help="minimum teacher score for a box to become a label (default: %(default)s)",
    )
    parser.add_argument(
        "--every",
        type=positive_int,
        default=1,
        metavar="N",
        help="keep every N-th frame (default: %(default)s)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of each source's frames for validation (default: %(default)s)",
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        metavar="N",
        help="read at most the first N frames of each source",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset directory")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from perception.autolabel import AutolabelConfig, autolabel
    from perception.detector import load_detector
    from perception.frames import FrameSource

    if not 0.0 < args.conf <= 1.0:
        raise ValueError(f"--conf must be in (0, 1], got {args.conf}")
    if not 0.0 <= args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    for path in args.inputs:
        FrameSource(path)  # fail on a bad input before loading the model
    teacher = load_detector(args.teacher, conf=args.conf)
    out = check_writable_dir(args.out)  # only once the inputs are known to be good
    config = AutolabelConfig(
        sources=tuple(Path(p) for p in args.inputs),
        out=out,
        every=args.every,
        val_fraction=args.val_fraction,
        max_frames=args.max_frames,
        progress=not args.no_progress,
        teacher_name=teacher.name,
        conf=args.conf,
    )
    summary = autolabel(config, teacher)
    print(
        f"{sum(summary['images'].values())} images ({json.dumps(summary['images'])}), "
        f"boxes {json.dumps(summary['boxes'])}"
    )
    print(f"dataset: {summary['data_yaml']}")
    return 0
