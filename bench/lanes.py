"""Lane estimate against simulator ground truth: lateral offset, width and heading errors
over the frames of a make-dataset directory (its per-frame JSON holds the true lane lines
in the ego frame; its episode files hold the camera calibration).

    python -m bench.lanes --data runs/data/sim_test
    python -m bench.lanes --tusimple ../shared/data/lanes/tusimple_sample

On the real TuSimple samples (no calibration) it scores the paint-pixel stage instead:
precision and recall of the stripe pixels against the lane masks (a pixel counts as
found within TUSIMPLE_TOLERANCE_PX of the mask), below the image's upper ROAD_TOP share.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/bus.py would shadow the bus package: import from the repository root instead.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

TUSIMPLE_TOLERANCE_PX = 5
ROAD_TOP = 0.45
"""Rows above this share of the image height are sky and scenery in the TuSimple frames."""

FIT_POINTS = 4
"""Nearest true road points of a line used to extrapolate it to the ego centre."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="make-dataset directory (simulated)")
    parser.add_argument("--tusimple", type=Path, help="TuSimple sample directory (real)")
    args = parser.parse_args()
    if args.data is not None:
        _bench_sim(args.data)
    if args.tusimple is not None:
        _bench_tusimple(args.tusimple)


def _bench_tusimple(root: Path) -> None:
    import cv2
    import numpy as np

    from perception.lanes import LaneConfig, paint_pixels

    config = LaneConfig()
    print(f"{'TuSimple frame':>16} {'precision':>9} {'recall':>7}")
    for image_path in sorted((root / "image").glob("*.png")):
        image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(root / "gt_binary_image" / image_path.name), cv2.IMREAD_GRAYSCALE) > 0
        height = image.shape[0]
        found = np.zeros_like(mask)
        pixels = paint_pixels(image, ROAD_TOP * height, config).astype(int)
        found[pixels[:, 1], pixels[:, 0]] = True
        kernel = np.ones((2 * TUSIMPLE_TOLERANCE_PX + 1,) * 2, np.uint8)
        near_mask = cv2.dilate(mask.astype(np.uint8), kernel) > 0
        near_found = cv2.dilate(found.astype(np.uint8), kernel) > 0
        road = np.zeros_like(mask)
        road[int(ROAD_TOP * height) :] = True
        precision = (found & near_mask).sum() / max(found.sum(), 1)
        recall = (mask & road & near_found).sum() / max((mask & road).sum(), 1)
        print(f"{image_path.name:>16} {precision:9.3f} {recall:7.3f}")


def _bench_sim(data: Path) -> None:
    import cv2
    import numpy as np

    from perception.lanes import estimate_lane

    offsets, widths, headings, latencies = [], [], [], []
    frames = missing = 0
    for episode_file in sorted((data / "episodes").glob("*.json")):
        episode = json.loads(episode_file.read_text())
        info = episode["camera_info"]
        k = np.array(info["k"]).reshape(3, 3)
        t_camera_ego = np.array(info["t_camera_ego"]).reshape(4, 4)
        for name in episode["frames"]:
            image_path = next((data / "images").glob(f"*/{name}.jpg"), None)
            labels_path = next((data / "annotations").glob(f"*/{name}.json"), None)
            if image_path is None or labels_path is None:
                continue
            truth = _true_lane(json.loads(labels_path.read_text()))
            if truth is None:
                continue
            frames += 1
            image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
            started = time.perf_counter()
            estimate = estimate_lane(image, k, t_camera_ego)
            latencies.append((time.perf_counter() - started) * 1000)
            if estimate is None:
                missing += 1
                continue
            offsets.append(abs(estimate.lateral_offset_m - truth[0]))
            widths.append(abs(estimate.lane_width_m - truth[1]))
            headings.append(abs(estimate.heading_error_rad - truth[2]))

    print(f"{frames} frames with a true ego lane; no estimate on {missing}")
    print(f"{'error':>22} {'median':>8} {'p90':>8}")
    for label, values in (
        ("lateral offset [m]", offsets),
        ("lane width [m]", widths),
        ("heading [rad]", headings),
    ):
        print(f"{label:>22} {np.median(values):8.3f} {np.percentile(values, 90):8.3f}")
    print(f"latency {np.mean(latencies):.1f} ms per frame (mean)")


def _true_lane(labels: dict) -> tuple[float, float, float] | None:
    """(offset, width, heading error) of the true ego lane at the ego centre."""
    import numpy as np

    lines = []
    for line in labels["lane_lines"]:
        points = np.array(line["road_points"][:FIT_POINTS], float)
        if len(points) < 2:
            continue
        slope, intercept = np.polyfit(points[:, 0], points[:, 1], 1)
        lines.append((intercept, slope))
    left = [line for line in lines if line[0] > 0]
    right = [line for line in lines if line[0] <= 0]
    if not left or not right:
        return None
    y_left, slope_left = min(left)
    y_right, slope_right = max(right)
    return (
        -(y_left + y_right) / 2,
        y_left - y_right,
        -float(np.arctan((slope_left + slope_right) / 2)),
    )


if __name__ == "__main__":
    main()
