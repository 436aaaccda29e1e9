"""The topic table: every topic on the bus, declared once.

A topic's expected rate is either a fixed frequency, the control rate of the simulation
(the environment's ``policy_frequency``), or ``None`` for latched and event topics. Health
checks (alive, on rate) derive from this table.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from bus.messages import DrivingAction, EgoState, LaneGeometry, ObjectList
from bus.messages.camera import CameraInfo, FrameLabels, Image
from bus.messages.mapping import LocalizerFix, PoseEstimate
from bus.messages.perception import Detections2D, LaneEstimate, SignList
from bus.messages.world import StaticWorld

CONTROL_RATE = "control"
"""Marker for topics published once per control step."""


@dataclass(frozen=True)
class TopicSpec:
    """Declaration of one topic.

    :param name: topic name, starting with ``/``.
    :param msg_type: the message struct published on it.
    :param rate: expected rate in Hz, :data:`CONTROL_RATE`, or ``None`` (latched or on event).
    :param recorded: whether runs record it.
    :param latched: whether a late subscriber receives the last message on subscribing.
    """

    name: str
    msg_type: type[msgspec.Struct]
    rate: float | str | None
    recorded: bool = True
    latched: bool = False
    description: str = ""

    def rate_hz(self, control_rate_hz: float) -> float | None:
        """Expected rate in Hz given the control rate, or None for latched/event topics."""
        if self.rate == CONTROL_RATE:
            return control_rate_hz
        return None if self.rate is None else float(self.rate)


_SPECS = (
    TopicSpec("/sim/ego", EgoState, CONTROL_RATE, description="ego state, map frame"),
    TopicSpec("/sim/objects", ObjectList, CONTROL_RATE, description="ground-truth road users"),
    TopicSpec("/sim/lanes", LaneGeometry, CONTROL_RATE, description="lanes around the ego"),
    TopicSpec("/planning/action", DrivingAction, CONTROL_RATE, description="meta-action to apply"),
    TopicSpec(
        "/sim/static",
        StaticWorld,
        None,
        latched=True,
        description="signs and landmarks of the episode, map frame",
    ),
    # Recorded as JPEG foxglove.CompressedImage (bus/foxglove.py), about 55 kB a frame.
    TopicSpec("/camera/image", Image, CONTROL_RATE, description="front camera, rgb8"),
    TopicSpec(
        "/camera/info",
        CameraInfo,
        None,
        latched=True,
        description="front camera intrinsics and ego-to-camera transform",
    ),
    TopicSpec(
        "/camera/truth",
        FrameLabels,
        CONTROL_RATE,
        description="exact 2-D boxes and lane lines of each camera frame",
    ),
    TopicSpec(
        "/perception/detections",
        Detections2D,
        CONTROL_RATE,
        description="2-D detections of each camera image, with track ids",
    ),
    TopicSpec(
        "/perception/objects",
        ObjectList,
        CONTROL_RATE,
        description="tracked road users from the camera, ego frame",
    ),
    TopicSpec(
        "/perception/lanes",
        LaneEstimate,
        CONTROL_RATE,
        description="ego lane from the camera: offset, heading error, width, curvature",
    ),
    TopicSpec(
        "/perception/signs",
        SignList,
        CONTROL_RATE,
        description="classified traffic signs, speed limits",
    ),
    TopicSpec(
        "/mapping/fix",
        LocalizerFix,
        None,
        description="landmark localizer pose fix, one per camera frame with a solution",
    ),
    TopicSpec(
        "/mapping/pose",
        PoseEstimate,
        CONTROL_RATE,
        description="fused ego pose with covariance, map frame",
    ),
)

TOPICS: dict[str, TopicSpec] = {spec.name: spec for spec in _SPECS}


def topic_spec(name: str, table: dict[str, TopicSpec] | None = None) -> TopicSpec:
    """Look up a topic, raising :class:`UnknownTopicError` that lists the declared ones."""
    table = TOPICS if table is None else table
    try:
        return table[name]
    except KeyError:
        raise UnknownTopicError(
            f"topic {name!r} is not declared in bus/topics.py; declared topics: "
            + ", ".join(sorted(table))
        ) from None


class UnknownTopicError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])
