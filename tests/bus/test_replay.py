"""Reading recordings back: truncated files, schema checks, replay, process replay, the CLI."""

from __future__ import annotations

import json
import logging

import jsonschema
import msgspec
import numpy as np
import pytest
from mcap.records import Chunk, Message
from mcap.stream_reader import StreamReader, breakup_chunk

from bus import Bus, TopicSpec
from bus.messages import DrivingAction, Header
from bus.node import NodeRunner
from bus.recorder import Recorder, RecorderConfig
from bus.replay import LogReader, RecordingError, replay
from bus.topics import CONTROL_RATE, TOPICS
from planning.rule import RulePlanner
from sim.cli import main
from sim.loop import ClosedLoop
from sim.simulator import SimConfig
from tests.bus.test_recorder import make_step, record

SMALL_CHUNKS = RecorderConfig(chunk_size_bytes=3000)


def chunk_ends(path) -> list[tuple[int, int, int]]:
    """(end offset, messages so far, start offset) of each chunk of a complete file."""
    ends, count, start = [], 0, 8
    with open(path, "rb") as stream:
        for item in StreamReader(stream, emit_chunks=True).records:
            if isinstance(item, Chunk):
                count += sum(isinstance(r, Message) for r in breakup_chunk(item))
                ends.append((stream.tell(), count, start))
            start = stream.tell()
    return ends


@pytest.fixture
def recording(tmp_path):
    published = record(tmp_path / "run.mcap", steps=40, config=SMALL_CHUNKS)
    return tmp_path / "run.mcap", published


def test_truncated_file_yields_every_message_of_its_complete_chunks(recording, tmp_path, caplog):
    path, published = recording
    data = path.read_bytes()
    ends = chunk_ends(path)
    assert len(ends) >= 5 and ends[-1][1] == len(published)
    cuts = [
        9,
        ends[0][0] - 1,
        ends[0][0],
        (ends[1][0] + ends[2][0]) // 2,
        ends[3][0] + 17,
        ends[-1][0] + 5,
        len(data) - 1,
    ]
    for cut in cuts:
        cut_path = tmp_path / f"cut_{cut}.mcap"
        cut_path.write_bytes(data[:cut])
        expected = max((count for end, count, _ in ends if end <= cut), default=0)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bus.replay"):
            read = [(m.topic, m.message) for m in LogReader(cut_path).messages()]
        assert read == published[:expected], f"cut at byte {cut}"
        assert str(cut_path) in caplog.text and "byte" in caplog.text, f"cut at byte {cut}"


def _damage(data: bytes, offset: int, length: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset : offset + length] = bytes(b ^ 0xFF for b in damaged[offset : offset + length])
    return bytes(damaged)


