"""Training our YOLO detector with ultralytics, offline: the model is built from its yaml
(no downloaded weights), plots (which fetch a font) are off, and the result is exported
as drivestack weights (:mod:`perception.yolo_detector`) that load without unpickling.

Fine-tuning a user's pretrained checkpoint keeps its backbone and neck, and starts our
class rows of the classification head from the rows of the classes that map onto ours
(COCO car -> car, truck -> truck, person -> pedestrian, stop sign -> traffic_sign).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from perception.classes import BOX_CLASS_NAMES, CLASS_NAMES, map_class_name
from perception.labels import LabelFormatError, _names_from_yaml
from perception.yolo_detector import (
    UntrustedWeightsError,
    adopt_class_layers,
    export_safe_weights,
    load_safe_weights,
    model_from_safe_weights,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL_YAML = "yolo11n.yaml"


@dataclass(frozen=True)
class DetectorTrainConfig:
    """:param data_yaml: an ultralytics dataset file whose names are ours.
    :param weights: weights to fine-tune: drivestack weights, or a pretrained ultralytics
        checkpoint (trusted by the caller).
    :param workers: dataloader worker processes (0 keeps everything in this process).
    :param time_hours: train for this long instead of ``epochs`` (ultralytics fits its
        learning-rate schedule to the time).
    :param warmup_epochs: epochs of learning-rate warm-up (ultralytics counts at least 100
        iterations).
    :param hyp: further ultralytics training settings as (key, value) pairs, checked by
        :func:`parse_hyp` (e.g. ``("scale", 0.25)``, ``("close_mosaic", 1)``).
    """

    data_yaml: Path
    out: Path
    epochs: int = 30
    imgsz: int = 640
    batch: int = 16
    model_yaml: str = DEFAULT_MODEL_YAML
    weights: Path | None = None
    seed: int = 0
    workers: int = 0
    patience: int = 50
    fraction: float = 1.0
    time_hours: float | None = None
    warmup_epochs: float = 3.0
    hyp: tuple[tuple[str, Any], ...] = ()


RESERVED_HYP_KEYS = frozenset(
    {
        "model",
        "data",
        "epochs",
        "time",
        "imgsz",
        "batch",
        "device",
        "workers",
        "project",
        "name",
        "exist_ok",
        "plots",
        "seed",
        "deterministic",
        "patience",
        "fraction",
        "amp",
        "verbose",
        "warmup_epochs",
        "resume",
        "pretrained",
        "mode",
        "task",
        "save_dir",
        "cfg",
    }
)
"""ultralytics settings that train-detector sets itself (or that have options of their own)."""


def parse_hyp(items: list[str]) -> tuple[tuple[str, Any], ...]:
    """``KEY=VALUE`` strings -> checked (key, value) pairs of ultralytics training settings.
    Values are read as numbers (``1e-3``, ``0.25``, ``3``), ``true``/``false``, or words
    (``SGD``), then checked by ultralytics' own type and range checks.

    :raises ValueError: naming the item, for a malformed item, a key ultralytics does not
        know, one train-detector sets itself, or a value ultralytics refuses.
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    pairs = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key or not text:
            raise ValueError(f"--hyp {item!r}: expected KEY=VALUE, e.g. scale=0.25")
        if key in RESERVED_HYP_KEYS:
            raise ValueError(f"--hyp {item!r}: {key!r} is set by train-detector or its options")
        if key not in DEFAULT_CFG_DICT:
            raise ValueError(f"--hyp {item!r}: ultralytics has no training setting {key!r}")
        value = _scalar(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--hyp {item!r}: the value must be finite")
        if isinstance(DEFAULT_CFG_DICT[key], (int, float)) and isinstance(
            value, bool
        ) != isinstance(DEFAULT_CFG_DICT[key], bool):
            raise ValueError(
                f"--hyp {item!r}: {key!r} takes a {type(DEFAULT_CFG_DICT[key]).__name__}"
            )
        try:
            check_cfg({key: value})
        except (TypeError, ValueError, SyntaxError) as error:
            raise ValueError(f"--hyp {item!r}: {error}") from None
        pairs[key] = value
    return tuple(sorted(pairs.items()))


def _scalar(text: str) -> bool | int | float | str:
    """A setting's value from its text: an int, a float, a bool word, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def find_data_yaml(data: str | os.PathLike) -> Path:
    """The dataset file of ``data`` (a ``data.yaml`` or a directory holding one), checked
    to name only our classes.

    :raises OSError: when there is none.
    :raises ValueError: when its class names are not ours.
    """
    path = Path(data)
    if not path.exists():
        raise OSError(f"dataset {str(path)!r} does not exist")
    data_yaml = path / "data.yaml" if path.is_dir() else path
    if not data_yaml.is_file():
        raise OSError(
            f"dataset {str(path)!r} has no data.yaml (write one with make-dataset or autolabel)"
        )
    names = _names_from_yaml(data_yaml)
    if list(names) != list(CLASS_NAMES[: len(names)]) or len(names) < len(BOX_CLASS_NAMES):
        raise LabelFormatError(
            f"{data_yaml}: classes {list(names)} are not ours; train-detector needs "
            f"{', '.join(BOX_CLASS_NAMES)} (optionally lane_line) as classes 0, 1, 2, ..."
        )
    _check_splits(data_yaml)
    return data_yaml


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _check_splits(data_yaml: Path) -> None:
    """Fail early, naming the file, when the train or val split has no images (ultralytics
    would fail later with a traceback)."""
    import yaml

    spec = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    root = Path(spec.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    for split in ("train", "val"):
        entries = spec.get(split)
        if not entries:
            raise LabelFormatError(f"{data_yaml}: no {split!r} split is listed")
        for entry in [entries] if isinstance(entries, str) else list(entries):
            folder = Path(entry) if Path(entry).is_absolute() else root / entry
            has_images = folder.is_dir() and any(
                p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*")
            )
            if not has_images:
                raise LabelFormatError(
                    f"{data_yaml}: the {split} split {str(folder)!r} has no images (datasets "
                    "are split by whole episodes: generate more frames or episodes)"
                )


NEAREST_COCO_CLASS = {"pedestrian": "person", "traffic_sign": "stop sign"}
"""Our class -> the COCO class whose head row starts it, among those that map onto it."""


def transfer_class_rows(source_head, target_head, source_names: list[str]) -> list[str]:
    """Copy the classification-output rows of the source classes that map onto ours into
    the target head (both ultralytics ``Detect``), where the layers feeding them have the
    same width (see :func:`perception.yolo_detector.adopt_class_layers` for nano heads).
    Returns ``"coco -> ours"`` lines for the rows copied."""
    branches = list(zip(source_head.cv3, target_head.cv3, strict=True))
    if any(s[-1].weight.shape[1:] != t[-1].weight.shape[1:] for s, t in branches):
        logger.warning("class head widths differ; COCO class rows are not carried over")
        return []
    copied = []
    for our_id, our_name in enumerate(BOX_CLASS_NAMES):
        rows = [i for i, n in enumerate(source_names) if _maps_to(n, our_id)]
        if not rows:
            continue
        # The source class nearest ours (truck, not bus; stop sign, not traffic light).
        preferred = (our_name, NEAREST_COCO_CLASS.get(our_name))
        row = min(rows, key=lambda i: (source_names[i] not in preferred, i))
        with torch.no_grad():
            for source_branch, target_branch in branches:
                source_conv, target_conv = source_branch[-1], target_branch[-1]
                target_conv.weight[our_id] = source_conv.weight[row]
                target_conv.bias[our_id] = source_conv.bias[row]
        copied.append(f"{source_names[row]} -> {our_name}")
    return copied


def _maps_to(name: str, our_id: int) -> bool:
    try:
        return map_class_name(name) == our_id
    except ValueError:
        return False


def train_detector(config: DetectorTrainConfig) -> dict[str, Any]:
    """Train, then export ``out/detector.pt``; returns the final validation metrics."""
    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics import YOLO

    model = YOLO(config.model_yaml, task="detect")
    trainer = None
    if config.weights is not None:
        source_model = load_source_model(config.weights)
        model.load(source_model)
        trainer = _trainer_starting_from(source_model)
    model.train(
        trainer=trainer,
        data=str(config.data_yaml),
        epochs=config.epochs,
        imgsz=config.imgsz,
        batch=config.batch,
        device="cpu",
        workers=config.workers,
        project=str(config.out.resolve()),
        name="ultralytics",
        exist_ok=True,
        plots=False,
        seed=config.seed,
        deterministic=True,
        patience=config.patience,
        fraction=config.fraction,
        amp=False,
        verbose=False,
        warmup_epochs=config.warmup_epochs,
        **({"time": config.time_hours} if config.time_hours else {}),
        **dict(config.hyp),
    )
    run_dir = config.out / "ultralytics"
    best = run_dir / "weights" / "best.pt"
    trained = YOLO(str(best), task="detect").model  # our own checkpoint, written just now
    names = list(_names_from_yaml(config.data_yaml))
    export_safe_weights(
        trained,
        names,
        config.model_yaml,
        config.imgsz,
        config.out / "detector.pt",
        meta={"config": _plain(asdict(config))},
    )
    return {
        "final_metrics": last_results_row(run_dir / "results.csv"),
        "weights": str(config.out / "detector.pt"),
        "ultralytics_run": str(run_dir),
    }


def load_source_model(path: Path):
    """The DetectionModel to fine-tune from ``path``: drivestack weights (read without
    unpickling, so always safe) or an ultralytics checkpoint (the caller trusts it)."""
    from ultralytics import YOLO

    try:
        return model_from_safe_weights(load_safe_weights(path))
    except UntrustedWeightsError:
        return YOLO(str(path), task="detect").model


def _trainer_starting_from(source_model):
    """An ultralytics detection trainer whose model (built from the yaml for our classes,
    with the source's matching weights loaded by ultralytics) also takes the source's class
    layers where their width differs, and the source's class rows that map onto ours."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    source_names = _names_list(source_model.names)

    class StartFromSource(DetectionTrainer):
        def get_model(self, cfg=None, weights=None, verbose=True):
            model = super().get_model(cfg=cfg, weights=weights, verbose=verbose)
            if adopt_class_layers(model.model[-1], source_model.model[-1]):
                logger.info("class layers taken from the pretrained head (its width)")
            copied = transfer_class_rows(source_model.model[-1], model.model[-1], source_names)
            logger.info(
                "head rows initialised from the pretrained classes: %s", ", ".join(copied) or "none"
            )
            return model

    return StartFromSource


def _names_list(names) -> list[str]:
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def last_results_row(results_csv: Path) -> dict[str, float]:
    """The last epoch's row of ultralytics' results.csv, keys stripped."""
    if not results_csv.is_file():
        return {}
    with results_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    return {k.strip(): float(v) for k, v in rows[-1].items() if v and v.strip()}


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}
