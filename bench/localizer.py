"""Localizer benchmark: accuracy and speed on held-out simulated drives, and on real KITTI frames.

    python -m bench.localizer [--seeds "1000-1009;1100-1105"] [--weights FILE] [--skip-sim]
                              [--skip-real]

Simulation: the shipped CNN localizer (landmarks, lane offset, lane dashes) with the EKF on
held-out seeds (see ``mapping/evaluation.py``); median / 95th-percentile position error,
median heading error, share of frames within 1 m, and the localizer's rate on this CPU (one
thread). ``--seeds`` takes several sets separated by ``;`` (default: both held-out sets).

Real: ``../shared/data/poses/kitti_odometry_06``: a feature map is built from keyframes with
their ground-truth poses, the other frames are localized against it (retrieval + RANSAC PnP)
and compared with their ground-truth poses. Errors are reported whatever they are.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mapping.posed_images import (  # noqa: E402
    FeatureMap,
    PosedImage,
    pose_errors,
    read_kitti_poses,
)
from sim.commands.args import seed_list  # noqa: E402

KITTI_DIR = REPO.parent / "shared" / "data" / "poses" / "kitti_odometry_06"
KITTI_K = np.array([[707.0912, 0.0, 601.8873], [0.0, 707.0912, 183.1104], [0.0, 0.0, 1.0]])
"""Rectified intrinsics of KITTI odometry sequences 04-12 (calib.txt P0..P3, same K)."""
KITTI_CAMERA_X_M = {"grey_left": 0.0, "grey_right": 0.5372, "colour_left": -0.0663}
"""Optical centre of each rectified camera along camera 0's x axis [m] (from P1, P2 of the
calibration: t_x / f_x); ground-truth poses are camera 0's."""
KEYFRAMES = ("kitti06-01.png", "kitti06-12.png", "kitti06-14-color.png", "kitti06-435.png")
QUERIES = (
    "kitti06-13.png",
    "kitti06-13-color.png",
    "kitti06-12-R.png",
    "kitti06-12-color.png",
    "kitti06-17-color.png",
    "kitti06-436.png",
)


def kitti_frame(name: str, poses: np.ndarray) -> PosedImage:
    """A frame of the shared KITTI folder with its camera's ground-truth pose."""
    stem = name.removeprefix("kitti06-").removesuffix(".png")
    parts = stem.split("-")
    index = int(parts[0])
    camera = (
        "grey_right"
        if "R" in parts and "color" not in parts
        else "colour_left"
        if "color" in parts
        else "grey_left"
    )
    if "R" in parts and "color" in parts:
        camera = "grey_right"  # TODO(#7): colour right camera (P3, x = 0.4727 m) is unused here
    pose = poses[index].copy()
    offset = np.eye(4)
    offset[0, 3] = KITTI_CAMERA_X_M[camera]
    image = cv2.imread(str(KITTI_DIR / "frames" / name), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise OSError(f"cannot read {KITTI_DIR / 'frames' / name}")
    return PosedImage(name, image, KITTI_K, pose @ offset)


def bench_real() -> list[tuple[str, str, str, str, str]]:
    poses = read_kitti_poses(KITTI_DIR / "06.txt")
    started = time.perf_counter()
    feature_map = FeatureMap([kitti_frame(name, poses) for name in KEYFRAMES])
    build_s = time.perf_counter() - started
    rows = []
    print(
        f"KITTI 06: map of {len(KEYFRAMES)} keyframes, {len(feature_map.points_world)} "
        f"points, built in {build_s:.1f} s"
    )
    for name in QUERIES:
        query = kitti_frame(name, poses)
        started = time.perf_counter()
        result = feature_map.localize(query.image, query.k)
        elapsed_ms = 1000 * (time.perf_counter() - started)
        if result.camera_to_world is None:
            rows.append(
                (
                    name,
                    result.keyframe or "-",
                    f"{result.inliers}",
                    "not localized",
                    f"{elapsed_ms:.0f}",
                )
            )
            continue
        position_m, rotation_deg = pose_errors(result.camera_to_world, query.camera_to_world)
        rows.append(
            (
                name,
                result.keyframe,
                f"{result.inliers}",
                f"{position_m:.3f} m / {rotation_deg:.2f} deg",
                f"{elapsed_ms:.0f}",
            )
        )
    return rows


def bench_sim(seeds: list[int], weights: str | None) -> dict:
    import torch

    from mapping.evaluation import evaluate
    from mapping.localizer import load_net

    torch.set_num_threads(1)
    return evaluate(load_net(weights), seeds).summary()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seeds",
        default="1000-1009;1100-1105",
        help="held-out seed sets, each A-B or A,B,C, separated by ';' (default: %(default)s)",
    )
    parser.add_argument("--weights", default=None, help="localizer state_dict (default: shipped)")
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()

    for seeds in [] if args.skip_sim else args.seeds.split(";"):
        summary = bench_sim(seed_list(seeds), args.weights)
        print(
            f"\nSimulation, held-out seeds {seeds}: {summary['frames']} frames, "
            f"{100 * summary['fix_with_landmarks_share']:.0f} % with landmarks, "
            f"{100 * summary['fix_with_dashes_share']:.0f} % with lane dashes"
        )
        print(f"{'estimate':<16}{'median m':>10}{'p95 m':>10}{'<=1 m':>8}{'heading deg':>13}")
        for key in ("localizer", "fused", "dead_reckoning"):
            stats = summary[key]
            heading = stats.get("median_heading_deg", math.nan)
            print(
                f"{key:<16}{stats['median_m']:>10.3f}{stats['p95_m']:>10.3f}"
                f"{100 * stats['within_1m']:>7.0f}%{heading:>13.2f}"
            )
        print(
            f"localizer rate: {summary['localizer_hz']:.0f} Hz median "
            f"(p95 latency {summary['localizer_ms_p95']:.1f} ms), one thread"
        )
    if not args.skip_real:
        if not KITTI_DIR.exists():
            print(f"\nKITTI: {KITTI_DIR} is absent; real-sequence benchmark skipped")
            return 0
        rows = bench_real()
        print(f"\n{'query':<24}{'keyframe':<24}{'inliers':>8}  {'error':<26}{'ms':>6}")
        for name, keyframe, inliers, error, ms in rows:
            print(f"{name:<24}{keyframe:<24}{inliers:>8}  {error:<26}{ms:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
