"""3-D polygon models of the things the camera sees, and their placement in the ``map`` frame.

A :class:`Template` is a list of planar polygons in an object's local frame (x forward along
its yaw, y left, z up, origin at the footprint centre on the road). A vertex is
``scale * dims + offset`` so one template serves vehicles of any length and width. Polygons
are wound counter-clockwise seen from outside (the right-hand normal points out), which the
renderer uses for back-face culling. Within an object, polygons are drawn in list order, so a
decal (window, light, sign face) follows the face it lies on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bus.messages.world import Landmark, LandmarkShape, SignType

CAR_HEIGHT_M = 1.5
TRUCK_HEIGHT_M = 3.8
TRUCK_CAB_HEIGHT_M = 3.0
TRUCK_CAB_LENGTH_M = 2.4
PEDESTRIAN_HEIGHT_M = 1.75
SIGN_POLE_HALF_WIDTH_M = 0.04

# Colour roles: polygons take their colour from the instance's colour table by role; role -1
# means the template's own fixed colour.
FIXED, BODY, GLASS, TAIL_LIGHT, DARK, CARGO, SKIN, TROUSERS = -1, 0, 1, 2, 3, 4, 5, 6
ROLE_COUNT = 7

RED, WHITE, BLACK, GREY = (200, 25, 30), (240, 240, 240), (20, 20, 20), (150, 150, 155)
POLE_GREY = (120, 120, 125)

# Face order of a box, each a corner list of (x, y, z) bits: 0 = low bound, 1 = high bound.
_BOX_FACES = {
    "+x": ((1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1)),
    "-x": ((0, 1, 0), (0, 0, 0), (0, 0, 1), (0, 1, 1)),
    "+y": ((1, 1, 0), (0, 1, 0), (0, 1, 1), (1, 1, 1)),
    "-y": ((0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1)),
    "+z": ((0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)),
    "-z": ((0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0)),
}
ALL_FACES = tuple(_BOX_FACES)

Bound = tuple[float, float]
"""A coordinate as (scale, offset): value = scale * dimension + offset."""


@dataclass(frozen=True)
class Template:
    """Polygons of one kind of object. Arrays: ``scale``/``offset`` (V, 3); per polygon
    ``starts``/``counts`` (P,) into the vertices, ``roles`` (P,) int, ``colors`` (P, 3),
    ``decals`` (P,) bool: lies on another polygon of the object, so adds nothing to its outline."""

    scale: np.ndarray
    offset: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    roles: np.ndarray
    colors: np.ndarray
    decals: np.ndarray


class TemplateBuilder:
    def __init__(self) -> None:
        self._scale: list[tuple[float, float, float]] = []
        self._offset: list[tuple[float, float, float]] = []
        self._counts: list[int] = []
        self._roles: list[int] = []
        self._colors: list[tuple[float, float, float]] = []
        self._decals: list[bool] = []

    def polygon(
        self,
        points: list[tuple[Bound, Bound, Bound]],
        role: int = FIXED,
        color: tuple[float, float, float] = (0, 0, 0),
        decal: bool = False,
    ) -> TemplateBuilder:
        for bx, by, bz in points:
            self._scale.append((bx[0], by[0], bz[0]))
            self._offset.append((bx[1], by[1], bz[1]))
        self._counts.append(len(points))
        self._roles.append(role)
        self._colors.append(color)
        self._decals.append(decal)
        return self

    def box(
        self,
        x: tuple[Bound, Bound],
        y: tuple[Bound, Bound],
        z: tuple[Bound, Bound],
        role: int = FIXED,
        color=(0, 0, 0),
        faces=ALL_FACES,
    ) -> TemplateBuilder:
        """A box (or a decal: a box flat along one axis, with the faces of that axis)."""
        bounds = (x, y, z)
        flat = any(low == high for low, high in bounds)
        for face in faces:
            points = [
                (bounds[0][x_bit], bounds[1][y_bit], bounds[2][z_bit])
                for x_bit, y_bit, z_bit in _BOX_FACES[face]
            ]
            self.polygon(points, role, color, decal=flat)
        return self

    def build(self) -> Template:
        counts = np.array(self._counts, dtype=np.int64)
        return Template(
            scale=np.array(self._scale, dtype=float),
            offset=np.array(self._offset, dtype=float),
            starts=np.concatenate(([0], np.cumsum(counts)[:-1])),
            counts=counts,
            roles=np.array(self._roles, dtype=np.int64),
            colors=np.array(self._colors, dtype=np.float32),
            decals=np.array(self._decals, dtype=bool),
        )


def fixed(value: float) -> Bound:
    return (0.0, value)


def scaled(fraction: float, offset: float = 0.0) -> Bound:
    return (fraction, offset)


@lru_cache(maxsize=1)
def car_template() -> Template:
    """A car: a box of the vehicle's length and width, with windows, lights and wheels."""
    h = CAR_HEIGHT_M
    b = TemplateBuilder()
    full_x, full_y = (scaled(-0.5), scaled(0.5)), (scaled(-0.5), scaled(0.5))
    b.box(full_x, full_y, (fixed(0.0), fixed(h)), BODY)
    window_z = (fixed(0.6 * h), fixed(0.92 * h))
    glass_y = (scaled(-0.42), scaled(0.42))
    b.box((scaled(-0.5), scaled(-0.5)), glass_y, window_z, GLASS, faces=("-x",))
    b.box((scaled(0.5), scaled(0.5)), glass_y, window_z, GLASS, faces=("+x",))
    for side, face in ((0.5, "+y"), (-0.5, "-y")):
        b.box(
            (scaled(-0.33), scaled(0.22)),
            (scaled(side), scaled(side)),
            window_z,
            GLASS,
            faces=(face,),
        )
        for wheel_x in (-0.3, 0.3):
            b.box(
                (scaled(wheel_x, -0.35), scaled(wheel_x, 0.35)),
                (scaled(side), scaled(side)),
                (fixed(0.0), fixed(0.42)),
                DARK,
                faces=(face,),
            )
    for y0, y1 in ((-0.46, -0.3), (0.3, 0.46)):
        b.box(
            (scaled(-0.5), scaled(-0.5)),
            (scaled(y0), scaled(y1)),
            (fixed(0.42 * h), fixed(0.52 * h)),
            TAIL_LIGHT,
            faces=("-x",),
        )
    b.box((scaled(-0.5), scaled(-0.5)), full_y, (fixed(0.0), fixed(0.2 * h)), DARK, faces=("-x",))
    return b.build()


