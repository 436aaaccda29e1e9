"""Polygon soup -> pixels: camera transform, back-face culling, near-plane clipping, shading,
painter's-order filling of the colour image and the object-id buffer.

Pixel convention: (0, 0) is the top-left corner of the top-left pixel; OpenCV puts integer
coordinates at pixel centres, so vertices are shifted by half a pixel before filling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from sim.camera.model import CameraModel
from sim.camera.randomize import Appearance

SUBPIXEL_BITS = 4
"""Fixed-point fraction bits passed to OpenCV's polygon fill."""
FAR_MARGIN_M = 30.0
"""Ground polygons starting this far beyond ``far_m`` are dropped."""


@dataclass
class PolygonSoup:
    """Polygons in draw order, ``map`` frame. Per polygon: vertex count, base colour (RGB
    0-255), owner (object index, -1 for the road), cull (back-face test and Lambert shading),
    decal (adds nothing to its owner's outline)."""

    verts: list[np.ndarray] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)
    colors: list[np.ndarray] = field(default_factory=list)
    owners: list[np.ndarray] = field(default_factory=list)
    cull: list[np.ndarray] = field(default_factory=list)
    decals: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        verts: np.ndarray,
        counts: np.ndarray,
        colors: np.ndarray,
        owner: int,
        cull: bool,
        decals: np.ndarray | None = None,
    ) -> None:
        count = len(counts)
        self.verts.append(verts.reshape(-1, 3))
        self.counts.append(np.asarray(counts, dtype=np.int64))
        self.colors.append(np.asarray(colors, dtype=np.float32).reshape(-1, 3))
        self.owners.append(np.full(count, owner, dtype=np.int64))
        self.cull.append(np.full(count, cull, dtype=bool))
        self.decals.append(np.zeros(count, bool) if decals is None else decals)


@dataclass
class Projected:
    """Polygons that survive culling, in draw order: ``pixels`` (K_i, 2) each, ``colors``
    (P, 3) shaded RGB, ``owners`` (P,), ``decals`` (P,)."""

    pixels: list[np.ndarray]
    colors: np.ndarray
    owners: np.ndarray
    decals: np.ndarray
    _fixed: list[np.ndarray] | None = field(default=None, repr=False)

    def fixed_point(self) -> list[np.ndarray]:
        """The polygons as OpenCV fixed-point vertices (computed once)."""
        if self._fixed is None:
            vertices = fixed_point(np.concatenate(self.pixels)) if self.pixels else None
            bounds = np.cumsum([0] + [len(p) for p in self.pixels]).tolist()
            self._fixed = [
                vertices[bounds[i] : bounds[i + 1]]  # type: ignore[index]
                for i in range(len(self.pixels))
            ]
        return self._fixed


def project(
    soup: PolygonSoup,
    camera: CameraModel,
    rotation: np.ndarray,
    translation: np.ndarray,
    appearance: Appearance,
    gain: float,
) -> Projected:
    """Cull, shade, clip and project the soup for a camera at ``rotation``/``translation``
    (``map`` -> camera)."""
    if not soup.counts:
        return Projected([], np.zeros((0, 3), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))
    verts = np.concatenate(soup.verts) @ rotation.T + translation
    counts = np.concatenate(soup.counts)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    ends = starts + counts
    cull = np.concatenate(soup.cull)

    # Back-face culling with Newell normals (the camera sits at the origin).
    following = np.arange(len(verts)) + 1
    following[ends - 1] = starts
    normals = np.add.reduceat(np.cross(verts, verts[following]), starts, axis=0)
    facing = np.einsum("ij,ij->i", normals, -verts[starts]) > 0
    z_min = np.minimum.reduceat(verts[:, 2], starts)
    z_max = np.maximum.reduceat(verts[:, 2], starts)
    near, far = camera.config.near_m, camera.config.far_m
    keep = (z_max > near) & (z_min < far + FAR_MARGIN_M) & (facing | ~cull)

    # Lambert shading of object faces under the episode's sun; the ground is lit evenly.
    sun = rotation @ appearance.sun_direction
    unit = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    lambert = np.clip(unit @ sun, 0.0, None)
    sun_up = max(-float(sun[1]), 0.3)  # the camera's y axis points down
    shade = np.where(
        cull,
        appearance.ambient + appearance.diffuse * lambert,
        appearance.ambient + appearance.diffuse * sun_up,
    )
    colors = np.concatenate(soup.colors) * (shade * gain)[:, None]

    # Project every vertex once; only polygons crossing the near plane are clipped one by one.
    safe = verts.copy()
    safe[:, 2] = np.maximum(safe[:, 2], near)
    projected = camera.project_camera(safe)
    pixels: list[np.ndarray] = []
    for index in np.flatnonzero(keep):
        if z_min[index] < near:
            polygon = clip_near(verts[starts[index] : ends[index]], near)
            if len(polygon) < 3:
                keep[index] = False
                continue
            pixels.append(camera.project_camera(polygon))
        else:
            pixels.append(projected[starts[index] : ends[index]])
    return Projected(
        pixels,
        np.clip(colors[keep], 0, 255),
        np.concatenate(soup.owners)[keep],
        np.concatenate(soup.decals)[keep],
    )


