"""``drivestack eval-policy``: compare driving policies over many closed-loop episodes.

Every policy (a DQN or Q-learning file, ``rule``, ``random``) drives as a planner node in
:class:`sim.loop.ClosedLoop`, so its observation comes from the bus exactly as in
``drivestack sim``. Episode ``i`` of evaluation seed ``s`` uses the environment seed
``EVAL_SEED_BASE + 1000 * s + i``: every policy meets the same traffic.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from bus.atomic import check_writable_dir, write_json, write_text
from sim.commands.args import add_env_argument, positive_int, seed_list
from sim.envs import check_env_id
from sim.world import WORLD_PRESETS

logger = logging.getLogger(__name__)

EVAL_SEED_BASE = 100_000
"""Evaluation episodes use environment seeds from here on, away from training's first seeds."""

MAX_EPISODES_PER_SEED = 1000
WORLDS = tuple(WORLD_PRESETS)
WILSON_Z_95 = 1.959964
SUMMARY_COLUMNS = (
    ("model", "model", "{}"),
    ("episodes", "episodes", "{:d}"),
    ("mean_return", "return", "{:.2f}"),
    ("std_return", "+/-", "{:.2f}"),
    ("crash_rate", "crash", "{:.1%}"),
    ("crash_ci95", "crash 95% CI", "{}"),
    ("mean_speed_mps", "speed_mps", "{:.1f}"),
    ("mean_distance_m", "dist_m", "{:.0f}"),
    ("lane_changes_per_km", "lc/km", "{:.2f}"),
    ("mean_steps", "ep_len", "{:.1f}"),
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval-policy",
        help="evaluate and compare driving policies in the closed loop",
        description=(
            "Drive each MODEL for EPISODES episodes per evaluation seed through the closed loop "
            "and print one comparison table: mean return +/- std, crash rate with its 95% "
            "Wilson interval, mean speed, distance, lane changes per km, episode length. "
            "Writes OUT/eval.json, OUT/eval.csv (one row per model and per model+seed) and "
            "OUT/episodes.csv."
        ),
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="a policy file (DQN .pt/.json, Q-learning .npz), 'dqn' (the shipped "
        "policy), 'rule', 'random', or an explicit planner spec KIND:PATH",
    )
    add_env_argument(parser)
    parser.add_argument(
        "--episodes",
        type=positive_int,
        default=100,
        help=f"episodes per seed, at most {MAX_EPISODES_PER_SEED} (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds",
        type=seed_list,
        default=[0],
        metavar="SEEDS",
        help="evaluation seeds: A,B,C, a range A-B, or both (default: 0)",
    )
    parser.add_argument(
        "--out", default="runs/eval", metavar="DIR", help="output directory (default: %(default)s)"
    )
    parser.add_argument(
        "--world",
        choices=WORLDS,
        default="plain",
        help="plain: highway-env's own traffic, as in published baselines and in training; "
        "stack: the simulator's default world (trucks and roadside pedestrians added) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="parallel processes, one (model, seed) job each (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def planner_spec(model: str) -> str:
    """Planner spec of a MODEL argument: files by extension, names as they are."""
    from planning.factory import planner_kinds
    from planning.factory import planner_spec as spec_of

    spec = spec_of(model)
    if spec.partition(":")[0] not in planner_kinds():
        raise ValueError(
            f"model {model!r}: expected a .pt/.json (DQN) or .npz (Q-learning) file, 'dqn', "
            "'rule', 'random' or KIND:PATH"
        )
    return spec


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate episode dicts (``sim.loop.EpisodeResult`` fields) into the table's metrics."""
    n = len(episodes)
    if n == 0:
        return {"episodes": 0}
    returns = [e["episode_return"] for e in episodes]
    mean_return = sum(returns) / n
    crashes = sum(bool(e["crashed"]) for e in episodes)
    low, high = wilson_interval(crashes, n)
    distance_m = sum(e["distance_m"] for e in episodes)
    sim_time_s = sum(e["sim_time_s"] for e in episodes)
    return {
        "episodes": n,
        "mean_return": mean_return,
        "std_return": math.sqrt(sum((r - mean_return) ** 2 for r in returns) / n),
        "crash_rate": crashes / n,
        "crash_ci95_low": low,
        "crash_ci95_high": high,
        "mean_speed_mps": distance_m / sim_time_s if sim_time_s > 0 else 0.0,
        "mean_distance_m": distance_m / n,
        "lane_changes_per_km": sum(e["lane_changes"] for e in episodes)
        / max(distance_m / 1000, 1e-9),
        "mean_steps": sum(e["steps"] for e in episodes) / n,
    }


def evaluate_job(
    model: str,
    env_id: str,
    seed: int,
    episodes: int,
    results: list[dict[str, Any]] | None = None,
    on_episode: Callable[[int], Any] | None = None,
    world: str = "plain",
) -> list[dict[str, Any]]:
    """Drive ``episodes`` closed-loop episodes of one model and evaluation seed.

    :param results: list to append each finished episode to (kept if interrupted).
    :param on_episode: called with 1 after each episode (progress bars).
    """
    from planning.factory import make_planner
    from sim.loop import ClosedLoop
    from sim.simulator import SimConfig
    from sim.world import world_preset

    sim_config = SimConfig(env_id=env_id, world=world_preset(world))
    loop = ClosedLoop(sim_config, make_planner(planner_spec(model)))
    results = [] if results is None else results
    try:
        for episode in range(episodes):
            env_seed = EVAL_SEED_BASE + MAX_EPISODES_PER_SEED * seed + episode
            result = loop.run_episode(episode, env_seed).as_dict()
            results.append({"model": model, "eval_seed": seed, **result})
            if on_episode:
                on_episode(1)
    finally:
        loop.close()
    return results


def run(args: argparse.Namespace) -> int:
    check_env_id(args.env)
    if args.episodes > MAX_EPISODES_PER_SEED:
        raise ValueError(f"--episodes {args.episodes} exceeds {MAX_EPISODES_PER_SEED} per seed")
    from planning.factory import make_planner

    for model in args.models:  # fail early, before any driving, on a bad model
        make_planner(planner_spec(model))
    out = check_writable_dir(args.out)
    jobs = [(model, seed) for model in args.models for seed in args.seeds]
    episodes: list[dict[str, Any]] = []
    started = time.perf_counter()
    interrupted = False
    try:
        _run_jobs(args, jobs, episodes)
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("interrupted: reporting the %d finished episode(s)", len(episodes))
    report = _report(args, episodes, time.perf_counter() - started)
    report["interrupted"] = interrupted
    _write_outputs(out, report, episodes)
    print(format_table(report["models"]))
    print(f"results: {out / 'eval.json'}, {out / 'eval.csv'}")
    return 130 if interrupted else 0


def _run_jobs(args: argparse.Namespace, jobs: list[tuple[str, int]], episodes: list) -> None:
    """Run the (model, seed) jobs, appending finished episodes to ``episodes``."""
    from sim.progress import progress_bar

    with progress_bar(
        not args.no_progress,
        total=len(jobs) * args.episodes,
        unit="episode",
        desc=f"eval {args.env}",
    ) as bar:
        if args.workers == 1:
            for model, seed in jobs:
                evaluate_job(model, args.env, seed, args.episodes, episodes, bar.update, args.world)
        else:
            # "spawn": forking a parent that already runs torch threads can deadlock the children.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
                futures = [
                    pool.submit(evaluate_job, m, args.env, s, args.episodes, None, None, args.world)
                    for m, s in jobs
                ]
                for future in as_completed(futures):
                    episodes += future.result()
                    bar.update(args.episodes)


def _report(args, episodes: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    models, per_seed = [], []
    for model in args.models:
        mine = [e for e in episodes if e["model"] == model]
        models.append({"model": model, **summarize(mine)})
        for seed in args.seeds:
            rows = [e for e in mine if e["eval_seed"] == seed]
            per_seed.append({"model": model, "eval_seed": seed, **summarize(rows)})
    return {
        "command": "eval-policy",
        "env": args.env,
        "world": args.world,
        "episodes_per_seed": args.episodes,
        "seeds": args.seeds,
        "env_seeds": f"{EVAL_SEED_BASE} + {MAX_EPISODES_PER_SEED} * seed + episode",
        "wall_s": wall_s,
        "models": models,
        "per_seed": per_seed,
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    fields = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_outputs(out: Path, report: dict[str, Any], episodes: list[dict[str, Any]]) -> None:
    write_json(out / "eval.json", report)
    rows = [{**m, "eval_seed": "all"} for m in report["models"]] + report["per_seed"]
    write_text(out / "eval.csv", _csv(rows))
    write_text(out / "episodes.csv", _csv(episodes))


def format_table(models: list[dict[str, Any]]) -> str:
    rows = [[title for _, title, _ in SUMMARY_COLUMNS]]
    for summary in models:
        values = dict(summary)
        if summary.get("episodes"):
            values["crash_ci95"] = (
                f"[{summary['crash_ci95_low']:.1%}, {summary['crash_ci95_high']:.1%}]"
            )
            rows.append([fmt.format(values[key]) for key, _, fmt in SUMMARY_COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(SUMMARY_COLUMNS))]
    lines = ("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(lines)
