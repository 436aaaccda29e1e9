"""The simulator node: highway-env as the world, driven through the bus.

Each control step it publishes the ego state, the ground-truth objects and the lane geometry
(lanes, then objects, then ego, so the ego message can trigger the planner with the rest of the
step already delivered), and it applies the latest action received on ``/planning/action``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from bus import Bus
from bus.messages import DrivingAction, EgoState, Header, MetaAction
from sim.adapter import LaneSampling, WorldReader
from sim.camera import CameraConfig, CameraFrame, FrontCamera, RandomizationConfig, SceneInput
from sim.envs import make_env
from sim.frames import pose_from_highway
from sim.world import World, WorldConfig

logger = logging.getLogger(__name__)

DEFAULT_ACTION = MetaAction.IDLE
"""Applied when no action arrived for a step: keep lane and speed."""


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings.

    :param env_id: highway-env environment id.
    :param env_config: highway-env config overrides, e.g. ``{"lanes_count": 3}``.
    :param render: render top-down frames (needed for the video).
    :param world: pedestrians, signs, landmarks and trucks added to highway-env's world.
    :param camera: front camera to render and publish each control step (None: no camera).
    """

    env_id: str = "highway-fast-v0"
    env_config: Mapping[str, Any] = field(default_factory=dict)
    render: bool = False
    lanes: LaneSampling = field(default_factory=LaneSampling)
    world: WorldConfig = field(default_factory=WorldConfig)
    camera: CameraConfig | None = None
    camera_randomization: RandomizationConfig = field(default_factory=RandomizationConfig)


