"""Typed, immutable bus messages. Every message carries a :class:`Header` as ``header``."""

from bus.messages.camera import BoxLabel, CameraInfo, FrameLabels, Image, LabelClass, LaneLineLabel
from bus.messages.common import Header, Pose2D, Vector2
from bus.messages.mapping import LocalizationStatus, LocalizerFix, PoseEstimate
from bus.messages.planning import DrivingAction, MetaAction
from bus.messages.sim import EgoState, Lane, LaneGeometry, ObjectClass, ObjectList, ObjectState
from bus.messages.world import Landmark, LandmarkShape, SignType, StaticWorld, TrafficSign

__all__ = [
    "BoxLabel",
    "CameraInfo",
    "FrameLabels",
    "Image",
    "LabelClass",
    "Landmark",
    "LandmarkShape",
    "LaneLineLabel",
    "SignType",
    "StaticWorld",
    "TrafficSign",
    "DrivingAction",
    "EgoState",
    "Header",
    "Lane",
    "LaneGeometry",
    "LocalizationStatus",
    "LocalizerFix",
    "MetaAction",
    "ObjectClass",
    "ObjectList",
    "ObjectState",
    "Pose2D",
    "PoseEstimate",
    "Vector2",
]