def test_damaged_chunk_is_skipped_using_the_index(recording, tmp_path, caplog):
    path, published = recording
    ends = chunk_ends(path)
    lost = ends[2][1] - ends[1][1]
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(_damage(path.read_bytes(), (ends[1][0] + ends[2][0]) // 2, 50))
    reader = LogReader(bad)
    with caplog.at_level(logging.WARNING, logger="bus.replay"):
        read = [(m.topic, m.message) for m in reader.messages()]
    assert read == published[: ends[1][1]] + published[ends[2][1] :]
    assert reader.report.lost_messages == lost and reader.report.complete
    damaged = reader.report.damaged
    assert len(damaged) == 1 and damaged[0].start == ends[2][2] and damaged[0].end >= ends[2][0]
    assert f"bytes {ends[2][2]}-" in caplog.text and f"{lost} message(s) lost" in caplog.text
    assert caplog.text.count("damaged range") == 1  # warned once per reader


def test_damaged_chunk_of_a_truncated_file_stops_the_read(recording, tmp_path, caplog):
    path, published = recording
    ends = chunk_ends(path)
    middle = (ends[1][0] + ends[2][0]) // 2
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(_damage(path.read_bytes(), middle, 8)[: ends[-2][0]])  # no summary
    with caplog.at_level(logging.WARNING, logger="bus.replay"):
        read = list(LogReader(bad).messages())
    assert len(read) == ends[1][1]
    assert f"from byte {ends[2][2]} of {ends[-2][0]}" in caplog.text


def test_log_info_and_echo_read_past_a_damaged_chunk(recording, tmp_path, capsys):
    path, published = recording
    ends = chunk_ends(path)
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(_damage(path.read_bytes(), (ends[1][0] + ends[2][0]) // 2, 50))
    assert main(["log", "info", str(bad), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    lost = ends[2][1] - ends[1][1]
    assert report["messages"] == len(published) - lost and report["lost_messages"] == lost
    assert "damaged range" in report["warning"] and report["damaged_bytes"][0][0] == ends[2][2]
    assert main(["log", "info", str(bad)]) == 0
    assert "(DAMAGED)" in capsys.readouterr().out
    assert main(["log", "echo", str(bad), "--topic", "/sim/ego"]) == 0
    echoed = capsys.readouterr().out.splitlines()
    kept = published[: ends[1][1]] + published[ends[2][1] :]
    assert len(echoed) == sum(topic == "/sim/ego" for topic, _ in kept)


def test_not_an_mcap_file_is_refused(tmp_path):
    text = tmp_path / "notes.mcap"
    text.write_text("hello")
    with pytest.raises(RecordingError, match="not an MCAP file"):
        LogReader(text)
    with pytest.raises(OSError, match="does not exist"):
        LogReader(tmp_path / "missing.mcap")


class EgoState(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An older EgoState with fewer fields, as another version of the code might record."""

    header: Header
    speed_mps: float


def test_recording_with_other_types_is_refused_naming_the_topic(tmp_path):
    table = {"/sim/ego": TopicSpec("/sim/ego", EgoState, CONTROL_RATE)}
    bus = Bus(table)
    with Recorder(tmp_path / "old.mcap", bus):
        bus.publish("/sim/ego", EgoState(header=Header(stamp_ns=0), speed_mps=3.0))
    with pytest.raises(RecordingError, match=r"topic /sim/ego.*EgoState: fields .*lane_index"):
        list(LogReader(tmp_path / "old.mcap").messages())

    table = {"/sim/ego": TopicSpec("/sim/ego", DrivingAction, CONTROL_RATE)}
    bus = Bus(table)
    with Recorder(tmp_path / "wrong.mcap", bus):
        bus.publish("/sim/ego", DrivingAction(header=Header(stamp_ns=0), action=1, planner="x"))
    with pytest.raises(
        RecordingError,
        match="topic /sim/ego was recorded as drivestack.DrivingAction.*drivestack.EgoState",
    ):
        list(LogReader(tmp_path / "wrong.mcap").messages())


def test_replay_republishes_equal_messages_in_order(recording):
    path, published = recording
    bus = Bus()
    received = []
    for topic in TOPICS:
        bus.subscribe(topic, lambda message, topic=topic: received.append((topic, message)))
    stats = replay(LogReader(path), bus, speed=None)
    assert received == published
    assert stats.messages == len(published)


def test_replay_at_recorded_speed_takes_the_recorded_time(tmp_path):
    record(tmp_path / "run.mcap", steps=3)  # stamps 0, 1, 2 s
    stats = replay(LogReader(tmp_path / "run.mcap"), Bus(), speed=8.0)
    assert 0.2 <= stats.wall_s < 1.0  # 2 s of recording at 8x


def test_planner_replay_gives_identical_actions(tmp_path):
    """Process replay: the recorded /sim/* topics fed to a fresh planner reproduce the
    recorded actions exactly."""
    bus = Bus()
    recorder = Recorder(tmp_path / "drive.mcap", bus)
    loop = ClosedLoop(
        SimConfig(env_id="highway-fast-v0", env_config={"duration": 10}), RulePlanner(), bus
    )
    for episode in range(2):
        loop.run_episode(episode, seed=5 + episode)
    loop.close()
    recorder.close()
    reader = LogReader(tmp_path / "drive.mcap")
    for raw in reader.raw():  # a real drive's messages validate against their own schemas
        jsonschema.validate(json.loads(raw.data), json.loads(raw.schema.data))
    recorded = [m.message for m in reader.messages(["/planning/action"])]
    assert len(recorded) == 2 * 11 and len({a.action for a in recorded}) > 1

    replay_bus = Bus()
    runner = NodeRunner(RulePlanner(), replay_bus, control_rate_hz=1.0)
    replayed: list[DrivingAction] = []
    replay_bus.subscribe("/planning/action", replayed.append)
    replay(reader, replay_bus, topics=["/sim/ego", "/sim/objects", "/sim/lanes"], speed=None)
    assert replayed == recorded
    assert runner.invalid_steps == 0


def test_log_info_and_echo(recording, capsys):
    path, published = recording
    assert main(["log", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "/sim/ego" in out and "drivestack.EgoState" in out and "messages:  160" in out
    assert main(["log", "info", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["topics"]["/sim/ego"] == {
        "schema": "drivestack.EgoState",
        "count": 40,
        "rate_hz": 1.0,
    }
    assert report["duration_s"] == 39.0 and report["complete"]

    assert main(["log", "echo", str(path), "--topic", "/planning/action", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    decoded = [msgspec.convert(json.loads(line)["message"], DrivingAction) for line in lines]
    assert decoded == [m for t, m in published if t == "/planning/action"][:3]


def test_log_commands_report_bad_input(tmp_path, capsys, recording):
    (tmp_path / "x.mcap").write_text("not mcap")
    assert main(["log", "info", str(tmp_path / "x.mcap")]) == 2
    assert "not an MCAP file" in capsys.readouterr().err
    assert main(["log", "echo", str(recording[0]), "--topic", "/nope"]) == 2
    assert (
        "no messages on topic '/nope'; recorded topics: /planning/action" in capsys.readouterr().err
    )


def test_log_replay_command_compares_planner_actions(tmp_path, capsys):
    bus = Bus()
    with Recorder(tmp_path / "drive.mcap", bus):
        loop = ClosedLoop(SimConfig(env_config={"duration": 6}), RulePlanner(), bus)
        loop.run_episode(0, seed=1)
        loop.close()
    assert main(["log", "replay", str(tmp_path / "drive.mcap"), "--fast", "--planner", "rule"]) == 0
    assert "7 actions replayed, 7 recorded, 0 differ" in capsys.readouterr().out


def _rerecord(source, target, change_action) -> None:
    """Copy a recording, passing each /planning/action through ``change_action``."""
    bus = Bus()
    with Recorder(target, bus, metadata=LogReader(source).metadata(), config=SMALL_CHUNKS):
        for item in LogReader(source).messages():
            message = item.message
            if item.topic == "/planning/action":
                message = change_action(message)
            bus.publish(item.topic, message)


def test_planner_replay_compares_actions_not_their_reason_text(tmp_path, capsys, caplog):
    bus = Bus()
    with Recorder(tmp_path / "drive.mcap", bus):
        loop = ClosedLoop(SimConfig(env_config={"duration": 6}), RulePlanner(), bus)
        loop.run_episode(0, seed=1)
        loop.close()
    reworded = tmp_path / "reworded.mcap"
    _rerecord(tmp_path / "drive.mcap", reworded, lambda a: msgspec.structs.replace(a, reason="x"))
    assert main(["log", "replay", str(reworded), "--fast", "--planner", "rule"]) == 0
    assert "7 actions replayed, 7 recorded, 0 differ" in capsys.readouterr().out

    flipped = tmp_path / "flipped.mcap"
    _rerecord(tmp_path / "drive.mcap", flipped, lambda a: msgspec.structs.replace(a, fallback=True))
    assert main(["log", "replay", str(flipped), "--fast", "--planner", "rule"]) == 1
    out = capsys.readouterr().out
    assert "7 differ" in out and ", fallback (reason: " in out

    data = reworded.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bus.replay"):
        main(["log", "replay", str(cut), "--fast", "--planner", "rule"])
    assert caplog.text.count("without its summary") + caplog.text.count("unreadable from") == 1


def test_echo_of_a_file_without_complete_topics_says_so(recording, tmp_path, capsys):
    path, _ = recording
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(path.read_bytes()[:100])
    assert main(["log", "echo", str(cut), "--topic", "/sim/ego"]) == 2
    err = capsys.readouterr().err
    assert "the file has no complete topics" in err and "recorded topics" not in err


def test_make_step_stamps_are_consistent():
    assert {m.header.stamp_ns for _, m in make_step(5, 1)} == {5}


def test_randomly_damaged_files_never_crash_the_reader(recording, tmp_path):
    path, published = recording
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for trial in range(25):
        damaged = bytearray(data)
        for position in rng.integers(8, len(data), size=int(rng.integers(1, 4))):
            damaged[position] = int(rng.integers(0, 256))
        bad = tmp_path / f"damaged_{trial}.mcap"
        bad.write_bytes(bytes(damaged))
        try:
            read = [(m.topic, m.message) for m in LogReader(bad).messages()]
        except RecordingError:
            continue  # refused with a clear error is fine; anything else is a crash
        # CRCs catch damaged data: what is read is the published messages in order, less
        # any skipped chunks.
        remaining = iter(published)
        assert all(item in remaining for item in read)
