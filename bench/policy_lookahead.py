"""A reference for issue #4's return target: how far an exact-model lookahead gets on the
episodes the policies are evaluated on. Not a deployable policy: at every decision it copies
highway-env's whole hidden state (other drivers' target speeds, IDM parameters, lane-change
timers, vehicles out of view), so it knows the future of the traffic exactly.

For each meta-action it simulates the copy ``--horizon`` decisions ahead (the action, then
IDLE, SLOWER or FASTER held; the best of the three), scores the discounted highway-env
reward with a large penalty for a crash, and takes the best action.

    python -m bench.policy_lookahead [--episodes 20] [--horizon 4] [--env highway-fast-v0]

Episodes use the evaluation seeds of ``drivestack eval-policy --seeds 0`` (100000, 100001,
...), so the table compares with ``bench.policies`` episode for episode. About 1 s per
decision on one core.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)
HELD_ACTIONS = (IDLE, SLOWER, FASTER)
DISCOUNT = 0.95
CRASH_PENALTY = 100.0


def rollout_score(world, first: int, held: int, horizon: int) -> float:
    """Discounted reward of ``first`` then ``held`` on a copy of ``world``."""
    world = copy.deepcopy(world)
    total = 0.0
    for k in range(horizon):
        _, reward, terminated, truncated, _ = world.step(first if k == 0 else held)
        total += reward * DISCOUNT**k
        if world.vehicle.crashed:
            return total - CRASH_PENALTY * DISCOUNT**k
        if terminated or truncated:
            break
    return total


def choose(world, horizon: int) -> int:
    scores = [
        max(rollout_score(world, action, held, horizon) for held in HELD_ACTIONS)
        for action in range(5)
    ]
    return int(np.argmax(scores))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="highway-fast-v0", help="environment id")
    parser.add_argument("--episodes", type=int, default=20, help="episodes (default: 20)")
    parser.add_argument("--horizon", type=int, default=4, help="decisions simulated ahead")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the environments)

    from sim.commands.eval_policy import EVAL_SEED_BASE, wilson_interval

    env = gym.make(args.env)
    returns, speeds, crashes = [], [], 0
    started = time.perf_counter()
    for episode in range(args.episodes):
        env.reset(seed=EVAL_SEED_BASE + episode)
        world = env.unwrapped
        episode_return, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(choose(world, args.horizon))
            episode_return += reward
            speeds.append(world.vehicle.speed)
            done = terminated or truncated
        crashes += int(world.vehicle.crashed)
        returns.append(episode_return)
        print(f"episode {episode}: return {episode_return:.2f} crashed {world.vehicle.crashed}")
    low, high = wilson_interval(crashes, args.episodes)
    print(
        f"\n{args.env}, exact-model lookahead of {args.horizon} decisions, {args.episodes} "
        f"episodes, {time.perf_counter() - started:.0f} s\n"
        f"return {np.mean(returns):.2f} +/- {np.std(returns):.2f}, crash rate "
        f"{crashes / args.episodes:.1%} [{low:.1%}, {high:.1%}], mean speed "
        f"{np.mean(speeds):.1f} m/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