@dataclass(frozen=True)
class StepOutcome:
    reward: float
    terminated: bool
    truncated: bool
    ego: EgoState
    action: MetaAction

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class Simulator:
    """Owns the environment; publishes ``/sim/*`` and applies ``/planning/action``."""

    def __init__(self, config: SimConfig, bus: Bus, env=None) -> None:
        self.config = config
        self.bus = bus
        self.env = (
            env if env is not None else make_env(config.env_id, config.env_config, config.render)
        )
        self.reader = WorldReader(self.env, config.lanes)
        self._pub_ego = bus.publisher("/sim/ego")
        self._pub_objects = bus.publisher("/sim/objects")
        self._pub_lanes = bus.publisher("/sim/lanes")
        self.world = World(config.world)
        self.camera = (
            FrontCamera(config.camera, config.camera_randomization)
            if config.camera is not None
            else None
        )
        self._pub_image = bus.publisher("/camera/image")
        self._last_ego: EgoState | None = None
        self._last_camera_frame: CameraFrame | None = None
        self.sim_frame_hook: Callable[[int], None] | None = None
        """Called with the stamp [ns] of every simulation frame: the reset state, each
        intermediate frame of a control step, and the step's final state (camera videos)."""
        self._substeps = 0
        _hook_intermediate_frames(self.env.unwrapped, self._on_intermediate_frame)
        self._pending: DrivingAction | None = None
        self.missing_actions = 0
        self.stamp_ns = 0
        self.frame_hook: Callable[[], None] | None = None
        bus.subscribe("/planning/action", self._on_action, label="simulator")

    @property
    def control_rate_hz(self) -> float:
        return float(self.env.unwrapped.config["policy_frequency"])

    @property
    def simulation_rate_hz(self) -> float:
        return float(self.env.unwrapped.config["simulation_frequency"])

    def _on_action(self, message: DrivingAction) -> None:
        self._pending = message

    def reset(self, seed: int, prepare: Callable[[Any], None] | None = None) -> EgoState:
        """Start an episode and publish its first state.

        :param prepare: called with the environment after highway-env's reset and before the
            first state is published, to construct a scene (place vehicles, set speeds).
        """
        self.env.reset(seed=seed)
        if prepare is not None:
            prepare(self.env.unwrapped)
        # A constructed scene keeps its road users as placed (no trucks, no pedestrians).
        static = self.world.reset(self.env, seed, road_users=prepare is None)
        self.bus.publish("/sim/static", static)
        if self.camera is not None:
            self.bus.publish("/camera/info", self.camera.reset(seed))
        self.reader.reset()
        self._last_camera_frame = None
        self._pending = None
        self.stamp_ns = 0
        ego = self._publish_state()
        if self.sim_frame_hook is not None:
            self.sim_frame_hook(self.stamp_ns)
        return ego

    def step(self) -> StepOutcome:
        """Apply the latest action for one control step, then publish the new state."""
        action = DEFAULT_ACTION
        if self._pending is None:
            self.missing_actions += 1
            if self.missing_actions == 1:
                logger.warning("no action on /planning/action for a step; applying %s", action.name)
        else:
            action = self._pending.action
        self._pending = None

        self._substeps = 0
        _, reward, terminated, truncated, _ = self.env.step(int(action))
        self.stamp_ns += int(round(1e9 / self.control_rate_hz))
        ego = self._publish_state()
        if self.sim_frame_hook is not None:
            self.sim_frame_hook(self.stamp_ns)
        return StepOutcome(float(reward), bool(terminated), bool(truncated), ego, action)

    def _publish_state(self) -> EgoState:
        stamp = self.stamp_ns
        ego = self.reader.ego_state(stamp, self._pub_ego.seq())
        lanes = self.reader.lanes(stamp, self._pub_lanes.seq())
        self.bus.publish("/sim/lanes", lanes)
        objects = self.world.with_pedestrians(
            self.reader.objects(stamp, ego, self._pub_objects.seq()), ego, stamp / 1e9
        )
        self.bus.publish("/sim/objects", objects)
        self._last_ego = ego
        if self.camera is not None:
            frame = self.camera.render(
                SceneInput(ego, objects, lanes, self.world.static),
                stamp,
                self._pub_image.seq(),
                frame_index=self._sim_frame_index(stamp),
            )
            self._last_camera_frame = frame
            self.bus.publish("/camera/image", frame.image)
            self.bus.publish("/camera/truth", frame.labels)
        self.bus.publish("/sim/ego", ego)
        return ego

    def _on_intermediate_frame(self) -> None:
        self._substeps += 1
        if self.sim_frame_hook is not None:
            substep_ns = int(round(1e9 / self.simulation_rate_hz))
            self.sim_frame_hook(self.stamp_ns + self._substeps * substep_ns)

    def camera_frame(self, stamp_ns: int) -> CameraFrame:
        """Render the camera on the current world state without publishing anything (for
        intermediate simulation frames of a video)."""
        if self.camera is None or self._last_ego is None:
            raise RuntimeError("camera_frame needs SimConfig.camera and a reset simulator")
        published = self._last_camera_frame
        if published is not None and published.image.header.stamp_ns == stamp_ns:
            return published  # the state just published: the same picture, not a re-render
        vehicle = self.env.unwrapped.vehicle
        ego = msgspec.structs.replace(
            self._last_ego,
            header=Header(stamp_ns=stamp_ns),
            pose=pose_from_highway(vehicle.position, vehicle.heading),
        )
        objects = self.world.with_pedestrians(
            self.reader.objects(stamp_ns, ego), ego, stamp_ns / 1e9
        )
        scene = SceneInput(ego, objects, self.reader.lanes(stamp_ns), self.world.static)
        return self.camera.render(scene, stamp_ns, frame_index=self._sim_frame_index(stamp_ns))

    def _sim_frame_index(self, stamp_ns: int) -> int:
        """Number of the simulation frame at ``stamp_ns`` in the episode: the key of the
        camera's sensor noise, so frames rendered only for a video leave the published
        images unchanged."""
        return int(round(stamp_ns * self.simulation_rate_hz / 1e9))

    def render(self) -> np.ndarray:
        """Top-down RGB frame, HxWx3 uint8."""
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def _hook_intermediate_frames(world, callback: Callable[[], None]) -> None:
    """Make highway-env call ``callback`` after each intermediate simulation frame of a step
    (its ``_automatic_rendering`` hook, which still renders top-down frames as before)."""
    original = world._automatic_rendering

    def automatic_rendering() -> None:
        original()
        callback()

    world._automatic_rendering = automatic_rendering
