"""Rendering the front camera image from bus messages, behind a replaceable interface.

:class:`OpenCVRenderer` is a painter's-algorithm polygon rasteriser: a sky gradient and the
ground, then the road surface and paint, then objects from far to near (each object's
polygons back-face culled and drawn in model order). Every polygon is clipped against the
near plane in camera coordinates before projection, since a vertex at or behind the camera
projects to infinity (see :mod:`sim.camera.raster`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from bus.messages import EgoState, LaneGeometry, ObjectClass, ObjectList
from bus.messages.camera import LabelClass
from bus.messages.world import SignType, StaticWorld
from sim.camera import meshes, plates, raster, road
from sim.camera.model import CameraModel
from sim.camera.randomize import Appearance, SensorEffects

BACKGROUND_CACHE_SIZE = 32
"""Sky-and-ground images kept (one per exposure level and camera)."""
STATIC_CACHE_SIZE = 8
"""Static worlds (episodes) whose object models are kept between frames."""
FOV_MARGIN = 1.15
"""Objects are kept when within this factor of the half field of view (plus their size)."""


class SceneInput(NamedTuple):
    """What the camera sees: the simulator's messages of one instant (``map`` frame)."""

    ego: EgoState
    objects: ObjectList
    lanes: LaneGeometry
    static: StaticWorld | None = None


@dataclass(frozen=True)
class ObjectProjection:
    """An object whose drawn polygons reach the image.

    :param bbox_xyxy: bounds of the image pixels it fills when drawn alone [px] (integers).
    :param outline_xyxy: bounds of its projected outline, not clipped to the image [px].
    :param unoccluded_px: image pixels it covers when drawn alone.
    :param visible_px: pixels of it in the rendered frame.
    :param distance_m: from the camera to the closest point of its footprint [m].
    :param speed_limit_kph: the number a speed-limit sign's plate shows [km/h], else 0.
    """

    object_id: int
    label_class: LabelClass
    sign_type: str
    distance_m: float
    bbox_xyxy: tuple[float, float, float, float]
    outline_xyxy: tuple[float, float, float, float]
    unoccluded_px: int
    visible_px: int
    speed_limit_kph: int = 0


@dataclass(frozen=True)
class RenderResult:
    """``image`` HxWx3 uint8 RGB; ``instance_ids`` HxW int32 object id per pixel (0: none)."""

    image: np.ndarray
    instance_ids: np.ndarray
    objects: tuple[ObjectProjection, ...]


class Renderer(Protocol):
    """Anything that turns a scene into an image with per-pixel object ids (a 3-D engine
    could stand in for the OpenCV rasteriser).

    It must return the image seen by ``camera`` (HxWx3 uint8 RGB), the id of the object drawn
    at each pixel (0 for road, sky and ground), and for every object that reaches the image an
    :class:`ObjectProjection` (its pixels when drawn alone, so labels can measure occlusion).
    ``frame_index`` seeds per-frame sensor effects.
    """

    def render(
        self, scene: SceneInput, camera: CameraModel, appearance: Appearance, frame_index: int
    ) -> RenderResult: ...


@dataclass
class _Objects:
    """Objects as arrays: ids (N,), poses (N, 3) x, y, yaw, dims (N, 3) for the templates,
    half extents of the footprint (N, 2), and per object its class, sign type, the number on
    its plate (speed limits; 0 otherwise), template."""

    ids: np.ndarray
    poses: np.ndarray
    dims: np.ndarray
    half: np.ndarray
    classes: list[LabelClass]
    sign_types: list[str]
    sign_kph: list[int]
    templates: list[meshes.Template]

    @staticmethod
    def join(parts: list[_Objects]) -> _Objects:
        return _Objects(
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.poses for p in parts]),
            np.concatenate([p.dims for p in parts]),
            np.concatenate([p.half for p in parts]),
            [c for p in parts for c in p.classes],
            [t for p in parts for t in p.sign_types],
            [k for p in parts for k in p.sign_kph],
            [t for p in parts for t in p.templates],
        )


_DYNAMIC = {
    ObjectClass.PEDESTRIAN: (LabelClass.PEDESTRIAN, meshes.pedestrian_template),
    ObjectClass.TRUCK: (LabelClass.TRUCK, meshes.truck_template),
}


