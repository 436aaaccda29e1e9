"""Driving-policy benchmark (issue #4): the DQN recipe over 3 training seeds against the rule
planner, a random policy and tabular Q-learning, in one table, with the targets checked.

Steps (each also runnable by hand; this script only chains them):

1. train (skipped with ``--no-train`` when the run directories exist)::

       drivestack train-policy --algo dqn --config bench/configs/dqn_highway_fast.json \
           --seed S --out runs/dqn/ours_sS            # S = 0, 1, 2
       drivestack train-policy --algo qlearning --steps 8000 --seed 0 --out runs/qlearning/s0

2. evaluate in the closed loop (100 episodes per model, evaluation seed 0); each DQN run is
   represented by ``best_policy.pt``, the model its periodic evaluation kept, which runs with
   the rollout shield its JSON names (the recipe's ``rollout_shield``)::

       drivestack eval-policy runs/dqn/ours_s0/best_policy.pt runs/dqn/ours_s1/best_policy.pt \
           runs/dqn/ours_s2/best_policy.pt rule random runs/qlearning/s0/policy.npz \
           --env highway-fast-v0 --episodes 100 --seeds 0 --out runs/bench_policies/highway-fast-v0

3. print the table and the verdict on the targets: every DQN seed reaches mean return >= 25
   and crash rate <= 5 %, trained in <= 30 min of wall time; DQN beats rule and random.

    python -m bench.policies [--no-train] [--episodes 100] [--workers 2] [--highway-v0-episodes 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RECIPE = "bench/configs/dqn_highway_fast.json"
TRAIN_SEEDS = (0, 1, 2)
TARGET_RETURN = 25.0
TARGET_CRASH_RATE = 0.05
TARGET_TRAIN_WALL_S = 30 * 60


def _run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _train(args: argparse.Namespace) -> None:
    for seed in TRAIN_SEEDS:
        out = Path(args.runs) / "dqn" / f"ours_s{seed}"
        if not (out / "policy.pt").exists():
            _run(
                [
                    "drivestack",
                    "train-policy",
                    "--algo",
                    "dqn",
                    "--config",
                    RECIPE,
                    "--seed",
                    str(seed),
                    "--out",
                    str(out),
                    "--no-progress",
                ]
            )
    q_out = Path(args.runs) / "qlearning" / "s0"
    if not (q_out / "policy.npz").exists():
        _run(
            [
                "drivestack",
                "train-policy",
                "--algo",
                "qlearning",
                "--steps",
                "8000",
                "--seed",
                "0",
                "--out",
                str(q_out),
                "--no-progress",
            ]
        )


def _dqn_model(run: Path) -> Path:
    """The model a DQN run ships: the one its periodic evaluation kept, else the final one."""
    best = run / "best_policy.pt"
    return best if best.exists() else run / "policy.pt"


def _evaluate(args: argparse.Namespace, env_id: str, models: list[str], episodes: int) -> dict:
    out = Path(args.out) / env_id
    _run(
        [
            "drivestack",
            "eval-policy",
            *models,
            "--env",
            env_id,
            "--episodes",
            str(episodes),
            "--seeds",
            "0",
            "--workers",
            str(args.workers),
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    return json.loads((out / "eval.json").read_text())


def _verdict(report: dict, dqn_models: list[str], runs: Path) -> list[str]:
    by_model = {m["model"]: m for m in report["models"]}
    lines = []
    for seed, model in zip(TRAIN_SEEDS, dqn_models, strict=True):
        row = by_model[model]
        train = json.loads((runs / "dqn" / f"ours_s{seed}" / "summary.json").read_text())
        ok = (
            row["mean_return"] >= TARGET_RETURN
            and row["crash_rate"] <= TARGET_CRASH_RATE
            and train["wall_s"] <= TARGET_TRAIN_WALL_S
        )
        lines.append(
            f"seed {seed}: return {row['mean_return']:.2f} (>= {TARGET_RETURN}), crash "
            f"{row['crash_rate']:.1%} (<= {TARGET_CRASH_RATE:.0%}), trained in "
            f"{train['wall_s'] / 60:.1f} min wall, "
            f"{train.get('cpu_s', float('nan')) / 60:.1f} min CPU "
            f"(<= 30 min): {'PASS' if ok else 'MISS'}"
        )
    best_baseline = max(by_model["rule"]["mean_return"], by_model["random"]["mean_return"])
    beats = all(by_model[m]["mean_return"] > best_baseline for m in dqn_models)
    lines.append(f"every DQN seed beats rule and random on return: {'PASS' if beats else 'MISS'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", default="runs", help="where the training runs live (default: runs)"
    )
    parser.add_argument("--out", default="runs/bench_policies", help="evaluation outputs")
    parser.add_argument("--no-train", action="store_true", help="only evaluate existing runs")
    parser.add_argument(
        "--episodes", type=int, default=100, help="episodes per model on highway-fast-v0"
    )
    parser.add_argument(
        "--highway-v0-episodes",
        type=int,
        default=20,
        help="episodes per model on highway-v0 (about 3 steps/s; 0 to skip)",
    )
    parser.add_argument("--workers", type=int, default=2, help="evaluation processes")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sim.commands.eval_policy import format_table

    runs = Path(args.runs)
    if not args.no_train:
        _train(args)
    dqn_models = [str(_dqn_model(runs / "dqn" / f"ours_s{seed}")) for seed in TRAIN_SEEDS]
    models = dqn_models + ["rule", "random", str(runs / "qlearning" / "s0" / "policy.npz")]

    fast = _evaluate(args, "highway-fast-v0", models, args.episodes)
    print("\nhighway-fast-v0")
    print(format_table(fast["models"]))
    print("\n".join(_verdict(fast, dqn_models, runs)))
    if args.highway_v0_episodes:
        slow = _evaluate(
            args, "highway-v0", [dqn_models[0], "rule", "random"], args.highway_v0_episodes
        )
        print("\nhighway-v0 (policy trained on highway-fast-v0)")
        print(format_table(slow["models"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
