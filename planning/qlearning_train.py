"""Train the tabular Q-learning policy in highway-env (epsilon-greedy, linear epsilon decay)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bus.atomic import write_json
from planning.policy_io import load_npz_policy
from planning.qlearning import QLEARNING_OBSERVATION, Discretizer, QLearner, QTablePolicy

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.npz"


@dataclass(frozen=True)
class QTrainConfig:
    """Settings of a Q-learning run; saved as ``OUT/config.json``.

    :param alpha: constant learning rate, or None for 1/visits^0.6 per entry.
    :param epsilon_decay_fraction: fraction of the steps over which epsilon falls linearly.
    :param collision_penalty: subtracted from the crash step's reward (training only).
    """

    env_id: str = "highway-fast-v0"
    steps: int = 8_000
    seed: int = 0
    gamma: float = 0.9
    alpha: float | None = None
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_fraction: float = 0.6
    collision_penalty: float = 2.0
    checkpoint_freq: int = 2_000

    def to_dict(self) -> dict[str, Any]:
        return {"algo": "qlearning", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> QTrainConfig:
        data = {k: v for k, v in data.items() if k != "algo"}
        extra = sorted(set(data) - set(cls.__dataclass_fields__))
        if extra:
            raise ValueError(
                f"{source}: unknown key(s) {extra}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> QTrainConfig:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def epsilon(self, step: int) -> float:
        fraction = min(step / max(self.epsilon_decay_fraction * self.steps, 1.0), 1.0)
        return self.epsilon_start + fraction * (self.epsilon_end - self.epsilon_start)


def _load_checkpoint(path: Path, learner: QLearner) -> int:
    arrays, metadata = load_npz_policy(path, "qlearning")
    learner.q_table[:] = arrays["q_table"]
    learner.visits[:] = arrays["visits"]
    return int(metadata["trained_steps"])


def train_qlearning(
    config: QTrainConfig, out: Path, resume: bool = False, progress: bool = True
) -> dict:
    """Run Q-learning; writes ``config.json``, ``tb/``, ``checkpoint.npz`` and ``policy.npz``."""
    from torch.utils.tensorboard import SummaryWriter

    from sim.envs import make_env
    from sim.progress import progress_bar

    write_json(out / "config.json", config.to_dict())
    discretizer = Discretizer()
    learner = QLearner(discretizer.n_states, 5, config.gamma, config.alpha)
    step = _load_checkpoint(out / CHECKPOINT, learner) if resume else 0
    if resume and not (out / CHECKPOINT).is_file():
        raise OSError(f"cannot resume: {out / CHECKPOINT} does not exist")
    rng = np.random.default_rng(config.seed + step)
    env = make_env(config.env_id, {"observation": QLEARNING_OBSERVATION.to_highway_config()})
    lane_count = int(env.unwrapped.config["lanes_count"])
    writer = SummaryWriter(str(out / "tb"), purge_step=step)
    policy = QTablePolicy(learner.q_table, discretizer, {})

    def save(path: Path) -> None:
        extra = {"trained_steps": step, "env_id": config.env_id, "seed": config.seed}
        policy.save(path, learner.visits, extra)

    started, cpu_started = time.perf_counter(), time.process_time()
    interrupted, episode = False, 0
    observation, _ = env.reset(seed=config.seed * 100_003 + step)
    state, episode_return = discretizer.state(observation, lane_count), 0.0
    bar = progress_bar(
        progress,
        total=config.steps,
        initial=step,
        unit="step",
        desc=f"qlearning {config.env_id} seed {config.seed}",
    )
    try:
        while step < config.steps:
            action = learner.act(state, config.epsilon(step), rng)
            observation, reward, terminated, truncated, info = env.step(action)
            episode_return += reward
            if info.get("crashed", False):
                reward -= config.collision_penalty
            next_state = discretizer.state(observation, lane_count)
            learner.update(state, action, reward, next_state, terminated)
            state, step = next_state, step + 1
            bar.update(1)
            if terminated or truncated:
                writer.add_scalar("rollout/episode_return", episode_return, step)
                writer.add_scalar("rollout/crashed", float(info.get("crashed", False)), step)
                bar.set_postfix(ret=f"{episode_return:.1f}", eps=f"{config.epsilon(step):.2f}")
                episode += 1
                observation, _ = env.reset(seed=int(rng.integers(2**31)))
                state, episode_return = discretizer.state(observation, lane_count), 0.0
            if step % config.checkpoint_freq == 0:
                save(out / CHECKPOINT)
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("interrupted at step %d: saving the Q-table", step)
    finally:
        bar.close()
        wall_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
        save(out / CHECKPOINT)
        save(out / "policy.npz")
        writer.close()
        env.close()

    summary = {
        "algo": "qlearning",
        "env": config.env_id,
        "seed": config.seed,
        "steps": step,
        "episodes": episode,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "interrupted": interrupted,
        "visited_states": int((learner.visits.sum(axis=1) > 0).sum()),
        "n_states": discretizer.n_states,
        "policy": str(out / "policy.npz"),
    }
    write_json(out / "summary.json", summary)
    return summary
