"""Localizer training sets: generated drives stored as one ``.npz`` of small frames and labels.

Arrays (N frames, K = :data:`MAX_LANDMARKS` label slots):

* ``images`` (N, INPUT_HEIGHT, INPUT_WIDTH, 3) uint8 RGB, already resized for the network;
* ``landmark_u_px`` (N, K) float32 centre column [px of the full camera image], NaN = empty;
* ``landmark_range_m`` (N, K) float32 ground range [m]; ``landmark_id`` (N, K) int64 (-1);
* ``lane`` (N, 3) float32: lateral offset from the nearest lane centre [m, left positive],
  heading relative to the lane [rad], lane width [m];
* ``pose`` (N, 3) float64 true ego pose (x, y, yaw) in ``map``; ``seed``, ``step`` (N,) int64;
* ``image_width_px`` () int: width of the full camera image.

The file holds plain arrays only and is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from bus.atomic import atomic_path
from mapping.drives import DriveConfig, generate_drive, lane_targets
from mapping.hdmap import MapIndex
from mapping.localizer_net import COLUMN_CELLS, COLUMN_STRIDE, INPUT_WIDTH, resize_for_input

logger = logging.getLogger(__name__)

MAX_LANDMARKS = 8
"""Label slots per frame; more visible landmarks than this are dropped (farthest first)."""
HEAT_SIGMA_CELLS = 0.8
"""Width of the soft landmark-centre target around the true cell [cells]."""

REQUIRED_ARRAYS = (
    "images",
    "landmark_u_px",
    "landmark_range_m",
    "landmark_id",
    "lane",
    "pose",
    "seed",
    "step",
    "image_width_px",
)


class LocalizerData(NamedTuple):
    images: np.ndarray
    landmark_u_px: np.ndarray
    landmark_range_m: np.ndarray
    landmark_id: np.ndarray
    lane: np.ndarray
    pose: np.ndarray
    seed: np.ndarray
    step: np.ndarray
    image_width_px: int


def generate_dataset(seeds: Sequence[int], config: DriveConfig, progress=None) -> LocalizerData:
    """Render drives of ``seeds`` into arrays; ``progress`` (tqdm-like) is advanced per frame."""
    columns: dict[str, list] = {name: [] for name in REQUIRED_ARRAYS[:-1]}
    width_px = 0
    for seed in seeds:
        hd_map, _camera, frames = generate_drive(seed, config)
        index = MapIndex(hd_map)
        for frame in frames:
            width_px = frame.pixels.shape[1]
            labels = sorted(frame.landmarks, key=lambda lm: lm.range_m)[:MAX_LANDMARKS]
            u = np.full(MAX_LANDMARKS, np.nan, np.float32)
            r = np.full(MAX_LANDMARKS, np.nan, np.float32)
            ids = np.full(MAX_LANDMARKS, -1, np.int64)
            for slot, label in enumerate(labels):
                u[slot], r[slot], ids[slot] = label.u_px, label.range_m, label.landmark_id
            offset_m, heading_rad, lane_width_m = lane_targets(index, frame.pose)
            columns["images"].append(resize_for_input(frame.pixels))
            columns["landmark_u_px"].append(u)
            columns["landmark_range_m"].append(r)
            columns["landmark_id"].append(ids)
            columns["lane"].append(np.array([offset_m, heading_rad, lane_width_m], np.float32))
            columns["pose"].append(np.array([frame.pose.x, frame.pose.y, frame.pose.yaw]))
            columns["seed"].append(seed)
            columns["step"].append(frame.step)
            if progress is not None:
                progress.update(1)
    arrays = {
        name: np.stack(values) if name not in ("seed", "step") else np.asarray(values, np.int64)
        for name, values in columns.items()
    }
    return LocalizerData(**arrays, image_width_px=width_px)


def save_dataset(data: LocalizerData, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **data._asdict())


def load_dataset(path: str | os.PathLike) -> LocalizerData:
    """Read a dataset file.

    :raises ValueError: the file is not an ``.npz`` with the expected arrays (names the file).
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in REQUIRED_ARRAYS if name not in archive.files]
            if missing:
                raise ValueError(f"localizer dataset {str(path)!r} lacks arrays {missing}")
            arrays = {name: archive[name] for name in REQUIRED_ARRAYS}
    except FileNotFoundError:
        raise OSError(f"localizer dataset {str(path)!r} does not exist") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        if str(path) in str(error):
            raise
        # numpy's own message may advise allow_pickle: never relay that.
        raise ValueError(
            f"localizer dataset {str(path)!r} is not an .npz of plain arrays "
            f"({type(error).__name__})"
        ) from None
    arrays["image_width_px"] = int(arrays["image_width_px"])
    return LocalizerData(**arrays)


def column_targets(
    landmark_u_px: np.ndarray, landmark_range_m: np.ndarray, image_width_px: int
) -> tuple[np.ndarray, ...]:
    """Per-cell targets of a batch of label slots (B, K).

    :returns: heat (B, C) soft centre target in [0, 1]; offset (B, C) centre position in its
        cell in [0, 1); log_range (B, C) log10 range [log10 m]; mask (B, C) 1 at centre cells.
    """
    batch = landmark_u_px.shape[0]
    heat = np.zeros((batch, COLUMN_CELLS), np.float32)
    offset = np.zeros_like(heat)
    log_range = np.zeros_like(heat)
    mask = np.zeros_like(heat)
    cells = np.arange(COLUMN_CELLS, dtype=np.float32) + 0.5
    cell_px = COLUMN_STRIDE * image_width_px / INPUT_WIDTH
    for b, slot in zip(*np.nonzero(~np.isnan(landmark_u_px)), strict=True):
        position = landmark_u_px[b, slot] / cell_px
        cell = min(int(position), COLUMN_CELLS - 1)
        heat[b] = np.maximum(heat[b], np.exp(-0.5 * ((cells - position) / HEAT_SIGMA_CELLS) ** 2))
        heat[b, cell] = 1.0
        offset[b, cell] = position - cell
        log_range[b, cell] = np.log10(max(float(landmark_range_m[b, slot]), 1.0))
        mask[b, cell] = 1.0
    return heat, offset, log_range, mask
