"""DQN policy in the closed loop: a Q-network rebuilt from the safe policy format, fed with the
observation built from bus messages.

Training lives in :mod:`planning.dqn_train`; this module only needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bus.messages import EgoState, MetaAction, ObjectState
from planning.learned import ObservationPlanner
from planning.observation import KinematicsConfig
from planning.policy_io import PolicyFileError, load_dqn_files
from planning.rollout_shield import RolloutShield, RolloutShieldConfig
from planning.shield import Shield, ShieldConfig

SHIPPED_POLICY = "dqn_highway_fast.pt"
"""File name of the shipped DQN policy under ``planning/models/``."""

_ACTIVATIONS = ("relu", "tanh")


def shipped_policy_path() -> Path:
    """Path of the DQN policy shipped with the package."""
    return Path(str(resources.files("planning") / "models" / SHIPPED_POLICY))


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture of an MLP Q-network: flattened observation -> hidden layers -> one Q per action.

    :param input_size: length of the flattened observation.
    :param hidden_sizes: width of each hidden layer.
    :param n_actions: number of discrete actions (highway-env meta-actions: 5).
    """

    input_size: int
    hidden_sizes: tuple[int, ...]
    n_actions: int
    activation: str = "relu"

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "hidden_sizes": list(self.hidden_sizes),
            "n_actions": self.n_actions,
            "activation": self.activation,
        }

    @classmethod
    def from_dict(cls, data: Any, source: Path) -> NetworkSpec:
        try:
            hidden = data["hidden_sizes"]
            if not isinstance(hidden, list):
                raise TypeError(f"hidden_sizes must be a list of layer widths, got {hidden!r}")
            spec = cls(
                _layer_size(data["input_size"], "input_size"),
                tuple(_layer_size(h, "hidden_sizes") for h in hidden),
                _layer_size(data["n_actions"], "n_actions"),
                str(data.get("activation", "relu")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PolicyFileError(f"{source}: bad 'network' entry ({error})") from None
        if spec.activation not in _ACTIVATIONS:
            raise PolicyFileError(f"{source}: activation {spec.activation!r} not in {_ACTIVATIONS}")
        return spec


MAX_LAYER_SIZE = 65_536
"""Widest layer a policy file may declare (ours are 256 wide)."""


def _layer_size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must hold whole numbers, got {value!r}")
    if not 1 <= value <= MAX_LAYER_SIZE:
        raise ValueError(f"{name} must be in [1, {MAX_LAYER_SIZE}], got {value}")
    return value


def check_weight_shapes(state_dict: dict[str, Any], spec: NetworkSpec, source: Path) -> None:
    """The weights have the shapes ``spec`` declares, and only finite values: checked before
    the network is built, so a declared size cannot make the loader allocate what the file
    does not hold, and a policy of NaNs is refused."""
    sizes = [spec.input_size, *spec.hidden_sizes, spec.n_actions]
    expected = {}
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        expected[f"{2 * layer}.weight"] = (n_out, n_in)
        expected[f"{2 * layer}.bias"] = (n_out,)
    if set(state_dict) != set(expected):
        missing = sorted(set(expected) - set(state_dict))
        extra = sorted(set(state_dict) - set(expected))
        raise PolicyFileError(
            f"{source}: weights do not fit the declared network (missing {missing}, "
            f"unexpected {extra})"
        )
    for key, shape in expected.items():
        tensor = state_dict[key]
        if tuple(tensor.shape) != shape:
            raise PolicyFileError(
                f"{source}: weights do not fit the declared network ({key} has shape "
                f"{tuple(tensor.shape)}, the JSON declares {shape})"
            )
        if not tensor.is_floating_point() or not bool(tensor.isfinite().all()):
            raise PolicyFileError(f"{source}: {key} holds non-finite or non-float values")


def build_q_network(spec: NetworkSpec):
    """An ``nn.Sequential`` laid out like stable-baselines3's ``QNetwork.q_net`` (Linear at even
    indices), so its state_dict loads directly."""
    from torch import nn

    activation = {"relu": nn.ReLU, "tanh": nn.Tanh}[spec.activation]
    layers: list[nn.Module] = []
    size = spec.input_size
    for hidden in spec.hidden_sizes:
        layers += [nn.Linear(size, hidden), activation()]
        size = hidden
    layers.append(nn.Linear(size, spec.n_actions))
    return nn.Sequential(*layers)


class DQNPolicy:
    """A greedy Q-network policy over the Kinematics observation.

    :param network: the rebuilt Q-network (torch module, eval mode).
    :param observation: the observation config it was trained with.
    :param shield: the rule shield it was trained with (applied by :meth:`act`), or None.
    :param rollout_shield: a simulation shield that replaces the rule shield at run time, or
        None.
    """

    def __init__(
        self,
        network,
        observation: KinematicsConfig,
        metadata: dict[str, Any],
        shield: Shield | None = None,
        rollout_shield: RolloutShield | None = None,
    ) -> None:
        self.network = network
        self.observation = observation
        self.metadata = metadata
        self.shield = shield
        self.rollout_shield = rollout_shield

    @classmethod
    def load(cls, path: str | Path) -> DQNPolicy:
        """Load ``NAME.pt`` + ``NAME.json`` (see :mod:`planning.policy_io`).

        :raises PolicyFileError: naming the file when it is not a DQN policy of ours.
        """
        state_dict, metadata = load_dqn_files(path)
        source = Path(path)
        described_in = source.with_suffix(".json")  # where the entries below come from
        spec = NetworkSpec.from_dict(metadata.get("network"), described_in)
        try:
            observation = KinematicsConfig.from_dict(metadata.get("observation") or {})
        except (TypeError, ValueError) as error:
            raise PolicyFileError(f"{described_in}: bad 'observation' entry ({error})") from None
        if int(np.prod(observation.shape)) != spec.input_size:
            raise PolicyFileError(
                f"{described_in}: observation shape {observation.shape} does not match the network "
                f"input size {spec.input_size}"
            )
        try:
            shield_config = ShieldConfig.from_dict(metadata.get("shield"))
            shield = Shield(observation, shield_config) if shield_config else None
        except (TypeError, ValueError) as error:
            raise PolicyFileError(f"{described_in}: bad 'shield' entry ({error})") from None
        try:
            rollout_config = RolloutShieldConfig.from_dict(metadata.get("rollout_shield"))
            rollout_shield = RolloutShield(observation, rollout_config) if rollout_config else None
        except (TypeError, ValueError) as error:
            raise PolicyFileError(f"{described_in}: bad 'rollout_shield' entry ({error})") from None
        check_weight_shapes(state_dict, spec, source)
        network = build_q_network(spec)
        try:
            network.load_state_dict(state_dict)
        except RuntimeError as error:
            # torch's first line only names the module ("... for Sequential:"); the next
            # non-empty one says what does not fit (a size mismatch, missing keys).
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = next((line for line in lines if not line.endswith(":")), str(error))
            raise PolicyFileError(
                f"{source}: weights do not fit the declared network ({reason})"
            ) from None
        network.eval()
        return cls(network, observation, metadata, shield, rollout_shield)

    def q_values(self, observation: np.ndarray) -> np.ndarray:
        """Q-values (n_actions,) float32 of one observation of shape ``self.observation.shape``."""
        import torch

        with torch.no_grad():
            inputs = torch.as_tensor(np.asarray(observation, dtype=np.float32).reshape(1, -1))
            return self.network(inputs)[0].numpy()

    def act(
        self,
        observation: np.ndarray,
        lane_count: int | None = None,
        target_speed_mps: float | None = None,
        target_lane: int | None = None,
        lengths_m: list[float] | None = None,
    ) -> int:
        """Greedy action index (highway-env meta-action), through the policy's shield.

        With a rollout shield, the actions are tried best Q-value first and the first one a
        short simulation shows to be safe is taken; it needs the road's ``lane_count`` and
        the ego controller's ``target_speed_mps`` and ``target_lane``, and takes the observed
        vehicles' ``lengths_m`` (row order; 5 m when not given). Otherwise a rule shield
        (which needs ``lane_count``) replaces an unsafe greedy action.
        """
        q_values = self.q_values(observation)
        if self.rollout_shield is not None:
            if lane_count is None or target_speed_mps is None or target_lane is None:
                raise ValueError(
                    "a policy with a rollout shield needs lane_count, target_speed_mps and "
                    "target_lane to act"
                )
            ranked = [int(a) for a in np.argsort(-q_values, kind="stable")]
            return self.rollout_shield.filter(
                observation, ranked, lane_count, target_speed_mps, target_lane, lengths_m
            )
        action = int(np.argmax(q_values))
        if self.shield is None:
            return action
        if lane_count is None:
            raise ValueError("a shielded policy needs the road's lane_count to act")
        return self.shield.filter(observation, action, lane_count)


class DQNPlanner(ObservationPlanner):
    """Node: ``/sim/ego`` (trigger), objects, ``/sim/lanes`` -> ``/planning/action``.

    The observation comes from bus messages only (:func:`kinematics_from_bus`).
    """

    name = "dqn"

    def __init__(self, policy: DQNPolicy, objects_topic: str = "/sim/objects") -> None:
        super().__init__(objects_topic)
        self.policy = policy
        self.observation = policy.observation

    def choose(
        self, observation: np.ndarray, ego: EgoState, observed: list[ObjectState]
    ) -> MetaAction:
        lengths_m = [o.length_m for o in observed]
        return MetaAction(
            self.policy.act(
                observation, ego.lane_count, ego.target_speed_mps, ego.target_lane_index, lengths_m
            )
        )
