"""Nodes and the thin runner that wires them to a bus.

A node is a plain class: it names the topics it reads (``inputs``), the one whose arrival
makes it compute (``trigger``, one of the inputs), and implements ``step``, which takes the
latest message of every input and returns the messages to publish, keyed by topic. The node
never sees the transport; tests call ``step`` directly or replay a recording into it.

The runner watches its inputs' health (:mod:`bus.health`). An input that is dead (not seen
within the timeout its declared rate gives) is left out of the mapping passed to ``step``, so
the node sees it as missing; an input whose publisher marked it invalid is passed as is (its
``header.valid`` is False). Either way the runner marks every output of that step invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from bus.bus import Bus, Publisher, Subscription
from bus.health import HealthConfig, HealthMonitor, InputHealth


class Node(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def inputs(self) -> tuple[str, ...]:
        """Topics the node reads."""
        ...

    @property
    def trigger(self) -> str:
        """The input whose arrival makes the node compute."""
        ...

    def step(self, inputs: Mapping[str, Any]) -> Mapping[str, msgspec.Struct]:
        """Compute outputs from the latest message of each input topic (missing ones absent)."""
        ...


def _with_header(message: Any, seq: int, valid: bool) -> Any:
    header = message.header
    header = msgspec.structs.replace(header, seq=seq, valid=header.valid and valid)
    return msgspec.structs.replace(message, header=header)


class NodeRunner:
    """Subscribes a node to its inputs on ``bus`` and publishes what its ``step`` returns.

    The runner numbers the output headers (``seq``) per topic and sets ``header.valid`` to
    False on the outputs of a step whose inputs were not all alive and valid.

    :param control_rate_hz: rate of the ``CONTROL_RATE`` topics, for the health checks; None
        checks only that every input has been seen and is valid.
    """

    def __init__(
        self,
        node: Node,
        bus: Bus,
        control_rate_hz: float | None = None,
        health: HealthConfig | None = None,
    ) -> None:
        if node.trigger not in node.inputs:
            raise ValueError(f"node {node.name}: trigger {node.trigger!r} is not one of its inputs")
        self.node = node
        self.bus = bus
        self.latest: dict[str, Any] = {}
        self.monitor = HealthMonitor(node.name, node.inputs, control_rate_hz, health, bus.table)
        self.last_health: dict[str, InputHealth] = {}
        self.steps = 0
        self.invalid_steps = 0
        self._publishers: dict[str, Publisher] = {}
        self._subscriptions: list[Subscription] = [
            bus.subscribe(topic, self._make_callback(topic), label=f"{node.name}<{topic}>")
            for topic in node.inputs
        ]

    def _make_callback(self, topic: str):
        def on_message(message: Any) -> None:
            if self.latest and message.header.stamp_ns < self._newest_stamp():
                self.reset()  # simulation time went back: a new episode
            self.latest[topic] = message
            self.monitor.observe(topic, message)
            if topic == self.node.trigger:
                self._run()

        return on_message

    def _newest_stamp(self) -> int:
        return max(message.header.stamp_ns for message in self.latest.values())

    def _run(self) -> None:
        self.last_health = self.monitor.check()
        usable = {topic: msg for topic, msg in self.latest.items() if self.last_health[topic].alive}
        healthy = all(health.ok for health in self.last_health.values())
        self.steps += 1
        self.invalid_steps += not healthy
        for topic, message in self.node.step(usable).items():
            publisher = self._publishers.get(topic)
            if publisher is None:
                publisher = self._publishers[topic] = self.bus.publisher(topic)
            self.bus.publish(topic, _with_header(message, publisher.seq(), healthy))

    def health_report(self) -> dict[str, Any]:
        """Health events and counters, for run summaries."""
        return {
            "node": self.node.name,
            "steps": self.steps,
            "invalid_output_steps": self.invalid_steps,
            "event_counts": dict(self.monitor.event_counts),
            "events": [event.as_dict() for event in self.monitor.events],
        }

    def reset(self) -> None:
        """Forget cached inputs, e.g. between episodes."""
        self.latest.clear()
        self.monitor.reset()
        reset = getattr(self.node, "reset", None)
        if reset is not None:
            reset()

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
