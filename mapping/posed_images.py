"""Localization in a map built from real posed images (KITTI odometry and the like).

The simulator's landmark CNN has never seen a real frame, so real sequences use the
structure-based path that the CNN's pose solve mirrors: a map of keyframes with known poses
whose SIFT features are triangulated into 3-D points between keyframe pairs; a query frame
retrieves the keyframe it shares most feature matches with, matches its features to that
keyframe's 3-D points and solves its pose with RANSAC PnP (then Levenberg-Marquardt).

Frames: camera poses are 4x4 camera-to-world transforms with OpenCV camera axes (x right,
y down, z forward), the convention of KITTI's ground-truth poses (world = first camera).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

RATIO_TEST = 0.75
"""Lowe's ratio: a match is kept when its distance is below this share of the second best."""


@dataclass(frozen=True)
class PosedImage:
    """A grey image (H, W) uint8, its 3x3 intrinsics K [px] and 4x4 camera-to-world pose."""

    name: str
    image: np.ndarray
    k: np.ndarray
    camera_to_world: np.ndarray


@dataclass(frozen=True)
class FeatureMapConfig:
    """:param max_reprojection_px: triangulated points and PnP inliers must reproject within
        this many pixels.
    :param min_parallax_deg: triangulated points need at least this ray angle.
    :param min_inliers: a pose with fewer PnP inliers is reported as not localized.
    """

    max_features: int = 4000
    max_reprojection_px: float = 2.0
    min_parallax_deg: float = 0.5
    min_inliers: int = 30
    ransac_iterations: int = 2000


@dataclass
class _Keyframe:
    frame: PosedImage
    keypoints: np.ndarray  # (N, 2) px
    descriptors: np.ndarray  # (N, 128) float32
    point_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """(N,) index into the map's 3-D points of each keypoint, -1 when none."""


@dataclass(frozen=True)
class PoseResult:
    """A query's pose (4x4 camera-to-world) or None, the keyframe used and the inlier count."""

    camera_to_world: np.ndarray | None
    keyframe: str
    inliers: int
    matches: int


class FeatureMap:
    """Keyframes with triangulated SIFT points; :meth:`localize` solves query poses."""

    def __init__(self, keyframes: list[PosedImage], config: FeatureMapConfig | None = None):
        self.config = config or FeatureMapConfig()
        self._sift = cv2.SIFT_create(nfeatures=self.config.max_features)
        self._matcher = cv2.BFMatcher(cv2.NORM_L2)
        self.keyframes = [self._describe(frame) for frame in keyframes]
        self.points_world = np.zeros((0, 3))
        for keyframe in self.keyframes:
            keyframe.point_index = np.full(len(keyframe.keypoints), -1, np.int64)
        for a in range(len(self.keyframes)):
            for b in range(a + 1, len(self.keyframes)):
                self._triangulate(self.keyframes[a], self.keyframes[b])
        logger.info(
            "feature map: %d keyframes, %d points", len(self.keyframes), len(self.points_world)
        )

    def _describe(self, frame: PosedImage) -> _Keyframe:
        keypoints, descriptors = self._sift.detectAndCompute(frame.image, None)
        xy = np.array([kp.pt for kp in keypoints], dtype=np.float64).reshape(-1, 2)
        if descriptors is None:
            descriptors = np.zeros((0, 128), np.float32)
        return _Keyframe(frame, xy, descriptors)

    def _match(self, query: np.ndarray, train: np.ndarray) -> list[tuple[int, int]]:
        if len(query) < 2 or len(train) < 2:
            return []
        pairs = self._matcher.knnMatch(query, train, k=2)
        return [
            (m.queryIdx, m.trainIdx)
            for m, n in (p for p in pairs if len(p) == 2)
            if m.distance < RATIO_TEST * n.distance
        ]

    def _triangulate(self, a: _Keyframe, b: _Keyframe) -> None:
        matches = self._match(a.descriptors, b.descriptors)
        if len(matches) < 8:
            return
        ia, ib = (np.array(side) for side in zip(*matches, strict=True))
        projection_a, projection_b = _projection(a.frame), _projection(b.frame)
        homogeneous = cv2.triangulatePoints(
            projection_a, projection_b, a.keypoints[ia].T, b.keypoints[ib].T
        )
        points = (homogeneous[:3] / homogeneous[3]).T
        keep = (
            _reprojection_ok(points, a, ia, self.config.max_reprojection_px)
            & _reprojection_ok(points, b, ib, self.config.max_reprojection_px)
            & _parallax_ok(points, a.frame, b.frame, self.config.min_parallax_deg)
            & (a.point_index[ia] < 0)
            & (b.point_index[ib] < 0)
        )
        first = len(self.points_world)
        self.points_world = np.concatenate([self.points_world, points[keep]])
        new_index = np.arange(first, len(self.points_world))
        a.point_index[ia[keep]] = new_index
        b.point_index[ib[keep]] = new_index

    def localize(self, image: np.ndarray, k: np.ndarray) -> PoseResult:
        """Pose of a grey query image (H, W) uint8 with intrinsics ``k`` (3x3)."""
        keypoints, descriptors = self._sift.detectAndCompute(image, None)
        if descriptors is None:
            return PoseResult(None, "", 0, 0)
        xy = np.array([kp.pt for kp in keypoints], dtype=np.float64)

        # Retrieval: the keyframe with the most ratio-test matches that carry a 3-D point.
        best: tuple[int, _Keyframe | None, list] = (0, None, [])
        for keyframe in self.keyframes:
            matches = [
                (q, t)
                for q, t in self._match(descriptors, keyframe.descriptors)
                if keyframe.point_index[t] >= 0
            ]
            if len(matches) > best[0]:
                best = (len(matches), keyframe, matches)
        count, keyframe, matches = best
        if keyframe is None or count < 6:
            return PoseResult(None, "", 0, count)

        # Geometry: RANSAC PnP on the 2-D/3-D matches, refined on the inliers.
        image_points = xy[[q for q, _ in matches]]
        world_points = self.points_world[keyframe.point_index[[t for _, t in matches]]]
        found, rvec, tvec, inliers = cv2.solvePnPRansac(
            world_points,
            image_points,
            k,
            None,
            iterationsCount=self.config.ransac_iterations,
            reprojectionError=self.config.max_reprojection_px,
            flags=cv2.SOLVEPNP_EPNP,
        )
        inlier_count = 0 if inliers is None else len(inliers)
        if not found or inlier_count < self.config.min_inliers:
            return PoseResult(None, keyframe.frame.name, inlier_count, count)
        rows = inliers[:, 0]
        rvec, tvec = cv2.solvePnPRefineLM(
            world_points[rows], image_points[rows], k, None, rvec, tvec
        )
        return PoseResult(_camera_to_world(rvec, tvec), keyframe.frame.name, inlier_count, count)


