"""Bridge a local in-process bus to Eclipse Zenoh, so that nodes run as separate processes.

Each process keeps its own synchronous :class:`bus.Bus`. A :class:`ZenohBridge` forwards the
messages of its *outbound* topics from that bus to Zenoh (key ``drivestack/<topic>``,
msgpack-encoded by msgspec), and receives its *inbound* topics from Zenoh, decodes them with
the topic's declared type and publishes them on the local bus. Zenoh delivers on its own
threads; the bridge queues what arrives and the owner thread hands it to the bus in
:meth:`ZenohBridge.poll`, so local delivery stays single-threaded and ordered. A message that
fails to decode is counted and dropped.

The bridge subscribes to every key under the prefix with one subscriber, because Zenoh keeps
a sender's order within one subscriber only; messages of topics it does not receive are
dropped on arrival. (So a node receives, and discards, the traffic of topics it does not
read: fine for the few control-rate topics here, wasteful once large images flow.)

Networking is explicit: peer mode, multicast scouting off, and only the ``tcp/HOST:PORT``
endpoints given to listen on or connect to (loopback by default).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bus.bus import Bus, Subscription
from bus.health import HealthEvent
from bus.schema import encode_hook
from bus.topics import topic_spec
from bus.transport import RemoteNodeLost

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp/127.0.0.1:7447"
KEY_PREFIX = "drivestack"
_ENDPOINT = re.compile(r"^tcp/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(\d{1,5})$")


def check_endpoint(text: str) -> str:
    """Validate a Zenoh endpoint of the form ``tcp/HOST:PORT``.

    :raises ValueError: naming the endpoint and the expected form.
    """
    match = _ENDPOINT.match(text)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(
            f"zenoh endpoint {text!r} is not of the form tcp/HOST:PORT (e.g. tcp/127.0.0.1:7447)"
        )
    return text


@dataclass(frozen=True)
class ZenohConfig:
    """Where a session listens and what it connects to (``tcp/HOST:PORT`` endpoints).

    :param listen: endpoints to accept connections on.
    :param connect: endpoints of peers to connect to.
    :param key_prefix: prefix of every key expression (``/sim/ego`` -> ``drivestack/sim/ego``).
    """

    listen: tuple[str, ...] = ()
    connect: tuple[str, ...] = ()
    key_prefix: str = KEY_PREFIX

    def __post_init__(self) -> None:
        for endpoint in (*self.listen, *self.connect):
            check_endpoint(endpoint)
        if not self.listen and not self.connect:
            raise ValueError("zenoh needs at least one endpoint to listen on or connect to")

    def session_config(self):
        import zenoh

        config = zenoh.Config()
        config.insert_json5("mode", '"peer"')
        config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("listen/endpoints", json.dumps(list(self.listen)))
        config.insert_json5("connect/endpoints", json.dumps(list(self.connect)))
        return config

    def key(self, topic: str) -> str:
        return self.key_prefix + topic

    def node_key(self, name: str) -> str:
        """Liveliness key a bridge announces itself under (``drivestack/nodes/planner/rule``)."""
        return f"{self.key_prefix}/nodes/{name}"


@dataclass
class BridgeStats:
    """Counters of one bridge, per topic."""

    sent: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    decode_errors: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "received": self.received,
            "decode_errors": self.decode_errors,
            "rejected": self.rejected,
        }


class ZenohBridge:
    """Forwards ``outbound`` topics from ``bus`` to Zenoh and ``inbound`` ones back.

    Set :attr:`accept` to a filter ``(topic, message) -> bool`` to drop (and count) inbound
    messages before they reach the bus.

    :param name: announced as liveliness token ``drivestack/nodes/NAME`` once the bridge is up.
    :raises ValueError: a topic is both inbound and outbound, or is not declared.
    :raises OSError: the Zenoh session cannot be opened (e.g. the port is taken).
    """

    def __init__(
        self,
        bus: Bus,
        config: ZenohConfig,
        outbound: Iterable[str],
        inbound: Iterable[str],
        name: str = "node",
    ) -> None:
        import zenoh

        self.bus = bus
        self.config = config
        self.outbound, self.inbound = tuple(outbound), tuple(inbound)
        both = set(self.outbound) & set(self.inbound)
        if both:
            raise ValueError(
                f"topics {sorted(both)} cannot be both sent and received by one bridge"
            )
        self.stats = BridgeStats()
        self.accept: Callable[[str, Any], bool] | None = None
        self._queue: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._decoders = {
            t: msgspec.msgpack.Decoder(topic_spec(t, bus.table).msg_type) for t in self.inbound
        }
        for topic in self.outbound:
            topic_spec(topic, bus.table)
        self._encoder = msgspec.msgpack.Encoder(enc_hook=encode_hook)
        self._last_payload: dict[str, bytes] = {}
        self._reported: set[str] = set()
        try:
            self.session = zenoh.open(config.session_config())
        except zenoh.ZError as error:
            raise OSError(
                f"cannot open a zenoh session (listen: {', '.join(config.listen) or '-'}; "
                f"connect: {', '.join(config.connect) or '-'}): {error}"
            ) from None
        # One subscriber for every key: Zenoh keeps the order of one sender's messages within a
        # subscriber, not across subscribers, and a node needs a step's inputs before its trigger.
        # TODO(#3): this also pulls in topics the node does not read (camera images, ~55 kB
        # each as JPEG, 0.7 MB raw); per-topic subscribers with a per-sender sequence number
        # and a reorder buffer would keep the order without the extra traffic.
        self._topic_of_key = {config.key(topic): topic for topic in self.inbound}
        self._zenoh_subscriber = self.session.declare_subscriber(
            config.key_prefix + "/**", self._on_sample, allowed_origin=zenoh.Locality.REMOTE
        )
        self._publishers = {
            topic: self.session.declare_publisher(
                config.key(topic),
                congestion_control=zenoh.CongestionControl.BLOCK,
                reliability=zenoh.Reliability.RELIABLE,
            )
            for topic in self.outbound
        }
        self._bus_subscriptions: list[Subscription] = [
            bus.subscribe(topic, self._sender(topic), label=f"zenoh>{topic}")
            for topic in self.outbound
        ]
        # Announced last, once the subscriptions exist: peers wait for it before sending.
        self._token = self.session.liveliness().declare_token(config.node_key(name))

    def _on_sample(self, sample: Any) -> None:
        topic = self._topic_of_key.get(str(sample.key_expr))
        if topic is not None:
            self._queue.put((topic, sample.payload.to_bytes()))

    def _sender(self, topic: str) -> Callable[[Any], None]:
        publisher = self._publishers[topic]

        def on_message(message: Any) -> None:
            payload = self._encoder.encode(message)
            self._last_payload[topic] = payload
            publisher.put(payload)
            self.stats.sent[topic] = self.stats.sent.get(topic, 0) + 1

        return on_message

    def resend(self, topics: Iterable[str]) -> None:
        """Send again the last message of each outbound topic (a peer may have missed it)."""
        for topic in topics:
            payload = self._last_payload.get(topic)
            if payload is not None:
                self._publishers[topic].put(payload)

    def poll(self, timeout_s: float = 0.0) -> list[str]:
        """Publish on the local bus what arrived, waiting up to ``timeout_s`` for the first
        message. Returns the topics of the messages delivered, in order."""
        delivered: list[str] = []
        try:
            item = self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait()
        except queue.Empty:
            return delivered
        while True:
            if self._deliver(*item):
                delivered.append(item[0])
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return delivered

    def _deliver(self, topic: str, payload: bytes) -> bool:
        try:
            message = self._decoders[topic].decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self._count(self.stats.decode_errors, topic)
            if topic not in self._reported:
                self._reported.add(topic)
                logger.warning(
                    "dropping an undecodable message on %s (%s); further ones are "
                    "counted, not logged",
                    topic,
                    error,
                )
            return False
        if self.accept is not None and not self.accept(topic, message):
            self._count(self.stats.rejected, topic)
            return False
        self._count(self.stats.received, topic)
        self.bus.publish(topic, message)
        return True

    @staticmethod
    def _count(counter: dict[str, int], topic: str) -> None:
        counter[topic] = counter.get(topic, 0) + 1

    def wait_for_node(self, name: str, timeout_s: float) -> list[str]:
        """Wait until a peer bridge whose name starts with path ``name`` (e.g. ``planner``)
        is up; returns the names found (empty after ``timeout_s``)."""
        selector = self.config.node_key(name) + "/**"
        prefix = self.config.node_key("")
        deadline = time.monotonic() + timeout_s
        while True:
            replies = self.session.liveliness().get(selector, timeout=1.0)
            found = [str(r.ok.key_expr)[len(prefix) :] for r in replies if r.ok is not None]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        for subscription in self._bus_subscriptions:
            subscription.close()
        self._bus_subscriptions.clear()
        try:
            self._token.undeclare()
        finally:
            self.session.close()


DEFAULT_MAX_CONSECUTIVE_TIMEOUTS = 3
"""Action timeouts in a row after which the remote planner is taken as gone."""
MAX_HEALTH_EVENTS = 1000
"""Health events kept in memory by :class:`LockstepActions`."""


class LockstepActions:
    """Makes a simulator wait for the remote planner's action on each state it published
    (same stamp) before it steps, re-sending that state every ``resend_s`` in case it was
    missed, and giving up on a step after ``timeout_s`` (the simulator then applies its
    default action). After ``max_consecutive_timeouts`` steps in a row without an action it
    raises :class:`RemoteNodeLost` instead of driving on with default actions.

    Install as ``ClosedLoop.await_action``. Actions for other stamps (late duplicates) are
    dropped, so the simulator applies exactly the action computed on the current state.
    Timeouts are recorded as health events of ``action_topic`` (see :meth:`health_report`).
    """

    def __init__(
        self,
        bridge: ZenohBridge,
        action_topic: str = "/planning/action",
        state_topics: tuple[str, ...] = ("/sim/lanes", "/sim/objects", "/sim/ego"),
        timeout_s: float = 10.0,
        resend_s: float = 1.0,
        max_consecutive_timeouts: int = DEFAULT_MAX_CONSECUTIVE_TIMEOUTS,
    ) -> None:
        if max_consecutive_timeouts < 1:
            raise ValueError(
                f"max_consecutive_timeouts must be at least 1, got {max_consecutive_timeouts}"
            )
        self.bridge = bridge
        self.action_topic = action_topic
        self.state_topics = state_topics
        self.timeout_s = timeout_s
        self.resend_s = resend_s
        self.max_consecutive_timeouts = max_consecutive_timeouts
        self.timeouts = 0
        self.consecutive_timeouts = 0
        self.answered = 0
        self.invalid_actions = 0
        self.events: list[HealthEvent] = []
        self._expected: int | None = None
        bridge.accept = self._accept

    def _accept(self, topic: str, message: Any) -> bool:
        if topic != self.action_topic:
            return True
        if message.header.stamp_ns != self._expected:
            return False
        self._expected = None  # one action per step: later duplicates are stale
        self.answered += 1
        self.invalid_actions += not message.header.valid
        if self.consecutive_timeouts:
            self._event(message.header.stamp_ns, "alive", "")
        self.consecutive_timeouts = 0
        return True

    def __call__(self, stamp_ns: int) -> None:
        """Wait for the action on the state stamped ``stamp_ns``.

        :raises RemoteNodeLost: this was the ``max_consecutive_timeouts``-th step in a row
            without an action.
        """
        self._expected = stamp_ns
        start = last_send = time.monotonic()
        while self._expected is not None:
            now = time.monotonic()
            if now - start > self.timeout_s:
                self._timed_out(stamp_ns)
                return
            if now - last_send > self.resend_s:
                self.bridge.resend(self.state_topics)
                last_send = now
            self.bridge.poll(timeout_s=0.05)

    def _timed_out(self, stamp_ns: int) -> None:
        self._expected = None
        self.timeouts += 1
        self.consecutive_timeouts += 1
        detail = f"no action within {self.timeout_s:.1f} s"
        if self.consecutive_timeouts >= self.max_consecutive_timeouts:
            self._event(stamp_ns, "lost", f"{self.consecutive_timeouts} timeouts in a row")
            raise RemoteNodeLost(
                f"no action on {self.consecutive_timeouts} consecutive steps "
                f"(each waited {self.timeout_s:.1f} s)"
            )
        self._event(stamp_ns, "timeout", detail)
        logger.warning(
            "no action for t=%.2f s from the remote planner within %.1f s (%d of %d in a row "
            "before giving up)",
            stamp_ns / 1e9,
            self.timeout_s,
            self.consecutive_timeouts,
            self.max_consecutive_timeouts,
        )

    def _event(self, stamp_ns: int, kind: str, detail: str) -> None:
        if len(self.events) < MAX_HEALTH_EVENTS:
            self.events.append(HealthEvent(stamp_ns, "simulator", self.action_topic, kind, detail))

    def health_report(self) -> dict[str, Any]:
        """Health of the remote planner as the simulator saw it, shaped like
        :meth:`bus.node.NodeRunner.health_report`: ``steps`` answered, actions whose header
        was invalid, and timeout / lost / alive events on the action topic."""
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event.kind] = counts.get(event.kind, 0) + 1
        return {
            "node": "planner (remote)",
            "steps": self.answered,
            "invalid_output_steps": self.invalid_actions,
            "action_timeouts": self.timeouts,
            "event_counts": counts,
            "events": [event.as_dict() for event in self.events],
        }
