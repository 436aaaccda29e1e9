"""Training and evaluation of the sign classifier (:class:`perception.signs.SignNet`).

The held-out split takes the last fraction of every class's crops in file order: the crops
come from dashcam sequences, so neighbouring files are near-duplicates and a random split
would leak them into the test set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from perception.signs import SignDataset, SignNet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignTrainConfig:
    """:param holdout_fraction: share of each class held out for testing (last files)."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    holdout_fraction: float = 0.2
    seed: int = 0
    max_shift: float = 0.12
    max_scale: float = 0.15
    max_rotation_rad: float = 0.15
    brightness: float = 0.35


class Split(NamedTuple):
    """Indices (into the dataset) of the training and held-out crops."""

    train: np.ndarray
    test: np.ndarray


class SignTrainResult(NamedTuple):
    model: SignNet
    train_accuracy: float
    test_accuracy: float
    per_class_test_accuracy: dict[str, float | None]
    test_count: int
    train_count: int
    split: Split
    test_predicted: np.ndarray


def holdout_split(labels: np.ndarray, fraction: float, fixed: np.ndarray | None = None) -> Split:
    """Hold out the last ``fraction`` (at least one) of each class in dataset order.

    :param fixed: per crop -1 (split by the rule above), 0 (always trained on) or 1 (always
        held out), e.g. rendered crops whose episodes are split already.
    """
    fixed = np.full(len(labels), -1) if fixed is None else np.asarray(fixed)
    train, test = list(np.flatnonzero(fixed == 0)), list(np.flatnonzero(fixed == 1))
    for label in np.unique(labels[fixed == -1]):
        indices = np.flatnonzero((labels == label) & (fixed == -1))
        held = max(1, round(len(indices) * fraction))
        train.extend(indices[:-held])
        test.extend(indices[-held:])
    return Split(np.array(sorted(train)), np.array(sorted(test)))


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def _augment(
    batch: torch.Tensor, config: SignTrainConfig, generator: torch.Generator
) -> torch.Tensor:
    """Random shift, scale, small rotation and brightness/contrast; no flips (left/right
    arrows are different classes)."""
    count = batch.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(count, generator=generator) * 2 - 1) * limit

    angle = uniform(config.max_rotation_rad)
    scale = 1 + uniform(config.max_scale)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin, uniform(config.max_shift)], 1),
            torch.stack([sin, cos, uniform(config.max_shift)], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    warped = F.grid_sample(batch, grid, padding_mode="border", align_corners=False)
    gain = 1 + uniform(config.brightness).view(-1, 1, 1, 1)
    offset = uniform(config.brightness / 2).view(-1, 1, 1, 1)
    return (warped * gain + offset).clamp_(0, 1)


@torch.no_grad()
def predict(model: SignNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class indices (N,) for (N, 32, 32, 3) uint8 RGB crops."""
    model.eval()
    outputs = [
        model(_to_tensor(images[i : i + batch_size])).argmax(1)
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(outputs).numpy()


def train_sign_classifier(
    data: SignDataset, config: SignTrainConfig, progress=None, fixed_split=None
) -> SignTrainResult:
    """Train on the training split, report accuracy on the held-out split.

    :param progress: optional callable ``(epoch, loss)`` called after each epoch.
    :param fixed_split: crops whose split is given, as for :func:`holdout_split`.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    split = holdout_split(data.labels, config.holdout_fraction, fixed_split)
    model = SignNet(len(data.class_names))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = -(-len(split.train) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    images = _to_tensor(data.images[split.train])
    labels = torch.from_numpy(data.labels[split.train])

    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            logits = model(_augment(images[batch], config, generator))
            loss = F.cross_entropy(logits, labels[batch], label_smoothing=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        if progress is not None:
            progress(epoch, float(np.mean(losses)))

    return _evaluate(model, data, split)


def _evaluate(model: SignNet, data: SignDataset, split: Split) -> SignTrainResult:
    train_pred = predict(model, data.images[split.train])
    test_pred = predict(model, data.images[split.test])
    test_true = data.labels[split.test]
    per_class: dict[str, float | None] = {}
    for index, name in enumerate(data.class_names):
        mask = test_true == index
        per_class[name] = float((test_pred[mask] == index).mean()) if mask.any() else None
    return SignTrainResult(
        model=model,
        train_accuracy=float((train_pred == data.labels[split.train]).mean()),
        test_accuracy=float((test_pred == test_true).mean()),
        per_class_test_accuracy=per_class,
        test_count=len(split.test),
        train_count=len(split.train),
        split=split,
        test_predicted=test_pred,
    )
