"""``drivestack train-sign-classifier``: train the sign-type CNN on real crops."""

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
    import torch

    from perception.sign_training import SignTrainConfig, train_sign_classifier
    from perception.signs import load_sign_folder
    from sim.progress import progress_bar

    if not 0 < args.holdout < 1:
        raise ValueError(f"--holdout must be between 0 and 1, got {args.holdout}")
    out = check_writable_dir(args.out)
    data = load_sign_folder(args.data)
    config = SignTrainConfig(epochs=args.epochs, holdout_fraction=args.holdout, seed=args.seed)
    started = time.perf_counter()
    with progress_bar(not args.no_progress, total=args.epochs, unit="epoch", leave=False) as bar:

        def progress(epoch: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

        result = train_sign_classifier(data, config, progress)

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
        "wall_s": time.perf_counter() - started,
    }
    write_json(out / "summary.json", summary)
    print(
        f"held-out accuracy {result.test_accuracy:.2%} on {result.test_count} crops "
        f"(train {result.train_accuracy:.2%} on {result.train_count})"
    )
    print(json.dumps(result.per_class_test_accuracy))
    print(f"weights: {out / 'sign_classifier.pt'}")
    return 0
