"""Image-to-road geometry: where a pixel's viewing ray meets the flat road, in the ``ego``
frame (REP-103: x forward, y left, z up, origin at the vehicle centre on the road)."""

from __future__ import annotations

import numpy as np

from bus.messages.camera import CameraInfo

MIN_RAY_DOWN = 1e-6
"""Rays pointing less downward than this (at or above the horizon) never meet the road."""


def camera_matrices(info: CameraInfo) -> tuple[np.ndarray, np.ndarray]:
    """K (3x3) and the ego-to-camera transform (4x4) of a CameraInfo."""
    return np.asarray(info.k, float).reshape(3, 3), np.asarray(info.t_camera_ego, float).reshape(
        4, 4
    )


def pixels_to_road(pixels_uv: np.ndarray, k: np.ndarray, t_camera_ego: np.ndarray) -> np.ndarray:
    """Road points (N, 2) [m, ego frame x, y] of pixels (N, 2) [px]; NaN for pixels whose ray
    does not go down to the road (at or above the horizon)."""
    pixels = np.asarray(pixels_uv, float).reshape(-1, 2)
    rays_camera = np.linalg.solve(k, np.column_stack([pixels, np.ones(len(pixels))]).T)
    rotation, translation = t_camera_ego[:3, :3], t_camera_ego[:3, 3]
    origin_ego = -rotation.T @ translation
    rays_ego = (rotation.T @ rays_camera).T
    down = -rays_ego[:, 2]
    scale = np.where(down > MIN_RAY_DOWN, origin_ego[2] / np.maximum(down, MIN_RAY_DOWN), np.nan)
    points = origin_ego[None, :2] + rays_ego[:, :2] * scale[:, None]
    return points


def box_ground_contact(
    boxes_xyxy: np.ndarray, k: np.ndarray, t_camera_ego: np.ndarray
) -> np.ndarray:
    """Road point (N, 2) [m, ego frame] under the bottom centre of each box: where an object
    standing on the road touches it, on the face that is nearest the camera."""
    boxes = np.asarray(boxes_xyxy, float).reshape(-1, 4)
    bottom_centre = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]])
    return pixels_to_road(bottom_centre, k, t_camera_ego)


def road_to_pixels(points_xy: np.ndarray, k: np.ndarray, t_camera_ego: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) [px] of road points (N, 2) [m, ego frame x, y, on the road z = 0]."""
    points = np.asarray(points_xy, float).reshape(-1, 2)
    homogeneous = np.column_stack([points, np.zeros(len(points)), np.ones(len(points))])
    camera = (t_camera_ego @ homogeneous.T)[:3]
    pixels = k @ camera
    return (pixels[:2] / pixels[2]).T


SIDE_PROBE_PX = 8.0
"""Rows above a box's bottom edge where a column's road line is probed a second time."""
BORDER_PX = 2.0
"""A box closer than this to the left or right image border is cut by it."""


def box_footprint_centre(
    box_xyxy: np.ndarray,
    size_lw_m: tuple[float, float],
    k: np.ndarray,
    t_camera_ego: np.ndarray,
    image_width_px: int,
) -> np.ndarray | None:
    """Centre (2,) [m, ego frame] of an object of ``size_lw_m`` (length, width) seen in
    ``box_xyxy`` [px], standing on the flat road aligned with it (heading along ego x), with
    a tight box. None when the box bottom is at or above the horizon.

    The box's lower corners meet the road at the object's near face. Straight ahead, that
    face spans the box; wholly to one side, the box's outer edge is the outer rear corner
    (the inner edge shows the far end of the inner side), or, when the image border cuts the
    outer edge, the inner edge is where the inner side ends ``length`` beyond the near face.
    An object whose near face is outside the image is placed too far (the box bottom is then
    a point of its side).
    """
    x1, _, x2, bottom = (float(v) for v in box_xyxy)
    corners = pixels_to_road(np.array([[x1, bottom], [x2, bottom]]), k, t_camera_ego)
    if not np.all(np.isfinite(corners)):
        return None
    (near_x, left_y), (_, right_y) = corners
    length_m, width_m = size_lw_m
    if left_y >= 0 >= right_y:
        return np.array([near_x + length_m / 2, (left_y + right_y) / 2])
    side = 1.0 if right_y > 0 else -1.0  # wholly to the left (+1) or to the right (-1)
    if min(x1, image_width_px - x2) >= BORDER_PX:
        outer_y = left_y if side > 0 else right_y
        return np.array([near_x + length_m / 2, outer_y - side * width_m / 2])
    inner_px = x2 if side > 0 else x1
    inner_y = _column_y_at(inner_px, bottom, near_x + length_m, k, t_camera_ego)
    if inner_y is None:
        return None
    return np.array([near_x + length_m / 2, inner_y + side * width_m / 2])


def _column_y_at(
    column_px: float, row_px: float, x_m: float, k: np.ndarray, t_camera_ego: np.ndarray
) -> float | None:
    """Where the road line seen in an image column crosses ``x = x_m``: its y [m, ego
    frame]. The line is probed at ``row_px`` and SIDE_PROBE_PX above; None when a probe
    misses the road or the line runs across the road."""
    probe = np.array([[column_px, row_px], [column_px, row_px - SIDE_PROBE_PX]])
    (ax, ay), (bx, by) = pixels_to_road(probe, k, t_camera_ego)
    if not np.all(np.isfinite([ax, ay, bx, by])) or abs(bx - ax) < 1e-9:
        return None
    return float(ay + (x_m - ax) * (by - ay) / (bx - ax))


POLE_ASPECT = 1.5
"""A sign box taller than this many times its width holds the pole as well as the plate."""
PLATE_SHARE = 0.32
"""Least share of such a box's height the plate takes (a 0.9 m plate centred 2.4 m up)."""


def plate_box(box_xyxy: np.ndarray) -> np.ndarray:
    """The plate of a sign box [px]: our detector's sign boxes hold the pole too, so when a box
    is much taller than wide its top part (as tall as it is wide, or ``PLATE_SHARE`` of the box
    when seen at an angle) is the plate; other boxes (plate-only crops) are kept whole."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    width, height = x1 - x0, y1 - y0
    if height <= POLE_ASPECT * width:
        return np.array([x0, y0, x1, y1])
    return np.array([x0, y0, x1, y0 + max(width, PLATE_SHARE * height)])


def crop_box(pixels: np.ndarray, box_xyxy: np.ndarray) -> np.ndarray:
    """The pixels of a box [px], clipped to the image (at least 1 px a side)."""
    height, width = pixels.shape[:2]
    x1, y1 = int(max(np.floor(box_xyxy[0]), 0)), int(max(np.floor(box_xyxy[1]), 0))
    x2, y2 = int(min(np.ceil(box_xyxy[2]), width)), int(min(np.ceil(box_xyxy[3]), height))
    x1, y1 = min(x1, max(width - 1, 0)), min(y1, max(height - 1, 0))
    return pixels[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)]
