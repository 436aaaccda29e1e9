"""Detection metrics with pycocotools: per-class precision, recall, AP@0.5 and
AP@0.5:0.95 (COCO's 101-point interpolated AP), and the PR curve at IoU 0.5.

Ground truth and detections are converted to COCO dictionaries in memory; category ids
are ``class_id + 1``. Ignore regions (class id -1) become ``iscrowd`` boxes of every class,
so detections inside them count neither as true nor as false positives.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any, NamedTuple

import numpy as np

from perception.classes import BOX_CLASS_NAMES
from perception.detector import Detections
from perception.labels import IGNORE_CLASS_ID, BoxLabels

logger = logging.getLogger(__name__)

MAX_DETECTIONS = 300
"""Detections per image considered by the evaluation (COCO's default is 100)."""

IOU_50_INDEX = 0
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


class ClassMetrics(NamedTuple):
    """Metrics of one class; None where the class has no ground truth.

    ``precision``, ``recall`` and ``true_positives`` are at IoU 0.5 and at the score
    threshold that maximises F1 (``f1_threshold``), as ultralytics reports them;
    ``detections`` counts all detections given (not in ignore regions).
    """

    name: str
    ground_truth: int
    detections: int
    true_positives: int
    precision: float | None
    recall: float | None
    f1_threshold: float | None
    ap50: float | None
    ap50_95: float | None


class Evaluation(NamedTuple):
    """Per-class metrics, their means over classes with ground truth, and the PR curves
    at IoU 0.5: class name -> precision at :data:`RECALL_POINTS`."""

    classes: list[ClassMetrics]
    map50: float | None
    map50_95: float | None
    pr_curves: dict[str, np.ndarray]


def coco_category_id(class_id: int) -> int:
    return int(class_id) + 1


def coco_categories(class_names: tuple[str, ...] = BOX_CLASS_NAMES) -> list[dict[str, Any]]:
    return [
        {"id": coco_category_id(i), "name": n, "supercategory": "road"}
        for i, n in enumerate(class_names)
    ]


def coco_ground_truth(
    labels: list[BoxLabels],
    sizes_wh: list[tuple[int, int]],
    file_names: list[str],
    image_ids: list[int] | None = None,
    class_names: tuple[str, ...] = BOX_CLASS_NAMES,
) -> dict[str, Any]:
    """A COCO ground-truth dictionary; image ids default to list positions."""
    images, annotations = [], []
    image_ids = list(range(len(labels))) if image_ids is None else image_ids
    for index, frame_labels, (width, height), name in zip(
        image_ids, labels, sizes_wh, file_names, strict=True
    ):
        images.append({"id": index, "file_name": name, "width": width, "height": height})
        for box, cls in zip(frame_labels.boxes_xyxy, frame_labels.class_ids, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            crowd = int(cls) == IGNORE_CLASS_ID
            for target in range(len(class_names)) if crowd else [int(cls)]:
                if target >= len(class_names):
                    continue
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index,
                        "category_id": coco_category_id(target),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": int(crowd),
                    }
                )
    return {
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(class_names),
    }


