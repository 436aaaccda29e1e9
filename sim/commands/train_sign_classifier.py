"""``drivestack train-sign-classifier``: train the sign-type CNN on real and rendered crops."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from bus.atomic import atomic_path, check_writable_dir, write_json
from sim.commands.args import nonnegative_int, positive_int

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "signs"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-sign-classifier",
        help="train the traffic-sign type classifier",
        description=(
            "Train the small sign-type CNN on folders of sign crops (DATA/classes.txt with "
            "'INDEX NAME' lines, crops in DATA/INDEX/; class 0 is 'not a sign'). The last "
            "--holdout share of each class's files is held out and its accuracy reported. "
            "--rendered adds the sign plates of simulated frames (a make-dataset directory): "
            "its classes (stop, yield, no overtaking, warning, speed limit N) join the real "
            "ones, its val episodes are held out and reported apart. "
            "Writes OUT/sign_classifier.pt (a state_dict), OUT/sign_classifier.json (class "
            "names) and OUT/summary.json (accuracies, config) last."
        ),
    )
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        metavar="DIR",
        help="crop folder (default: %(default)s)",
    )
    parser.add_argument(
        "--rendered",
        action="append",
        default=[],
        metavar="DIR",
        help=(
            "a make-dataset directory whose sign plates (at least --min-plate-px, fully in "
            "view) are added as rendered crops; repeatable (default: real crops only)"
        ),
    )
    parser.add_argument(
        "--min-plate-px",
        type=float,
        default=16.0,
        metavar="PX",
        help="least plate size of a rendered crop [px] (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=15, help="epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="held-out share of each class (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default="runs/signs", metavar="DIR", help="output directory (default: %(default)s)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from perception.rendered_signs import (
        RenderedSignConfig,
        load_rendered_signs,
        merge_with_rendered,
    )
    from perception.sign_training import SignTrainConfig, train_sign_classifier
    from perception.signs import load_sign_folder
    from sim.progress import progress_bar

    if not 0 < args.holdout < 1:
        raise ValueError(f"--holdout must be between 0 and 1, got {args.holdout}")
    if not 1.0 <= args.min_plate_px < 1000.0:
        raise ValueError(f"--min-plate-px must be in [1, 1000), got {args.min_plate_px}")
    data = load_sign_folder(args.data)
    real_count = len(data.labels)
    fixed = None
    for index, rendered_dir in enumerate(args.rendered):
        rendered = load_rendered_signs(
            rendered_dir, RenderedSignConfig(min_plate_px=args.min_plate_px, seed=args.seed + index)
        )
        logger.info("%s: %d rendered crops", rendered_dir, len(rendered.names))
        data, more = merge_with_rendered(data, rendered)
        fixed = more if fixed is None else np.concatenate([fixed, more[len(fixed) :]])
    out = check_writable_dir(args.out)  # after the data are read: a refusal leaves no folder
    config = SignTrainConfig(epochs=args.epochs, holdout_fraction=args.holdout, seed=args.seed)
    started = time.perf_counter()
    with progress_bar(not args.no_progress, total=args.epochs, unit="epoch", leave=False) as bar:

        def progress(epoch: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

        result = train_sign_classifier(data, config, progress, fixed_split=fixed)

    with atomic_path(out / "sign_classifier.pt") as tmp:
        torch.save(result.model.state_dict(), tmp)
    write_json(out / "sign_classifier.json", {"class_names": data.class_names})
    summary = {
        "command": "train-sign-classifier",
        "data": str(Path(args.data).resolve()),
        "config": config.__dict__,
        "train_count": result.train_count,
        "test_count": result.test_count,
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "per_class_test_accuracy": result.per_class_test_accuracy,
        "rendered": [str(Path(d).resolve()) for d in args.rendered],
        **_by_source(result, data.labels, real_count),
        "wall_s": time.perf_counter() - started,
    }
    write_json(out / "summary.json", summary)
    print(
        f"held-out accuracy {result.test_accuracy:.2%} on {result.test_count} crops "
        f"(train {result.train_accuracy:.2%} on {result.train_count})"
    )
    if args.rendered:
        print(
            f"  real crops {summary['real_test_accuracy']:.2%} on {summary['real_test_count']}, "
            f"rendered {summary['rendered_test_accuracy']:.2%} on "
            f"{summary['rendered_test_count']}"
        )
    print(json.dumps(result.per_class_test_accuracy))
    print(f"weights: {out / 'sign_classifier.pt'}")
    return 0


def _by_source(result, labels, real_count: int) -> dict:
    """Held-out accuracy and count of the real crops (the first ``real_count``) and of the
    rendered ones."""
    test = result.split.test
    correct = result.test_predicted == labels[test]
    figures = {}
    for source, mask in (("real", test < real_count), ("rendered", test >= real_count)):
        figures[f"{source}_test_count"] = int(mask.sum())
        figures[f"{source}_test_accuracy"] = float(correct[mask].mean()) if mask.any() else None
    return figures
