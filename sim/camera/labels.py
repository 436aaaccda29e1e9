"""Per-frame ground truth of the camera: 2-D boxes and lane lines, and their file formats.

Boxes come from the renderer's projections (exact, with visible fractions measured on the
rendered id buffer). Lane lines are the painted boundaries projected as continuous polylines.
File formats: YOLO detection rows ``class cx cy w h`` and YOLO segmentation rows
``class x1 y1 x2 y2 ...``, all normalised to [0, 1] by the image size.
"""

from __future__ import annotations

import math

import numpy as np

from bus.messages import Header, LaneGeometry, Pose2D
from bus.messages.camera import DETECTION_CLASSES, BoxLabel, FrameLabels, LaneLineLabel
from sim.camera import road
from sim.camera.model import CameraModel
from sim.camera.renderer import RenderResult

LANE_SAMPLE_STEP_M = 4.0
MIN_LANE_POINTS = 2
MIN_LANE_HALF_WIDTH_PX = 1.5
CLASS_IDS = {name: index for index, name in enumerate(DETECTION_CLASSES)}


def box_labels(result: RenderResult, width: int, height: int) -> tuple[BoxLabel, ...]:
    """Boxes of every rendered object whose projection touches the image, nearest first."""
    labels = []
    for item in sorted(result.objects, key=lambda o: o.distance_m):
        x0, y0, x1, y1 = item.outline_xyxy
        outline_area = max((x1 - x0) * (y1 - y0), 1e-9)
        inside_w = max(min(x1, width) - max(x0, 0.0), 0.0)
        inside_h = max(min(y1, height) - max(y0, 0.0), 0.0)
        truncation = 1.0 - inside_w * inside_h / outline_area
        labels.append(
            BoxLabel(
                object_id=item.object_id,
                label_class=item.label_class,
                bbox_xyxy=item.bbox_xyxy,
                visible_fraction=min(item.visible_px / item.unoccluded_px, 1.0),
                truncation=float(min(max(truncation, 0.0), 1.0)),
                distance_m=item.distance_m,
                visible_px=item.visible_px,
                sign_type=item.sign_type,
                speed_limit_kph=item.speed_limit_kph,
            )
        )
    return tuple(labels)


def lane_labels(
    lanes: LaneGeometry, camera: CameraModel, ego_pose: Pose2D
) -> tuple[LaneLineLabel, ...]:
    """Painted boundaries in front of the camera as image and ``ego``-frame polylines."""
    config = camera.config
    rotation, translation = camera.map_to_camera(ego_pose)
    cos_yaw, sin_yaw = math.cos(ego_pose.yaw), math.sin(ego_pose.yaw)
    labels = []
    for boundary in road.boundaries(lanes):
        points = road.resample(boundary.points, LANE_SAMPLE_STEP_M)
        ground = np.concatenate([points, np.zeros((len(points), 1))], axis=1)
        camera_points = ground @ rotation.T + translation
        depth = camera_points[:, 2]
        inside = (depth >= config.near_m) & (depth <= config.far_m)
        if inside.sum() < MIN_LANE_POINTS:
            continue
        # The longest run of consecutive samples in front of the camera.
        first = int(np.argmax(inside))
        last = first
        while last + 1 < len(inside) and inside[last + 1]:
            last += 1
        run = camera_points[first : last + 1]
        if first > 0:  # start exactly on the near plane
            a, b = camera_points[first - 1], camera_points[first]
            t = (config.near_m - a[2]) / (b[2] - a[2])
            run = np.concatenate([[a + t * (b - a)], run])
        pixels = camera.project_camera(run)
        in_image = _clip_polyline(pixels, config.width_px, config.height_px)
        if len(in_image) < MIN_LANE_POINTS:
            continue
        delta = points[first : last + 1] - np.array([ego_pose.x, ego_pose.y])
        road_points = np.stack(
            [
                cos_yaw * delta[:, 0] + sin_yaw * delta[:, 1],
                -sin_yaw * delta[:, 0] + cos_yaw * delta[:, 1],
            ],
            axis=1,
        )
        labels.append(
            LaneLineLabel(
                line_index=boundary.index,
                kind=boundary.kind,
                image_points=tuple(map(tuple, in_image.tolist())),
                road_points=tuple(map(tuple, road_points.tolist())),
            )
        )
    return tuple(labels)


