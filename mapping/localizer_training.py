"""Training the localizer CNN on a generated dataset (:mod:`mapping.dataset`).

Losses: binary cross-entropy between the column logits and the soft centre target (centre
cells weighted up), L1 on the in-cell offset and log range at centre cells, squared error on
the lane phase (sin, cos) and L1 on the lane-relative heading. Frames are mirrored left-right
at random (columns, lane offset and heading change sign), which the camera's centred
principal point makes an exact symmetry.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mapping.dataset import LocalizerData, column_targets
from mapping.localizer_net import LocalizerNet, NetOutput, normalise

logger = logging.getLogger(__name__)

CENTRE_WEIGHT = 10.0
"""Weight of the true centre cells in the column BCE (they are about 1 in 30 cells)."""
HEADING_LOSS_SCALE = 20.0
"""Lane-relative heading error is multiplied by this (radians are small numbers)."""


@dataclass(frozen=True)
class TrainConfig:
    """:param epochs: passes over the training frames.
    :param batch_size: frames per step.
    :param learning_rate: peak AdamW learning rate (cosine decay to 5 % of it).
    :param threads: torch CPU threads.
    :param width: channels of the network's first stage (the shipped network uses 32).
    """

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    width: int = 32


class Batch:
    """Tensors of one training batch (see :mod:`mapping.dataset` for the array meanings)."""

    def __init__(
        self, data: LocalizerData, rows: np.ndarray, rng: np.random.Generator, augment: bool
    ) -> None:
        images = data.images[rows]
        u_px = data.landmark_u_px[rows].copy()
        lane = data.lane[rows].copy()
        if augment:
            flip = rng.random(len(rows)) < 0.5
            images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
            u_px[flip] = data.image_width_px - u_px[flip]
            lane[flip, :2] *= -1.0
        heat, offset, log_range, mask = column_targets(
            u_px, data.landmark_range_m[rows], data.image_width_px
        )
        phase = 2 * np.pi * lane[:, 0] / np.maximum(lane[:, 2], 1e-3)
        self.images = torch.from_numpy(normalise(np.ascontiguousarray(images)))
        self.heat = torch.from_numpy(heat)
        self.offset = torch.from_numpy(offset)
        self.log_range = torch.from_numpy(log_range)
        self.mask = torch.from_numpy(mask)
        self.lane = torch.from_numpy(
            np.stack([np.sin(phase), np.cos(phase), lane[:, 1]], axis=1).astype(np.float32)
        )


def losses(output: NetOutput, batch: Batch) -> dict[str, torch.Tensor]:
    """Named loss terms (scalars); their sum is optimised."""
    weight = 1.0 + (CENTRE_WEIGHT - 1.0) * batch.mask
    heat = nn.functional.binary_cross_entropy_with_logits(
        output.column_logit, batch.heat, weight=weight
    )
    centres = batch.mask.sum().clamp(min=1.0)
    offset = (torch.abs(torch.sigmoid(output.column_offset) - batch.offset) * batch.mask).sum()
    log_range = (torch.abs(output.column_log_range - batch.log_range) * batch.mask).sum()
    phase = ((output.lane[:, :2] - batch.lane[:, :2]) ** 2).sum(dim=1).mean()
    heading = torch.abs(output.lane[:, 2] - batch.lane[:, 2]).mean() * HEADING_LOSS_SCALE
    return {
        "heat": heat,
        "offset": offset / centres,
        "range": log_range / centres,
        "lane_phase": phase,
        "lane_heading": heading,
    }


def train_net(
    data: LocalizerData,
    config: TrainConfig,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    on_step: Callable[[], None] | None = None,
) -> LocalizerNet:
    """Train a fresh network on every frame of ``data``.

    :param on_epoch: called with the epoch number and its mean loss terms.
    :param on_step: called after every optimiser step (progress bars).
    """
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    net = LocalizerNet(config.width)
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = max(1, math.ceil(len(data.images) / config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=config.learning_rate,
        total_steps=config.epochs * steps_per_epoch,
        pct_start=0.15,
        final_div_factor=20.0,
    )
    for epoch in range(config.epochs):
        net.train()
        totals: dict[str, float] = {}
        order = rng.permutation(len(data.images))
        for start in range(0, len(order), config.batch_size):
            batch = Batch(data, order[start : start + config.batch_size], rng, augment=True)
            terms = losses(net(batch.images), batch)
            loss = sum(terms.values())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            for name, value in terms.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) / steps_per_epoch
            if on_step is not None:
                on_step()
        if on_epoch is not None:
            on_epoch(epoch, totals)
    return net.eval()
