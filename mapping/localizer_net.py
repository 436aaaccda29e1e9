"""The localizer's CNN: landmark columns and the lane-relative pose from one camera frame.

Input: the front-camera frame resized to ``INPUT_HEIGHT x INPUT_WIDTH``, RGB, as a float
tensor (B, 3, H, W) normalised by :func:`to_input`. Outputs (:class:`NetOutput`):

* per image column cell (``COLUMN_CELLS`` cells of ``COLUMN_STRIDE`` input pixels, left to
  right): the logit that a landmark's centre lies in the cell, the centre's position inside
  the cell (0..1 after a sigmoid) and log10 of its ground range [m];
* for the whole frame: the lateral offset from the nearest lane centre as a phase
  (sin, cos of 2*pi*offset/lane width, so crossing into the next lane is continuous), and the
  heading relative to the lane [rad].

Landmark identity is not learned (each world places different landmarks); the pose solve
associates detected columns with map landmarks through the pose prior.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import nn

INPUT_WIDTH = 256
INPUT_HEIGHT = 128
COLUMN_STRIDE = 4
COLUMN_CELLS = INPUT_WIDTH // COLUMN_STRIDE
PIXEL_MEAN = 0.45
PIXEL_STD = 0.25


class NetOutput(NamedTuple):
    """Raw network outputs for a batch of B frames.

    :ivar column_logit: (B, COLUMN_CELLS) landmark-centre logits.
    :ivar column_offset: (B, COLUMN_CELLS) logits of the centre's position inside the cell.
    :ivar column_log_range: (B, COLUMN_CELLS) log10 ground range [log10 m].
    :ivar lane: (B, 3) sin and cos of the lane phase, heading relative to the lane [rad].
    """

    column_logit: torch.Tensor
    column_offset: torch.Tensor
    column_log_range: torch.Tensor
    lane: torch.Tensor


def _conv(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class LocalizerNet(nn.Module):
    """About 0.2 M parameters; a few ms per frame on one CPU core."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _conv(3, width // 2, 2), _conv(width // 2, width, 2), _conv(width, width, 1)
        )  # stride 4
        self.deep = nn.Sequential(_conv(width, 2 * width, 2), _conv(2 * width, 2 * width, 1))
        self.column_head = nn.Sequential(
            nn.Conv1d(3 * width, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv1d(64, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv1d(64, 3, 1),
        )
        self.lane_features = nn.Sequential(
            _conv(2 * width, 2 * width, 2), _conv(2 * width, 32, 2)
        )  # stride 32
        lane_inputs = 32 * (INPUT_HEIGHT // 32) * (INPUT_WIDTH // 32)
        self.lane_head = nn.Sequential(
            nn.Flatten(), nn.Linear(lane_inputs, 128), nn.ReLU(inplace=True), nn.Linear(128, 3)
        )

    def forward(self, images: torch.Tensor) -> NetOutput:
        shallow = self.stem(images)  # (B, C, H/4, W/4)
        deep = self.deep(shallow)  # (B, 2C, H/8, W/8)
        columns_shallow = shallow.amax(dim=2)  # (B, C, W/4)
        columns_deep = deep.amax(dim=2).repeat_interleave(2, dim=2)  # (B, 2C, W/4)
        columns = self.column_head(torch.cat([columns_shallow, columns_deep], dim=1))
        lane = self.lane_head(self.lane_features(deep))
        return NetOutput(columns[:, 0], columns[:, 1], columns[:, 2], lane)


def to_input(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB frame -> (3, INPUT_HEIGHT, INPUT_WIDTH) float32, normalised."""
    small = cv2.resize(pixels, (INPUT_WIDTH, INPUT_HEIGHT), interpolation=cv2.INTER_AREA)
    return ((small.astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)


def resize_for_input(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> INPUT_HEIGHT x INPUT_WIDTH x 3 uint8 (what datasets store)."""
    return cv2.resize(pixels, (INPUT_WIDTH, INPUT_HEIGHT), interpolation=cv2.INTER_AREA)


def normalise(small: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 already at input size -> (..., 3, H, W) float32, normalised."""
    x = (small.astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD
    return np.moveaxis(x, -1, -3)


DEFAULT_WEIGHTS = "localizer.pt"
"""Shipped weights, package data of :mod:`mapping.models`."""


def load_net(path: str | Path | None = None) -> LocalizerNet:
    """The network with weights from ``path`` (a state_dict), or the shipped weights.

    :raises OSError: the file is missing, unreadable or not a loadable state_dict of this
        network (the message names the file and says what is wrong).
    """
    if path is None:
        path = resources.files("mapping.models") / DEFAULT_WEIGHTS
    state = _read_state_dict(str(path))
    net = LocalizerNet()
    mismatch = _mismatch(net.state_dict(), state)
    if mismatch:
        raise OSError(
            f"localizer weights {str(path)!r} cannot be loaded: its tensors do not match the "
            f"localizer network (weights of another model?): {mismatch}"
        )
    net.load_state_dict(state)
    return net


def _mismatch(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """What differs between two state_dicts (names and shapes), or "" when they fit."""
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    reshaped = [
        f"{name} {tuple(state[name].shape)} instead of {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state and state[name].shape != tensor.shape
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if reshaped:
        parts.append(f"{len(reshaped)} of another shape (e.g. {reshaped[0]})")
    return ", ".join(parts)


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state_dict in ``path``, read with the weights-only unpickler (no code runs)."""
    file = Path(path)
    if not file.exists():
        raise OSError(
            f"localizer weights {path!r} do not exist; train them with 'drivestack train-localizer'"
        )
    if file.is_dir():
        raise OSError(f"localizer weights {path!r} is a directory, expected a .pt file")
    if file.stat().st_size == 0:
        raise OSError(f"localizer weights {path!r} cannot be loaded: the file is empty")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise OSError(f"localizer weights {path!r} cannot be read: {_first_line(error)}") from None
    except pickle.UnpicklingError:
        raise OSError(
            f"localizer weights {path!r} cannot be loaded: not a weights-only torch state_dict "
            "file (objects other than tensors are refused, no code is run)"
        ) from None
    except Exception as error:  # noqa: BLE001 - junk makes torch's loaders raise anything
        raise OSError(
            f"localizer weights {path!r} cannot be loaded: not a torch state_dict file, or a "
            f"truncated one ({type(error).__name__}: {_first_line(error)})"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise OSError(
            f"localizer weights {path!r} cannot be loaded: it holds a {type(state).__name__}, "
            "not a state_dict (a mapping of names to tensors)"
        )
    return state


def _first_line(error: BaseException) -> str:
    """The first sentence of an error message (torch appends paragraphs of advice)."""
    text = str(error).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(error).__name__


@dataclass(frozen=True)
class Observations:
    """What the CNN saw in one frame.

    :param u_px: (D,) detected landmark-centre columns [px, full image], left to right.
    :param range_m: (D,) rough ground range of each [m].
    :param score: (D,) centre probability of each.
    :param lane_phase: lateral offset from the nearest lane centre as a phase in [-pi, pi):
        2*pi*offset/w for the lane width w, offset left positive [m].
    :param lane_heading_rad: heading relative to the lane [rad].
    """

    u_px: np.ndarray
    range_m: np.ndarray
    score: np.ndarray
    lane_phase: float
    lane_heading_rad: float


def decode(output, row: int, image_width_px: int, threshold: float) -> Observations:
    """Observations of batch item ``row`` of a :class:`~mapping.localizer_net.NetOutput`."""
    probability = torch.sigmoid(output.column_logit[row]).numpy()
    offset = torch.sigmoid(output.column_offset[row]).numpy()
    log_range = output.column_log_range[row].numpy()
    padded = np.pad(probability, 1)
    peaks = np.flatnonzero(
        (probability >= threshold) & (probability >= padded[:-2]) & (probability > padded[2:])
    )
    scale = image_width_px / INPUT_WIDTH
    u_px = (peaks + offset[peaks]) * COLUMN_STRIDE * scale
    lane = output.lane[row].numpy()
    return Observations(
        u_px=u_px,
        range_m=10.0 ** log_range[peaks],
        score=probability[peaks],
        lane_phase=float(math.atan2(lane[0], lane[1])),
        lane_heading_rad=float(lane[2]),
    )
