"""``drivestack eval-localizer``: localizer and filter errors on held-out generated drives."""

from __future__ import annotations

import argparse
import logging
import math

from sim.commands.args import positive_int
from sim.commands.train_localizer import seed_list

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval-localizer",
        help="evaluate the landmark localizer on held-out drives",
        description=(
            "Drive the held-out seeds, localize every camera frame with the CNN localizer "
            "and the dash pattern of the mapped lane lines (prior: the EKF's prediction "
            "from noisy odometry) and fuse the fixes. Reports "
            "median and 95th-percentile position error [m], median heading error [deg] and "
            "the share of frames within 1 m, for the localizer's fixes, the fused pose and "
            "dead reckoning; and the localizer's rate on one CPU thread. Writes "
            "OUT/summary.json."
        ),
    )
    parser.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="localizer state_dict (default: the shipped weights)",
    )
    parser.add_argument(
        "--env", default="highway-fast-v0", help="highway-env environment (default: %(default)s)"
    )
    parser.add_argument(
        "--seeds",
        type=seed_list,
        default=seed_list("1000-1009"),
        metavar="SEEDS",
        help="held-out drives, A-B or A,B,C (default: 1000-1009)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=30,
        help="control steps per drive (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default="runs/localizer_eval",
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from bus.atomic import check_writable_dir, write_json
    from mapping.drives import DriveConfig
    from mapping.evaluation import evaluate
    from mapping.localizer import load_net
    from sim.envs import check_env_id
    from sim.progress import progress_bar

    net = load_net(args.weights)  # before creating --out, so a bad file leaves nothing behind
    out = check_writable_dir(args.out)
    torch.set_num_threads(1)
    drive = DriveConfig(env_id=check_env_id(args.env), steps=args.steps)
    with progress_bar(not args.no_progress, total=len(args.seeds) * args.steps, desc="eval") as bar:
        result = evaluate(net, args.seeds, drive, on_frame=lambda: bar.update(1))
    summary = result.summary()
    write_json(
        out / "summary.json", {"weights": args.weights or "shipped", "seeds": args.seeds, **summary}
    )
    print(format_table(summary))
    return 0


def format_table(summary: dict) -> str:
    """The summary as a fixed-width table."""
    lines = [
        f"{summary['frames']} frames, "
        f"{100 * summary['fix_with_landmarks_share']:.0f} % with landmarks, "
        f"{100 * summary.get('fix_with_dashes_share', 0.0):.0f} % with lane dashes",
        f"{'estimate':<16}{'median m':>10}{'p95 m':>10}{'<=1 m':>8}{'heading deg':>13}",
    ]
    for key in ("localizer", "fused", "dead_reckoning"):
        stats = summary[key]
        if not stats.get("frames"):
            lines.append(f"{key:<16}{'no frames':>10}")
            continue
        heading = stats.get("median_heading_deg", math.nan)
        lines.append(
            f"{key:<16}{stats['median_m']:>10.3f}{stats['p95_m']:>10.3f}"
            f"{100 * stats['within_1m']:>7.0f}%{heading:>13.2f}"
        )
    lines.append(
        f"localizer: {summary['localizer_hz']:.0f} Hz median, p95 latency "
        f"{summary['localizer_ms_p95']:.1f} ms (one thread)"
    )
    return "\n".join(lines)
