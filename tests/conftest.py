"""Shared test fixtures. Tests never touch the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("DRIVESTACK_SHARED", REPO_ROOT.parent / "shared"))


def require_shared(relative: str) -> Path:
    """Path of ``relative`` under ../shared; skips the test when it is absent, or fails when
    ``DRIVESTACK_REQUIRE_SHARED=1`` (CI) so that missing data is never silently skipped."""
    path = SHARED_DIR / relative
    if not path.exists():
        reason = f"shared data {path} is absent (clone ../shared beside the repository)"
        if os.environ.get("DRIVESTACK_REQUIRE_SHARED") == "1":
            pytest.fail(reason + "; DRIVESTACK_REQUIRE_SHARED=1 makes this a failure")
        pytest.skip(reason)
    return path


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared directory (skip or fail as :func:`require_shared` does)."""
    return require_shared("")
