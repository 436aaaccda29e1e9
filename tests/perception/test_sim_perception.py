"""``drivestack sim --perception``: the camera perception node in the closed loop, recorded."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bus.messages import ObjectList
from bus.messages.perception import Detections2D
from bus.replay import LogReader
from sim.cli import main

PERCEPTION_TOPICS = (
    "/perception/detections",
    "/perception/objects",
    "/perception/lanes",
    "/perception/signs",
)


def _sim(out, *extra: str) -> int:
    return main(
        ["-q", "sim", "--episodes", "1", "--video-episodes", "0", "--no-progress"]
        + ["--out", str(out), *extra]
    )


@pytest.mark.slow
def test_perception_in_the_loop_records_detections_and_tracked_objects(tmp_path, capsys):
    out = tmp_path / "run"
    assert _sim(out, "--perception") == 0

    summary = json.loads((out / "summary.json").read_text())
    steps = summary["episodes"][0]["steps"]
    messages = list(LogReader(out / "run.mcap").messages())
    counts = Counter(m.topic for m in messages)
    assert all(counts[topic] == steps + 1 for topic in PERCEPTION_TOPICS)  # reset + each step
    detections = [m.message for m in messages if m.topic == "/perception/detections"]
    assert all(isinstance(d, Detections2D) for d in detections)
    assert sum(len(d.detections) for d in detections) > steps  # highway traffic is seen
    objects = [m.message for m in messages if m.topic == "/perception/objects"]
    assert all(isinstance(o, ObjectList) and o.header.frame_id == "ego" for o in objects)
    assert all(o.header.valid for o in objects)  # every input alive on every step
    lifetimes = Counter(obj.object_id for o in objects for obj in o.objects)
    assert max(lifetimes.values()) >= steps // 2  # some car is tracked under one id

    perception = summary["perception"]
    assert perception["frames"] == steps + 1
    # Latencies differ from run to run: they live under "timing", as the README promises.
    assert not {"detector_ms", "step_ms"} & set(perception)
    latencies = summary["timing"]["perception"]
    assert 0 < latencies["detector_ms"]["mean"] <= latencies["step_ms"]["mean"]
    assert "perception:" in capsys.readouterr().out


def test_sim_without_perception_runs_no_camera(tmp_path):
    out = tmp_path / "run"
    assert _sim(out) == 0

    summary = json.loads((out / "summary.json").read_text())
    topics = {m.topic for m in LogReader(out / "run.mcap").messages()}
    assert "perception" not in summary
    assert not any(t.startswith(("/perception", "/camera")) for t in topics)
