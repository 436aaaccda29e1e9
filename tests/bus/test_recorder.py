"""Recording: MCAP round trip, JSON Schemas that validate, Foxglove views, crash safety."""

from __future__ import annotations

import json
import logging

import jsonschema
import msgspec
import numpy as np
import pytest

from bus import Bus, TopicSpec
from bus.foxglove import (
    COMPRESSED_IMAGE_SCHEMA,
    IMAGE_ANNOTATIONS_SCHEMA,
    compressed_image_view,
    image_annotations_view,
    register_view,
    unregister_views,
)
from bus.messages import (
    DrivingAction,
    EgoState,
    Header,
    Lane,
    LaneGeometry,
    MetaAction,
    ObjectClass,
    ObjectList,
    ObjectState,
    Pose2D,
    Vector2,
)
from bus.recorder import Recorder, RecorderConfig, partial_path
from bus.replay import LogReader
from bus.schema import json_schema
from bus.topics import CONTROL_RATE, TOPICS
from tests.factories import make_ego


def make_step(stamp_ns: int, seq: int) -> list[tuple[str, msgspec.Struct]]:
    """One control step's messages in publish order, with varied field values."""
    header = Header(stamp_ns=stamp_ns, seq=seq)
    ego = make_ego(
        Pose2D(10.0 + seq, -4.0, 0.01),
        speed_mps=25.0 + 0.5 * seq,
        header=header,
        target_speed_mps=25.0,
        odometer_m=25.0 * seq,
    )
    car = ObjectState(
        object_id=7,
        object_class=ObjectClass.TRUCK,
        pose=Pose2D(40.0, -4.0, 0.0),
        velocity_mps=Vector2(20.0, 0.0),
        ego_pose=Pose2D(30.0, 0.0, 0.0),
        ego_velocity_mps=Vector2(-5.0, 0.0),
        length_m=9.0,
        width_m=2.5,
        lane_index=1,
    )
    lane = Lane(
        lane_index=1,
        centerline=((0.0, -4.0), (10.0, -4.0)),
        width_m=4.0,
        speed_limit_mps=30.0,
        left_line="dashed",
        right_line="dashed",
        ends_ahead_m=None,
    )
    return [
        ("/sim/lanes", LaneGeometry(header=header, lanes=(lane,), ego_lane_index=1)),
        ("/sim/objects", ObjectList(header=header, objects=(car,) * (seq % 3))),
        ("/sim/ego", ego),
        (
            "/planning/action",
            DrivingAction(
                header=msgspec.structs.replace(header, valid=seq % 2 == 0),
                action=MetaAction(seq % 5),
                planner="rule",
                fallback=seq % 2 == 1,
                reason=f"step {seq}",
            ),
        ),
    ]


def record(path, steps: int, episodes: int = 1, config: RecorderConfig | None = None):
    bus = Bus()
    recorder = Recorder(path, bus, metadata={"seed": 3}, config=config)
    published = []
    for _ in range(episodes):
        for seq in range(steps):
            for topic, message in make_step(seq * 1_000_000_000, seq):
                bus.publish(topic, message)
                published.append((topic, message))
    recorder.close()
    return published


def test_record_then_read_gives_equal_typed_messages(tmp_path):
    published = record(tmp_path / "run.mcap", steps=12, episodes=2)
    reader = LogReader(tmp_path / "run.mcap")
    read = [(item.topic, item.message) for item in reader.messages()]
    assert read == published
    assert reader.report.complete and reader.report.warning() is None
    assert reader.metadata()["seed"] == "3"
    assert not partial_path(tmp_path / "run.mcap").exists()


def test_log_time_is_monotonic_across_episodes(tmp_path):
    record(tmp_path / "run.mcap", steps=5, episodes=3)
    times = [raw.log_time_ns for raw in LogReader(tmp_path / "run.mcap").raw()]
    assert times == sorted(times)
    assert times[-1] >= 3 * 4 * 1_000_000_000  # three episodes laid end to end


def test_every_recorded_message_validates_against_its_own_schema(tmp_path):
    record(tmp_path / "run.mcap", steps=6)
    raws = list(LogReader(tmp_path / "run.mcap").raw())
    assert {raw.channel.topic for raw in raws} == {s for s in TOPICS if TOPICS[s].recorded} & {
        "/sim/lanes",
        "/sim/objects",
        "/sim/ego",
        "/planning/action",
    }
    for raw in raws:
        assert raw.schema.encoding == "jsonschema" and raw.channel.message_encoding == "json"
        schema = json.loads(raw.schema.data)
        assert schema["type"] == "object"  # Foxglove needs an object at the root
        jsonschema.validate(json.loads(raw.data), schema)


def test_schema_rejects_a_message_with_a_wrong_field_type():
    schema = json_schema(EgoState)
    good = msgspec.to_builtins(make_step(0, 0)[2][1])
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "speed_mps": "fast"}, schema)