@lru_cache(maxsize=1)
def truck_template() -> Template:
    """A truck: a cab at the front and a taller cargo box behind it."""
    b = TemplateBuilder()
    full_y = (scaled(-0.5), scaled(0.5))
    cab_x = (scaled(0.5, -TRUCK_CAB_LENGTH_M), scaled(0.5))
    b.box(cab_x, full_y, (fixed(0.0), fixed(TRUCK_CAB_HEIGHT_M)), BODY)
    b.box(
        (scaled(0.5), scaled(0.5)),
        (scaled(-0.44), scaled(0.44)),
        (fixed(1.6), fixed(2.7)),
        GLASS,
        faces=("+x",),
    )
    cargo_x = (scaled(-0.5), scaled(0.5, -TRUCK_CAB_LENGTH_M - 0.1))
    b.box(cargo_x, full_y, (fixed(0.0), fixed(TRUCK_HEIGHT_M)), CARGO)
    rear = (scaled(-0.5), scaled(-0.5))
    b.box(
        rear,
        (scaled(-0.01, -0.03), scaled(0.01, 0.03)),
        (fixed(0.9), fixed(3.7)),
        DARK,
        faces=("-x",),
    )
    b.box(rear, full_y, (fixed(0.0), fixed(0.8)), DARK, faces=("-x",))
    for y0, y1 in ((-0.47, -0.33), (0.33, 0.47)):
        b.box(rear, (scaled(y0), scaled(y1)), (fixed(0.85), fixed(1.05)), TAIL_LIGHT, faces=("-x",))
    for side, face in ((0.5, "+y"), (-0.5, "-y")):
        b.box(
            (scaled(0.5, -2.2), scaled(0.5, -1.0)),
            (scaled(side), scaled(side)),
            (fixed(1.6), fixed(2.5)),
            GLASS,
            faces=(face,),
        )
        for wheel_x in (-0.5, 0.5):
            offset = 1.6 if wheel_x < 0 else -1.3
            b.box(
                (scaled(wheel_x, offset - 0.5), scaled(wheel_x, offset + 0.5)),
                (scaled(side), scaled(side)),
                (fixed(0.0), fixed(1.0)),
                DARK,
                faces=(face,),
            )
    return b.build()


@lru_cache(maxsize=1)
def pedestrian_template() -> Template:
    """A walker 1.75 m tall: legs, torso, head (no inner horizontal faces)."""
    b = TemplateBuilder()
    side = ("+x", "-x", "+y", "-y")
    b.box(
        (fixed(-0.12), fixed(0.12)),
        (fixed(-0.2), fixed(0.2)),
        (fixed(0.0), fixed(0.85)),
        TROUSERS,
        faces=side,
    )
    b.box(
        (fixed(-0.15), fixed(0.15)),
        (fixed(-0.25), fixed(0.25)),
        (fixed(0.85), fixed(1.5)),
        BODY,
        faces=side,
    )
    b.box(
        (fixed(-0.11), fixed(0.11)),
        (fixed(-0.1), fixed(0.1)),
        (fixed(1.5), fixed(PEDESTRIAN_HEIGHT_M)),
        SKIN,
        faces=(*side, "+z"),
    )
    return b.build()


