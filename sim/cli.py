"""The ``drivestack`` command: one entry point, a subcommand per job.

Only this module configures logging, progress bars and network-related environment variables.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings

from sim import commands

logger = logging.getLogger("drivestack")

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

FFMPEG_LOG_QUIET = "-8"
"""FFmpeg's AV_LOG_QUIET, for OpenCV's ``OPENCV_FFMPEG_LOGLEVEL`` (set it to 32 to debug)."""


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: it refuses options it does not know with its own usage line
    (plain argparse hands them up to the top-level parser, whose usage says nothing about
    the subcommand)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drivestack",
        description=(
            "Autonomous-driving perception and decision stack on a typed message bus, "
            "with highway-env as the world. Run 'drivestack COMMAND --help' for each command."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
    for command in commands.COMMANDS:
        command.add_parser(sub)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("matplotlib", "PIL", "urllib3", "h5py"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    # No network at run time: ultralytics looks hosts up unless told it is offline.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    # OpenCV's FFmpeg backend prints its own complaints ("moov atom not found") to stderr
    # before our error names the file; read when the backend first opens a file.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_LOG_QUIET)
    # Library deprecation notices (gymnasium, highway-env) are for developers, not users.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        message = _ANSI_ESCAPE.sub("", str(error))  # libraries colour their messages
        print(f"drivestack {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
