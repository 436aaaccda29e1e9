"""The in-process bus: typed topics, ordered delivery, isolated subscribers, statistics."""

from __future__ import annotations

import logging

import msgspec
import pytest

from bus import Bus, MessageTypeError, UnknownTopicError
from bus.messages import DrivingAction, EgoState, Header, MetaAction, ObjectList, Pose2D
from bus.topics import TOPICS, TopicSpec
from tests.factories import make_ego


def action(stamp_ns: int, meta: MetaAction = MetaAction.IDLE) -> DrivingAction:
    return DrivingAction(header=Header(stamp_ns=stamp_ns), action=meta, planner="test")


def test_every_declared_topic_has_a_header_carrying_struct():
    for spec in TOPICS.values():
        assert spec.name.startswith("/")
        assert "header" in spec.msg_type.__struct_fields__, spec.name


def test_publishing_on_undeclared_topic_names_the_topic():
    bus = Bus()
    with pytest.raises(UnknownTopicError, match="/not/declared"):
        bus.publish("/not/declared", action(0))


def test_publishing_wrong_type_names_topic_expected_and_given_type():
    bus = Bus()
    wrong = ObjectList(header=Header(stamp_ns=0))
    with pytest.raises(MessageTypeError, match=r"/planning/action.*DrivingAction.*ObjectList"):
        bus.publish("/planning/action", wrong)


def test_messages_are_immutable():
    message = action(0)
    with pytest.raises(AttributeError):
        message.action = MetaAction.FASTER  # type: ignore[misc]


def test_delivery_is_synchronous_and_in_publish_order():
    bus = Bus()
    seen: list[tuple[str, int]] = []
    bus.subscribe("/planning/action", lambda m: seen.append(("a", m.header.stamp_ns)))
    bus.subscribe("/planning/action", lambda m: seen.append(("b", m.header.stamp_ns)))
    for stamp in range(5):
        bus.publish("/planning/action", action(stamp))
        assert seen[-1] == ("b", stamp)  # delivered before publish returned
    assert seen == [(name, stamp) for stamp in range(5) for name in ("a", "b")]


def test_nested_publish_keeps_causal_order():
    bus = Bus()
    order: list[str] = []

    def relay(message: DrivingAction) -> None:
        order.append(f"action {message.header.stamp_ns}")
        if message.header.stamp_ns == 0:
            bus.publish("/planning/action", action(1))

    bus.subscribe("/planning/action", relay)
    bus.publish("/planning/action", action(0))
    assert order == ["action 0", "action 1"]


def test_failing_subscriber_is_isolated_counted_and_logged_once(caplog):
    bus = Bus()
    received: list[int] = []

    def broken(message: DrivingAction) -> None:
        raise RuntimeError("boom")

    bus.subscribe("/planning/action", broken)
    bus.subscribe("/planning/action", lambda m: received.append(m.header.stamp_ns))
    with caplog.at_level(logging.ERROR, logger="bus.bus"):
        for stamp in range(10):
            bus.publish("/planning/action", action(stamp))

    assert received == list(range(10))
    assert bus.stats()["/planning/action"].errors == 10
    records = [r for r in caplog.records if "RuntimeError" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is not None


def test_statistics_count_rate_last_stamp_and_callback_time():
    bus = Bus()
    bus.subscribe("/planning/action", lambda m: sum(range(1000)))
    for step in range(11):
        bus.publish("/planning/action", action(step * 200_000_000))  # 5 Hz
    stats = bus.stats()["/planning/action"]
    assert stats.count == 11
    assert stats.rate_hz == pytest.approx(5.0)
    assert stats.last_stamp_ns == 2_000_000_000
    assert stats.callback_ns > 0


def test_rate_restarts_when_simulation_time_restarts():
    bus = Bus()
    for _episode in range(2):
        for step in range(5):
            bus.publish("/planning/action", action(step * 1_000_000_000))
    assert bus.stats()["/planning/action"].rate_hz == pytest.approx(1.0)


def test_closed_subscription_stops_delivery():
    bus = Bus()
    seen: list[int] = []
    subscription = bus.subscribe("/planning/action", lambda m: seen.append(1))
    bus.publish("/planning/action", action(0))
    subscription.close()
    bus.publish("/planning/action", action(1))
    assert seen == [1]


def test_latched_topic_delivers_last_message_to_late_subscriber():
    table = {"/latched": TopicSpec("/latched", DrivingAction, None, latched=True)}
    bus = Bus(table)
    bus.publish("/latched", action(7))
    seen: list[int] = []
    bus.subscribe("/latched", lambda m: seen.append(m.header.stamp_ns))
    assert seen == [7]


def test_messages_round_trip_through_json():
    ego = make_ego(Pose2D(1.0, -2.0, 0.1), header=Header(stamp_ns=5, seq=2), odometer_m=10.0)
    assert msgspec.json.decode(msgspec.json.encode(ego), type=EgoState) == ego
