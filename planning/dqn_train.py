"""Train a DQN driving policy with stable-baselines3 in highway-env.

What we add to SB3's DQN: double-Q targets (the online network picks the next action, the
target network values it), a collision penalty applied to the *training* environment only,
periodic evaluation on the unshaped reward keeping the best model, atomic checkpoints with the
replay buffer for ``--resume``, and export to the safe policy format of
:mod:`planning.policy_io`.

SB3 checkpoints (``.zip``, ``.pkl``) contain pickled objects: they are only for resuming our
own runs. Everything the simulator and the evaluation load is the safe format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bus.atomic import write_json
from planning.dqn import NetworkSpec
from planning.observation import KinematicsConfig
from planning.policy_io import save_dqn_policy
from planning.rollout_shield import RolloutShield, RolloutShieldConfig
from planning.shield import Shield, ShieldConfig, shield_wrapper

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST_MODEL = "latest.zip"
LATEST_BUFFER = "latest_replay_buffer.pkl"
REWARD_KEYS = frozenset(
    {
        "collision_reward",
        "right_lane_reward",
        "high_speed_reward",
        "lane_change_reward",
        "reward_speed_range",
        "normalize_reward",
    }
)
"""highway-env reward settings that ``training_reward`` may override."""


@dataclass(frozen=True)
class DQNHyperparameters:
    """SB3 DQN settings plus our additions.

    :param gamma: discount per policy step (1 s).
    :param target_update_interval: env steps between target-network copies.
    :param exploration_fraction: fraction of training over which epsilon decays linearly.
    :param double_q: use double-Q targets.
    :param collision_penalty: subtracted from the reward of the crash step in the training
        env only (evaluation always uses highway-env's reward).
    """

    learning_rate: float = 5e-4
    buffer_size: int = 50_000
    learning_starts: int = 500
    batch_size: int = 64
    gamma: float = 0.9
    train_freq: int = 1
    gradient_steps: int = 1
    target_update_interval: int = 250
    exploration_fraction: float = 0.3
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.03
    hidden_sizes: tuple[int, ...] = (256, 256)
    double_q: bool = True
    collision_penalty: float = 2.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything a DQN run depends on; saved as ``OUT/config.json``, loadable with ``--config``."""

    env_id: str = "highway-fast-v0"
    env_config: dict[str, Any] = field(default_factory=dict)
    observation: KinematicsConfig = field(default_factory=KinematicsConfig)
    hyper: DQNHyperparameters = field(default_factory=DQNHyperparameters)
    steps: int = 20_000
    seed: int = 0
    n_envs: int = 1
    eval_freq: int = 5_000
    eval_episodes: int = 10
    checkpoint_freq: int = 5_000
    training_reward: dict[str, float] = field(default_factory=dict)
    """highway-env reward settings (e.g. ``high_speed_reward``) for the training env only; the
    periodic evaluation and every later evaluation use the environment's own reward."""
    shield: ShieldConfig | None = None
    """A safety shield (:mod:`planning.shield`) the policy is trained and run with, or None."""
    rollout_shield: RolloutShieldConfig | None = None
    """A simulation shield (:mod:`planning.rollout_shield`) written into the exported policy:
    it replaces ``shield`` when the policy runs (not during training), or None."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["observation"] = self.observation.to_dict()
        data["shield"] = self.shield.to_dict() if self.shield else None
        data["rollout_shield"] = self.rollout_shield.to_dict() if self.rollout_shield else None
        data["hyper"]["hidden_sizes"] = list(self.hyper.hidden_sizes)
        return {"algo": "dqn", **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        data = {k: v for k, v in data.items() if k != "algo"}
        known = {f for f in cls.__dataclass_fields__}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"{source}: unknown key(s) {extra}; known: {sorted(known)}")
        hyper = dict(data.pop("hyper", {}) or {})
        extra = sorted(set(hyper) - set(DQNHyperparameters.__dataclass_fields__))
        if extra:
            raise ValueError(f"{source}: unknown hyperparameter(s) {extra}")
        if "hidden_sizes" in hyper:
            hyper["hidden_sizes"] = tuple(int(h) for h in hyper["hidden_sizes"])
        observation = KinematicsConfig.from_dict(data.pop("observation", {}) or {})
        shield = ShieldConfig.from_dict(data.pop("shield", None))
        rollout_shield = RolloutShieldConfig.from_dict(data.pop("rollout_shield", None))
        _check_training_reward(data.get("training_reward") or {}, source)
        if shield is not None:
            Shield(observation, shield)  # raises when the observation cannot feed it
        if rollout_shield is not None:
            RolloutShield(observation, rollout_shield)
        return cls(
            observation=observation,
            hyper=DQNHyperparameters(**hyper),
            shield=shield,
            rollout_shield=rollout_shield,
            **data,
        )

    def training_env_config(self, shaped: bool = False) -> dict[str, Any]:
        """The env config of the training env (``shaped``) or of the evaluation env."""
        reward = self.training_reward if shaped else {}
        return {**self.env_config, **reward, "observation": self.observation.to_highway_config()}


def _check_training_reward(reward: Any, source: str) -> None:
    """Refuse unknown keys and values of the wrong type, naming them."""
    if not isinstance(reward, dict):
        raise ValueError(f"{source}: training_reward must be an object, got {reward!r}")
    unknown = sorted(set(reward) - REWARD_KEYS)
    if unknown:
        raise ValueError(
            f"{source}: unknown training_reward key(s) {unknown}; known: {sorted(REWARD_KEYS)}"
        )

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for key, value in reward.items():
        if key == "normalize_reward":
            ok = isinstance(value, bool)
        elif key == "reward_speed_range":
            ok = isinstance(value, list) and len(value) == 2 and all(map(number, value))
        else:
            ok = number(value)
        if not ok:
            raise ValueError(f"{source}: training_reward {key} has a bad value {value!r}")


def _double_dqn_class():
    import torch as th
    import torch.nn.functional as F
    from stable_baselines3 import DQN

    class DoubleDQN(DQN):
        """SB3 DQN with double-Q targets: ``r + gamma * Q_target(s', argmax_a Q_online(s', a))``."""

        def train(self, gradient_steps: int, batch_size: int = 100) -> None:
            self.policy.set_training_mode(True)
            self._update_learning_rate(self.policy.optimizer)
            losses = []
            assert self.replay_buffer is not None
            for _ in range(gradient_steps):
                batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                discounts = batch.discounts if batch.discounts is not None else self.gamma

                # The online network chooses the next action, the target network rates it.
                with th.no_grad():
                    next_actions = self.q_net(batch.next_observations).argmax(dim=1, keepdim=True)
                    next_q = th.gather(self.q_net_target(batch.next_observations), 1, next_actions)
                    target_q = batch.rewards + (1 - batch.dones) * discounts * next_q

                current_q = th.gather(self.q_net(batch.observations), 1, batch.actions.long())
                loss = F.smooth_l1_loss(current_q, target_q)
                losses.append(loss.item())

                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

            self._n_updates += gradient_steps
            self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
            self.logger.record("train/loss", float(np.mean(losses)))

    return DoubleDQN


def _collision_penalty_wrapper(env, penalty: float):
    import gymnasium as gym

    class CollisionPenalty(gym.Wrapper):
        """Subtracts ``penalty`` from the reward of the step on which the ego crashes."""

        def step(self, action):
            observation, reward, terminated, truncated, info = self.env.step(action)
            if info.get("crashed", False):
                reward = float(reward) - penalty
            return observation, reward, terminated, truncated, info

    return CollisionPenalty(env)


def make_env_factory(config: TrainConfig, shaped: bool) -> Callable[[], Any]:
    """A picklable-enough env constructor for SB3 vec envs (Monitor-wrapped)."""

    def build():
        from stable_baselines3.common.monitor import Monitor

        from sim.envs import make_env

        env = make_env(config.env_id, config.training_env_config(shaped))
        if config.shield is not None:
            env = shield_wrapper(env, Shield(config.observation, config.shield))
        if shaped and config.hyper.collision_penalty:
            env = _collision_penalty_wrapper(env, config.hyper.collision_penalty)
        return Monitor(env)

    return build


def make_vec_env(config: TrainConfig, n_envs: int, shaped: bool, seed: int):
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    builders = [make_env_factory(config, shaped) for _ in range(n_envs)]
    vec = SubprocVecEnv(builders) if n_envs > 1 else DummyVecEnv(builders)
    vec.seed(seed)
    return vec


def build_model(config: TrainConfig, env, tensorboard_dir: Path | None):
    hyper = config.hyper
    model_class = _double_dqn_class() if hyper.double_q else __import__("stable_baselines3").DQN
    return model_class(
        "MlpPolicy",
        env,
        learning_rate=hyper.learning_rate,
        buffer_size=hyper.buffer_size,
        learning_starts=hyper.learning_starts,
        batch_size=hyper.batch_size,
        gamma=hyper.gamma,
        train_freq=hyper.train_freq,
        gradient_steps=hyper.gradient_steps,
        target_update_interval=hyper.target_update_interval,
        exploration_fraction=hyper.exploration_fraction,
        exploration_initial_eps=hyper.exploration_initial_eps,
        exploration_final_eps=hyper.exploration_final_eps,
        policy_kwargs={"net_arch": list(hyper.hidden_sizes)},
        tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
        seed=config.seed,
        device="cpu",
        verbose=0,
    )


def load_checkpoint(config: TrainConfig, env, out: Path, tensorboard_dir: Path | None):
    """Reload the latest checkpoint of a run in ``out`` (our own files: SB3's pickled format)."""
    model_path = out / CHECKPOINT_DIR / LATEST_MODEL
    if not model_path.is_file():
        raise OSError(f"cannot resume: {model_path} does not exist (no checkpoint was written)")
    model_class = (
        _double_dqn_class() if config.hyper.double_q else __import__("stable_baselines3").DQN
    )
    model = model_class.load(
        model_path,
        env=env,
        device="cpu",
        tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
    )
    buffer_path = out / CHECKPOINT_DIR / LATEST_BUFFER
    if buffer_path.is_file():
        model.load_replay_buffer(buffer_path)
    else:
        logger.warning("no replay buffer at %s: resuming with an empty buffer", buffer_path)
    return model


def save_checkpoint(model, out: Path) -> None:
    """Write the model and its replay buffer under temporary names, then rename both."""
    directory = out / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    tmp_model = directory / "latest.tmp.zip"
    tmp_buffer = directory / "latest_replay_buffer.tmp.pkl"
    model.save(tmp_model)
    model.save_replay_buffer(tmp_buffer)
    tmp_buffer.replace(directory / LATEST_BUFFER)
    tmp_model.replace(directory / LATEST_MODEL)
    write_json(directory / "state.json", {"num_timesteps": int(model.num_timesteps)})


def export_policy(
    model, config: TrainConfig, path: Path, extra: dict[str, Any] | None = None
) -> Path:
    """Save the model's Q-network in the safe format (``.pt`` + ``.json``)."""
    spec = NetworkSpec(
        input_size=int(np.prod(config.observation.shape)),
        hidden_sizes=tuple(config.hyper.hidden_sizes),
        n_actions=int(model.action_space.n),
    )
    metadata = {
        "algo": "dqn",
        "network": spec.to_dict(),
        "observation": config.observation.to_dict(),
        "env_id": config.env_id,
        "env_config": config.env_config,
        "trained_steps": int(model.num_timesteps),
        "seed": config.seed,
        "shield": config.shield.to_dict() if config.shield else None,
        "rollout_shield": config.rollout_shield.to_dict() if config.rollout_shield else None,
        **(extra or {}),
    }
    return save_dqn_policy(path, model.q_net.q_net.state_dict(), metadata)


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """Copy of ``config`` with the non-None keyword overrides applied."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def _callbacks(config: TrainConfig, out: Path, progress: bool):
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback

    class Progress(BaseCallback):
        """tqdm bar over environment steps, showing the recent mean episode return."""

        def _on_training_start(self) -> None:
            from sim.progress import progress_bar

            self.bar = progress_bar(
                progress,
                total=config.steps,
                initial=self.model.num_timesteps,
                unit="step",
                desc=f"dqn {config.env_id} seed {config.seed}",
                dynamic_ncols=True,
            )

        def _on_step(self) -> bool:
            self.bar.n = self.model.num_timesteps
            if self.n_calls % 50 == 0:
                buffer = self.model.ep_info_buffer
                if buffer:
                    self.bar.set_postfix(
                        ret=f"{np.mean([e['r'] for e in buffer]):.1f}",
                        eps=f"{self.model.exploration_rate:.2f}",  # type: ignore[attr-defined]
                    )
                self.bar.refresh()
            return True

        def _on_training_end(self) -> None:
            self.bar.n = self.model.num_timesteps
            self.bar.close()

    class Checkpoint(BaseCallback):
        def _on_step(self) -> bool:
            if self.model.num_timesteps % config.checkpoint_freq < self.training_env.num_envs:
                save_checkpoint(self.model, out)
            return True

    class ExportBest(BaseCallback):
        def _on_step(self) -> bool:
            reward = float(self.parent.best_mean_reward)  # type: ignore[union-attr]
            export_policy(
                self.model,
                config,
                out / "best_policy.pt",
                {"eval_mean_return": reward, "selected_at_step": int(self.model.num_timesteps)},
            )
            return True

    eval_env = make_vec_env(config, 1, shaped=False, seed=config.seed + 10_000)
    evaluation = EvalCallback(
        eval_env,
        callback_on_new_best=ExportBest(),
        n_eval_episodes=config.eval_episodes,
        eval_freq=max(config.eval_freq // config.n_envs, 1),
        log_path=str(out / "eval"),
        best_model_save_path=str(out / "best"),
        deterministic=True,
        verbose=0,
    )
    return CallbackList([Progress(), Checkpoint(), evaluation]), eval_env


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (subprocess envs) [s]."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def train_dqn(config: TrainConfig, out: Path, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) a DQN run in ``out``; returns a summary dict.

    Writes ``config.json``, ``tb/`` (TensorBoard), ``checkpoints/``, ``best/`` (SB3),
    ``best_policy.pt/.json`` and ``policy.pt/.json`` (safe format, final weights).
    """
    import time

    import torch

    # One thread per run: the env step is the bottleneck and cores are shared.
    torch.set_num_threads(1)
    write_json(out / "config.json", config.to_dict())
    env = make_vec_env(config, config.n_envs, shaped=True, seed=config.seed)
    tensorboard_dir = out / "tb"
    model = (
        load_checkpoint(config, env, out, tensorboard_dir)
        if resume
        else build_model(config, env, tensorboard_dir)
    )
    start_steps = int(model.num_timesteps)
    remaining = config.steps - start_steps
    callbacks, eval_env = _callbacks(config, out, progress)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    interrupted = False
    try:
        if remaining > 0:
            model.learn(
                total_timesteps=remaining,
                callback=callbacks,
                reset_num_timesteps=not resume,
                tb_log_name="dqn",
            )
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("interrupted at step %d: saving a checkpoint", model.num_timesteps)
    finally:
        wall_s = time.perf_counter() - started
        cpu_s = _cpu_seconds() - cpu_started
        save_checkpoint(model, out)
        export_policy(model, config, out / "policy.pt")
        env.close()
        eval_env.close()

    summary = {
        "algo": "dqn",
        "env": config.env_id,
        "seed": config.seed,
        "start_steps": start_steps,
        "steps": int(model.num_timesteps),
        "target_steps": config.steps,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "steps_per_s": (model.num_timesteps - start_steps) / max(wall_s, 1e-9),
        "interrupted": interrupted,
        "resumed": resume,
        "policy": str(out / "policy.pt"),
        "best_policy": str(out / "best_policy.pt") if (out / "best_policy.pt").exists() else None,
    }
    write_json(out / "summary.json", summary)
    return summary