def _plate(b: TemplateBuilder, yz: np.ndarray, x: float, color, decal: bool = True) -> None:
    """A flat polygon facing +x; ``yz`` (K, 2) counter-clockwise seen from the front."""
    b.polygon([(fixed(x), fixed(float(y)), fixed(float(z))) for y, z in yz], FIXED, color, decal)


def _ngon(count: int, radius: float, center_z: float, start_rad: float = 0.0) -> np.ndarray:
    angles = start_rad + 2 * np.pi * np.arange(count) / count
    # Counter-clockwise seen from +x means from +y (the viewer's right) towards +z... the viewer
    # faces -x, so their right is +y: increasing angle from +y to +z turns counter-clockwise.
    return np.stack([radius * np.cos(angles), center_z + radius * np.sin(angles)], axis=1)


@lru_cache(maxsize=64)
def sign_template(sign_type: SignType, plate_size_m: float, center_height_m: float) -> Template:
    """A sign: grey pole, and a plate facing local +x with a grey back."""
    r, zc = plate_size_m / 2, center_height_m
    b = TemplateBuilder()
    pole = (fixed(-SIGN_POLE_HALF_WIDTH_M), fixed(SIGN_POLE_HALF_WIDTH_M))
    b.box(pole, pole, (fixed(0.0), fixed(zc)), FIXED, POLE_GREY)
    x = SIGN_POLE_HALF_WIDTH_M + 0.01
    if sign_type in (SignType.SPEED_LIMIT, SignType.NO_OVERTAKING):
        outline = _ngon(20, r, zc)
        _plate(b, outline, x, RED, decal=False)
        _plate(b, _ngon(20, 0.75 * r, zc), x, WHITE)
        if sign_type == SignType.NO_OVERTAKING:
            for y0, color in ((-0.45 * r, RED), (0.05 * r, BLACK)):
                _plate(b, _rect(y0, y0 + 0.4 * r, zc - 0.25 * r, zc + 0.2 * r), x, color)
        else:
            # Two bars stand for the digits; sim/camera/plates.py writes the number on plates
            # near enough to read.
            for y0 in (-0.4 * r, 0.05 * r):
                _plate(b, _rect(y0, y0 + 0.32 * r, zc - 0.35 * r, zc + 0.35 * r), x, BLACK)
                _plate(b, _rect(y0 + 0.09 * r, y0 + 0.23 * r, zc - 0.2 * r, zc + 0.2 * r), x, WHITE)
    elif sign_type == SignType.STOP:
        outline = _ngon(8, r, zc, np.pi / 8)
        _plate(b, outline, x, WHITE, decal=False)
        _plate(b, _ngon(8, 0.9 * r, zc, np.pi / 8), x, RED)
        _plate(b, _rect(-0.6 * r, 0.6 * r, zc - 0.15 * r, zc + 0.15 * r), x, WHITE)
    else:
        start = -np.pi / 2 if sign_type == SignType.YIELD else np.pi / 2
        outline = _ngon(3, r, zc, start)
        _plate(b, outline, x, RED, decal=False)
        _plate(b, _ngon(3, 0.62 * r, zc, start), x, WHITE)
        if sign_type == SignType.WARNING:
            _plate(b, _rect(-0.06 * r, 0.06 * r, zc - 0.15 * r, zc + 0.35 * r), x, BLACK)
    _plate(b, outline[::-1], x - 0.005, GREY, decal=False)
    return b.build()


