"""In-process publish/subscribe.

Delivery is synchronous and in publish order: ``publish`` returns after every subscriber of
the topic has run, so a simulation driven through the bus is deterministic. A subscriber that
raises is isolated: the error is logged once per (topic, subscriber, exception type), counted,
and the remaining subscribers still receive the message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bus.topics import TOPICS, TopicSpec, topic_spec

logger = logging.getLogger(__name__)

Callback = Callable[[Any], None]


class MessageTypeError(TypeError):
    """A message of the wrong type was published on a topic."""


@dataclass
class TopicStats:
    """Per-topic counters. Rates are measured on message stamps (simulation time) since the
    stamps last went backwards (a new episode restarts simulation time)."""

    count: int = 0
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None
    window_count: int = 0
    callback_ns: int = 0
    errors: int = 0
    subscribers: int = 0

    @property
    def rate_hz(self) -> float | None:
        """Mean rate over the stamps seen so far, None before two distinct stamps."""
        if self.window_count < 2 or self.first_stamp_ns is None or self.last_stamp_ns is None:
            return None
        span_ns = self.last_stamp_ns - self.first_stamp_ns
        return (self.window_count - 1) * 1e9 / span_ns if span_ns > 0 else None

    def record(self, stamp_ns: int) -> None:
        self.count += 1
        if self.last_stamp_ns is None or stamp_ns < self.last_stamp_ns:
            self.first_stamp_ns, self.window_count = stamp_ns, 0
        self.window_count += 1
        self.last_stamp_ns = stamp_ns

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "rate_hz": self.rate_hz,
            "last_stamp_ns": self.last_stamp_ns,
            "callback_ms": self.callback_ns / 1e6,
            "errors": self.errors,
            "subscribers": self.subscribers,
        }


@dataclass
class _Subscriber:
    callback: Callback
    name: str
    active: bool = True


@dataclass
class _Topic:
    spec: TopicSpec
    subscribers: list[_Subscriber] = field(default_factory=list)
    stats: TopicStats = field(default_factory=TopicStats)
    last_message: Any = None


class Subscription:
    """Handle returned by :meth:`Bus.subscribe`; call :meth:`close` to stop delivery."""

    def __init__(self, topic: _Topic, subscriber: _Subscriber) -> None:
        self._topic = topic
        self._subscriber = subscriber

    def close(self) -> None:
        if self._subscriber.active:
            self._subscriber.active = False
            self._topic.subscribers.remove(self._subscriber)
            self._topic.stats.subscribers -= 1


class Publisher:
    """Per-topic publishing handle that numbers the messages' headers."""

    def __init__(self, bus: Bus, topic: str) -> None:
        self.bus = bus
        self.topic = topic
        self.next_seq = 0

    def seq(self) -> int:
        """Return the sequence number for the next message and advance it."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def publish(self, message: msgspec.Struct) -> None:
        self.bus.publish(self.topic, message)


class Bus:
    """Synchronous in-process bus over a topic table."""

    def __init__(self, topics: dict[str, TopicSpec] | None = None) -> None:
        self.table = TOPICS if topics is None else topics
        self._topics: dict[str, _Topic] = {}
        self._reported: set[tuple[str, str, str]] = set()

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(topic_spec(name, self.table))
        return topic

    def publisher(self, name: str) -> Publisher:
        self._topic(name)
        return Publisher(self, name)

    def subscribe(self, name: str, callback: Callback, *, label: str | None = None) -> Subscription:
        """Call ``callback(message)`` for every message published on ``name``.

        A latched topic delivers its last message to the new subscriber at once.
        """
        topic = self._topic(name)
        subscriber = _Subscriber(
            callback, label or str(getattr(callback, "__qualname__", "callback"))
        )
        topic.subscribers.append(subscriber)
        topic.stats.subscribers += 1
        if topic.spec.latched and topic.last_message is not None:
            self._deliver(topic, subscriber, topic.last_message)
        return Subscription(topic, subscriber)

    def publish(self, name: str, message: msgspec.Struct) -> None:
        """Deliver ``message`` to every subscriber of ``name`` before returning.

        :raises UnknownTopicError: the topic is not in the table.
        :raises MessageTypeError: the message is not of the topic's declared type.
        """
        topic = self._topic(name)
        expected = topic.spec.msg_type
        if type(message) is not expected:
            raise MessageTypeError(
                f"topic {name!r} carries {expected.__name__}, got {type(message).__name__}"
            )
        topic.stats.record(message.header.stamp_ns)  # type: ignore[attr-defined]
        if topic.spec.latched:
            topic.last_message = message
        for subscriber in tuple(topic.subscribers):
            self._deliver(topic, subscriber, message)

    def _deliver(self, topic: _Topic, subscriber: _Subscriber, message: Any) -> None:
        start = time.perf_counter_ns()
        try:
            subscriber.callback(message)
        except Exception as error:  # noqa: BLE001 - a subscriber must not stop the loop
            topic.stats.errors += 1
            key = (topic.spec.name, subscriber.name, type(error).__name__)
            if key not in self._reported:
                self._reported.add(key)
                logger.exception(
                    "subscriber %s of %s raised %s (further %s errors from it are counted, "
                    "not logged)",
                    subscriber.name,
                    topic.spec.name,
                    type(error).__name__,
                    type(error).__name__,
                )
        finally:
            topic.stats.callback_ns += time.perf_counter_ns() - start

    def stats(self) -> dict[str, TopicStats]:
        """Statistics of every topic used so far, by name."""
        return {name: topic.stats for name, topic in self._topics.items()}

    def error_count(self) -> int:
        return sum(topic.stats.errors for topic in self._topics.values())
