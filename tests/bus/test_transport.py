"""Zenoh transport on loopback: typed round trip, undecodable messages dropped and counted,
and a two-process drive (planner node + simulator) matching the in-process drive."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bus import Bus
from bus.node import NodeRunner
from bus.replay import LogReader
from bus.transport import RemoteNodeLost
from bus.transport.zenoh import LockstepActions, ZenohBridge, ZenohConfig, check_endpoint
from planning.rule import RulePlanner
from sim.cli import main
from tests.bus.test_recorder import make_step

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout_s: float, poll=None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if poll:
            poll()
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_endpoints_are_checked():
    assert check_endpoint("tcp/127.0.0.1:7447") == "tcp/127.0.0.1:7447"
    for bad in ("127.0.0.1:7447", "udp/127.0.0.1:7447", "tcp/127.0.0.1", "tcp/127.0.0.1:99999"):
        with pytest.raises(ValueError, match="not of the form tcp/HOST:PORT"):
            check_endpoint(bad)
    with pytest.raises(ValueError, match="at least one endpoint"):
        ZenohConfig()


@pytest.mark.timeout(60)
def test_bridge_round_trip_keeps_order_and_drops_undecodable_messages():
    import zenoh

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    sender_bus, receiver_bus = Bus(), Bus()
    receiver = ZenohBridge(
        receiver_bus,
        ZenohConfig(listen=(endpoint,)),
        outbound=(),
        inbound=("/sim/lanes", "/sim/objects", "/sim/ego"),
        name="receiver",
    )
    sender = ZenohBridge(
        sender_bus,
        ZenohConfig(connect=(endpoint,)),
        outbound=("/sim/lanes", "/sim/objects", "/sim/ego"),
        inbound=(),
        name="sender",
    )
    rogue = zenoh.open(ZenohConfig(connect=(endpoint,)).session_config())
    try:
        received = []
        for topic in ("/sim/lanes", "/sim/objects", "/sim/ego"):
            receiver_bus.subscribe(topic, lambda m, t=topic: received.append((t, m)))
        assert sender.wait_for_node("receiver", timeout_s=10) == ["receiver"]
        sent = [item for seq in range(20) for item in make_step(seq * 10**9, seq)[:3]]
        rogue.put("drivestack/sim/ego", b"\x00not msgpack")
        rogue.put("drivestack/sim/objects", b"\x81\xa3bad\x01")  # msgpack, wrong shape
        for topic, message in sent:
            sender_bus.publish(topic, message)
        assert wait_until(lambda: len(received) == len(sent), 10, poll=lambda: receiver.poll(0.01))
        assert received == sent  # typed, equal, and in publish order
        assert wait_until(
            lambda: sum(receiver.stats.decode_errors.values()) == 2,
            5,
            poll=lambda: receiver.poll(0.01),
        )
        assert receiver.stats.decode_errors == {"/sim/ego": 1, "/sim/objects": 1}
        assert sender.stats.sent["/sim/ego"] == 20 and receiver.stats.received["/sim/ego"] == 20
    finally:
        rogue.close()
        sender.close()
        receiver.close()


def _actions(path: Path) -> list:
    return [m.message for m in LogReader(path).messages(["/planning/action"])]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_process_drive_matches_the_in_process_drive(tmp_path):
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    common = ["sim", "--episodes", "2", "--seed", "4", "--video-episodes", "0", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "inproc")]) == 0

    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim.cli",
            "node",
            "planner",
            "--listen",
            endpoint,
            "--max-idle-s",
            "60",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        code = main(
            [
                *common,
                "--out",
                str(tmp_path / "zenoh"),
                "--transport",
                "zenoh",
                "--zenoh-connect",
                endpoint,
                "--connect-timeout-s",
                "60",
                "--action-timeout-s",
                "20",
            ]
        )
        node.send_signal(signal.SIGTERM)
        out, err = node.communicate(timeout=30)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(timeout=10)
    assert code == 0, err
    inproc, remote = (
        _actions(tmp_path / "inproc" / "run.mcap"),
        _actions(tmp_path / "zenoh" / "run.mcap"),
    )
    assert len(remote) == len(inproc) == 62
    assert remote == inproc

    summary = json.loads((tmp_path / "zenoh" / "summary.json").read_text())
    assert summary["transport_stats"]["action_timeouts"] == 0
    assert summary["health"]["steps"] == 62 and summary["health"]["event_counts"] == {}
    assert (
        summary["episodes"]
        == json.loads((tmp_path / "inproc" / "summary.json").read_text())["episodes"]
    )
    report = json.loads(out.strip().splitlines()[-1])
    assert report["transport"]["decode_errors"] == {}
    assert report["transport"]["received"]["/sim/ego"] >= 62
    assert report["health"]["invalid_output_steps"] == 0


@pytest.mark.timeout(60)
def test_sim_without_a_planner_node_fails_with_a_clear_error(tmp_path, capsys):
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    code = main(
        [
            "sim",
            "--episodes",
            "1",
            "--video-episodes",
            "0",
            "--no-progress",
            "--out",
            str(tmp_path),
            "--transport",
            "zenoh",
            "--zenoh-listen",
            endpoint,
            "--connect-timeout-s",
            "1",
        ]
    )
    assert code == 2
    assert "no planner node appeared over zenoh" in capsys.readouterr().err
    assert main(["sim", "--planner", "remote", "--out", str(tmp_path)]) == 2
    assert "--planner remote needs --transport zenoh" in capsys.readouterr().err


@pytest.mark.timeout(30)
def test_lockstep_gives_up_after_consecutive_timeouts_and_reports_them():
    bridge = ZenohBridge(
        Bus(),
        ZenohConfig(listen=(f"tcp/127.0.0.1:{free_port()}",)),
        outbound=("/sim/ego",),
        inbound=("/planning/action",),
        name="simulator",
    )
    try:
        lockstep = LockstepActions(bridge, timeout_s=0.05, max_consecutive_timeouts=3)
        lockstep(10**9)
        lockstep(2 * 10**9)
        with pytest.raises(RemoteNodeLost, match="no action on 3 consecutive steps"):
            lockstep(3 * 10**9)
    finally:
        bridge.close()
    report = lockstep.health_report()
    assert report["action_timeouts"] == 3 and report["steps"] == 0
    assert report["event_counts"] == {"timeout": 2, "lost": 1}
    assert report["events"][-1]["stamp_ns"] == 3 * 10**9
    with pytest.raises(ValueError, match="at least 1"):
        LockstepActions(bridge, max_consecutive_timeouts=0)


class _PlannerThatDiesAfterOneEpisode:
    """A planner node on a thread that answers the first episode, then goes silent (as if its
    process had died) once simulation time restarts."""

    def __init__(self, endpoint: str) -> None:
        self.bus = Bus()
        planner = RulePlanner()
        self.runner = NodeRunner(planner, self.bus, control_rate_hz=1.0)
        self.bridge = ZenohBridge(
            self.bus,
            ZenohConfig(listen=(endpoint,)),
            outbound=("/planning/action",),
            inbound=planner.inputs,
            name="planner/dying",
        )
        self.bridge.accept = self._accept
        self.last_stamp_ns = -1
        self.dead = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _accept(self, topic: str, message) -> bool:
        if topic == "/sim/ego":
            self.dead |= message.header.stamp_ns < self.last_stamp_ns
            self.last_stamp_ns = message.header.stamp_ns
        return not self.dead

    def _spin(self) -> None:
        while not self.stop.is_set():
            self.bridge.poll(timeout_s=0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.bridge.close()
        self.runner.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sim_stops_when_the_remote_planner_dies_and_keeps_finished_episodes(tmp_path, capsys):
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    planner = _PlannerThatDiesAfterOneEpisode(endpoint)
    try:
        code = main(
            [
                "sim",
                "--episodes",
                "3",
                "--seed",
                "4",
                "--video-episodes",
                "0",
                "--no-progress",
                "--out",
                str(tmp_path),
                "--transport",
                "zenoh",
                "--zenoh-connect",
                endpoint,
                "--connect-timeout-s",
                "20",
                "--action-timeout-s",
                "0.3",
                "--max-action-timeouts",
                "3",
            ]
        )
    finally:
        planner.close()
    assert code == 2
    reason = "remote planner stopped answering at episode 1 step 2"
    assert reason in capsys.readouterr().err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert reason in summary["aborted"] and summary["complete"] is False
    assert [e["episode"] for e in summary["episodes"]] == [0]
    health = summary["health"]
    assert health["steps"] == summary["episodes"][0]["steps"] + 1  # one action per state
    assert health["event_counts"] == {"timeout": 2, "lost": 1}
    assert summary["transport_stats"]["action_timeouts"] == 3
    assert (tmp_path / "run.mcap").is_file()


def test_node_command_names_its_positional_and_lists_the_choices(capsys):
    assert main(["node"]) == 2
    assert "NODE" in capsys.readouterr().err.split("error:")[1]
    assert main(["node"]) == 2
    assert "one of: planner" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["node", "mapper"])
    err = capsys.readouterr().err
    assert "drivestack node [-h]" in err and "NODE" in err
    assert "unknown node 'mapper'; choose one of: planner" in err