def _rect(y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
    return np.array([(y0, z0), (y1, z0), (y1, z1), (y0, z1)])


def landmark_template(landmark: Landmark) -> Template:
    """A landmark's structure with its colour pattern (fixed colours)."""
    colors = [tuple(float(c) for c in rgb) for rgb in landmark.colors_rgb] or [(200, 200, 200)]
    length, width, height = landmark.length_m, landmark.width_m, landmark.height_m
    b = TemplateBuilder()
    if landmark.shape in (LandmarkShape.TOWER, LandmarkShape.SILO):
        sides = 4 if landmark.shape == LandmarkShape.TOWER else 12
        _banded_prism(b, sides, length / 2, width / 2, height, colors)
    elif landmark.shape == LandmarkShape.BILLBOARD:
        post = 0.15
        for x in (-0.3 * length, 0.3 * length):
            b.box(
                (fixed(x - post), fixed(x + post)),
                (fixed(-post), fixed(post)),
                (fixed(0.0), fixed(0.45 * height)),
                FIXED,
                POLE_GREY,
            )
        edges = np.linspace(-length / 2, length / 2, 4)
        z = (fixed(0.45 * height), fixed(height))
        b.box(
            (fixed(edges[0]), fixed(edges[-1])),
            (fixed(-width / 2), fixed(width / 2)),
            z,
            FIXED,
            colors[0],
        )
        for index in range(3):
            stripe = (fixed(edges[index]), fixed(edges[index + 1]))
            if len(colors) > 1:
                color = colors[index % 2]
            else:
                color = (240, 240, 240) if index == 1 else colors[0]
            b.box(stripe, (fixed(width / 2), fixed(width / 2)), z, FIXED, color, faces=("+y",))
            b.box(stripe, (fixed(-width / 2), fixed(-width / 2)), z, FIXED, color, faces=("-y",))
    else:
        _house(b, length, width, height, colors)
    return b.build()


def _banded_prism(
    b: TemplateBuilder, sides: int, rx: float, ry: float, height: float, colors: list
) -> None:
    angles = np.pi / sides + 2 * np.pi * np.arange(sides) / sides
    scale = 1 / math.cos(np.pi / sides) if sides == 4 else 1.0
    ring = np.stack([rx * scale * np.cos(angles), ry * scale * np.sin(angles)], axis=1)
    bands = np.linspace(0.0, height, len(colors) + 1)
    for band, color in enumerate(colors):
        z0, z1 = bands[band], bands[band + 1]
        for i in range(sides):
            (xa, ya), (xb, yb) = ring[i], ring[(i + 1) % sides]
            b.polygon(
                [
                    (fixed(xa), fixed(ya), fixed(z0)),
                    (fixed(xb), fixed(yb), fixed(z0)),
                    (fixed(xb), fixed(yb), fixed(z1)),
                    (fixed(xa), fixed(ya), fixed(z1)),
                ],
                FIXED,
                color,
            )
    b.polygon([(fixed(x), fixed(y), fixed(height)) for x, y in ring], FIXED, colors[-1])


def _house(b: TemplateBuilder, length: float, width: float, height: float, colors: list) -> None:
    wall = colors[0]
    roof = colors[1] if len(colors) > 1 else (150, 60, 40)
    eave = 0.6 * height
    hx, hy = length / 2, width / 2
    b.box((fixed(-hx), fixed(hx)), (fixed(-hy), fixed(hy)), (fixed(0.0), fixed(eave)), FIXED, wall)
    for y, face in ((hy, "+y"), (-hy, "-y")):
        b.box(
            (fixed(-0.6), fixed(0.6)),
            (fixed(y), fixed(y)),
            (fixed(0.0), fixed(2.1)),
            FIXED,
            (60, 40, 30),
            faces=(face,),
        )
        for x in (-0.3 * length, 0.3 * length):
            b.box(
                (fixed(x - 0.6), fixed(x + 0.6)),
                (fixed(y), fixed(y)),
                (fixed(min(1.2, eave - 1.2)), fixed(min(2.2, eave - 0.3))),
                FIXED,
                (70, 90, 110),
                faces=(face,),
            )
    o = 0.3
    for side in (1.0, -1.0):
        slope = [
            (hx + o, side * (hy + o), eave),
            (-hx - o, side * (hy + o), eave),
            (-hx - o, 0.0, height),
            (hx + o, 0.0, height),
        ]
        if side < 0:
            slope = slope[::-1]
        b.polygon([(fixed(x), fixed(y), fixed(z)) for x, y, z in slope], FIXED, roof)
    for x in (hx, -hx):
        gable = [(x, -hy, eave), (x, hy, eave), (x, 0.0, height)]
        if x < 0:
            gable = gable[::-1]
        b.polygon([(fixed(px), fixed(py), fixed(pz)) for px, py, pz in gable], FIXED, wall)


def place(template: Template, poses: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """Vertices of ``len(poses)`` instances in the ``map`` frame, shape (N, V, 3) [m].

    :param poses: (N, 3) x [m], y [m], yaw [rad] in ``map``.
    :param dims: (N, 3) length, width, height [m] that scaled template coordinates multiply.
    """
    local = template.scale[None] * dims[:, None, :] + template.offset[None]
    cos_yaw, sin_yaw = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
    world = np.empty_like(local)
    world[..., 0] = poses[:, :1] + cos_yaw * local[..., 0] - sin_yaw * local[..., 1]
    world[..., 1] = poses[:, 1:2] + sin_yaw * local[..., 0] + cos_yaw * local[..., 1]
    world[..., 2] = local[..., 2]
    return world
