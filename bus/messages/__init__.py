"""Typed, immutable bus messages. Every message carries a :class:`Header` as ``header``."""

from bus.messages.common import Header, Pose2D, Vector2
from bus.messages.planning import DrivingAction, MetaAction
from bus.messages.sim import EgoState, Lane, LaneGeometry, ObjectClass, ObjectList, ObjectState

__all__ = [
    "DrivingAction",
    "EgoState",
    "Header",
    "Lane",
    "LaneGeometry",
    "MetaAction",
    "ObjectClass",
    "ObjectList",
    "ObjectState",
    "Pose2D",
    "Vector2",
]
