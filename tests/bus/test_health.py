"""Topic health: alive / on rate / valid from the declared rates; invalid outputs and the
planner's safe fallback when an input dies."""

from __future__ import annotations

import json

import msgspec

from bus import Bus
from bus.health import HealthConfig, HealthMonitor
from bus.messages import DrivingAction, Header, MetaAction
from bus.node import NodeRunner
from planning.rule import RulePlanner
from sim.cli import main
from sim.loop import ClosedLoop
from sim.simulator import SimConfig
from tests.bus.test_recorder import make_step

S = 1_000_000_000
EGO, OBJECTS = "/sim/ego", "/sim/objects"


def _message(topic: str, stamp_ns: int, valid: bool = True):
    message = dict(make_step(stamp_ns, 0))[topic]
    return msgspec.structs.replace(message, header=Header(stamp_ns=stamp_ns, valid=valid))


def test_inputs_at_the_declared_rate_are_alive_and_on_rate():
    monitor = HealthMonitor("test", [EGO, OBJECTS], control_rate_hz=2.0)
    for step in range(6):
        for topic in (OBJECTS, EGO):
            monitor.observe(topic, _message(topic, step * S // 2))
    health = monitor.check()
    assert all(h.alive and h.valid and h.on_rate and h.ok for h in health.values())
    assert health[EGO].rate_hz == 2.0
    assert monitor.events == []


def test_input_dies_after_its_timeout_and_comes_back():
    monitor = HealthMonitor(
        "test", [EGO, OBJECTS], control_rate_hz=1.0, config=HealthConfig(timeout_periods=2.5)
    )
    states = []
    for step in range(10):
        if not 3 <= step <= 6:  # objects silent for four steps
            monitor.observe(OBJECTS, _message(OBJECTS, step * S))
        monitor.observe(EGO, _message(EGO, step * S))
        states.append(monitor.check()[OBJECTS].alive)
    # Last seen at t=2 s: still alive at 3 and 4 s (age <= 2.5 s), dead at 5 and 6 s.
    assert states == [True] * 5 + [False, False] + [True] * 3
    kinds = [(e.kind, e.stamp_ns // S) for e in monitor.events if e.topic == OBJECTS]
    assert ("dead", 5) in kinds and ("alive", 7) in kinds
    assert ("off_rate", 7) in kinds  # the gap drags the measured rate down
    assert monitor.event_counts["dead"] == 1


def test_invalid_header_is_reported():
    monitor = HealthMonitor("test", [EGO], control_rate_hz=1.0)
    monitor.observe(EGO, _message(EGO, 0))
    monitor.check()
    monitor.observe(EGO, _message(EGO, S, valid=False))
    health = monitor.check()[EGO]
    assert health.alive and not health.valid and not health.ok
    assert [e.kind for e in monitor.events] == ["invalid"]


def test_never_received_input_is_dead_and_time_going_back_restarts():
    monitor = HealthMonitor("test", [EGO, OBJECTS], control_rate_hz=1.0)
    monitor.observe(EGO, _message(EGO, 5 * S))
    assert not monitor.check()[OBJECTS].alive
    assert monitor.events[0].detail == "never received"
    monitor.observe(OBJECTS, _message(OBJECTS, 5 * S))
    monitor.observe(EGO, _message(EGO, 0))  # a new episode
    assert monitor.check()[EGO].rate_hz is None


class DroppingBus(Bus):
    """A bus that loses one topic's messages between two stamps, like a crashed publisher."""

    def __init__(self, topic: str, start_ns: int, end_ns: int) -> None:
        super().__init__()
        self.drop = (topic, start_ns, end_ns)

    def publish(self, name, message) -> None:
        topic, start, end = self.drop
        if name == topic and start <= message.header.stamp_ns <= end:
            return
        super().publish(name, message)


def test_planner_falls_back_and_marks_its_actions_invalid_while_objects_are_dead():
    bus = DroppingBus(OBJECTS, 3 * S, 6 * S)
    loop = ClosedLoop(SimConfig(env_config={"duration": 10}), RulePlanner(), bus)
    actions: list[DrivingAction] = []
    bus.subscribe("/planning/action", actions.append)
    loop.run_episode(0, seed=2)
    loop.close()

    by_second = {a.header.stamp_ns // S: a for a in actions}
    # Objects last seen at 2 s: alive (stale) up to 4 s, dead at 5 and 6 s, back at 7 s.
    for second in (5, 6):
        action = by_second[second]
        assert action.fallback and action.action == MetaAction.SLOWER
        assert not action.header.valid and OBJECTS in action.reason
    for second in (0, 1, 2, 7, 8, 9, 10):
        assert by_second[second].header.valid and not by_second[second].fallback
    # Stale but still alive objects (last seen 1-2 s before) do not invalidate the output.
    assert by_second[3].header.valid and by_second[4].header.valid
    report = loop.runner.health_report()
    assert report["invalid_output_steps"] == 2
    assert report["event_counts"]["dead"] == 1 and report["event_counts"]["alive"] == 1


def test_invalid_input_makes_invalid_output_and_fallback():
    bus = Bus()
    runner = NodeRunner(RulePlanner(), bus, control_rate_hz=1.0)
    actions: list[DrivingAction] = []
    bus.subscribe("/planning/action", actions.append)
    for stamp, objects_valid in ((0, True), (S, False), (2 * S, True)):
        for topic, message in make_step(stamp, 0)[:3]:
            valid = objects_valid or topic != OBJECTS
            bus.publish(
                topic, msgspec.structs.replace(message, header=Header(stamp_ns=stamp, valid=valid))
            )
    assert [a.header.valid for a in actions] == [True, False, True]
    assert [a.fallback for a in actions] == [False, True, False]
    assert [a.header.seq for a in actions] == [0, 1, 2]
    assert runner.invalid_steps == 1


def test_sim_summary_reports_health_and_recording(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            ["sim", "--episodes", "1", "--video-episodes", "0", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recording"] == "run.mcap" and (out / "run.mcap").exists()
    assert summary["health"]["invalid_output_steps"] == 0
    assert summary["health"]["steps"] == summary["aggregate"]["total_steps"] + 1
    assert summary["health"]["events"] == []
    assert (
        main(
            [
                "sim",
                "--episodes",
                "1",
                "--video-episodes",
                "0",
                "--out",
                str(tmp_path / "b"),
                "--no-progress",
                "--no-record",
            ]
        )
        == 0
    )
    assert not (tmp_path / "b" / "run.mcap").exists()
