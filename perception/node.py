"""The camera perception node: detections, tracked road users in the ego frame, and signs.

Reads ``/camera/image`` (the trigger, or ``/sim/ego`` in the closed loop: see
:class:`PerceptionConfig`), ``/camera/info`` (latched calibration) and, when present,
``/sim/ego`` (ego speed, to turn relative velocities into absolute ones). Publishes
``/perception/detections`` (Detections2D), ``/perception/objects`` (ObjectList, ``ego``
frame, same type as ground truth), ``/perception/signs`` (SignList) and
``/perception/lanes`` (LaneEstimate).

Distance comes from flat-road geometry: the bottom edge of a box is where the object
touches the road; rays through its corners meet the road plane at the object's near face,
which with the class's typical size places its centre
(:func:`perception.geometry.box_footprint_centre`). Tracks (ByteTrack,
:mod:`perception.tracker`) give stable ids and velocities; the heading is the direction of
motion.
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
from perception.geometry import (
    box_footprint_centre,
    box_ground_contact,
    camera_matrices,
    crop_box,
    plate_box,
)
from perception.lanes import LaneConfig, estimate_lane
from perception.tracker import Track, Tracker, TrackerConfig
from perception.zoom import ZoomWindow

logger = logging.getLogger(__name__)

KPH_TO_MPS = 1000.0 / 3600.0
NS_PER_S = 1e9

# TODO(#6): object length and width are these class priors. Measuring them from the box (the
# rear face's width straight ahead, a visible side's length) made the errors larger in
# bench.perception_objects: the detector's box edges jitter by pixels, and a side's length
# moves by metres per pixel beyond ~20 m. It needs a 3-D box head or a longer track history.
TYPICAL_SIZE_M: dict[str, tuple[float, float]] = {
    "car": (5.0, 2.0),
    "truck": (12.0, 2.5),
    "pedestrian": (0.5, 0.6),
}
"""Class -> (length, width) [m] assumed for perceived objects where the box does not show
them (highway-env's car is 5 x 2; our trucks are 10-16.5 x 2.4-2.6)."""

MIN_HEADING_SPEED_MPS = 2.0
"""Below this speed an object's heading is not taken from its motion (it is taken as 0)."""

OBJECT_CLASSES = {
    "car": ObjectClass.CAR,
    "truck": ObjectClass.TRUCK,
    "pedestrian": ObjectClass.PEDESTRIAN,
}


@dataclass(frozen=True)
class PerceptionConfig:
    """:param max_range_m: objects whose road contact is farther are not published [m].
    :param sign_min_px: smallest sign box side classified [px].
    :param trigger: the input whose arrival makes the node compute: the camera image, or
        ``/sim/ego`` in the closed loop, where the simulator publishes the ego state after
        the camera image of the same step (so the node sees the ego speed of its frame).
    :param zoom: the window of the frame the detector of :func:`make_perception_node` also
        looks at, scaled up, for distant objects (the band around the horizon ahead of the
        simulator's front camera; the whole frame is looked at 512 px, the window at the
        detector's 640); None for one look.
    :param zoom_parallel: take the two looks at once, on two threads.
    """

    max_range_m: float = 150.0
    sign_min_px: float = 6.0
    trigger: str = "/camera/image"
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    lanes: LaneConfig = field(default_factory=LaneConfig)
    zoom: ZoomWindow | None = field(default_factory=lambda: ZoomWindow(frame_imgsz=512))
    zoom_parallel: bool = True


class PerceptionNode:
    """Camera perception as a node (see the module docstring)."""

    name = "perception"
    inputs = ("/camera/image", "/camera/info", "/sim/ego")

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
        if config.trigger not in self.inputs:
            raise ValueError(f"trigger {config.trigger!r} is not one of {self.inputs}")
        self.trigger = config.trigger
        self.detector_ms: list[float] = []
        """Detector latency of every frame so far [ms]."""
        self.step_ms: list[float] = []
        """Time of every whole step so far (detection, tracking, lanes, signs) [ms]."""

    def reset(self) -> None:
        self.tracker.reset()

    def step(self, inputs: Mapping[str, Any]) -> dict[str, msgspec.Struct]:
        if "/camera/image" not in inputs:
            return {}
        ego = inputs.get("/sim/ego")
        if self.trigger == "/sim/ego" and ego is not None:
            if inputs["/camera/image"].header.stamp_ns != ego.header.stamp_ns:
                return {}  # no image of this step (yet): never feed the tracker a frame twice
        step_started = time.perf_counter()
        outputs = self._perceive(inputs)
        self.step_ms.append((time.perf_counter() - step_started) * 1000.0)
        return outputs

    def timing_report(self) -> dict[str, Any]:
        """Frames processed and the mean and 95th percentile of the detector latency and of
        the whole step [ms], for run summaries."""
        report: dict[str, Any] = {"frames": len(self.step_ms), "detector": self.detector.name}
        for key, values in (("detector_ms", self.detector_ms), ("step_ms", self.step_ms)):
            if values:
                report[key] = {
                    "mean": float(np.mean(values)),
                    "p95": float(np.percentile(values, 95)),
                    "max": float(np.max(values)),
                }
        return report

    def _perceive(self, inputs: Mapping[str, Any]) -> dict[str, msgspec.Struct]:
        image: Image = inputs["/camera/image"]
        info: CameraInfo | None = inputs.get("/camera/info")
        pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 3)
        started = time.perf_counter()
        detections = self.detector.detect(pixels)
        latency_ms = (time.perf_counter() - started) * 1000.0
        self.detector_ms.append(latency_ms)

        positions = self._road_positions(detections, info)
        ego = inputs.get("/sim/ego")
        tracks = self.tracker.update(
            detections,
            positions,
            image.header.stamp_ns / NS_PER_S,
            ego_speed_mps=None if ego is None else float(ego.speed_mps),
        )
        track_ids = self._track_ids(detections, tracks)
        header = msgspec.structs.replace(image.header, frame_id="ego", valid=info is not None)
        signs = self._signs(pixels, detections, positions, track_ids, header)
        return {
            "/perception/detections": self._detections_message(
                image, detections, positions, track_ids, latency_ms, signs
            ),
            "/perception/objects": self._objects(tracks, header, ego, info),
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
    def _track_ids(detections: Detections, tracks: list[Track]) -> np.ndarray:
        """Track id of each detection, -1 for detections no confirmed track holds."""
        ids = np.full(len(detections), -1, np.int64)
        for track in tracks:
            ids[track.detection_index] = track.track_id
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

    def _objects(
        self, tracks: list[Track], header: Header, ego, info: CameraInfo | None
    ) -> ObjectList:
        if info is None:
            return ObjectList(header=header)
        k, t_camera_ego = camera_matrices(info)
        ego_speed = float(ego.speed_mps) if ego is not None else 0.0
        yaw_rate = float(ego.yaw_rate_rps) if ego is not None else 0.0
        objects = []
        for track in tracks:
            name = CLASS_NAMES[track.class_id]
            if name not in OBJECT_CLASSES or not np.all(np.isfinite(track.position_m)):
                continue
            if track.position_m[0] > self.config.max_range_m:
                continue
            length_m, width_m = TYPICAL_SIZE_M[name]
            centre_xy = box_footprint_centre(
                track.box_xyxy, (length_m, width_m), k, t_camera_ego, info.width
            )
            if centre_xy is None:
                continue
            # Differencing ego-frame positions also sees the ego's own turning, -omega x p:
            # remove it, so a parked car stays parked while the ego turns.
            measured = track.velocity_mps
            relative = Vector2(
                float(measured[0] - yaw_rate * centre_xy[1]),
                float(measured[1] + yaw_rate * centre_xy[0]),
            )
            absolute = Vector2(relative.x + ego_speed, relative.y)
            centre = Pose2D(float(centre_xy[0]), float(centre_xy[1]), _heading(absolute))
            objects.append(
                ObjectState(
                    object_id=track.track_id,
                    object_class=OBJECT_CLASSES[name],
                    pose=centre,
                    velocity_mps=absolute,
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
        crops = [crop_box(pixels, plate_box(detections.boxes_xyxy[i])) for i in sign_rows]
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


def _heading(velocity_mps: Vector2) -> float:
    """Heading [rad, ego frame] of an object moving at ``velocity_mps`` (ego frame, ego
    speed included); 0 (along the ego) when it moves too slowly to tell."""
    if np.hypot(velocity_mps.x, velocity_mps.y) < MIN_HEADING_SPEED_MPS:
        return 0.0
    return float(np.arctan2(velocity_mps.y, velocity_mps.x))


def make_perception_node(
    weights: str | None = None, conf: float = 0.35, config: PerceptionConfig = PerceptionConfig()
) -> PerceptionNode:
    """A perception node with the shipped detector (or ``weights``) and sign classifier."""
    from perception.detector import load_detector
    from perception.signs import SignClassifier
    from perception.yolo_detector import SHIPPED_DETECTOR

    detector = load_detector(
        weights or SHIPPED_DETECTOR,
        conf=conf,
        zoom=config.zoom,
        zoom_parallel=config.zoom_parallel,
    )
    return PerceptionNode(detector, config, sign_classifier=SignClassifier())