def _clip_polyline(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The first stretch of a polyline (N, 2) inside the image rectangle, ends interpolated."""
    inside = (
        (pixels[:, 0] >= 0)
        & (pixels[:, 0] <= width)
        & (pixels[:, 1] >= 0)
        & (pixels[:, 1] <= height)
    )
    if not inside.any():
        # No vertex inside; a segment may still cross the image.
        for a, b in zip(pixels[:-1], pixels[1:], strict=True):
            segment = _clip_segment(a, b, width, height)
            if segment is not None:
                return np.array(segment)
        return np.zeros((0, 2))
    first = int(np.argmax(inside))
    outside_after = np.flatnonzero(~inside[first:])
    last = first + int(outside_after[0]) - 1 if len(outside_after) else len(pixels) - 1
    run = [pixels[first : last + 1]]
    if first > 0:
        run.insert(0, _clip_segment(pixels[first - 1], pixels[first], width, height)[0][None])
    if last + 1 < len(pixels):
        run.append(_clip_segment(pixels[last], pixels[last + 1], width, height)[1][None])
    return np.concatenate(run)


def _clip_segment(a: np.ndarray, b: np.ndarray, width: int, height: int):
    """Liang-Barsky clip of segment a-b to [0, width] x [0, height]; None when outside."""
    t0, t1 = 0.0, 1.0
    d = b - a
    for p, q in ((-d[0], a[0]), (d[0], width - a[0]), (-d[1], a[1]), (d[1], height - a[1])):
        if abs(p) < 1e-12:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return a + t0 * d, a + t1 * d


def frame_labels(
    header: Header, result: RenderResult, lanes: LaneGeometry, camera: CameraModel, ego_pose: Pose2D
) -> FrameLabels:
    width, height = camera.config.width_px, camera.config.height_px
    return FrameLabels(
        header=header,
        width=width,
        height=height,
        boxes=box_labels(result, width, height),
        lane_lines=lane_labels(lanes, camera, ego_pose),
    )


def keep_for_training(box: BoxLabel, min_visible_fraction: float, min_height_px: float) -> bool:
    """Whether a box belongs in a detection dataset: a detector class, visible enough."""
    x0, y0, x1, y1 = box.bbox_xyxy
    return (
        box.label_class.value in CLASS_IDS
        and box.visible_fraction >= min_visible_fraction
        and (y1 - y0) >= min_height_px
        and (x1 - x0) >= 1.0
    )


def yolo_box_rows(
    labels: FrameLabels, min_visible_fraction: float = 0.25, min_height_px: float = 4.0
) -> list[str]:
    """YOLO detection rows ``class cx cy w h`` (normalised) of the boxes worth training on."""
    rows = []
    for box in labels.boxes:
        if not keep_for_training(box, min_visible_fraction, min_height_px):
            continue
        x0, y0, x1, y1 = box.bbox_xyxy
        rows.append(
            f"{CLASS_IDS[box.label_class.value]} {(x0 + x1) / 2 / labels.width:.6f} "
            f"{(y0 + y1) / 2 / labels.height:.6f} {(x1 - x0) / labels.width:.6f} "
            f"{(y1 - y0) / labels.height:.6f}"
        )
    return rows


def lane_polygon(line: LaneLineLabel, camera: CameraModel) -> np.ndarray:
    """A thin polygon (K, 2) [px] around a lane line, as wide as its paint (at least 3 px)."""
    pixels = np.asarray(line.image_points, dtype=float)
    paint_m = road.SOLID_LINE_WIDTH_M if line.kind == "solid" else road.DASHED_LINE_WIDTH_M
    # Paint width in pixels from each point's depth (ground plane, via the row below horizon).
    horizon = camera.k[1, 2] - camera.fy * math.tan(math.radians(camera.config.pitch_deg))
    below = np.maximum(pixels[:, 1] - horizon, 1e-3)
    half = np.maximum(paint_m / 2 * below / camera.config.height_m, MIN_LANE_HALF_WIDTH_PX)
    tangent = np.gradient(pixels, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) * half[:, None]
    polygon = np.concatenate([pixels + normal, (pixels - normal)[::-1]])
    limits = np.array([camera.config.width_px, camera.config.height_px], dtype=float)
    return np.clip(polygon, 0.0, limits)


def yolo_segment_rows(labels: FrameLabels, camera: CameraModel) -> list[str]:
    """YOLO segmentation rows (class ``lane_line``) of the frame's lane lines."""
    rows = []
    limits = np.array([labels.width, labels.height], dtype=float)
    for line in labels.lane_lines:
        polygon = lane_polygon(line, camera) / limits
        coordinates = " ".join(f"{v:.6f}" for v in polygon.ravel())
        rows.append(f"{CLASS_IDS['lane_line']} {coordinates}")
    return rows


def labels_to_json(labels: FrameLabels) -> dict:
    """Plain-JSON form of a frame's labels (what the dataset's per-frame files hold)."""
    return {
        "stamp_ns": labels.header.stamp_ns,
        "seq": labels.header.seq,
        "width": labels.width,
        "height": labels.height,
        "boxes": [
            {
                "object_id": b.object_id,
                "class": b.label_class.value,
                "bbox_xyxy": [round(v, 3) for v in b.bbox_xyxy],
                "visible_fraction": round(b.visible_fraction, 4),
                "truncation": round(b.truncation, 4),
                "distance_m": round(b.distance_m, 3),
                "visible_px": b.visible_px,
                "sign_type": b.sign_type,
                "speed_limit_kph": b.speed_limit_kph,
            }
            for b in labels.boxes
        ],
        "lane_lines": [
            {
                "line_index": line.line_index,
                "kind": line.kind,
                "image_points": [[round(u, 2), round(v, 2)] for u, v in line.image_points],
                "road_points": [[round(x, 3), round(y, 3)] for x, y in line.road_points],
            }
            for line in labels.lane_lines
        ],
    }
