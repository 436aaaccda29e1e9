"""Generated drives for the landmark localizer: camera frames with ground-truth ego poses.

A drive is one highway-env episode from a seed: the ego follows the rule planner with some
random meta-actions mixed in, the front camera renders every control step, and the HD map of
that seed's world is built from the same reset. Training views may be rendered from a
perturbed ego pose (shifted and turned) so the network sees lateral offsets and headings the
traffic rarely produces.

Landmark labels come from the map and the true pose: the image column ``u`` [px] of each
landmark's centre (footprint centre at half height) and its ground range from the camera [m],
for landmarks the renderer reports as visible enough.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import msgspec
import numpy as np

from bus.messages import EgoState, Pose2D
from bus.messages.camera import CameraInfo
from mapping.hdmap import HdMap, MapIndex, map_from_world

logger = logging.getLogger(__name__)

RANDOM_ACTION_SHARE = 0.15
"""The ego follows the rule planner, but takes a random lane or speed change this often."""


@dataclass(frozen=True)
class DriveConfig:
    """How drives are generated.

    :param env_id: highway-env environment.
    :param steps: control steps per drive (fewer when the ego crashes).
    :param views_per_step: frames rendered per step; views after the first use a perturbed
        ego pose (0 perturbed views when 1).
    :param shift_x_m, shift_y_m: uniform range of the perturbation along x and y [m].
    :param turn_deg: standard deviation of the heading perturbation [deg].
    :param min_visible_px, min_visible_fraction: a landmark is labelled visible when at least
        this many of its pixels, and this share of its unoccluded pixels, are in the frame.
    """

    env_id: str = "highway-fast-v0"
    steps: int = 30
    views_per_step: int = 1
    shift_x_m: float = 12.0
    shift_y_m: float = 1.5
    turn_deg: float = 3.0
    min_visible_px: int = 40
    min_visible_fraction: float = 0.3


@dataclass
class DriveOutcome:
    """How a drive ended, filled in when its frame iterator is exhausted.

    :param steps: control steps driven (rendered).
    :param end: ``completed`` (all the configured steps), ``crashed`` (the ego collided) or
        ``episode end`` (the environment ended the episode, e.g. merge-v0's road ends).
    """

    steps: int = 0
    end: str = ""


@dataclass(frozen=True)
class LandmarkLabel:
    """A visible landmark: id, image column of its centre [px], ground range [m]."""

    landmark_id: int
    u_px: float
    range_m: float


@dataclass(frozen=True)
class DriveFrame:
    """One rendered view.

    :param pixels: HxWx3 uint8 RGB, full camera resolution.
    :param pose: true ego pose of this view in ``map``.
    :param ego: the simulator's ego state of the step (unperturbed; odometry source).
    :param perturbed: True for a view rendered from a shifted pose.
    """

    seed: int
    step: int
    pixels: np.ndarray
    pose: Pose2D
    ego: EgoState
    perturbed: bool
    landmarks: tuple[LandmarkLabel, ...]


def generate_drive(
    seed: int,
    config: DriveConfig | None = None,
    outcome: DriveOutcome | None = None,
) -> tuple[HdMap, CameraInfo, Iterator[DriveFrame]]:
    """The map of ``seed``'s world, the episode's camera calibration and an iterator over
    the drive's frames; ``outcome``, when given, says how the drive ended once the iterator
    is exhausted."""
    from sim.adapter import WorldReader
    from sim.camera import FrontCamera
    from sim.envs import make_env
    from sim.world import World

    config = config or DriveConfig()
    env = make_env(config.env_id, {"duration": config.steps + 1})
    env.reset(seed=seed)
    world = World()
    static = world.reset(env, seed)
    hd_map = map_from_world(env, static, seed, config.env_id)
    camera = FrontCamera()
    camera_info = camera.reset(seed)
    reader = WorldReader(env)
    frames = _frames(seed, config, env, world, static, camera, reader, outcome or DriveOutcome())
    return hd_map, camera_info, frames


def _frames(
    seed,
    config: DriveConfig,
    env,
    world,
    static,
    camera,
    reader,
    outcome: DriveOutcome,
) -> Iterator[DriveFrame]:
    from planning.rule import RulePlanner
    from sim.camera import SceneInput

    driver = RulePlanner()
    rng = np.random.default_rng([seed, 0x10CA1])
    control_dt_ns = int(round(1e9 / env.unwrapped.config["policy_frequency"]))
    outcome.end = "completed"
    try:
        for step in range(config.steps):
            outcome.steps = step + 1
            stamp_ns = step * control_dt_ns
            ego = reader.ego_state(stamp_ns, step)
            objects = world.with_pedestrians(reader.objects(stamp_ns, ego), ego, stamp_ns / 1e9)
            lanes = reader.lanes(stamp_ns)
            for view in range(config.views_per_step):
                pose = ego.pose if view == 0 else _perturb(ego.pose, config, rng)
                view_ego = msgspec.structs.replace(ego, pose=pose)
                frame = camera.render(SceneInput(view_ego, objects, lanes, static), stamp_ns)
                labels = _landmark_labels(static, camera.model, pose, frame.render, config)
                yield DriveFrame(seed, step, frame.pixels, pose, ego, view > 0, labels)
            action = (
                int(rng.integers(5))
                if rng.random() < RANDOM_ACTION_SHARE
                else int(
                    driver.step({"/sim/ego": ego, "/sim/objects": objects, "/sim/lanes": lanes})[
                        "/planning/action"
                    ].action
                )
            )
            _, _, terminated, truncated, _ = env.step(action)
            if (terminated or truncated) and step + 1 < config.steps:
                crashed = bool(getattr(env.unwrapped.vehicle, "crashed", False))
                outcome.end = "crashed" if crashed else "episode end"
                break
    finally:
        env.close()


def _perturb(pose: Pose2D, config: DriveConfig, rng: np.random.Generator) -> Pose2D:
    return Pose2D(
        pose.x + float(rng.uniform(-config.shift_x_m, config.shift_x_m)),
        pose.y + float(rng.uniform(-config.shift_y_m, config.shift_y_m)),
        pose.yaw + math.radians(float(rng.normal(0.0, config.turn_deg))),
    )


def _landmark_labels(
    static,
    camera_model,
    pose: Pose2D,
    render,
    config: DriveConfig,
) -> tuple[LandmarkLabel, ...]:
    visible = {
        obj.object_id: obj
        for obj in render.objects
        if obj.visible_px >= config.min_visible_px
        and obj.visible_px >= config.min_visible_fraction * max(obj.unoccluded_px, 1)
    }
    labels = []
    camera_xy = camera_model.camera_position_map(pose)[:2]
    for landmark in static.landmarks:
        if landmark.landmark_id not in visible:
            continue
        centre = np.array([[landmark.pose.x, landmark.pose.y, landmark.height_m / 2]])
        pixels, ahead = camera_model.project(centre, pose)
        u = float(pixels[0, 0])
        if not ahead[0] or not 0.0 <= u < camera_model.config.width_px:
            continue
        range_m = float(np.hypot(*(centre[0, :2] - camera_xy)))
        labels.append(LandmarkLabel(landmark.landmark_id, u, range_m))
    return tuple(labels)


def lane_targets(index: MapIndex, pose: Pose2D) -> tuple[float, float, float]:
    """(lateral offset from the nearest lane centre [m], left positive; heading relative to
    that lane [rad]; lane width [m]) of a pose; zeros for a map without lanes."""
    nearest = index.nearest_lane(pose.x, pose.y)
    if nearest is None:
        return 0.0, 0.0, 0.0
    lateral_m, lane_heading_rad, width_m = nearest
    return lateral_m, math.remainder(pose.yaw - lane_heading_rad, 2 * math.pi), width_m


def unperturbed(config: DriveConfig) -> DriveConfig:
    """The same drives with one true view per step (evaluation)."""
    return replace(config, views_per_step=1)
