"""Detector benchmark: speed at 640x360, AP on held-out simulated episodes, car AP on the
real KITTI frames; our shipped model next to the COCO ONNX teachers. Prints tables.

    python -m bench.detector [--sim-data DIR] [--weights W ...] [--frames 30] [--threads 1]

Each drivestack .pt detector is measured twice: with one look at the frame, and with a
second look at the zoom window (``+zoom``, as the perception node runs it; see
perception/zoom.py). --zoom none leaves the second out.

--sim-data is a make-dataset directory of held-out episodes (seeds not used for training),
e.g. ``drivestack make-dataset --env highway-fast-v0 --frames 300 --frames-per-episode 20
--seed 5000 --val-fraction 0 --out runs/data/sim_test``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
# bench/bus.py would shadow the bus package: import from the repository root instead.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
SHARED = Path(os.environ.get("DRIVESTACK_SHARED", REPO.parent / "shared"))
TEACHERS = (
    SHARED / "models/yolox_nano/yolox_nano.onnx",
    SHARED / "models/fastestdet/FastestDet.onnx",
)
KITTI = SHARED / "data/images/kitti_object"
SPEED_WH = (640, 360)
CLASSES = ("car", "truck", "pedestrian", "traffic_sign")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", nargs="*", help="detectors (default: shipped + teachers)")
    parser.add_argument("--sim-data", type=Path, help="held-out make-dataset directory")
    parser.add_argument("--frames", type=int, default=30, help="frames timed per detector")
    parser.add_argument("--conf", type=float, default=0.01, help="score threshold for AP")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per detector")
    parser.add_argument(
        "--zoom", default="0.36,0.40,0.70,0.58", help="zoom window X0,Y0,X1,Y1, or none"
    )
    parser.add_argument(
        "--zoom-frame-px", type=int, default=512, help="whole-frame look size with --zoom"
    )
    args = parser.parse_args()
    if args.frames < 1:
        parser.error(f"--frames must be at least 1, got {args.frames}")

    import torch

    torch.set_num_threads(args.threads)

    from perception.detector import load_detector
    from perception.yolo_detector import SHIPPED_DETECTOR

    weights = [Path(w) for w in args.weights] if args.weights else [SHIPPED_DETECTOR, *TEACHERS]
    weights = [w for w in weights if w.is_file()]
    names = [w.name for w in weights]
    # Two files of one name (a model and its retrained copy) are told apart by their paths.
    labels = [str(w) if names.count(w.name) > 1 else w.name for w in weights]
    detectors = {
        label: load_detector(w, conf=args.conf, threads=args.threads)
        for label, w in zip(labels, weights, strict=True)
    }
    parallel = {}
    if args.zoom != "none":
        from perception.zoom import ZoomedDetector, parse_zoom

        # As the perception node looks: the frame at 512 px, the window at the model's size.
        window = dataclasses.replace(parse_zoom(args.zoom), frame_imgsz=args.zoom_frame_px)
        for label, w in zip(labels, weights, strict=True):
            if w.suffix == ".pt":
                detectors[f"{label}+zoom"] = ZoomedDetector(detectors[label], window)
                # Both looks at once on two threads (speed only: the boxes are the same).
                parallel[f"{label}+zoom||"] = ZoomedDetector(
                    detectors[label], window, parallel=True
                )

    print(
        f"speed on {SPEED_WH[0]}x{SPEED_WH[1]} frames ({args.frames} timed, after 3 warm-up, "
        f"{args.threads} thread(s) per look; || takes the two looks at once)"
    )
    print(f"{'detector':>22} {'mean ms':>8} {'p95 ms':>8} {'FPS':>6}")
    for name, detector in {**detectors, **parallel}.items():
        mean_ms, p95_ms = _time(detector, args.frames, args.sim_data)
        print(f"{name:>22} {mean_ms:8.1f} {p95_ms:8.1f} {1000 / mean_ms:6.1f}")

    if args.sim_data is not None:
        images, labels = _split_dirs(args.sim_data)
        print(f"\nAP@0.5 (AP@0.5:0.95) on held-out simulated frames {images} (labels {labels})")
        _ap_table(detectors, images, labels, CLASSES)
    if KITTI.is_dir():
        print(f"\nAP@0.5 (AP@0.5:0.95) on the real KITTI frames {KITTI}")
        _ap_table(detectors, KITTI / "image_2", KITTI / "label_2", ("car",))


def _time(detector, frames: int, sim_data: Path | None) -> tuple[float, float]:
    import cv2
    import numpy as np

    image = _speed_frame(sim_data)
    image = cv2.resize(image, SPEED_WH)
    for _ in range(3):
        detector.detect(image)
    latencies = []
    for _ in range(frames):
        started = time.perf_counter()
        detector.detect(image)
        latencies.append((time.perf_counter() - started) * 1000)
    return float(np.mean(latencies)), float(np.percentile(latencies, 95))


def _speed_frame(sim_data: Path | None):
    import cv2

    if sim_data is not None:
        images, _ = _split_dirs(sim_data)
        first = sorted(images.glob("*.jpg"))[0]
    else:
        first = sorted((SHARED / "data/images/udacity_highway").glob("*.jpg"))[0]
    return cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB)


def _split_dirs(root: Path) -> tuple[Path, Path]:
    """Images and labels of the val split, else the train split: the COCO ground truth with
    ignore regions where make-dataset wrote one, else the YOLO labels."""
    for split in ("val", "train"):
        images = root / "images" / split
        if images.is_dir() and any(images.iterdir()):
            coco = root / "coco" / f"{split}.json"
            return images, coco if coco.is_file() else root / "labels" / split
    raise SystemExit(f"{root}: no images/val or images/train")


def _ap_table(detectors, images: Path, labels: Path, classes) -> None:
    from perception.video_eval import ClipEvalConfig, run_clip_eval

    print(f"{'detector':>22} " + " ".join(f"{c:>15}" for c in classes) + f" {'FPS':>6}")
    for name, detector in detectors.items():
        with tempfile.TemporaryDirectory() as out:
            config = ClipEvalConfig(
                source=images, out=Path(out), labels=labels, write_video=False, progress=False
            )
            summary = run_clip_eval(config, detector)
        metrics = summary["metrics"]["classes"]
        cells = []
        for c in classes:
            ap50, ap = metrics[c]["ap50"], metrics[c]["ap50_95"]
            cells.append(f"{'-':>15}" if ap50 is None else f"{ap50:7.3f} ({ap:.3f})")
        print(f"{name:>22} " + " ".join(cells) + f" {summary['detector_fps']:6.1f}")


if __name__ == "__main__":
    main()
