"""Bus, transport and recording costs. Prints one table.

- in-process bus: publish-to-delivery latency p50/p99 and messages/s, for a small message
  (``DrivingAction``) and a 640x360x3 camera ``Image``;
- Zenoh on loopback between two processes: one-way latency p50/p99 (half the round trip of a
  ping echoed by the peer, msgpack encode and typed decode included) for the same messages;
- recording: closed-loop steps/s with and without the MCAP recorder (target: recording costs
  at most 10 %), episodes alternating so machine noise hits both alike, without and with the
  front camera (images recorded as JPEG); and the CPU time per step of all threads (the
  recorder encodes and writes on its own thread), steadier than wall-clock rates on a
  shared machine.

    python -m bench.bus [--messages 2000] [--round-trips 300] [--episodes 6] [--env highway-fast-v0]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bus import Bus, TopicSpec  # noqa: E402
from bus.messages import DrivingAction, Header, Image, MetaAction  # noqa: E402
from bus.topics import CONTROL_RATE  # noqa: E402

IMAGE_SHAPE = (360, 640, 3)
BENCH_TOPICS = {
    name: TopicSpec(name, msg_type, CONTROL_RATE)
    for name, msg_type in (
        ("/bench/ping_small", DrivingAction),
        ("/bench/pong_small", DrivingAction),
        ("/bench/ping_image", Image),
        ("/bench/pong_image", Image),
    )
}


def small_message(seq: int) -> DrivingAction:
    return DrivingAction(
        header=Header(stamp_ns=seq, seq=seq),
        action=MetaAction.FASTER,
        planner="rule",
        reason="free road",
    )


def image_message(seq: int, pixels: bytes) -> Image:
    return Image(
        header=Header(stamp_ns=seq, seq=seq, frame_id="camera"),
        height=IMAGE_SHAPE[0],
        width=IMAGE_SHAPE[1],
        data=pixels,
    )


def percentiles_us(samples_ns: list[int]) -> tuple[float, float]:
    values = np.asarray(samples_ns, dtype=float) / 1e3
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def bench_in_process(make, count: int) -> tuple[float, float, float]:
    """Latency p50, p99 [us] and throughput [messages/s] of one publisher, one subscriber."""
    bus = Bus(BENCH_TOPICS)
    delivered: list[int] = []
    bus.subscribe(
        "/bench/ping_small" if make is small_message else "/bench/ping_image",
        lambda _: delivered.append(time.perf_counter_ns()),
    )
    topic = "/bench/ping_small" if make is small_message else "/bench/ping_image"
    messages = [make(i) for i in range(count)]
    latencies = []
    start = time.perf_counter()
    for message in messages:
        sent = time.perf_counter_ns()
        bus.publish(topic, message)
        latencies.append(delivered[-1] - sent)
    rate = count / (time.perf_counter() - start)
    return (*percentiles_us(latencies), rate)


def echo_peer(endpoint: str) -> None:
    """Run in the peer process: republish every ping as the matching pong."""
    from bus.transport.zenoh import ZenohBridge, ZenohConfig

    bus = Bus(BENCH_TOPICS)
    bridge = ZenohBridge(
        bus,
        ZenohConfig(listen=(endpoint,)),
        outbound=("/bench/pong_small", "/bench/pong_image"),
        inbound=("/bench/ping_small", "/bench/ping_image"),
        name="bench/echo",
    )
    bus.subscribe("/bench/ping_small", lambda m: bus.publish("/bench/pong_small", m))
    bus.subscribe("/bench/ping_image", lambda m: bus.publish("/bench/pong_image", m))
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 10:
        if bridge.poll(timeout_s=0.1):
            idle_since = time.monotonic()
    bridge.close()


def bench_zenoh(round_trips: int, pixels: bytes) -> dict[str, tuple[float, float]]:
    from bus.transport.zenoh import ZenohBridge, ZenohConfig

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"tcp/127.0.0.1:{probe.getsockname()[1]}"
    peer = subprocess.Popen([sys.executable, __file__, "--echo", endpoint])
    bus = Bus(BENCH_TOPICS)
    bridge = None
    try:
        time.sleep(0.5)
        bridge = ZenohBridge(
            bus,
            ZenohConfig(connect=(endpoint,)),
            outbound=("/bench/ping_small", "/bench/ping_image"),
            inbound=("/bench/pong_small", "/bench/pong_image"),
            name="bench/ping",
        )
        if not bridge.wait_for_node("bench/echo", timeout_s=20):
            raise RuntimeError("the echo peer did not come up")
        results = {}
        for kind, make in (
            ("small", small_message),
            ("image", lambda seq: image_message(seq, pixels)),
        ):
            results[kind] = _ping(bus, bridge, kind, make, round_trips)
        return results
    finally:
        if bridge is not None:
            bridge.close()
        peer.terminate()
        peer.wait(timeout=20)


def _ping(bus: Bus, bridge, kind: str, make, round_trips: int) -> tuple[float, float]:
    answers: list[int] = []
    bus.subscribe(f"/bench/pong_{kind}", lambda m: answers.append(m.header.seq))
    one_way = []
    for seq in range(round_trips + 20):  # the first 20 warm the link up
        sent = time.perf_counter_ns()
        bus.publish(f"/bench/ping_{kind}", make(seq))
        deadline = time.monotonic() + 5
        while (not answers or answers[-1] != seq) and time.monotonic() < deadline:
            bridge.poll(timeout_s=0.5)
        if not answers or answers[-1] != seq:
            raise RuntimeError(f"no echo for {kind} ping {seq} within 5 s")
        if seq >= 20:
            one_way.append((time.perf_counter_ns() - sent) // 2)
    return percentiles_us(one_way)


def bench_recording(env_id: str, episodes: int, camera: bool) -> dict[str, float]:
    """Closed-loop steps/s and CPU time per step (all threads) without and with recording,
    and the recording's size [bytes].

    :param camera: render and publish the 640x360 front camera (recorded as JPEG).
    """
    from bus.recorder import Recorder
    from planning.rule import RulePlanner
    from sim.camera import CameraConfig
    from sim.loop import ClosedLoop
    from sim.simulator import SimConfig

    config = SimConfig(env_id=env_id, camera=CameraConfig() if camera else None)
    plain_loop = ClosedLoop(config, RulePlanner())
    recorded_bus = Bus()
    wall = {"plain": 0.0, "recorded": 0.0}
    cpu = {"plain": 0.0, "recorded": 0.0}
    steps = {"plain": 0, "recorded": 0}
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(Path(tmp) / "bench.mcap", recorded_bus)
        recorded_loop = ClosedLoop(config, RulePlanner(), recorded_bus)
        for episode in range(episodes):
            for kind, loop in (("plain", plain_loop), ("recorded", recorded_loop)):
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                steps[kind] += loop.run_episode(episode, seed=episode).steps
                if kind == "recorded":
                    recorder.flush()  # the writer thread's work belongs to this episode
                wall[kind] += time.perf_counter() - start_wall
                cpu[kind] += time.process_time() - start_cpu
        recorder.close()
        size = (Path(tmp) / "bench.mcap").stat().st_size
    plain_loop.close()
    recorded_loop.close()
    return {
        "plain_steps_per_s": steps["plain"] / wall["plain"],
        "recorded_steps_per_s": steps["recorded"] / wall["recorded"],
        "plain_cpu_ms": 1e3 * cpu["plain"] / steps["plain"],
        "recorded_cpu_ms": 1e3 * cpu["recorded"] / steps["recorded"],
        "size_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000, help="in-process messages per size")
    parser.add_argument("--round-trips", type=int, default=300, help="zenoh pings per size")
    parser.add_argument("--episodes", type=int, default=6, help="closed-loop episodes per variant")
    parser.add_argument("--env", default="highway-fast-v0")
    parser.add_argument("--echo", metavar="ENDPOINT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        echo_peer(args.echo)
        return

    pixels = np.random.default_rng(0).integers(0, 256, IMAGE_SHAPE, dtype=np.uint8).tobytes()
    rows = []
    for kind, make in (("small", small_message), ("image", lambda s: image_message(s, pixels))):
        p50, p99, rate = bench_in_process(
            make, args.messages if kind == "small" else args.messages // 4
        )
        rows.append((f"in-process bus, {kind}", f"{p50:.1f}", f"{p99:.1f}", f"{rate:,.0f} msg/s"))
    for kind, (p50, p99) in bench_zenoh(args.round_trips, pixels).items():
        rows.append((f"zenoh loopback one-way, {kind}", f"{p50:.1f}", f"{p99:.1f}", ""))
    for camera in (False, True):
        result = bench_recording(args.env, args.episodes, camera)
        what = f"closed loop {args.env}{' + camera' if camera else ''}"
        plain, recorded = result["plain_steps_per_s"], result["recorded_steps_per_s"]
        plain_cpu, recorded_cpu = result["plain_cpu_ms"], result["recorded_cpu_ms"]
        rows += [
            (f"{what}, no recording", "", "", f"{plain:.1f} steps/s, {plain_cpu:.1f} ms CPU/step"),
            (
                f"{what}, recording",
                "",
                "",
                f"{recorded:.1f} steps/s, {recorded_cpu:.1f} ms CPU/step",
            ),
            (
                "  recording cost: steps/s | CPU (target <= 10 %)",
                "",
                "",
                f"{1 - recorded / plain:.1%} | {recorded_cpu / plain_cpu - 1:.1%} "
                f"({result['size_bytes'] / 1e6:.1f} MB, {args.episodes} episodes)",
            ),
        ]

    header = (
        "measurement (small = DrivingAction, image = 640x360x3 Image)",
        "p50_us",
        "p99_us",
        "rate",
    )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print(
            "  ".join(
                cell.ljust(w) if i == 0 or i == 3 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