class OpenCVRenderer:
    """The default renderer (numpy + OpenCV on one core)."""

    def __init__(self) -> None:
        self._colors: dict[int, np.ndarray] = {}
        self._static: dict[int, tuple[StaticWorld, _Objects]] = {}
        self._effects: SensorEffects | None = None
        self._backgrounds: dict[tuple, np.ndarray] = {}

    def render(
        self, scene: SceneInput, camera: CameraModel, appearance: Appearance, frame_index: int
    ) -> RenderResult:
        config = camera.config
        effects = self._effects_for(appearance, config.width_px, config.height_px)
        gain = effects.frame_gain(frame_index)
        rotation, translation = camera.map_to_camera(scene.ego.pose)
        camera_xy = camera.camera_position_map(scene.ego.pose)[:2]

        # Polygons in draw order: the road, then objects from far to near.
        soup = raster.PolygonSoup()
        _add_road(soup, scene.lanes, appearance)
        objects = self._objects(scene)
        kept, distance = _cull(objects, camera, rotation, translation, camera_xy)
        # TODO(#5): painter's order per object (farthest footprint first) misdraws objects that
        # interpenetrate (a crash) or overlap in depth in unusual ways; a z-buffer would not.
        order = kept[np.argsort(-distance[kept], kind="stable")]
        self._add_objects(soup, objects, order, appearance)

        projected = raster.project(soup, camera, rotation, translation, appearance, gain)
        image = self._background(camera, appearance, gain)
        instance_ids = raster.rasterise(projected, image, objects.ids)
        plates.draw_speed_limits(
            image,
            instance_ids,
            scene.static,
            camera,
            rotation,
            translation,
            camera.camera_position_map(scene.ego.pose),
        )
        image = effects.apply(image, frame_index)
        return RenderResult(
            image, instance_ids, _projections(projected, objects, distance, instance_ids, camera)
        )

    def _effects_for(self, appearance: Appearance, width: int, height: int) -> SensorEffects:
        effects = self._effects
        if (
            effects is None
            or effects.appearance is not appearance
            or effects.shape != (height, width)
        ):
            effects = self._effects = SensorEffects(appearance, width, height)
            self._colors.clear()
            self._backgrounds.clear()
        return effects

    def _background(self, camera: CameraModel, appearance: Appearance, gain: float) -> np.ndarray:
        """A fresh copy of the sky-and-ground image (kept per exposure level of the episode)."""
        key = (camera.config, round(gain, 4))
        image = self._backgrounds.get(key)
        if image is None:
            if len(self._backgrounds) >= BACKGROUND_CACHE_SIZE:
                self._backgrounds.clear()
            image = self._backgrounds[key] = raster.background(camera, appearance, gain)
        return image.copy()

    def _objects(self, scene: SceneInput) -> _Objects:
        parts = [_dynamic_objects(scene.objects)]
        if scene.static is not None:
            cached = self._static.get(id(scene.static))
            if cached is None or cached[0] is not scene.static:
                if len(self._static) >= STATIC_CACHE_SIZE:
                    self._static.clear()
                cached = self._static[id(scene.static)] = (
                    scene.static,
                    _static_objects(scene.static),
                )
            parts.append(cached[1])
        return _Objects.join(parts)

    def _add_objects(
        self, soup: raster.PolygonSoup, objects: _Objects, order: np.ndarray, appearance: Appearance
    ) -> None:
        """Place the ordered objects (one batched transform per template) into the soup."""
        groups: dict[int, list[int]] = {}
        for index in order.tolist():
            groups.setdefault(id(objects.templates[index]), []).append(index)
        verts: dict[int, np.ndarray] = {}
        for members in groups.values():
            template = objects.templates[members[0]]
            placed = meshes.place(template, objects.poses[members], objects.dims[members])
            verts.update(zip(members, placed, strict=True))
        for index in order.tolist():
            template = objects.templates[index]
            colors = template.colors
            colored = template.roles >= 0
            if colored.any():
                colors = colors.copy()
                table = self._role_colors(int(objects.ids[index]), appearance)
                colors[colored] = table[template.roles[colored]]
            soup.add(verts[index], template.counts, colors, index, True, template.decals)

    def _role_colors(self, object_id: int, appearance: Appearance) -> np.ndarray:
        table = self._colors.get(object_id)
        if table is None:
            table = np.zeros((meshes.ROLE_COUNT, 3), np.float32)
            table[meshes.BODY] = appearance.object_color(object_id)
            table[meshes.GLASS] = (45, 55, 68)
            table[meshes.TAIL_LIGHT] = (190, 20, 20)
            table[meshes.DARK] = (28, 28, 30)
            table[meshes.CARGO] = 0.5 * appearance.object_color(object_id, 1) + 110
            table[meshes.SKIN] = appearance.object_color(object_id, 2) * 0.2 + (160, 120, 95)
            table[meshes.TROUSERS] = appearance.object_color(object_id, 3) * 0.5
            self._colors[object_id] = table
        return table


def _add_road(soup: raster.PolygonSoup, lanes: LaneGeometry, appearance: Appearance) -> None:
    shoulders, surfaces = road.surface_quads(lanes)
    quads = [(shoulders, appearance.shoulder_rgb), (surfaces, appearance.road_rgb)]
    quads += [(road.marking_quads(b), appearance.marking_rgb) for b in road.boundaries(lanes)]
    for quad, color in quads:
        if len(quad):
            verts = np.concatenate([quad, np.zeros((*quad.shape[:2], 1))], axis=2)
            soup.add(verts, np.full(len(quad), 4), np.tile(color, (len(quad), 1)), -1, False)


