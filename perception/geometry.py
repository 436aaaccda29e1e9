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
