"""Traffic-sign type classification: a small CNN over square crops of traffic_sign boxes.

Crops are resized to :data:`CROP_PX` square RGB; the network outputs one logit per sign
class, class 0 being "not a sign" (a false-positive crop). Weights ship as a plain
``state_dict`` (loaded with ``weights_only=True``) beside a JSON file naming the classes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

CROP_PX = 32
"""Side of the square crop the classifier sees [px]."""

MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED_WEIGHTS = MODELS_DIR / "sign_classifier.pt"
SHIPPED_CLASSES = MODELS_DIR / "sign_classifier.json"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_SPEED_LIMIT = re.compile(r"^speed limit (\d+)")


class SignNet(nn.Module):
    """Three conv blocks and a linear head. Input (B, 3, 32, 32) float32 RGB in [0, 1];
    output (B, num_classes) logits."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(
            block(3, width), block(width, 2 * width), block(2 * width, 4 * width)
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * width * 16, num_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class SignPrediction(NamedTuple):
    """One classified crop: class index, its name, probability, and the speed limit it
    imposes [km/h] (None when the sign is not a speed limit)."""

    class_index: int
    class_name: str
    probability: float
    speed_limit_kph: int | None


def speed_limit_kph(class_name: str) -> int | None:
    """The limit of a ``speed limit N`` class name [km/h], None for other signs."""
    match = _SPEED_LIMIT.match(class_name)
    return int(match.group(1)) if match else None


def crop_to_tensor(crops_rgb: list[np.ndarray]) -> torch.Tensor:
    """Stack HxWx3 uint8 RGB crops into a (B, 3, 32, 32) float32 tensor in [0, 1]."""
    resized = [cv2.resize(c, (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA) for c in crops_rgb]
    batch = np.stack(resized).astype(np.float32) / 255.0
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


class SignClassifier:
    """Classifies sign crops with trained :class:`SignNet` weights.

    :param weights: a ``state_dict`` file; its class names come from the JSON beside it
        (same stem, ``.json``).
    :raises OSError: when a file is missing.
    :raises ValueError: when the weights are not a SignNet state_dict.
    """

    def __init__(self, weights: str | os.PathLike = SHIPPED_WEIGHTS) -> None:
        weights = Path(weights)
        self.class_names = load_class_names(weights.with_suffix(".json"))
        self.model = SignNet(len(self.class_names))
        state = _load_state_dict(weights)
        try:
            self.model.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"weights {str(weights)!r} do not fit SignNet: {error}") from None
        self.model.eval()

    @torch.no_grad()
    def classify(self, crops_rgb: list[np.ndarray]) -> list[SignPrediction]:
        """Classify HxWx3 uint8 RGB crops (any size)."""
        if not crops_rgb:
            return []
        probabilities = torch.softmax(self.model(crop_to_tensor(crops_rgb)), dim=1)
        best_p, best_index = probabilities.max(dim=1)
        return [
            SignPrediction(
                int(i),
                self.class_names[int(i)],
                float(p),
                speed_limit_kph(self.class_names[int(i)]),
            )
            for p, i in zip(best_p, best_index, strict=True)
        ]


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise OSError(f"sign classifier weights {str(path)!r} do not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for foreign or corrupt files
        raise ValueError(f"weights {str(path)!r} are not a readable state_dict: {error}") from None
    if not isinstance(state, dict):
        raise ValueError(f"weights {str(path)!r} hold a {type(state).__name__}, not a state_dict")
    return state


def load_class_names(path: Path) -> list[str]:
    """Class names from a JSON file ``{"class_names": [...]}``."""
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["class_names"]
    except FileNotFoundError:
        raise OSError(f"sign class file {str(path)!r} does not exist") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"sign class file {str(path)!r} is malformed: {error}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"sign class file {str(path)!r}: class_names must be a list of strings")
    return names


@dataclass(frozen=True)
class SignDataset:
    """Crops as (N, 32, 32, 3) uint8 RGB with (N,) int64 labels and their class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    files: list[str]


def read_classes_txt(path: Path) -> list[str]:
    """``classes.txt`` lines ``INDEX NAME`` -> names indexed by INDEX (contiguous from 0)."""
    entries: dict[int, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        index, _, name = line.strip().partition(" ")
        if not index.isdigit() or not name:
            raise ValueError(f"{path}:{line_no}: expected 'INDEX NAME', got {line!r}")
        entries[int(index)] = name.strip()
    if sorted(entries) != list(range(len(entries))):
        raise ValueError(f"{path}: class indices must be contiguous from 0, got {sorted(entries)}")
    return [entries[i] for i in range(len(entries))]


def load_sign_folder(root: str | os.PathLike) -> SignDataset:
    """Read ``root/classes.txt`` and the crops in ``root/<index>/``.

    :raises OSError: when the folder or classes.txt is missing or a crop is unreadable.
    """
    root = Path(root)
    classes_file = root / "classes.txt"
    if not classes_file.is_file():
        raise OSError(f"sign data {str(root)!r} has no classes.txt")
    class_names = read_classes_txt(classes_file)
    images, labels, files = [], [], []
    for index in range(len(class_names)):
        for file in sorted((root / str(index)).glob("*"), key=_natural_key):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"sign crop {str(file)!r} is not a readable image")
            images.append(
                cv2.resize(
                    cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
                    (CROP_PX, CROP_PX),
                    interpolation=cv2.INTER_AREA,
                )
            )
            labels.append(index)
            files.append(str(file))
    if not images:
        raise OSError(f"sign data {str(root)!r} holds no crops")
    return SignDataset(np.stack(images), np.array(labels, np.int64), class_names, files)


def _natural_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))
