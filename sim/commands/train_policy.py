"""``drivestack train-policy``: train a DQN (stable-baselines3) or tabular Q-learning policy."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from bus.atomic import check_writable_dir
from sim.commands.args import nonnegative_int, positive_int
from sim.envs import SUPPORTED_ENVS, check_env_id

logger = logging.getLogger(__name__)

ALGOS = ("dqn", "qlearning")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-policy",
        help="train a DQN or Q-learning driving policy in highway-env",
        description=(
            "Train a driving policy on highway-env's meta-actions. Writes into OUT: config.json "
            "(every setting; reuse it with --config), tb/ (TensorBoard logs), checkpoints/ "
            "(for --resume), and the policy in drivestack's safe format: policy.pt + "
            "policy.json for DQN (plus best_policy.* chosen by periodic evaluation), "
            "policy.npz for Q-learning. Load them with 'drivestack sim --planner "
            "dqn:OUT/policy.pt' or 'drivestack eval-policy'."
        ),
    )
    parser.add_argument(
        "--algo", choices=ALGOS, default="dqn", help="algorithm (default: %(default)s)"
    )
    parser.add_argument(
        "--env",
        default=None,
        metavar="ID",
        help=f"training environment: {', '.join(SUPPORTED_ENVS)} (default: highway-fast-v0)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="total environment steps, counting those before --resume "
        "(default: the config's, 20000 for dqn)",
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=None, help="random seed (default: 0)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="JSON config (e.g. a previous run's config.json); command-line options override it",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from its latest checkpoint (step count, "
        "exploration schedule and replay buffer) up to --steps",
    )
    parser.add_argument(
        "--n-envs",
        type=positive_int,
        default=None,
        metavar="K",
        help="parallel environments in subprocesses (dqn; default: 1)",
    )
    parser.add_argument(
        "--eval-freq",
        type=positive_int,
        default=None,
        metavar="STEPS",
        help="evaluate every STEPS steps and keep the best model (default: 5000)",
    )
    parser.add_argument(
        "--eval-episodes",
        type=positive_int,
        default=None,
        metavar="N",
        help="episodes per periodic evaluation (default: 10)",
    )
    parser.add_argument(
        "--checkpoint-freq",
        type=positive_int,
        default=None,
        metavar="STEPS",
        help="checkpoint every STEPS steps (default: 5000)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def _read_config(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OSError(f"config file {path!r} not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"config file {path!r} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path!r} must hold a JSON object")
    return data


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so a killed run still writes its checkpoint and policy."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    _interrupt_on_sigterm()
    out = check_writable_dir(args.out)
    config_data = _read_config(args.config)
    if args.resume and args.config is None and (out / "config.json").is_file():
        config_data = _read_config(str(out / "config.json"))
    algo = config_data.get("algo", args.algo)
    if args.config and algo != args.algo:
        raise ValueError(f"config file {args.config!r} is for --algo {algo}, not {args.algo}")
    overrides = {
        "env_id": args.env,
        "steps": args.steps,
        "seed": args.seed,
        "eval_freq": args.eval_freq,
        "eval_episodes": args.eval_episodes,
        "checkpoint_freq": args.checkpoint_freq,
    }
    if args.env:
        check_env_id(args.env)
    if args.algo == "dqn":
        summary = _train_dqn(args, out, config_data, overrides)
    else:
        summary = _train_qlearning(args, out, config_data, overrides)
    print(json.dumps(summary, indent=2))
    return 130 if summary.get("interrupted") else 0


def _train_dqn(args, out: Path, config_data: dict, overrides: dict) -> dict:
    from planning.dqn_train import TrainConfig, train_dqn, with_overrides

    config = (
        TrainConfig.from_dict(config_data, args.config or "config")
        if config_data
        else TrainConfig()
    )
    config = with_overrides(config, n_envs=args.n_envs, **overrides)
    check_env_id(config.env_id)
    return train_dqn(config, out, resume=args.resume, progress=not args.no_progress)


def _train_qlearning(args, out: Path, config_data: dict, overrides: dict) -> dict:
    from planning.qlearning_train import QTrainConfig, train_qlearning

    config = (
        QTrainConfig.from_dict(config_data, args.config or "config")
        if config_data
        else QTrainConfig()
    )
    config = config.with_overrides(
        **{k: v for k, v in overrides.items() if k not in ("eval_freq", "eval_episodes")}
    )
    check_env_id(config.env_id)
    return train_qlearning(config, out, resume=args.resume, progress=not args.no_progress)
