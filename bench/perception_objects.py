"""Camera perception in the closed loop against simulator ground truth: how well the tracked
objects on ``/perception/objects`` (detector + ByteTrack + flat-road geometry) match the
true road users on ``/sim/objects``.

    python -m bench.perception_objects --episodes 5

Each camera frame, detections are matched to the true boxes of ``/camera/truth`` (IoU >= 0.5,
same object), which names the true object behind each track. Reported over the matched
pairs, in the ego frame: position, velocity, size and heading errors (median and 90th
percentile of the absolute error); recall of the clearly visible true objects (visible
fraction >= 0.5, not cut by the image border, within MAX_RANGE_M) by a published track;
and identity switches (a true object seen under a new track id after having had another).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/bus.py would shadow the bus package: import from the repository root instead.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import numpy as np  # noqa: E402

MATCH_IOU = 0.5
MIN_VISIBLE = 0.5
MAX_TRUNCATION = 0.05
MAX_RANGE_M = 80.0
ROAD_USERS = ("car", "truck", "pedestrian")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="highway-fast-v0", help="(default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=100, help="first seed (default: 100)")
    args = parser.parse_args()

    _print_table(_run(args))


class _Collector:
    """Per frame: pairs (true object, perceived object) and the visible true objects."""

    def __init__(self) -> None:
        self.latest: dict[str, object] = {}
        self.errors: dict[str, list[float]] = defaultdict(list)
        self.visible: dict[str, int] = defaultdict(int)
        self.found: dict[str, int] = defaultdict(int)
        self.detected: dict[str, int] = defaultdict(int)
        self.switches: dict[str, int] = defaultdict(int)
        self.pairs = 0
        self.track_of: dict[tuple[int, int], int] = {}
        self.episode = 0
        self.timing: dict = {}

    def on(self, topic: str):
        def store(message) -> None:
            self.latest[topic] = message
            if topic == "/perception/objects":
                self._frame()

        return store

    def _frame(self) -> None:
        from perception.detector import box_iou

        truth = self.latest["/camera/truth"]
        detections = self.latest["/perception/detections"]
        perceived = {o.object_id: o for o in self.latest["/perception/objects"].objects}
        objects = {o.object_id: o for o in self.latest["/sim/objects"].objects}
        boxes = [b for b in truth.boxes if b.object_id in objects]
        if not boxes or not detections.detections:
            for box in boxes:
                self.visible[box.label_class] += self._clearly_visible(box)
            return
        iou = box_iou(
            np.array([b.bbox_xyxy for b in boxes], np.float32),
            np.array([d.bbox_xyxy for d in detections.detections], np.float32),
        )
        best_iou = dict(zip((b.object_id for b in boxes), iou.max(axis=1), strict=True))
        matched: dict[int, int] = {}  # true object id -> track id
        for row, col in zip(*np.nonzero(iou >= MATCH_IOU), strict=True):
            track_id = detections.detections[col].track_id
            if track_id in perceived and iou[row].max() == iou[row, col]:
                matched[boxes[row].object_id] = track_id
        for box in boxes:
            if self._clearly_visible(box):
                self.visible[box.label_class] += 1
                self.found[box.label_class] += box.object_id in matched
                self.detected[box.label_class] += bool(best_iou[box.object_id] >= MATCH_IOU)
        for box in boxes:
            track_id = matched.get(box.object_id)
            if track_id is None:
                continue
            self._compare(objects[box.object_id], perceived[track_id])
            key = (self.episode, box.object_id)
            if self.track_of.get(key, track_id) != track_id:
                self.switches[box.label_class] += 1
            self.track_of[key] = track_id

    @staticmethod
    def _clearly_visible(box) -> bool:
        return (
            box.label_class in ROAD_USERS
            and box.visible_fraction >= MIN_VISIBLE
            and box.truncation <= MAX_TRUNCATION
            and box.distance_m <= MAX_RANGE_M
        )

    def _compare(self, true, seen) -> None:
        self.pairs += 1
        errors = self.errors
        errors["x_m"].append(seen.ego_pose.x - true.ego_pose.x)
        errors["y_m"].append(seen.ego_pose.y - true.ego_pose.y)
        errors["vx_mps"].append(seen.ego_velocity_mps.x - true.ego_velocity_mps.x)
        errors["vy_mps"].append(seen.ego_velocity_mps.y - true.ego_velocity_mps.y)
        errors["length_m"].append(seen.length_m - true.length_m)
        errors["width_m"].append(seen.width_m - true.width_m)
        heading = (seen.ego_pose.yaw - true.ego_pose.yaw + np.pi) % (2 * np.pi) - np.pi
        errors["heading_rad"].append(heading)


def _run(args) -> _Collector:
    import torch

    from bus import Bus
    from perception.node import PerceptionConfig, make_perception_node
    from planning.factory import make_planner
    from sim.camera import CameraConfig
    from sim.commands.sim import PERCEPTION_THREADS
    from sim.loop import ClosedLoop
    from sim.simulator import SimConfig
    from sim.world import world_preset

    torch.set_num_threads(PERCEPTION_THREADS)  # as drivestack sim --perception runs it
    perception = make_perception_node(config=PerceptionConfig(trigger="/sim/ego"))
    config = SimConfig(
        env_id=args.env, render=False, camera=CameraConfig(), world=world_preset("stack")
    )
    bus = Bus()
    loop = ClosedLoop(config, make_planner("rule"), bus, nodes=(perception,))
    collector = _Collector()
    for topic in ("/camera/truth", "/sim/objects", "/perception/detections", "/perception/objects"):
        bus.subscribe(topic, collector.on(topic))
    try:
        for episode in range(args.episodes):
            collector.episode = episode
            loop.run_episode(episode, args.seed + episode)
    finally:
        loop.close()
    collector.timing = perception.timing_report()
    return collector


def _print_table(collector: _Collector) -> None:
    print("errors of matched objects, ego frame")
    print(f"{'perceived - true':>26} {'median':>8} {'|err| p50':>10} {'|err| p90':>10}")
    for name, values in collector.errors.items():
        values = np.array(values)
        print(
            f"{name:>26} {np.median(values):>8.2f} {np.median(np.abs(values)):>10.2f} "
            f"{np.percentile(np.abs(values), 90):>10.2f}"
        )
    print(
        f"\nclearly visible true objects within {MAX_RANGE_M:.0f} m, per frame "
        f"({collector.pairs} matched pairs, {len(collector.track_of)} true objects tracked)"
    )
    print(f"{'class':>12} {'visible':>8} {'detected':>9} {'tracked':>8} {'id switches':>12}")
    for name in sorted(collector.visible):
        visible = collector.visible[name]
        print(
            f"{name:>12} {visible:>8d} {collector.detected[name] / visible:>9.3f} "
            f"{collector.found[name] / visible:>8.3f} {collector.switches[name]:>12d}"
        )
    timing = collector.timing
    print(
        f"perception: {timing['frames']} frames, detector {timing['detector_ms']['mean']:.1f} ms, "
        f"whole step {timing['step_ms']['mean']:.1f} ms mean"
    )


if __name__ == "__main__":
    main()
