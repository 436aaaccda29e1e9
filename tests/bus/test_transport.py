"""Zenoh transport on loopback: typed round trip, undecodable messages dropped and counted,
and a two-process drive (planner node + simulator) matching the in-process drive."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus import Bus
from bus.replay import LogReader
from bus.transport.zenoh import ZenohBridge, ZenohConfig, check_endpoint
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
