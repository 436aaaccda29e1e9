"""``drivestack eval-localizer``: localizer and filter errors on held-out generated drives."""

from __future__ import annotations

import argparse
import logging

from sim.commands.args import output_dir, positive_int, seed_list

logger = logging.getLogger(__name__)

DEFAULT_ENV = "highway-fast-v0"
DEFAULT_SEEDS = "1000-1009"


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
            "dead reckoning; and the localizer's rate on one CPU thread. Drives that end "
            "before --steps (the ego crashed, or the episode ended) are listed. Writes "
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
        "--env",
        default=None,
        help=f"highway-env environment (default: the --map's, else {DEFAULT_ENV})",
    )
    parser.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        metavar="SEEDS",
        help=f"held-out drives, A-B or A,B,C (default: the --map's seed, else {DEFAULT_SEEDS})",
    )
    parser.add_argument(
        "--map",
        default=None,
        metavar="FILE",
        help="localize against this HD map file (from 'drivestack build-map') instead of the "
        "map built from each drive's world. A map holds the world of one env and seed, so "
        "only that seed is driven; the map is checked against the world (env, seed, lanes, "
        "landmarks) and refused when it does not match",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=30,
        help="control steps per drive (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=output_dir,
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
    from sim.progress import progress_bar

    # Check every input before creating --out, so a bad one leaves nothing behind.
    net = load_net(args.weights)
    env_id, seeds, maps = _drives(args)
    out = check_writable_dir(args.out)
    torch.set_num_threads(1)
    drive = DriveConfig(env_id=env_id, steps=args.steps)
    with progress_bar(not args.no_progress, total=len(seeds) * args.steps, desc="eval") as bar:
        result = evaluate(net, seeds, drive, on_frame=lambda: bar.update(1), maps=maps)
    summary = result.summary()
    write_json(
        out / "summary.json",
        {
            "weights": args.weights or "shipped",
            "map": args.map,
            "env": env_id,
            "seeds": seeds,
            "steps": args.steps,
            **summary,
        },
    )
    print(format_table(summary, args.steps))
    return 0


def _drives(args: argparse.Namespace) -> tuple[str, list[int], dict | None]:
    """(env id, seeds, maps by seed or None) of the drives to evaluate; with --map, by
    default its own env and seed, and it must match them."""
    from mapping.hdmap import check_map_for, read_map
    from sim.envs import check_env_id

    if args.map is None:
        seeds = args.seeds or seed_list(DEFAULT_SEEDS)
        return check_env_id(args.env or DEFAULT_ENV), seeds, None
    hd_map = read_map(args.map)
    env_id = check_env_id(args.env or hd_map.env_id)
    seeds = args.seeds or [hd_map.seed]
    advice = "; drop --seeds, or build one map per seed with 'drivestack build-map --seed N'"
    check_map_for(hd_map, args.map, env_id, seeds, advice)
    return env_id, seeds, {hd_map.seed: (hd_map, args.map)}


def format_table(summary: dict, steps: int | None = None) -> str:
    """The summary as a fixed-width table; ``steps`` (per drive, requested) lets it say
    which drives ended early."""
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
        heading = stats.get("median_heading_deg")
        heading_text = "-" if heading is None else f"{heading:.2f}"
        lines.append(
            f"{key:<16}{stats['median_m']:>10.3f}{stats['p95_m']:>10.3f}"
            f"{100 * stats['within_1m']:>7.0f}%{heading_text:>13}"
        )
    lines.append(
        f"localizer: {summary['localizer_hz']:.0f} Hz median, p95 latency "
        f"{summary['localizer_ms_p95']:.1f} ms (one thread)"
    )
    ended_early = summary.get("ended_early") or []
    if ended_early:
        of_steps = f" of {steps}" if steps else ""
        drives = ", ".join(
            f"seed {d['seed']} after {d['steps']}{of_steps} steps ({d['end']})" for d in ended_early
        )
        lines.append(
            f"{len(ended_early)} of {len(summary.get('drives', []))} drives ended early: {drives}"
        )
    return "\n".join(lines)
