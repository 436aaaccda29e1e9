"""Pinhole model of the front camera: intrinsics, mounting, and vectorised projection.

Frames: ``map`` and ``ego`` use REP-103 axes (x forward, y left, z up; the ``ego`` origin is
the vehicle centre on the road surface). The camera frame uses OpenCV axes: x right, y down,
z forward along the optical axis. Pixel coordinates put (0, 0) at the top-left corner of the
top-left pixel, so the principal point of a W x H image is (W/2, H/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from bus.messages import Header, Pose2D
from bus.messages.camera import CameraInfo

EGO_TO_CAMERA_AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
"""Rotation from REP-103 (x fwd, y left, z up) to OpenCV (x right, y down, z fwd) axes."""


@dataclass(frozen=True)
class CameraConfig:
    """Front camera settings.

    :param width_px, height_px: image size [px].
    :param hfov_deg: horizontal field of view [deg]; square pixels (fy = fx).
    :param height_m: optical centre above the road [m].
    :param pitch_deg: downward tilt of the optical axis [deg].
    :param forward_m: optical centre ahead of the ego centre [m].
    :param near_m: polygons are clipped at this depth before projection [m].
    :param far_m: objects farther than this on the ground are not drawn or labelled [m].
    """

    width_px: int = 640
    height_px: int = 360
    hfov_deg: float = 70.0
    height_m: float = 1.4
    pitch_deg: float = 1.0
    forward_m: float = 1.0
    near_m: float = 0.5
    far_m: float = 160.0

    def __post_init__(self) -> None:
        if self.width_px < 16 or self.height_px < 16:
            raise ValueError(f"camera resolution {self.width_px}x{self.height_px} is too small")
        if not 10.0 <= self.hfov_deg <= 170.0:
            raise ValueError(f"camera hfov_deg {self.hfov_deg} is outside [10, 170]")
        if self.height_m <= 0 or self.near_m <= 0 or self.far_m <= self.near_m:
            raise ValueError("camera height_m and near_m must be > 0 and far_m > near_m")

    def jittered(self, height_m: float, pitch_deg: float) -> CameraConfig:
        """The same camera mounted at another height and pitch."""
        return replace(self, height_m=height_m, pitch_deg=pitch_deg)


class CameraModel:
    """Projection of ``map``-frame points for a camera on the ego vehicle."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        fx = config.width_px / 2 / math.tan(math.radians(config.hfov_deg) / 2)
        self.k = np.array(
            [[fx, 0.0, config.width_px / 2], [0.0, fx, config.height_px / 2], [0.0, 0.0, 1.0]]
        )
        pitch = math.radians(config.pitch_deg)
        tilt = np.array(
            [
                [1.0, 0.0, 0.0],
                [0.0, math.cos(pitch), -math.sin(pitch)],
                [0.0, math.sin(pitch), math.cos(pitch)],
            ]
        )
        self.r_camera_ego = tilt @ EGO_TO_CAMERA_AXES
        self.position_ego = np.array([config.forward_m, 0.0, config.height_m])
        self.t_camera_ego = -self.r_camera_ego @ self.position_ego

    @property
    def fx(self) -> float:
        return float(self.k[0, 0])

    @property
    def fy(self) -> float:
        return float(self.k[1, 1])

    def transform_ego(self) -> np.ndarray:
        """4x4 homogeneous transform taking ``ego`` points to the camera frame."""
        transform = np.eye(4)
        transform[:3, :3] = self.r_camera_ego
        transform[:3, 3] = self.t_camera_ego
        return transform

    def map_to_camera(self, ego_pose: Pose2D) -> tuple[np.ndarray, np.ndarray]:
        """Rotation (3x3) and translation (3,) taking ``map`` points to the camera frame."""
        cos_yaw, sin_yaw = math.cos(ego_pose.yaw), math.sin(ego_pose.yaw)
        r_ego_map = np.array([[cos_yaw, sin_yaw, 0.0], [-sin_yaw, cos_yaw, 0.0], [0.0, 0.0, 1.0]])
        rotation = self.r_camera_ego @ r_ego_map
        translation = self.t_camera_ego - rotation @ np.array([ego_pose.x, ego_pose.y, 0.0])
        return rotation, translation

    def camera_position_map(self, ego_pose: Pose2D) -> np.ndarray:
        """Optical centre in the ``map`` frame (3,) [m]."""
        cos_yaw, sin_yaw = math.cos(ego_pose.yaw), math.sin(ego_pose.yaw)
        forward = self.position_ego[0]
        return np.array(
            [ego_pose.x + cos_yaw * forward, ego_pose.y + sin_yaw * forward, self.position_ego[2]]
        )

    def to_camera(self, points_map: np.ndarray, ego_pose: Pose2D) -> np.ndarray:
        """(N, 3) ``map`` points [m] -> (N, 3) camera-frame points [m]."""
        rotation, translation = self.map_to_camera(ego_pose)
        return points_map @ rotation.T + translation

    def project_camera(self, points_camera: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points with z > 0 -> (N, 2) pixel coordinates (u, v)."""
        z = points_camera[:, 2:3]
        return points_camera[:, :2] / z * np.array([self.fx, self.fy]) + self.k[:2, 2]

    def project(self, points_map: np.ndarray, ego_pose: Pose2D) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) of ``map`` points (N, 3), and a mask (N,) of those ahead of the near
        plane (pixels of the others are meaningless)."""
        camera = self.to_camera(np.asarray(points_map, dtype=float), ego_pose)
        ahead = camera[:, 2] >= self.config.near_m
        safe = camera.copy()
        safe[~ahead, 2] = 1.0
        return self.project_camera(safe), ahead

    def camera_info(self, stamp_ns: int = 0) -> CameraInfo:
        config = self.config
        return CameraInfo(
            header=Header(stamp_ns=stamp_ns, frame_id="camera"),
            width=config.width_px,
            height=config.height_px,
            k=tuple(float(v) for v in self.k.ravel()),
            t_camera_ego=tuple(float(v) for v in self.transform_ego().ravel()),
            hfov_rad=math.radians(config.hfov_deg),
            height_m=config.height_m,
            pitch_rad=math.radians(config.pitch_deg),
            forward_m=config.forward_m,
        )
