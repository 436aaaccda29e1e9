"""Progress bars of long commands: shown on a terminal only.

A bar redraws itself with carriage returns; written to a log file or a pipe it leaves
thousands of partial lines. Every tqdm bar of the stack is made here, so that one rule
decides: a bar is drawn when the caller wants one and stderr (where tqdm writes) is a
terminal.
"""

from __future__ import annotations

import sys
from typing import Any


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal (False when it is closed or redirected)."""
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(enabled: bool = True, **options: Any):
    """A ``tqdm`` bar, disabled unless ``enabled`` and stderr is a terminal.

    :param enabled: the caller's wish (False for ``--no-progress``).
    :param options: passed to ``tqdm`` (``total``, ``unit``, ``desc``, ``leave``, ...).
    """
    from tqdm import tqdm

    return tqdm(disable=not (enabled and stderr_is_terminal()), **options)