def clip_near(polygon: np.ndarray, near_m: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon (K, 3) to ``z >= near_m``."""
    result = []
    count = len(polygon)
    for i in range(count):
        current, following = polygon[i], polygon[(i + 1) % count]
        inside_current, inside_next = current[2] >= near_m, following[2] >= near_m
        if inside_current:
            result.append(current)
        if inside_current != inside_next:
            t = (near_m - current[2]) / (following[2] - current[2])
            result.append(current + t * (following - current))
    return np.array(result) if result else np.zeros((0, 3))


def background(camera: CameraModel, appearance: Appearance, gain: float) -> np.ndarray:
    """HxWx3 uint8: sky gradient above the horizon, ground below."""
    config = camera.config
    horizon = camera.k[1, 2] - camera.fy * math.tan(math.radians(config.pitch_deg))
    rows = np.arange(config.height_px) + 0.5
    above = np.clip(rows / max(horizon, 1.0), 0.0, 1.0)[:, None]
    sky = appearance.sky_top_rgb * (1 - above) + appearance.sky_horizon_rgb * above
    below = np.clip((rows - horizon) / max(config.height_px - horizon, 1.0), 0.0, 1.0)[:, None]
    ground = appearance.ground_rgb * (0.85 + 0.15 * below)
    colors = np.clip(np.where((rows < horizon)[:, None], sky, ground) * gain, 0, 255)
    return cv2.resize(
        colors.astype(np.uint8)[:, None, :],
        (config.width_px, config.height_px),
        interpolation=cv2.INTER_NEAREST,
    )


def fixed_point(pixels: np.ndarray, origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Pixel coordinates (K, 2) -> OpenCV fixed-point vertices relative to ``origin``."""
    shifted = pixels - (origin[0] + 0.5, origin[1] + 0.5)
    return np.round(shifted * (1 << SUBPIXEL_BITS)).astype(np.int32)


def rasterise(projected: Projected, image: np.ndarray, object_ids: np.ndarray) -> np.ndarray:
    """Fill the polygons in order into ``image`` (HxWx3 uint8, in place) and return the id
    buffer (HxW int32): ``object_ids[owner]`` where an object is drawn last, 0 elsewhere."""
    ids = np.zeros(image.shape[:2], dtype=np.int32)
    if not projected.pixels:
        return ids
    polygons = projected.fixed_point()
    colors = projected.colors.astype(np.uint8).tolist()
    owners = projected.owners.tolist()
    decals = projected.decals.tolist()
    for index, owner in enumerate(owners):
        polygon = [polygons[index]]
        cv2.fillPoly(image, polygon, colors[index], cv2.LINE_8, SUBPIXEL_BITS)
        if owner >= 0 and not decals[index]:  # a decal's pixels already carry its owner's id
            cv2.fillPoly(ids, polygon, int(object_ids[owner]), cv2.LINE_8, SUBPIXEL_BITS)
    return ids


def outline_boxes_and_areas(projected: Projected, width: int, height: int) -> dict[int, tuple]:
    """Per drawn object index: (unclipped bounds (x0, y0, x1, y1) of its projected outline,
    bounds of the pixels it fills drawn alone in the image (or None), that pixel count).

    OpenCV fills a polygon's boundary pixels too, up to a pixel beyond the exact outline, so
    the filled bounds, not the projected ones, are what contains the object's pixels."""
    by_owner: dict[int, list[int]] = {}
    for index, (owner, decal) in enumerate(
        zip(projected.owners.tolist(), projected.decals.tolist(), strict=True)
    ):
        if owner >= 0 and not decal:
            by_owner.setdefault(owner, []).append(index)
    fixed = projected.fixed_point()
    result: dict[int, tuple] = {}
    for owner, members in by_owner.items():
        points = np.concatenate([projected.pixels[i] for i in members])
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        outline = (float(x0), float(y0), float(x1), float(y1))
        cx0, cy0 = max(int(math.floor(x0)) - 1, 0), max(int(math.floor(y0)) - 1, 0)
        cx1, cy1 = min(int(math.ceil(x1)) + 1, width), min(int(math.ceil(y1)) + 1, height)
        if cx1 <= cx0 or cy1 <= cy0:
            result[owner] = (outline, None, 0)
            continue
        mask = np.zeros((cy1 - cy0, cx1 - cx0), np.uint8)
        origin = np.array([cx0, cy0], np.int32) << SUBPIXEL_BITS
        # One call per polygon: OpenCV fills overlapping polygons of one call even-odd.
        for index in members:
            cv2.fillPoly(mask, [fixed[index] - origin], 1, cv2.LINE_8, SUBPIXEL_BITS)
        area = int(cv2.countNonZero(mask))
        if area == 0:
            result[owner] = (outline, None, 0)
            continue
        x, y, w, h = cv2.boundingRect(mask)
        filled = (float(cx0 + x), float(cy0 + y), float(cx0 + x + w), float(cy0 + y + h))
        result[owner] = (outline, filled, area)
    return result