def test_partial_file_is_readable_while_recording(tmp_path):
    """A run killed mid-way leaves NAME.partial.mcap with its complete chunks."""
    bus = Bus()
    recorder = Recorder(tmp_path / "run.mcap", bus, config=RecorderConfig(chunk_size_bytes=2000))
    for seq in range(30):
        for topic, message in make_step(seq * 1_000_000_000, seq):
            bus.publish(topic, message)
    recorder.flush()  # what the OS has when the process dies
    partial = partial_path(tmp_path / "run.mcap")
    assert partial.exists() and not (tmp_path / "run.mcap").exists()
    reader = LogReader(partial)
    read = list(reader.messages())
    assert 0 < len(read) < 120
    assert not reader.report.complete
    recorder.close()
    assert len(list(LogReader(tmp_path / "run.mcap").messages())) == 120


# Foxglove views, exercised with a camera-like image type defined here.


class FakeImage(msgspec.Struct, frozen=True, kw_only=True):
    header: Header
    height: int
    width: int
    encoding: str = "rgb8"
    data: bytes = b""


class FakeBox(msgspec.Struct, frozen=True):
    bbox_xyxy: tuple[float, float, float, float]
    class_name: str
    score: float


class FakeDetections(msgspec.Struct, frozen=True, kw_only=True):
    header: Header
    detections: tuple[FakeBox, ...] = ()


FAKE_TABLE = {
    "/camera/image": TopicSpec("/camera/image", FakeImage, CONTROL_RATE),
    "/perception/detections": TopicSpec("/perception/detections", FakeDetections, CONTROL_RATE),
}