def _dynamic_objects(objects: ObjectList) -> _Objects:
    items = objects.objects
    rows = np.array(
        [(o.object_id, o.pose.x, o.pose.y, o.pose.yaw, o.length_m, o.width_m) for o in items],
        dtype=float,
    ).reshape(-1, 6)
    classes, templates = [], []
    for item in items:
        label, template = _DYNAMIC.get(item.object_class, (LabelClass.CAR, meshes.car_template))
        classes.append(label)
        templates.append(template())
    dims = np.concatenate([rows[:, 4:6], np.ones((len(rows), 1))], axis=1)
    return _Objects(
        rows[:, 0].astype(np.int64),
        rows[:, 1:4],
        dims,
        rows[:, 4:6] / 2,
        classes,
        [""] * len(items),
        [0] * len(items),
        templates,
    )


def _static_objects(static: StaticWorld) -> _Objects:
    ids, poses, dims, half, classes, sign_types, sign_kph, templates = ([] for _ in range(8))
    for sign in static.signs:
        ids.append(sign.sign_id)
        poses.append((sign.pose.x, sign.pose.y, sign.pose.yaw))
        dims.append((1.0, 1.0, 1.0))
        half.append((0.1, sign.plate_size_m / 2))
        classes.append(LabelClass.TRAFFIC_SIGN)
        sign_types.append(sign.sign_type.value)
        shows_limit = sign.sign_type == SignType.SPEED_LIMIT and sign.speed_limit_mps > 0
        sign_kph.append(int(plates.speed_limit_text(sign.speed_limit_mps)) if shows_limit else 0)
        templates.append(
            meshes.sign_template(sign.sign_type, sign.plate_size_m, sign.plate_center_height_m)
        )
    for landmark in static.landmarks:
        ids.append(landmark.landmark_id)
        poses.append((landmark.pose.x, landmark.pose.y, landmark.pose.yaw))
        dims.append((1.0, 1.0, 1.0))
        half.append((landmark.length_m / 2, landmark.width_m / 2))
        classes.append(LabelClass.LANDMARK)
        sign_types.append("")
        sign_kph.append(0)
        templates.append(meshes.landmark_template(landmark))
    return _Objects(
        np.array(ids, np.int64),
        np.array(poses, float).reshape(-1, 3),
        np.array(dims, float).reshape(-1, 3),
        np.array(half, float).reshape(-1, 2),
        classes,
        sign_types,
        sign_kph,
        templates,
    )


def _cull(
    objects: _Objects, camera: CameraModel, rotation, translation, camera_xy
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of objects not behind the camera, within ``far_m`` and inside the horizontal
    field of view; and every object's distance to the closest point of its footprint [m]."""
    if len(objects.ids) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    poses, half = objects.poses, objects.half
    centres = np.concatenate([poses[:, :2], np.zeros((len(poses), 1))], axis=1)
    centres_camera = centres @ rotation.T + translation
    radius = np.hypot(half[:, 0], half[:, 1]) + 0.5
    x_c, z_c = centres_camera[:, 0], centres_camera[:, 2]
    tan_half = math.tan(math.radians(camera.config.hfov_deg) / 2) * FOV_MARGIN
    keep = (z_c + radius > camera.config.near_m) & (z_c - radius < camera.config.far_m)
    keep &= np.abs(x_c) - radius < np.maximum(z_c, 0.0) * tan_half + radius

    # The camera position in each object's axes, clamped to the footprint rectangle.
    delta = camera_xy[None] - poses[:, :2]
    cos_yaw, sin_yaw = np.cos(poses[:, 2]), np.sin(poses[:, 2])
    local = np.stack(
        [
            cos_yaw * delta[:, 0] + sin_yaw * delta[:, 1],
            -sin_yaw * delta[:, 0] + cos_yaw * delta[:, 1],
        ],
        axis=1,
    )
    distance = np.linalg.norm(local - np.clip(local, -half, half), axis=1)
    return np.flatnonzero(keep), distance


def _projections(
    projected: raster.Projected,
    objects: _Objects,
    distance: np.ndarray,
    instance_ids: np.ndarray,
    camera: CameraModel,
) -> tuple[ObjectProjection, ...]:
    config = camera.config
    outlines = raster.outline_boxes_and_areas(projected, config.width_px, config.height_px)
    result = []
    for index, (outline, filled, area) in outlines.items():
        if filled is None:
            continue
        # Drawn pixels lie inside the pixels the object fills alone.
        x0, y0, x1, y1 = (int(v) for v in filled)
        object_id = int(objects.ids[index])
        visible = int(np.count_nonzero(instance_ids[y0:y1, x0:x1] == object_id))
        result.append(
            ObjectProjection(
                object_id=object_id,
                label_class=objects.classes[index],
                sign_type=objects.sign_types[index],
                speed_limit_kph=objects.sign_kph[index],
                distance_m=float(distance[index]),
                bbox_xyxy=filled,
                outline_xyxy=outline,
                unoccluded_px=area,
                visible_px=visible,
            )
        )
    return tuple(result)
