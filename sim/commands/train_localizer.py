"""``drivestack train-localizer``: generate drives, train the landmark localizer CNN, evaluate."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict

from sim.commands.args import nonnegative_int, output_dir, positive_int, seed_list

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-localizer",
        help="train the CNN landmark localizer on generated drives",
        description=(
            "Render drives of the training seeds (front camera, true poses, several views per "
            "step from perturbed poses), train the localizer CNN on them, then evaluate it "
            "with the EKF on held-out seeds. Writes OUT/train.npz (the dataset, reused with "
            "--data), OUT/localizer.pt (state_dict, rewritten after every epoch), "
            "OUT/config.json, TensorBoard logs in OUT/tb, and OUT/summary.json last."
        ),
    )
    parser.add_argument(
        "--env", default="highway-fast-v0", help="highway-env environment (default: %(default)s)"
    )
    parser.add_argument(
        "--train-seeds",
        type=seed_list,
        default=seed_list("0-47"),
        metavar="SEEDS",
        help="training drives, A-B or A,B,C (default: 0-47)",
    )
    parser.add_argument(
        "--eval-seeds",
        type=seed_list,
        default=seed_list("1000-1009"),
        metavar="SEEDS",
        help="held-out drives (default: 1000-1009)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=30,
        help="control steps per drive (default: %(default)s)",
    )
    parser.add_argument(
        "--views",
        type=positive_int,
        default=3,
        help="views rendered per step, all but one perturbed (default: 3)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=12, help="training epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=64, help="frames per step (default: %(default)s)"
    )
    parser.add_argument(
        "--threads", type=positive_int, default=2, help="torch CPU threads (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="training seed (default: %(default)s)"
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="FILE",
        help="use this dataset (.npz from an earlier run) instead of rendering",
    )
    parser.add_argument(
        "--out",
        type=output_dir,
        default="runs/localizer",
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from bus.atomic import atomic_path, check_writable_dir, write_json
    from mapping.dataset import generate_dataset, load_dataset, save_dataset
    from mapping.drives import DriveConfig
    from mapping.evaluation import evaluate
    from mapping.localizer_training import TrainConfig, train_net
    from sim.commands.eval_localizer import format_table
    from sim.envs import check_env_id
    from sim.progress import progress_bar

    # Check every input before touching --out, so a bad one leaves nothing behind.
    overlap = set(args.train_seeds) & set(args.eval_seeds)
    if overlap:
        raise ValueError(f"training and held-out seeds overlap: {sorted(overlap)[:10]}")
    drive = DriveConfig(env_id=check_env_id(args.env), steps=args.steps, views_per_step=args.views)
    train = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, threads=args.threads
    )
    data = load_dataset(args.data) if args.data else None
    out = check_writable_dir(args.out)
    started = time.time()

    # Data: render the training drives, unless a dataset file was given.
    if data is None:
        total = len(args.train_seeds) * args.steps * args.views
        with progress_bar(not args.no_progress, total=total, desc="render") as bar:
            data = generate_dataset(args.train_seeds, drive, bar)
        save_dataset(data, out / "train.npz")
    logger.info("training on %d frames", len(data.images))
    write_json(
        out / "config.json",
        {
            "command": "train-localizer",
            "drive": asdict(drive),
            "train": asdict(train),
            "train_seeds": args.train_seeds,
            "eval_seeds": args.eval_seeds,
            "data": args.data,
        },
    )

    # Train, saving the weights after every epoch so an interrupted run keeps them.
    writer = SummaryWriter(str(out / "tb"))
    history = []

    def on_epoch(epoch: int, terms: dict[str, float]) -> None:
        history.append({"epoch": epoch, **terms})
        for name, value in terms.items():
            writer.add_scalar(f"train/{name}", value, epoch)
        logger.info("epoch %d: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in terms.items()))

    steps = args.epochs * -(-len(data.images) // args.batch_size)
    with progress_bar(not args.no_progress, total=steps, desc="train") as bar:
        net = train_net(data, train, on_epoch=on_epoch, on_step=lambda: bar.update(1))
    writer.close()
    with atomic_path(out / "localizer.pt") as tmp:
        torch.save(net.state_dict(), tmp)

    # Held-out evaluation with the filter, one thread (the deployment setting).
    torch.set_num_threads(1)
    with progress_bar(
        not args.no_progress, total=len(args.eval_seeds) * args.steps, desc="eval"
    ) as bar:
        result = evaluate(net, args.eval_seeds, drive, on_frame=lambda: bar.update(1))
    summary = {
        "train_frames": len(data.images),
        "wall_s": time.time() - started,
        "history": history,
        "eval": result.summary(),
    }
    write_json(out / "summary.json", summary)
    print(format_table(summary["eval"], args.steps))
    print(f"weights: {out / 'localizer.pt'}, summary: {out / 'summary.json'}")
    return 0
