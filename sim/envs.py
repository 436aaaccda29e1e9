"""The highway-env environments the simulator supports, and how they are built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

SUPPORTED_ENVS = ("highway-v0", "highway-fast-v0", "merge-v0")


class UnknownEnvError(ValueError):
    pass


def check_env_id(env_id: str) -> str:
    if env_id not in SUPPORTED_ENVS:
        raise UnknownEnvError(
            f"unknown environment {env_id!r}; supported: {', '.join(SUPPORTED_ENVS)}"
        )
    return env_id


def make_env(env_id: str, config: Mapping[str, Any] | None = None, render: bool = False):
    """Build a highway-env environment with our config overrides.

    :param env_id: one of :data:`SUPPORTED_ENVS`.
    :param config: highway-env config keys to override (checked by highway-env itself).
    :param render: whether top-down frames will be rendered (``rgb_array`` mode, off-screen).
    """
    check_env_id(env_id)
    # The "dummy" driver renders black frames; "offscreen" draws them.
    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the environments)

    env = gym.make(env_id, render_mode="rgb_array" if render else None, config=dict(config or {}))
    return env
