"""Legible speed-limit plates: the limit in km/h written on signs near enough to read.

The polygon model draws two dark bars for the digits (what a distant plate looks like); once
the white disc of a plate facing the camera is at least :data:`MIN_READABLE_RADIUS_PX` wide,
the number is written over it, on the sign's own pixels only (occluders stay in front).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from bus.messages.world import SignType, StaticWorld
from sim.camera.meshes import SIGN_POLE_HALF_WIDTH_M
from sim.camera.model import CameraModel

MIN_READABLE_RADIUS_PX = 6.0
INNER_DISC_FRACTION = 0.75
"""Radius of the white disc relative to the plate's (see ``meshes.sign_template``)."""
TEXT_COLOR = (20, 20, 20)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def speed_limit_text(speed_limit_mps: float) -> str:
    """The number a plate shows: the limit in km/h rounded to a multiple of 10."""
    return str(int(round(speed_limit_mps * 3.6 / 10.0)) * 10)


def draw_speed_limits(
    image: np.ndarray,
    instance_ids: np.ndarray,
    static: StaticWorld | None,
    camera: CameraModel,
    rotation: np.ndarray,
    translation: np.ndarray,
    camera_position_map: np.ndarray,
) -> None:
    """Write the limits on the visible speed-limit plates of ``image`` (in place)."""
    if static is None:
        return
    height, width = instance_ids.shape
    for sign in static.signs:
        if sign.sign_type != SignType.SPEED_LIMIT or sign.speed_limit_mps <= 0:
            continue
        normal = np.array([math.cos(sign.pose.yaw), math.sin(sign.pose.yaw), 0.0])
        centre = np.array([sign.pose.x, sign.pose.y, sign.plate_center_height_m])
        centre = centre + normal * (SIGN_POLE_HALF_WIDTH_M + 0.01)
        to_camera = camera_position_map - centre
        distance = float(np.linalg.norm(to_camera))
        facing = float(normal @ to_camera) / max(distance, 1e-9)
        point = rotation @ centre + translation
        if facing <= 0.2 or point[2] < camera.config.near_m:
            continue
        radius_y = camera.fy * INNER_DISC_FRACTION * sign.plate_size_m / 2 / point[2]
        radius_x = radius_y * facing
        if radius_x < MIN_READABLE_RADIUS_PX:
            continue
        u, v = camera.project_camera(point[None])[0]
        x0, x1 = max(int(u - radius_x) - 1, 0), min(int(u + radius_x) + 2, width)
        y0, y1 = max(int(v - radius_y) - 1, 0), min(int(v + radius_y) + 2, height)
        if x1 <= x0 or y1 <= y0:
            continue
        own = instance_ids[y0:y1, x0:x1] == sign.sign_id
        if not own.any():
            continue
        patch = image[y0:y1, x0:x1].copy()
        # The disc's own (shaded) white, above the digit bars.
        row, col = int(v - 0.6 * radius_y) - y0, int(u) - x0
        if not (0 <= row < patch.shape[0] and 0 <= col < patch.shape[1] and own[row, col]):
            continue
        white = tuple(int(c) for c in patch[row, col])
        _write_number(
            patch,
            speed_limit_text(sign.speed_limit_mps),
            (u - x0, v - y0),
            (radius_x, radius_y),
            white,
        )
        image[y0:y1, x0:x1][own] = patch[own]


def _write_number(
    patch: np.ndarray,
    text: str,
    centre: tuple[float, float],
    radii: tuple[float, float],
    white: tuple[int, ...],
) -> None:
    """White disc (an ellipse when seen at an angle) with ``text`` squeezed to fit it."""
    cx, cy = centre
    rx, ry = radii
    cv2.ellipse(
        patch,
        (int(round(cx)), int(round(cy))),
        (int(round(rx + 0.5)), int(round(ry + 0.5))),
        0,
        0,
        360,
        white,
        -1,
        cv2.LINE_AA,
    )
    # Write at a size where it fits 1.5 radii wide, then squeeze it into the ellipse.
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, 1.0, 2)
    scale = 1.5 * ry / text_w
    thickness = max(1, int(round(scale * 2.5)))
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    canvas = np.full((text_h + baseline + 2, text_w + 2, 3), white, np.uint8)
    cv2.putText(canvas, text, (1, text_h + 1), FONT, scale, TEXT_COLOR, thickness, cv2.LINE_AA)
    squeezed_w = max(int(round(canvas.shape[1] * rx / ry)), 1)
    canvas = cv2.resize(canvas, (squeezed_w, canvas.shape[0]), interpolation=cv2.INTER_AREA)
    top, left = int(round(cy - canvas.shape[0] / 2)), int(round(cx - canvas.shape[1] / 2))
    y0, x0 = max(top, 0), max(left, 0)
    y1 = min(top + canvas.shape[0], patch.shape[0])
    x1 = min(left + canvas.shape[1], patch.shape[1])
    if y1 > y0 and x1 > x0:
        patch[y0:y1, x0:x1] = canvas[y0 - top : y1 - top, x0 - left : x1 - left]
