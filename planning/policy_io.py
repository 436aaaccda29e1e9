"""Safe on-disk format of trained policies: tensors and JSON, never pickled objects.

A DQN policy is two files with the same stem:

- ``NAME.pt``: the Q-network's ``state_dict`` (tensors only), read with
  ``torch.load(..., weights_only=True)`` so a malicious file cannot run code;
- ``NAME.json``: ``{"format": "drivestack-policy", "version": 1, "algo": "dqn",
  "network": {...}, "observation": {...}, ...}``, the architecture and the observation
  config needed to rebuild the network and feed it.

A Q-learning policy is one ``.npz`` (arrays only, read with ``allow_pickle=False``) holding
the Q-table and its metadata as a JSON string.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bus.atomic import write_json

POLICY_FORMAT = "drivestack-policy"
POLICY_VERSION = 1


class PolicyFileError(ValueError):
    """A file is not a drivestack policy (or is damaged); the message names the file."""


def policy_paths(path: str | Path) -> tuple[Path, Path]:
    """The ``.pt`` and ``.json`` files of a DQN policy given either one or their stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".pt", ".json") else path
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def save_dqn_policy(path: str | Path, state_dict: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write ``NAME.pt`` (tensors) and ``NAME.json`` (metadata), each atomically; returns .pt."""
    import torch

    weights_path, meta_path = policy_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(weights_path.name + ".tmp")
    torch.save({k: v.detach().cpu().clone() for k, v in state_dict.items()}, tmp)
    tmp.replace(weights_path)
    write_json(meta_path, {"format": POLICY_FORMAT, "version": POLICY_VERSION, **metadata})
    return weights_path


def read_metadata(meta_path: Path, algo: str) -> dict[str, Any]:
    """Parse and check a policy's JSON metadata."""
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyFileError(f"{meta_path}: policy metadata file is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PolicyFileError(f"{meta_path}: not a policy metadata JSON ({error})") from None
    return check_metadata(metadata, meta_path, algo)


def check_metadata(metadata: Any, source: Path, algo: str) -> dict[str, Any]:
    if not isinstance(metadata, dict) or metadata.get("format") != POLICY_FORMAT:
        raise PolicyFileError(
            f"{source}: not a drivestack policy (no format={POLICY_FORMAT!r} field)"
        )
    if metadata.get("version") != POLICY_VERSION:
        raise PolicyFileError(
            f"{source}: policy format version {metadata.get('version')!r} is not supported "
            f"(expected {POLICY_VERSION})"
        )
    if metadata.get("algo") != algo:
        raise PolicyFileError(
            f"{source}: holds a {metadata.get('algo')!r} policy, expected {algo!r}"
        )
    return metadata


def load_dqn_files(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a DQN policy's state_dict and metadata without executing any code from the files.

    :raises PolicyFileError: naming the file when either is missing, damaged or not ours.
    """
    import torch

    if Path(path).is_dir():
        raise PolicyFileError(f"{path}: is a directory; give the policy's .pt or .json file")
    if Path(path).suffix not in ("", ".pt", ".json"):
        raise PolicyFileError(
            f"{path}: a DQN policy is a .pt file with a .json beside it, got a "
            f"{Path(path).suffix} file (Q-learning tables are loaded with 'qlearning:PATH')"
        )
    weights_path, meta_path = policy_paths(path)
    if not weights_path.is_file():
        raise PolicyFileError(f"{weights_path}: policy weights file not found")
    metadata = read_metadata(meta_path, "dqn")
    try:
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign or corrupt files
        # torch's own message may advise loading without weights_only: never relay that.
        raise PolicyFileError(
            f"{weights_path}: not a torch state_dict saved by drivestack (corrupt, not a "
            f"torch archive, or holding objects other than tensors; {type(error).__name__})"
        ) from None
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise PolicyFileError(f"{weights_path}: expected a dict of tensors (a state_dict)")
    return state_dict, metadata


def save_npz_policy(
    path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, Any]
) -> Path:
    """Write a ``.npz`` of arrays plus the metadata as a JSON string, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"format": POLICY_FORMAT, "version": POLICY_VERSION, **metadata})
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, metadata=np.array(meta), **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return path


def load_npz_policy(path: str | Path, algo: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a ``.npz`` policy without unpickling anything.

    :raises PolicyFileError: naming the file when it is missing, damaged or not ours.
    """
    path = Path(path)
    if not path.is_file():
        raise PolicyFileError(f"{path}: policy file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        # numpy's message may advise allow_pickle: never relay that.
        raise PolicyFileError(
            f"{path}: not a .npz policy file (corrupt, or holding objects rather than plain "
            f"arrays; {type(error).__name__})"
        ) from None
    if "metadata" not in arrays:
        raise PolicyFileError(f"{path}: .npz file without policy metadata")
    try:
        metadata = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as error:
        raise PolicyFileError(f"{path}: damaged policy metadata ({error})") from None
    return arrays, check_metadata(metadata, path, algo)
