"""``drivestack build-map``: write the HD map of a simulated world."""

from __future__ import annotations

import argparse
import logging

from sim.commands.args import nonnegative_int
from sim.envs import SUPPORTED_ENVS, check_env_id

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-map",
        help="write the HD map (lanes, signs, landmarks) of a simulated world",
        description=(
            "Build the HD map of the world that ENV and SEED generate: lane centre lines with "
            "widths and speed limits, the dash layout of dashed lane lines, traffic signs and "
            "landmarks, in the bus 'map' frame "
            "(x forward, y left, metres). The file is versioned JSON (mapping/hdmap.py), "
            "written atomically."
        ),
    )
    parser.add_argument(
        "--env",
        default="highway-fast-v0",
        choices=SUPPORTED_ENVS,
        help="highway-env environment (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="episode seed; the world (signs, landmarks) is a function of it (default: 0)",
    )
    parser.add_argument(
        "--out", default="map.json", metavar="FILE", help="map file to write (default: %(default)s)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mapping.hdmap import build_map, write_map
    from sim.envs import make_env

    env = make_env(check_env_id(args.env))
    try:
        hd_map = build_map(env, args.seed, env_id=args.env)
    finally:
        env.close()
    write_map(hd_map, args.out)
    logger.info(
        "wrote %s: %d lanes, %d dashed lines, %d signs, %d landmarks",
        args.out,
        len(hd_map.lanes),
        len(hd_map.dashed_lines),
        len(hd_map.signs),
        len(hd_map.landmarks),
    )
    return 0
