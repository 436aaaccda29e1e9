"""Front-camera rendering speed on one core: frames per second per resolution.

Scenes are captured from highway-env drives (traffic, trucks, pedestrians, signs, landmarks,
lanes); the table then times the camera alone on them: rendering with labels (what the
simulator does every step), and rendering only. Run: ``python -m bench.camera``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# bench/ holds scripts named like our packages (bench/bus.py): import the packages instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bus import Bus  # noqa: E402
from sim.camera import CameraConfig, FrontCamera, RandomizationConfig, SceneInput  # noqa: E402
from sim.simulator import SimConfig, Simulator  # noqa: E402

RESOLUTIONS = ((640, 360), (320, 180), (1280, 720))


def capture_scenes(env_id: str, seeds: list[int], steps: int) -> list[SceneInput]:
    """Scenes of ``steps`` control steps of each seed's episode (IDLE actions)."""
    bus = Bus()
    latest: dict[str, object] = {}
    for topic in ("/sim/ego", "/sim/objects", "/sim/lanes", "/sim/static"):
        bus.subscribe(topic, lambda message, t=topic: latest.__setitem__(t, message))
    simulator = Simulator(SimConfig(env_id=env_id), bus)
    scenes = []
    for seed in seeds:
        simulator.reset(seed)
        for _ in range(steps):
            scenes.append(
                SceneInput(
                    latest["/sim/ego"],
                    latest["/sim/objects"],  # type: ignore[arg-type]
                    latest["/sim/lanes"],
                    latest["/sim/static"],
                )
            )  # type: ignore[arg-type]
            if simulator.step().done:
                break
    simulator.close()
    return scenes


def time_camera(
    camera: FrontCamera, scenes: list[SceneInput], repeats: int, labels: bool
) -> tuple[float, float, float]:
    """Frames per second of wall time and of this process's CPU time (equal on an idle
    machine; on a shared one the CPU figure is what one free core would give), and the
    95th-percentile wall time of a frame [ms]."""
    times = []
    cpu_start = time.process_time()
    for _ in range(repeats):
        for scene in scenes:
            start = time.perf_counter()
            if labels:
                camera.render(scene, 0)
            else:
                camera.renderer.render(scene, camera.model, camera.appearance, 0)
            times.append(time.perf_counter() - start)
    cpu_s = time.process_time() - cpu_start
    return len(times) / sum(times), len(times) / cpu_s, float(np.percentile(times, 95)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="highway-v0")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    cv2.setNumThreads(1)
    scenes = capture_scenes(args.env, list(range(args.seeds)), args.steps)
    objects = np.mean([len(s.objects.objects) for s in scenes])
    print(
        f"{len(scenes)} scenes from {args.env}, {objects:.0f} objects each on average; "
        f"one core (cv2 threads 1); load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'resolution':>10}  {'randomised':>10}  {'labels':>6}  {'fps_wall':>8}  "
        f"{'fps_cpu':>7}  {'p95_ms':>7}"
    )
    for width, height in RESOLUTIONS:
        for randomised in (True, False):
            camera = FrontCamera(
                CameraConfig(width_px=width, height_px=height),
                RandomizationConfig(enabled=randomised),
            )
            camera.reset(0)
            for labels in (True, False):
                fps, fps_cpu, p95 = time_camera(camera, scenes, args.repeats, labels)
                print(
                    f"{width}x{height:<5}  {str(randomised):>10}  {str(labels):>6}  "
                    f"{fps:8.1f}  {fps_cpu:7.1f}  {p95:7.2f}"
                )


if __name__ == "__main__":
    main()
