"""``drivestack train-detector``: train our YOLO nano detector offline."""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

from bus.atomic import check_writable_dir, write_json
from sim.commands.args import nonnegative_int, positive_int

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-detector",
        help="train the YOLO detector on a generated or auto-labelled dataset",
        description=(
            "Train an ultralytics YOLO nano detector built from its model yaml (no downloaded "
            "weights, no network) on a YOLO dataset (a directory with data.yaml naming our "
            "classes: car truck pedestrian traffic_sign, as make-dataset and autolabel write). "
            "Writes OUT/ultralytics/ (ultralytics run: results.csv, weights/best.pt), "
            "OUT/detector.pt (drivestack weights: a float16 state_dict that loads without "
            "running code; use it with eval-video --weights) and OUT/summary.json last."
        ),
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="dataset directory holding data.yaml (or the data.yaml itself)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=30, help="epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--imgsz",
        type=positive_int,
        default=640,
        help="training image size, longest side in px (default: %(default)s)",
    )
    parser.add_argument(
        "--batch", type=positive_int, default=16, help="batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--model",
        default="yolo11n.yaml",
        metavar="YAML",
        help="ultralytics model config (default: %(default)s; e.g. yolov8n.yaml)",
    )
    parser.add_argument(
        "--weights",
        metavar="PATH",
        help=(
            "fine-tune these weights instead of starting from scratch: drivestack weights "
            "(e.g. perception/models/detector.pt, to train it further) or a pretrained "
            "ultralytics .pt, whose COCO car/truck/person/stop sign head rows start our "
            "classes. An ultralytics .pt needs --trust-weights: such checkpoints are pickles "
            "that run code when loaded"
        ),
    )
    parser.add_argument(
        "--trust-weights",
        action="store_true",
        help="allow loading the pickled --weights checkpoint",
    )
    parser.add_argument(
        "--workers",
        type=nonnegative_int,
        default=0,
        help="dataloader worker processes (default: %(default)s)",
    )
    parser.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="share of the training images to use (default: %(default)s)",
    )
    parser.add_argument(
        "--time-hours",
        type=float,
        metavar="H",
        help="train for H hours instead of --epochs (the schedule fits the time)",
    )
    parser.add_argument(
        "--warmup-epochs",
        type=float,
        default=3.0,
        metavar="E",
        help="epochs of learning-rate warm-up (default: %(default)s, ultralytics' own; "
        "a fine-tune of weights trained on the same data needs less, e.g. 0.3)",
    )
    parser.add_argument(
        "--hyp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "another ultralytics training setting, repeatable (e.g. --hyp scale=0.25 --hyp "
            "close_mosaic=1 --hyp lr0=0.002 --hyp optimizer=SGD); see ultralytics' "
            "default.yaml for the keys"
        ),
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        default="runs/detector",
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def _check_weights(weights: Path, args: argparse.Namespace) -> Path:
    """``--weights`` must be drivestack weights, or a pickled checkpoint the user trusts."""
    from perception.yolo_detector import UntrustedWeightsError, load_safe_weights

    if weights.is_dir():
        raise IsADirectoryError(f"weights {str(weights)!r} are a directory, not a weights file")
    if not weights.is_file():
        raise OSError(f"weights {str(weights)!r} do not exist")
    try:
        load_safe_weights(weights)
    except UntrustedWeightsError:
        if not args.trust_weights:
            raise ValueError(
                f"weights {str(weights)!r}: fine-tuning loads a pickled ultralytics checkpoint, "
                "which runs code stored in it; pass --trust-weights if you trust the file"
            ) from None
    except ValueError as error:
        # Not a readable torch archive, or a plain state_dict that is not ours.
        raise ValueError(
            f"{error}; --weights takes drivestack detector weights or an ultralytics "
            "checkpoint (.pt)"
        ) from None
    return weights


def run(args: argparse.Namespace) -> int:
    from perception.detector_training import (
        DetectorTrainConfig,
        find_data_yaml,
        parse_hyp,
        train_detector,
    )

    hyp = parse_hyp(args.hyp)
    data_yaml = find_data_yaml(args.data)
    weights = None if args.weights is None else _check_weights(Path(args.weights), args)
    if args.time_hours is not None and not (0 < args.time_hours < math.inf):
        raise ValueError(f"--time-hours must be a positive number, got {args.time_hours}")
    if not (0.0 <= args.warmup_epochs < math.inf):
        raise ValueError(f"--warmup-epochs must be a number >= 0, got {args.warmup_epochs}")
    if not 0.0 < args.fraction <= 1.0:
        raise ValueError(f"--fraction must be in (0, 1], got {args.fraction}")
    out = check_writable_dir(args.out)
    (out / "summary.json").unlink(missing_ok=True)
    config = DetectorTrainConfig(
        data_yaml=data_yaml,
        out=out,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        model_yaml=args.model,
        weights=weights,
        seed=args.seed,
        workers=args.workers,
        fraction=args.fraction,
        time_hours=args.time_hours,
        warmup_epochs=args.warmup_epochs,
        hyp=hyp,
    )
    started = time.perf_counter()
    result = train_detector(config)
    summary = {
        "command": "train-detector",
        "data": str(data_yaml),
        "model": args.model,
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "seed": args.seed,
        "fine_tuned_from": None if weights is None else str(weights),
        "hyp": dict(hyp),
        "wall_s": time.perf_counter() - started,
        **result,
    }
    write_json(out / "summary.json", summary)
    print(json.dumps(result["final_metrics"], indent=1))
    print(f"weights: {result['weights']}")
    return 0
