"""The camera perception node: detections, tracked road users in the ego frame, and signs.

Reads ``/camera/image`` (trigger), ``/camera/info`` (latched calibration) and, when present,
``/sim/ego`` (ego speed, to turn relative velocities into absolute ones). Publishes
``/perception/detections`` (Detections2D), ``/perception/objects`` (ObjectList, ``ego``
frame, same type as ground truth), ``/perception/signs`` (SignList) and
``/perception/lanes`` (LaneEstimate).

Distance comes from flat-road geometry: the bottom centre of a box is where the object
touches the road; its ray through the calibrated camera meets the road plane at the
object's near face. The object's centre is put half a typical length beyond it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from bus.messages import Header, ObjectClass, ObjectList, ObjectState, Pose2D, Vector2
from bus.messages.camera import CameraInfo, Image
from bus.messages.perception import (
    Detection2D,
    Detections2D,
    LaneEstimate,
    SignList,
    SignObservation,
)
from perception.classes import CLASS_IDS, CLASS_NAMES
from perception.detector import Detections, Detector
from perception.geometry import box_ground_contact, camera_matrices
from perception.lanes import LaneConfig, estimate_lane
from perception.tracker import Tracker, TrackerConfig

logger = logging.getLogger(__name__)

KPH_TO_MPS = 1000.0 / 3600.0
NS_PER_S = 1e9

# TODO(#6): object size and heading are class priors (heading 0 relative to the ego), not
# estimated from the box; and `drivestack sim` has no option yet to put this node in the loop
# instead of ground truth (make_perception_node below builds it).
TYPICAL_SIZE_M: dict[str, tuple[float, float]] = {
    "car": (5.0, 2.0),
    "truck": (12.0, 2.5),
    "pedestrian": (0.5, 0.6),
}
"""Class -> (length, width) [m] assumed for perceived objects (highway-env's car is 5 x 2)."""

OBJECT_CLASSES = {
    "car": ObjectClass.CAR,
    "truck": ObjectClass.TRUCK,
    "pedestrian": ObjectClass.PEDESTRIAN,
}


@dataclass(frozen=True)
class PerceptionConfig:
    """:param max_range_m: objects whose road contact is farther are not published [m].
    :param sign_min_px: smallest sign box side classified [px].
    """

    max_range_m: float = 150.0
    sign_min_px: float = 6.0
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    lanes: LaneConfig = field(default_factory=LaneConfig)


class PerceptionNode:
    """Camera perception as a node (see the module docstring)."""

    name = "perception"
    inputs = ("/camera/image", "/camera/info", "/sim/ego")
    trigger = "/camera/image"

    def __init__(
        self,
        detector: Detector,
        config: PerceptionConfig = PerceptionConfig(),
        sign_classifier=None,
    ) -> None:
        self.detector = detector
        self.config = config
        self.sign_classifier = sign_classifier
        self.tracker = Tracker(config.tracker)

    def reset(self) -> None:
        self.tracker.reset()

    def step(self, inputs: Mapping[str, Any]) -> dict[str, msgspec.Struct]:
        image: Image = inputs["/camera/image"]
        info: CameraInfo | None = inputs.get("/camera/info")
        pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 3)
        started = time.perf_counter()
        detections = self.detector.detect(pixels)
        latency_ms = (time.perf_counter() - started) * 1000.0

        positions = self._road_positions(detections, info)
        tracks = self.tracker.update(detections, positions, image.header.stamp_ns / NS_PER_S)
        track_ids = self._track_ids(detections, tracks)
        header = msgspec.structs.replace(image.header, frame_id="ego", valid=info is not None)
        signs = self._signs(pixels, detections, positions, track_ids, header)
        return {
            "/perception/detections": self._detections_message(
                image, detections, positions, track_ids, latency_ms, signs
            ),
            "/perception/objects": self._objects(tracks, header, inputs.get("/sim/ego")),
            "/perception/signs": signs,
            "/perception/lanes": self._lanes(pixels, info, header),
        }

    def _lanes(self, pixels: np.ndarray, info: CameraInfo | None, header: Header) -> LaneEstimate:
        measurement = None
        if info is not None:
            measurement = estimate_lane(pixels, *camera_matrices(info), self.config.lanes)
        if measurement is None:
            nan = float("nan")
            return LaneEstimate(
                header=msgspec.structs.replace(header, valid=False),
                lateral_offset_m=nan,
                heading_error_rad=nan,
                lane_width_m=nan,
                curvature_1pm=nan,
            )
        return LaneEstimate(
            header=header,
            lateral_offset_m=measurement.lateral_offset_m,
            heading_error_rad=measurement.heading_error_rad,
            lane_width_m=measurement.lane_width_m,
            curvature_1pm=measurement.curvature_1pm,
            left_line=tuple(float(c) for c in measurement.left.coefficients),
            right_line=tuple(float(c) for c in measurement.right.coefficients),
        )

    def _road_positions(self, detections: Detections, info: CameraInfo | None) -> np.ndarray:
        if info is None or len(detections) == 0:
            return np.full((len(detections), 2), np.nan)
        k, t_camera_ego = camera_matrices(info)
        return box_ground_contact(detections.boxes_xyxy, k, t_camera_ego)

    @staticmethod
    def _track_ids(detections: Detections, tracks) -> np.ndarray:
        ids = np.full(len(detections), -1, np.int64)
        for track in tracks:
            same = np.flatnonzero(np.all(detections.boxes_xyxy == track.box_xyxy, axis=1))
            ids[same] = track.track_id
        return ids

    def _detections_message(
        self,
        image: Image,
        detections: Detections,
        positions: np.ndarray,
        track_ids: np.ndarray,
        latency_ms: float,
        signs: SignList,
    ) -> Detections2D:
        sign_names = {s.track_id: s.sign_class for s in signs.signs}
        items = tuple(
            Detection2D(
                bbox_xyxy=tuple(float(v) for v in box),
                class_name=CLASS_NAMES[int(cls)],
                class_id=int(cls),
                score=float(score),
                track_id=int(track_id),
                distance_m=float(position[0]),
                sign_class=sign_names.get(int(track_id), "")
                if cls == CLASS_IDS["traffic_sign"]
                else "",
            )
            for box, score, cls, track_id, position in zip(
                detections.boxes_xyxy,
                detections.scores,
                detections.class_ids,
                track_ids,
                positions,
                strict=True,
            )
        )
        return Detections2D(
            header=image.header,
            width=image.width,
            height=image.height,
            detector=self.detector.name,
            latency_ms=latency_ms,
            detections=items,
        )

    def _objects(self, tracks, header: Header, ego) -> ObjectList:
        ego_speed = float(ego.speed_mps) if ego is not None else 0.0
        objects = []
        for track in tracks:
            name = CLASS_NAMES[track.class_id]
            if name not in OBJECT_CLASSES or not np.all(np.isfinite(track.position_m)):
                continue
            if track.position_m[0] > self.config.max_range_m:
                continue
            length_m, width_m = TYPICAL_SIZE_M[name]
            centre = Pose2D(
                float(track.position_m[0] + length_m / 2), float(track.position_m[1]), 0.0
            )
            relative = Vector2(float(track.velocity_mps[0]), float(track.velocity_mps[1]))
            objects.append(
                ObjectState(
                    object_id=track.track_id,
                    object_class=OBJECT_CLASSES[name],
                    pose=centre,
                    velocity_mps=Vector2(relative.x + ego_speed, relative.y),
                    ego_pose=centre,
                    ego_velocity_mps=relative,
                    length_m=length_m,
                    width_m=width_m,
                    score=track.score,
                )
            )
        return ObjectList(header=header, objects=tuple(objects))

    def _signs(
        self,
        pixels: np.ndarray,
        detections: Detections,
        positions: np.ndarray,
        track_ids: np.ndarray,
        header: Header,
    ) -> SignList:
        if self.sign_classifier is None:
            return SignList(header=header)
        sign_rows = [
            i
            for i in range(len(detections))
            if detections.class_ids[i] == CLASS_IDS["traffic_sign"]
            and np.min(detections.boxes_xyxy[i, 2:] - detections.boxes_xyxy[i, :2])
            >= self.config.sign_min_px
        ]
        crops = [_crop(pixels, detections.boxes_xyxy[i]) for i in sign_rows]
        observations = []
        for row, prediction in zip(sign_rows, self.sign_classifier.classify(crops), strict=True):
            if prediction.class_index == 0:  # "not a sign"
                continue
            limit = prediction.speed_limit_kph
            observations.append(
                SignObservation(
                    track_id=int(track_ids[row]),
                    sign_class=prediction.class_name,
                    probability=prediction.probability,
                    distance_m=float(positions[row, 0]),
                    speed_limit_mps=None if limit is None else limit * KPH_TO_MPS,
                )
            )
        return SignList(header=header, signs=tuple(observations))


def _crop(pixels: np.ndarray, box_xyxy: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    x1, y1 = int(max(np.floor(box_xyxy[0]), 0)), int(max(np.floor(box_xyxy[1]), 0))
    x2, y2 = int(min(np.ceil(box_xyxy[2]), width)), int(min(np.ceil(box_xyxy[3]), height))
    return pixels[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)]


def make_perception_node(
    weights: str | None = None, conf: float = 0.35, config: PerceptionConfig = PerceptionConfig()
) -> PerceptionNode:
    """A perception node with the shipped detector (or ``weights``) and sign classifier."""
    from perception.detector import load_detector
    from perception.signs import SignClassifier
    from perception.yolo_detector import SHIPPED_DETECTOR

    detector = load_detector(weights or SHIPPED_DETECTOR, conf=conf)
    return PerceptionNode(detector, config, sign_classifier=SignClassifier())
