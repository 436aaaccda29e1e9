"""The closed loop: simulator and planner wired through one bus, episode by episode."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bus import Bus
from bus.node import Node, NodeRunner
from bus.transport import RemoteNodeLost
from sim.simulator import SimConfig, Simulator


@dataclass(frozen=True)
class EpisodeResult:
    """Outcome of one episode. ``wall_s`` and ``steps_per_s`` are timings; the rest is
    deterministic for a given environment, planner and seed."""

    episode: int
    seed: int
    episode_return: float
    crashed: bool
    distance_m: float
    mean_speed_mps: float
    lane_changes: int
    steps: int
    sim_time_s: float
    wall_s: float
    steps_per_s: float

    def as_dict(self) -> dict:
        return asdict(self)


class ClosedLoop:
    """A simulator and a planner node on a shared in-process bus.

    :param nodes: more nodes on the same bus (e.g. camera perception), subscribed before the
        planner, so that what they publish on a state reaches the bus before the planner
        answers that state.
    """

    def __init__(
        self,
        sim_config: SimConfig,
        planner: Node | None,
        bus: Bus | None = None,
        nodes: Sequence[Node] = (),
    ) -> None:
        self.bus = bus or Bus()
        self.simulator = Simulator(sim_config, self.bus)
        self.node_runners = [
            NodeRunner(node, self.bus, self.simulator.control_rate_hz) for node in nodes
        ]
        self.planner = planner
        # planner None: it runs elsewhere (another process) and answers over a transport.
        self.runner = (
            NodeRunner(planner, self.bus, self.simulator.control_rate_hz) if planner else None
        )
        self.await_action: Callable[[int], None] | None = None
        """Called with the stamp of every state published, before the loop moves on: waits
        for a remote planner's action on it (lockstep). It may raise
        :class:`bus.transport.RemoteNodeLost`, which ends the episode (see :meth:`run_episode`).
        If it has a ``health_report()`` method, :meth:`health_report` returns that for a
        remote planner."""

    def run_episode(
        self,
        episode: int,
        seed: int,
        on_frame: Callable[[np.ndarray, dict], None] | None = None,
        on_step: Callable[[int], None] | None = None,
        prepare: Callable[[Any], None] | None = None,
    ) -> EpisodeResult:
        """Drive one episode until the crash or the time limit.

        :param on_frame: called with every rendered top-down frame (HxWx3 uint8 RGB,
            intermediate simulation frames included) and a dict of overlay values.
        :param on_step: called with the step count after each control step.
        :param prepare: scene construction hook, see :meth:`Simulator.reset`.
        :raises RemoteNodeLost: the remote planner stopped answering; the message names the
            episode and the step (0-based, the step that waited for its action).
        """
        start = time.perf_counter()
        for runner in (*self.node_runners, self.runner):
            if runner:
                runner.reset()
        ego = self.simulator.reset(seed, prepare)
        overlay = {"step": 0, "action": "-", "speed_mps": ego.speed_mps}
        capture = _FrameCapture(self.simulator, on_frame, overlay) if on_frame else None
        if capture:
            capture.frame()

        try:
            return self._drive(episode, seed, start, ego, capture, overlay, on_step)
        finally:
            if capture:
                capture.detach()

    def _drive(self, episode, seed, start, ego, capture, overlay, on_step) -> EpisodeResult:
        episode_return, steps, lane_changes = 0.0, 0, 0
        target_lane = ego.target_lane_index
        while True:
            self._await_action(episode, steps)
            outcome = self.simulator.step()
            steps += 1
            episode_return += outcome.reward
            ego = outcome.ego
            if ego.target_lane_index != target_lane:
                lane_changes += 1
                target_lane = ego.target_lane_index
            if capture:
                overlay.update(step=steps, action=outcome.action.name, speed_mps=ego.speed_mps)
                capture.frame()
            if on_step:
                on_step(steps)
            if outcome.done:
                self._await_action(episode, steps)
                break

        wall = time.perf_counter() - start
        sim_time = ego.header.stamp_ns / 1e9
        return EpisodeResult(
            episode=episode,
            seed=seed,
            episode_return=episode_return,
            crashed=ego.crashed,
            distance_m=ego.odometer_m,
            mean_speed_mps=ego.odometer_m / sim_time if sim_time > 0 else 0.0,
            lane_changes=lane_changes,
            steps=steps,
            sim_time_s=sim_time,
            wall_s=wall,
            steps_per_s=steps / wall if wall > 0 else 0.0,
        )

    def _await_action(self, episode: int, step: int) -> None:
        if self.await_action is None:
            return
        try:
            self.await_action(self.simulator.stamp_ns)
        except RemoteNodeLost as error:
            raise RemoteNodeLost(
                f"remote planner stopped answering at episode {episode} step {step}: {error}"
            ) from None

    def health_report(self) -> dict[str, Any] | None:
        """Health of the planner: the in-process runner's report, or the remote planner's as
        seen through ``await_action``; None when neither is available."""
        if self.runner:
            return self.runner.health_report()
        report = getattr(self.await_action, "health_report", None)
        return report() if report is not None else None

    def close(self) -> None:
        for runner in (*self.node_runners, self.runner):
            if runner:
                runner.close()
        self.simulator.close()


class _FrameCapture:
    """Hooks highway-env's intermediate-frame rendering so the video has every simulation
    frame, not one per policy step."""

    def __init__(
        self, simulator: Simulator, sink: Callable[[np.ndarray, dict], None], overlay: dict
    ):
        self.simulator = simulator
        self.sink = sink
        self.overlay = overlay
        # highway-env calls `_record_video_wrapper._capture_frame()` between policy steps.
        simulator.env.unwrapped._record_video_wrapper = self

    def _capture_frame(self) -> None:
        self.sink(self.simulator.render(), dict(self.overlay))

    def frame(self) -> None:
        self._capture_frame()

    def detach(self) -> None:
        self.simulator.env.unwrapped._record_video_wrapper = None
