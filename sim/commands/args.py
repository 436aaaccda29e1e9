"""Argument types shared by the subcommands: they reject bad values with a clear message."""

from __future__ import annotations

import argparse
import os
from collections import Counter

from sim.envs import SUPPORTED_ENVS


def positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def thread_count(text: str) -> int:
    """CPU threads: a positive integer, at most the machine's CPU count."""
    value = positive_int(text)
    cpus = os.cpu_count() or 1
    if value > cpus:
        raise argparse.ArgumentTypeError(f"this machine has {cpus} CPUs, got {text!r} threads")
    return value


def nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive integer, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def output_dir(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a directory, got an empty string")
    return text


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


MAX_SEEDS = 100_000
"""Most seeds one ``--seeds`` option may list (a typo like ``0-10000000`` is refused)."""


def seed_list(text: str) -> list[int]:
    """Seeds from ``A,B,C``, an inclusive range ``A-B`` (A <= B), or a mix (``0-9,20``).

    The shared type of every ``--seeds``-like option; refuses negative, duplicate and
    reversed values with a message naming the offending part.
    """
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first_text, dash, last_text = part.partition("-")
        first = _seed(first_text, part)
        last = _seed(last_text, part) if dash else first
        if last < first:
            raise argparse.ArgumentTypeError(f"{part}: the range end is below its start")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"{text}: more than {MAX_SEEDS} seeds")
        seeds.extend(range(first, last + 1))
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected seeds as A,B,C or A-B, got {text!r}")
    repeated = sorted(seed for seed, n in Counter(seeds).items() if n > 1)
    if repeated:
        listed = ", ".join(str(s) for s in repeated[:10])
        raise argparse.ArgumentTypeError(f"{text}: seed(s) {listed} given more than once")
    return seeds


def _seed(text: str, part: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(
            f"{part!r} is neither a seed (an integer >= 0) nor a range A-B"
        )
    return int(text)


def add_env_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--env ID`` option of the commands that drive highway-env (checked by the command
    with ``sim.envs.check_env_id`` before it writes anything)."""
    parser.add_argument(
        "--env",
        default="highway-fast-v0",
        metavar="ID",
        help=f"environment id: {', '.join(SUPPORTED_ENVS)} (default: %(default)s)",
    )


def zoom_window(text: str):
    """argparse type of ``--zoom``: ``X0,Y0,X1,Y1`` fractions -> a
    :class:`perception.zoom.ZoomWindow`."""
    from perception.zoom import parse_zoom

    try:
        return parse_zoom(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