def _projection(frame: PosedImage) -> np.ndarray:
    world_to_camera = np.linalg.inv(frame.camera_to_world)
    return frame.k @ world_to_camera[:3]


def _reprojection_ok(
    points: np.ndarray, keyframe: _Keyframe, index: np.ndarray, max_px: float
) -> np.ndarray:
    world_to_camera = np.linalg.inv(keyframe.frame.camera_to_world)
    camera = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    in_front = camera[:, 2] > 0.5
    pixels = camera @ keyframe.frame.k.T
    pixels = pixels[:, :2] / np.where(in_front, camera[:, 2], 1.0)[:, None]
    error = np.linalg.norm(pixels - keyframe.keypoints[index], axis=1)
    return in_front & (error < max_px)


def _parallax_ok(points: np.ndarray, a: PosedImage, b: PosedImage, min_deg: float) -> np.ndarray:
    ray_a = points - a.camera_to_world[:3, 3]
    ray_b = points - b.camera_to_world[:3, 3]
    cosine = (ray_a * ray_b).sum(axis=1) / (
        np.linalg.norm(ray_a, axis=1) * np.linalg.norm(ray_b, axis=1) + 1e-12
    )
    return cosine < math.cos(math.radians(min_deg))


def _camera_to_world(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    rotation, _ = cv2.Rodrigues(rvec)
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = rotation
    world_to_camera[:3, 3] = tvec.ravel()
    return np.linalg.inv(world_to_camera)


def pose_errors(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(position error [m], rotation error [deg]) between two 4x4 camera-to-world poses."""
    position = float(np.linalg.norm(estimate[:3, 3] - truth[:3, 3]))
    relative = estimate[:3, :3].T @ truth[:3, :3]
    angle = math.acos(max(-1.0, min(1.0, (np.trace(relative) - 1.0) / 2.0)))
    return position, math.degrees(angle)


def read_kitti_poses(path: str | Path) -> np.ndarray:
    """KITTI odometry poses (one 3x4 row-major camera-0-to-world matrix a line) -> (N, 4, 4).

    :raises ValueError: a line without 12 numbers (names the file and line).
    """
    poses = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        values = line.split()
        if not values:
            continue
        try:
            matrix = np.array([float(v) for v in values], dtype=float)
        except ValueError:
            raise ValueError(f"{path}:{number}: not numbers: {line[:60]!r}") from None
        if matrix.size != 12 or not np.all(np.isfinite(matrix)):
            raise ValueError(f"{path}:{number}: expected 12 finite numbers, got {matrix.size}")
        pose = np.eye(4)
        pose[:3] = matrix.reshape(3, 4)
        poses.append(pose)
    return np.stack(poses)
