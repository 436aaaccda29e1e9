"""Nodes and the thin runner that wires them to a bus.

A node is a plain class: it names the topics it reads (``inputs``), the one whose arrival
makes it compute (``trigger``, one of the inputs), and implements ``step``, which takes the
latest message of every input and returns the messages to publish, keyed by topic. The node
never sees the transport; tests call ``step`` directly or replay a recording into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from bus.bus import Bus, Publisher, Subscription


class Node(Protocol):
    name: str
    inputs: tuple[str, ...]
    trigger: str

    def step(self, inputs: Mapping[str, Any]) -> Mapping[str, msgspec.Struct]:
        """Compute outputs from the latest message of each input topic (missing ones absent)."""
        ...


def _with_seq(message: Any, seq: int) -> Any:
    header = msgspec.structs.replace(message.header, seq=seq)
    return msgspec.structs.replace(message, header=header)


class NodeRunner:
    """Subscribes a node to its inputs on ``bus`` and publishes what its ``step`` returns.

    The runner numbers the output headers (``seq``) per topic.
    """

    def __init__(self, node: Node, bus: Bus) -> None:
        if node.trigger not in node.inputs:
            raise ValueError(f"node {node.name}: trigger {node.trigger!r} is not one of its inputs")
        self.node = node
        self.bus = bus
        self.latest: dict[str, Any] = {}
        self._publishers: dict[str, Publisher] = {}
        self._subscriptions: list[Subscription] = [
            bus.subscribe(topic, self._make_callback(topic), label=f"{node.name}<{topic}>")
            for topic in node.inputs
        ]

    def _make_callback(self, topic: str):
        def on_message(message: Any) -> None:
            self.latest[topic] = message
            if topic == self.node.trigger:
                self._run()

        return on_message

    def _run(self) -> None:
        for topic, message in self.node.step(self.latest).items():
            publisher = self._publishers.get(topic)
            if publisher is None:
                publisher = self._publishers[topic] = self.bus.publisher(topic)
            self.bus.publish(topic, _with_seq(message, publisher.seq()))

    def reset(self) -> None:
        """Forget cached inputs, e.g. between episodes."""
        self.latest.clear()
        reset = getattr(self.node, "reset", None)
        if reset is not None:
            reset()

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
