"""``drivestack build-map``: write the HD map of a simulated world."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

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
        "--out",
        type=map_file,
        default="map.json",
        metavar="FILE",
        help="map file to write; its directory is created (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def map_file(text: str) -> str:
    """Argument type of ``--out``: a file name, not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a map file, got an empty string")
    return text


def run(args: argparse.Namespace) -> int:
    from mapping.hdmap import build_map, write_map
    from sim.envs import make_env

    out = _check_map_path(Path(args.out))
    env = make_env(check_env_id(args.env))
    try:
        hd_map = build_map(env, args.seed, env_id=args.env)
    finally:
        env.close()
    try:
        write_map(hd_map, out)
    except OSError as error:
        raise OSError(
            f"map file {args.out!r} cannot be written: {error.strerror or error}"
        ) from None
    logger.info(
        "wrote %s: %d lanes, %d dashed lines, %d signs, %d landmarks",
        args.out,
        len(hd_map.lanes),
        len(hd_map.dashed_lines),
        len(hd_map.signs),
        len(hd_map.landmarks),
    )
    return 0


def _check_map_path(path: Path) -> Path:
    """``path`` if a map file can be written there (its directory is created).

    :raises OSError: naming ``path`` and what is wrong with it.
    """
    if path.is_dir():
        raise OSError(
            f"map file {str(path)!r} is a directory; name a file, e.g. {str(path / 'map.json')!r}"
        )
    blocking = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OSError(f"map file {str(path)!r}: {str(blocking)!r} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(
            f"map file {str(path)!r}: its directory cannot be created: {error.strerror or error}"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise OSError(f"map file {str(path)!r}: its directory {str(path.parent)!r} is read-only")
    return path
