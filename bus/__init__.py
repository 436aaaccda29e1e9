"""Typed message bus: messages, the topic table, in-process pub/sub."""

from bus.bus import Bus, MessageTypeError, Publisher, Subscription, TopicStats
from bus.topics import TOPICS, TopicSpec, UnknownTopicError

__all__ = [
    "TOPICS",
    "Bus",
    "MessageTypeError",
    "Publisher",
    "Subscription",
    "TopicSpec",
    "TopicStats",
    "UnknownTopicError",
]
