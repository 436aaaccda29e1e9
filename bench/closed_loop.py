"""Closed-loop steps/s next to raw highway-env steps/s, same configuration and seeds, one run.

The raw run replays the closed loop's own action sequence on a bare environment, so both
drive the same trajectories; the difference is the stack's cost (messages, bus, planner).
For that comparison the stack's world adds no trucks or pedestrians (they change the
traffic); a third row shows the full default world. Episodes alternate between the runs so
machine noise hits them alike.

    python -m bench.closed_loop [--env highway-fast-v0] [--episodes 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="highway-fast-v0")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from planning.rule import RulePlanner
    from sim.envs import make_env
    from sim.loop import ClosedLoop
    from sim.simulator import SimConfig
    from sim.world import world_preset

    loop = ClosedLoop(SimConfig(env_id=args.env, world=world_preset("plain")), RulePlanner())
    full_loop = ClosedLoop(SimConfig(env_id=args.env), RulePlanner())
    actions: list[int] = []
    loop.bus.subscribe("/planning/action", lambda m: actions.append(int(m.action)))
    raw_env = make_env(args.env)

    stack_s = raw_s = full_s = 0.0
    stack_steps = raw_steps = full_steps = 0
    mismatches = 0
    for episode in range(args.episodes):
        seed = args.seed + episode
        actions.clear()
        start = time.perf_counter()
        result = loop.run_episode(episode, seed)
        stack_s += time.perf_counter() - start
        stack_steps += result.steps
        sequence = list(actions[:-1])  # the last action answers the final state, never applied

        start = time.perf_counter()
        raw_env.reset(seed=seed)
        for action in sequence:
            _, _, terminated, truncated, _ = raw_env.step(action)
            raw_steps += 1
            if terminated or truncated:
                break
        raw_s += time.perf_counter() - start
        mismatches += int(raw_env.unwrapped.vehicle.crashed != result.crashed)

        start = time.perf_counter()
        full_steps += full_loop.run_episode(episode, seed).steps
        full_s += time.perf_counter() - start

    raw_rate, stack_rate = raw_steps / raw_s, stack_steps / stack_s
    overhead = (raw_rate / stack_rate - 1.0) * 100.0
    print(
        f"closed loop vs raw highway-env, {args.env}, {args.episodes} episodes, seeds {args.seed}.."
    )
    print(f"{'run':<28}{'steps':>8}{'seconds':>10}{'steps/s':>10}")
    print(f"{'raw highway-env':<28}{raw_steps:>8}{raw_s:>10.2f}{raw_rate:>10.1f}")
    print(f"{'stack (bus+sim+planner)':<28}{stack_steps:>8}{stack_s:>10.2f}{stack_rate:>10.1f}")
    print(f"{'stack, full world':<28}{full_steps:>8}{full_s:>10.2f}{full_steps / full_s:>10.1f}")
    print(f"stack overhead: {overhead:+.1f}% time per step (target <= 10%)")
    if mismatches:
        print(f"warning: {mismatches} episode(s) ended differently in the raw replay")
    loop.close()
    full_loop.close()
    raw_env.close()


if __name__ == "__main__":
    main()