def _image(seed: int, height: int = 36, width: int = 64) -> FakeImage:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels[: height // 2, :, 0] = 255  # a red top half, to catch RGB/BGR swaps
    return FakeImage(
        header=Header(stamp_ns=seed * 10**9, seq=seed, frame_id="camera"),
        height=height,
        width=width,
        data=pixels.tobytes(),
    )


@pytest.fixture
def image_views():
    register_view(FakeImage, compressed_image_view(FakeImage, image_format="png"))
    register_view(FakeDetections, image_annotations_view())
    yield
    unregister_views(FakeImage)
    unregister_views(FakeDetections)


def test_png_image_view_round_trips_exactly_and_validates(image_views, tmp_path):
    bus = Bus(FAKE_TABLE)
    recorder = Recorder(tmp_path / "cam.mcap", bus)
    images = [_image(seed) for seed in range(3)]
    for image in images:
        bus.publish("/camera/image", image)
    recorder.close()

    raws = list(LogReader(tmp_path / "cam.mcap").raw())
    assert [raw.schema.name for raw in raws] == ["foxglove.CompressedImage"] * 3
    for raw in raws:
        data = json.loads(raw.data)
        jsonschema.validate(data, COMPRESSED_IMAGE_SCHEMA)
        assert data["format"] == "png" and data["frame_id"] == "camera"
    replayed = [m.message for m in LogReader(tmp_path / "cam.mcap").messages(table=FAKE_TABLE)]
    assert replayed == images


def test_jpeg_view_keeps_colours_and_size():
    view = compressed_image_view(FakeImage, image_format="jpeg", jpeg_quality=95)
    pixels = np.zeros((36, 64, 3), np.uint8)
    pixels[:18, :, 0] = 255  # red over blue: a swap of RGB and BGR would show
    pixels[18:, :, 2] = 255
    image = FakeImage(
        header=Header(stamp_ns=5, seq=2, frame_id="camera", valid=False),
        height=36,
        width=64,
        data=pixels.tobytes(),
    )
    decoded = view.decode(json.loads(json.dumps(view.encode(image))))
    restored = np.frombuffer(decoded.data, np.uint8).reshape(36, 64, 3).astype(int)
    assert (decoded.height, decoded.width, decoded.header) == (36, 64, image.header)
    assert restored[:16, :, 0].min() > 230 and restored[:16, :, 2].max() < 25
    assert restored[20:, :, 2].min() > 230 and restored[20:, :, 0].max() < 25


def test_detections_get_a_companion_annotations_channel(image_views, tmp_path):
    bus = Bus(FAKE_TABLE)
    recorder = Recorder(tmp_path / "det.mcap", bus)
    message = FakeDetections(
        header=Header(stamp_ns=0, frame_id="camera"),
        detections=(
            FakeBox((10.0, 20.0, 50.0, 60.0), "car", 0.9),
            FakeBox((1.0, 2.0, 3.0, 4.0), "truck", 0.5),
        ),
    )
    bus.publish("/perception/detections", message)
    recorder.close()

    by_topic = {raw.channel.topic: raw for raw in LogReader(tmp_path / "det.mcap").raw()}
    assert set(by_topic) == {"/perception/detections", "/perception/detections/annotations"}
    annotations = json.loads(by_topic["/perception/detections/annotations"].data)
    jsonschema.validate(annotations, IMAGE_ANNOTATIONS_SCHEMA)
    first = annotations["points"][0]
    assert first["type"] == 2 and [(p["x"], p["y"]) for p in first["points"]] == [
        (10.0, 20.0),
        (50.0, 20.0),
        (50.0, 60.0),
        (10.0, 60.0),
    ]
    assert [t["text"] for t in annotations["texts"]] == ["car 0.90", "truck 0.50"]
    # Replay decodes the native channel and ignores the companion.
    assert [m.message for m in LogReader(tmp_path / "det.mcap").messages(table=FAKE_TABLE)] == [
        message
    ]


def test_recorder_count_agrees_with_log_info_when_companions_are_written(
    image_views, tmp_path, caplog
):
    from sim.commands.log import info

    bus = Bus(FAKE_TABLE)
    recorder = Recorder(tmp_path / "det.mcap", bus)
    for seq in range(3):
        bus.publish(
            "/perception/detections",
            FakeDetections(header=Header(stamp_ns=seq, seq=seq, frame_id="camera"), detections=()),
        )
    with caplog.at_level(logging.INFO, logger="bus.recorder"):
        recorder.close()
    assert (recorder.message_count, recorder.companion_count) == (3, 3)
    assert info(str(tmp_path / "det.mcap"))["messages"] == 6
    assert "recorded 6 messages" in caplog.text and "3 on companion channels" in caplog.text


def test_a_replacing_view_must_be_replayable():
    with pytest.raises(ValueError, match="needs a decode function"):
        from bus.foxglove import FoxgloveView

        FoxgloveView("foxglove.CompressedImage", COMPRESSED_IMAGE_SCHEMA, encode=lambda m: {})


def test_camera_image_and_truth_use_foxglove_schemas_by_default(tmp_path):
    from bus.messages import BoxLabel, FrameLabels, Image, LabelClass

    pixels = np.zeros((36, 64, 3), np.uint8)
    pixels[:, :32] = (200, 40, 40)
    image = Image(
        header=Header(stamp_ns=0, frame_id="camera"), height=36, width=64, data=pixels.tobytes()
    )
    box = BoxLabel(
        object_id=3,
        label_class=LabelClass.CAR,
        bbox_xyxy=(1.0, 2.0, 30.0, 20.0),
        visible_fraction=1.0,
        truncation=0.0,
        distance_m=12.0,
    )
    labels = FrameLabels(header=image.header, width=64, height=36, boxes=(box,))
    bus = Bus()
    with Recorder(tmp_path / "cam.mcap", bus):
        bus.publish("/camera/image", image)
        bus.publish("/camera/truth", labels)

    schemas = {raw.channel.topic: raw.schema.name for raw in LogReader(tmp_path / "cam.mcap").raw()}
    assert schemas == {
        "/camera/image": "foxglove.CompressedImage",
        "/camera/truth": "drivestack.FrameLabels",
        "/camera/truth/annotations": "foxglove.ImageAnnotations",
    }
    replayed = {m.topic: m.message for m in LogReader(tmp_path / "cam.mcap").messages()}
    assert replayed["/camera/truth"] == labels
    restored = np.frombuffer(replayed["/camera/image"].data, np.uint8).reshape(36, 64, 3)
    assert np.abs(restored.astype(int) - pixels).mean() < 3  # JPEG: close, not exact


def test_non_finite_floats_are_written_as_null_and_read_back_as_nan(tmp_path):
    from bus.messages.perception import Detection2D, Detections2D

    detection = Detection2D(
        bbox_xyxy=(1.0, 2.0, 3.0, 4.0), class_name="car", class_id=0, score=0.5
    )  # distance_m defaults to NaN
    message = Detections2D(
        header=Header(stamp_ns=0, frame_id="camera"),
        width=64,
        height=36,
        detector="test",
        latency_ms=float("inf"),
        detections=(detection,),
    )
    bus = Bus()
    with Recorder(tmp_path / "nan.mcap", bus):
        bus.publish("/perception/detections", message)
    raws = {raw.channel.topic: raw for raw in LogReader(tmp_path / "nan.mcap").raw()}
    native = raws["/perception/detections"]
    jsonschema.validate(json.loads(native.data), json.loads(native.schema.data))
    assert "/perception/detections/annotations" in raws
    (replayed,) = [m.message for m in LogReader(tmp_path / "nan.mcap").messages()]
    assert np.isnan(replayed.detections[0].distance_m) and np.isnan(replayed.latency_ms)
    assert replayed.detections[0].bbox_xyxy == detection.bbox_xyxy