def coco_results(
    detections: list[Detections], image_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """COCO results list (``bbox`` xywh pixels); image ids default to list positions."""
    results = []
    image_ids = list(range(len(detections))) if image_ids is None else image_ids
    for index, frame in zip(image_ids, detections, strict=True):
        for box, score, cls in zip(frame.boxes_xyxy, frame.scores, frame.class_ids, strict=True):
            x1, y1, x2, y2 = (round(float(v), 2) for v in box)
            results.append(
                {
                    "image_id": index,
                    "category_id": coco_category_id(cls),
                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                    "score": round(float(score), 5),
                }
            )
    return results


def evaluate(ground_truth: dict[str, Any], results: list[dict[str, Any]]) -> Evaluation:
    """Run COCOeval (bbox) and extract per-class metrics."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = ground_truth
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else _empty_results(coco_gt)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.maxDets = [1, 10, MAX_DETECTIONS]
        evaluator.evaluate()
        evaluator.accumulate()
    return _extract(evaluator, ground_truth["categories"])


def _empty_results(coco_gt):
    from pycocotools.coco import COCO

    coco_dt = COCO()
    coco_dt.dataset = {
        "images": coco_gt.dataset["images"],
        "annotations": [],
        "categories": coco_gt.dataset["categories"],
    }
    coco_dt.createIndex()
    return coco_dt


def _extract(evaluator, categories: list[dict[str, Any]]) -> Evaluation:
    # precision: [IoU thresholds, recall points, categories, area ranges, max dets]
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    all_matches = _matches(evaluator)
    classes, curves = [], {}
    for k, category in enumerate(categories):
        matches = all_matches[category["id"]]
        point = best_f1_point(matches)
        per_iou = precision[:, :, k]
        has_gt = matches.ground_truth > 0
        ap50 = _mean_valid(per_iou[IOU_50_INDEX]) if has_gt else None
        ap50_95 = _mean_valid(per_iou) if has_gt else None
        if has_gt:
            curves[category["name"]] = np.clip(per_iou[IOU_50_INDEX], 0, None)
        classes.append(
            ClassMetrics(
                name=category["name"],
                ground_truth=matches.ground_truth,
                detections=int(matches.scores.size),
                true_positives=point.true_positives,
                precision=point.precision if has_gt else None,
                recall=point.recall if has_gt else None,
                f1_threshold=point.threshold,
                ap50=ap50,
                ap50_95=ap50_95,
            )
        )
    valid = [c for c in classes if c.ap50 is not None]
    return Evaluation(
        classes=classes,
        map50=float(np.mean([c.ap50 for c in valid])) if valid else None,
        map50_95=float(np.mean([c.ap50_95 for c in valid])) if valid else None,
        pr_curves=curves,
    )


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else 0.0


class _Matches(NamedTuple):
    ground_truth: int
    scores: np.ndarray
    true_positive: np.ndarray


def _matches(evaluator) -> dict[int, _Matches]:
    """category id -> non-ignored ground truth count and the scores and IoU-0.5 match flags
    of its non-ignored detections (crowd regions and what they absorb left out), over the
    'all' area range."""
    collected: dict[int, list] = {c: [0, [], []] for c in evaluator.params.catIds}
    all_area = evaluator.params.areaRng[0]
    for image_eval in evaluator.evalImgs:
        if image_eval is None or image_eval["aRng"] != all_area:
            continue
        entry = collected[image_eval["category_id"]]
        entry[0] += int(np.sum(~np.asarray(image_eval["gtIgnore"], bool)))
        kept = ~np.asarray(image_eval["dtIgnore"][IOU_50_INDEX], bool)
        matched = np.asarray(image_eval["dtMatches"][IOU_50_INDEX]) > 0
        entry[1].append(np.asarray(image_eval["dtScores"])[kept])
        entry[2].append(matched[kept])
    return {
        c: _Matches(
            gt,
            np.concatenate(scores) if scores else np.zeros(0),
            np.concatenate(flags) if flags else np.zeros(0, bool),
        )
        for c, (gt, scores, flags) in collected.items()
    }


class OperatingPoint(NamedTuple):
    """Precision and recall at the score threshold that maximises F1."""

    threshold: float | None
    precision: float
    recall: float
    true_positives: int


def best_f1_point(matches: _Matches) -> OperatingPoint:
    if matches.ground_truth == 0 or matches.scores.size == 0:
        return OperatingPoint(None, 0.0, 0.0, 0)
    order = np.argsort(-matches.scores, kind="stable")
    true_positives = np.cumsum(matches.true_positive[order])
    precision = true_positives / np.arange(1, order.size + 1)
    recall = true_positives / matches.ground_truth
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1))
    return OperatingPoint(
        float(matches.scores[order][best]),
        float(precision[best]),
        float(recall[best]),
        int(true_positives[best]),
    )


def plot_pr_curves(evaluation: Evaluation, path, title: str) -> None:
    """Save the IoU-0.5 precision-recall curve of every class with ground truth (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from bus.atomic import atomic_path

    figure = Figure(figsize=(6, 4.5), dpi=120)
    axes = figure.add_subplot()
    aps = {c.name: c.ap50 for c in evaluation.classes}
    for name, curve in evaluation.pr_curves.items():
        axes.plot(RECALL_POINTS, curve, label=f"{name} AP50 {aps[name]:.3f}")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    axes.grid(alpha=0.3)
    if evaluation.pr_curves:
        axes.legend(loc="lower left")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
