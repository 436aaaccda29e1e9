"""The HD map: lanes, signs and landmarks of one simulated world, as a versioned JSON file.

Everything is in the bus ``map`` frame (REP-103: x forward/east, y left, yaw counter-clockwise,
metres and radians), the frame of ``/sim/ego`` and ``/sim/static``. The file is plain JSON::

    {"format": "drivestack-hdmap", "version": 1, "frame_id": "map", "env_id": ..., "seed": ...,
     "lanes": [{"road_id", "lane_index", "centerline": [[x, y], ...], "width_m",
                "speed_limit_mps", "left_line", "right_line", "forbidden"}, ...],
     "signs": [TrafficSign, ...], "landmarks": [Landmark, ...],
     "dashed_lines": [{"road_id", "boundary_index", "start", "end", "dash_length_m",
                       "period_m", "phase_m"}, ...]}

A dashed line is painted from ``start`` to ``end``: a dash of ``dash_length_m`` begins every
``period_m`` of arc length, the first one ``phase_m`` after ``start`` (version 2 added them).

Signs and landmarks use the field names of :mod:`bus.messages.world`. Readers refuse a file of
another format version rather than guess what its fields mean.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import msgspec
import numpy as np

from bus.atomic import write_text
from bus.messages.world import Landmark, StaticWorld, TrafficSign
from sim.frames import wrap_angle, xy_from_highway

logger = logging.getLogger(__name__)

MAP_FORMAT = "drivestack-hdmap"
MAP_VERSION = 2
"""Bump when a field changes meaning, is removed or is added; readers refuse other versions.
Version 2 added ``dashed_lines``."""

CURVED_LANE_STEP_M = 5.0
"""Centre-line sampling step of lanes that are not straight."""


class MapFormatError(ValueError):
    """A map file that cannot be read: corrupt, of another format, or of another version."""


class MapLane(msgspec.Struct, frozen=True, kw_only=True):
    """One lane of the road network.

    :param road_id: ``start-end`` node names of its road segment.
    :param lane_index: 0 = leftmost lane of the segment (highway-env's numbering).
    :param centerline: (x, y) [m] points in ``map`` along the driving direction.
    :param width_m: lane width [m].
    :param speed_limit_mps: legal speed [m/s] (0 when the simulator sets none).
    :param left_line, right_line: ``solid``, ``dashed`` or ``none``.
    """

    road_id: str
    lane_index: int
    centerline: tuple[tuple[float, float], ...]
    width_m: float
    speed_limit_mps: float
    left_line: str
    right_line: str
    forbidden: bool = False


class DashedLine(msgspec.Struct, frozen=True, kw_only=True):
    """The dash layout of one straight dashed lane boundary.

    :param road_id: ``start-end`` node names of its road segment.
    :param boundary_index: 0 = left edge of lane 0; i = between lanes i - 1 and i.
    :param start, end: (x, y) [m] in ``map``, along the driving direction.
    :param dash_length_m: length of one dash [m].
    :param period_m: distance from the start of one dash to the next [m].
    :param phase_m: arc length from ``start`` at which a dash begins [m], in [0, period_m).
    """

    road_id: str
    boundary_index: int
    start: tuple[float, float]
    end: tuple[float, float]
    dash_length_m: float
    period_m: float
    phase_m: float


class HdMap(msgspec.Struct, frozen=True, kw_only=True):
    """A whole map (the file's content). Compare maps with ``==``."""

    format: str = MAP_FORMAT
    version: int = MAP_VERSION
    frame_id: str = "map"
    env_id: str = ""
    seed: int = 0
    lanes: tuple[MapLane, ...] = ()
    signs: tuple[TrafficSign, ...] = ()
    landmarks: tuple[Landmark, ...] = ()
    dashed_lines: tuple[DashedLine, ...] = ()


class _VersionProbe(msgspec.Struct):
    format: str = ""
    version: int = -1


class MapIndex:
    """Numpy arrays of a map's landmarks and lane segments, for fast geometric queries.

    :ivar landmark_ids: (L,) int64.
    :ivar landmark_xyz: (L, 3) float64, footprint centre at half height [m], ``map``.
    :ivar segment_start, segment_end: (S, 2) float64 lane centre-line segments [m], ``map``.
    :ivar segment_width_m: (S,) float64 width of the lane each segment belongs to.
    :ivar segment_lane: (S,) int64 index into ``hd_map.lanes`` of that lane.
    :ivar boundary_kinds: per lane of ``hd_map.lanes``, the (left, right) paint as the
        camera draws it: ``solid``, ``dashed`` or ``none`` (the stronger of the two lanes'
        line types where lanes meet).
    """

    def __init__(self, hd_map: HdMap) -> None:
        landmarks = hd_map.landmarks
        self.landmark_ids = np.array([lm.landmark_id for lm in landmarks], dtype=np.int64)
        self.landmark_xyz = np.array(
            [(lm.pose.x, lm.pose.y, lm.height_m / 2) for lm in landmarks], dtype=float
        ).reshape(-1, 3)
        starts, ends, widths, owners = [], [], [], []
        for number, lane in enumerate(hd_map.lanes):
            points = np.asarray(lane.centerline, dtype=float)
            starts.append(points[:-1])
            ends.append(points[1:])
            widths.append(np.full(len(points) - 1, lane.width_m))
            owners.append(np.full(len(points) - 1, number, dtype=np.int64))
        self.segment_start = np.concatenate(starts) if starts else np.zeros((0, 2))
        self.segment_end = np.concatenate(ends) if ends else np.zeros((0, 2))
        self.segment_width_m = np.concatenate(widths) if widths else np.zeros(0)
        self.segment_lane = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        self.boundary_kinds = _boundary_kinds(hd_map.lanes)

    def nearest_lane(self, x_m: float, y_m: float) -> tuple[float, float, float] | None:
        """(signed lateral offset [m] of the point from the nearest lane centre line, positive
        to the left of the driving direction; that lane's heading [rad]; its width [m]), or
        None for a map without lanes."""
        nearest = self._nearest(x_m, y_m)
        return None if nearest is None else nearest[:3]

    def nearest_lane_kinds(self, x_m: float, y_m: float) -> tuple[str, str] | None:
        """(left, right) paint of the lane nearest the point (see ``boundary_kinds``)."""
        nearest = self._nearest(x_m, y_m)
        return None if nearest is None else self.boundary_kinds[nearest[3]]

    def _nearest(self, x_m: float, y_m: float) -> tuple[float, float, float, int] | None:
        if len(self.segment_start) == 0:
            return None
        direction = self.segment_end - self.segment_start
        length_sq = np.maximum((direction**2).sum(axis=1), 1e-12)
        relative = np.array([x_m, y_m]) - self.segment_start
        t = np.clip((relative * direction).sum(axis=1) / length_sq, 0.0, 1.0)
        closest = self.segment_start + t[:, None] * direction
        distance_sq = ((np.array([x_m, y_m]) - closest) ** 2).sum(axis=1)
        best = int(np.argmin(distance_sq))
        d = direction[best] / math.sqrt(length_sq[best])
        r = np.array([x_m, y_m]) - closest[best]
        lateral = float(d[0] * r[1] - d[1] * r[0])
        heading = math.atan2(d[1], d[0])
        return lateral, heading, float(self.segment_width_m[best]), int(self.segment_lane[best])


def build_map(env, seed: int, env_id: str = "") -> HdMap:
    """Map of the world highway-env and :class:`sim.world.World` generate for ``seed``.

    :param env: a highway-env environment (wrapped or not); it is reset with ``seed``.
    """
    from sim.world import World

    env.reset(seed=seed)
    return map_from_world(env, World().reset(env, seed), seed, env_id)


def map_from_world(env, static: StaticWorld, seed: int, env_id: str = "") -> HdMap:
    """Map of ``env``'s road network and an already generated ``static`` world."""
    network = env.unwrapped.road.network
    lanes, dashed_lines = [], []
    for start, ends in network.graph.items():
        for end, segment in ends.items():
            road_lanes = [_map_lane(f"{start}-{end}", i, lane) for i, lane in enumerate(segment)]
            lanes += road_lanes
            dashed_lines += _dashed_lines(road_lanes, segment)
    hd_map = HdMap(
        env_id=env_id,
        seed=seed,
        lanes=tuple(lanes),
        signs=static.signs,
        landmarks=static.landmarks,
        dashed_lines=tuple(dashed_lines),
    )
    # Normalise numpy scalars to plain floats so a map equals its own round trip.
    return msgspec.json.decode(msgspec.json.encode(hd_map, enc_hook=_encode_numpy), type=HdMap)


def _encode_numpy(value):
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"cannot encode {type(value).__name__} in a map")


_LINE_NAMES = {0: "none", 1: "dashed", 2: "solid", 3: "solid"}


def _map_lane(road_id: str, lane_index: int, lane) -> MapLane:
    if type(lane).__name__ == "StraightLane":
        s_values = np.array([0.0, float(lane.length)])
    else:
        count = max(2, int(math.ceil(float(lane.length) / CURVED_LANE_STEP_M)) + 1)
        s_values = np.linspace(0.0, float(lane.length), count)
    centerline = tuple(xy_from_highway(lane.position(float(s), 0.0)) for s in s_values)
    return MapLane(
        road_id=road_id,
        lane_index=lane_index,
        centerline=centerline,
        width_m=float(lane.width_at(0.0)),
        speed_limit_mps=float(lane.speed_limit or 0.0),
        left_line=_LINE_NAMES.get(int(lane.line_types[0]), "none"),
        right_line=_LINE_NAMES.get(int(lane.line_types[1]), "none"),
        forbidden=bool(getattr(lane, "forbidden", False)),
    )


def _boundary_kinds(lanes: tuple[MapLane, ...]) -> list[tuple[str, str]]:
    """(left, right) paint of each lane where it meets its neighbours of the same road, by the
    camera's rule (:func:`sim.camera.road.shared_line`)."""
    from sim.camera.road import shared_line

    by_position = {(lane.road_id, lane.lane_index): lane for lane in lanes}
    kinds = []
    for lane in lanes:
        left_lane = by_position.get((lane.road_id, lane.lane_index - 1))
        right_lane = by_position.get((lane.road_id, lane.lane_index + 1))
        left = (
            lane.left_line
            if left_lane is None
            else shared_line(left_lane.right_line, lane.left_line)
        )
        right = (
            lane.right_line
            if right_lane is None
            else shared_line(lane.right_line, right_lane.left_line)
        )
        kinds.append((left, right))
    return kinds


def _dashed_lines(road_lanes: list[MapLane], segment) -> list[DashedLine]:
    """Dashed boundaries of one road segment, as the camera paints them (boundary i + 1 is
    :func:`sim.camera.road.shared_line` of lane i's right and lane i + 1's left line; dashes
    are laid from the first lane sample, which lies on the simulator's grid of arc length, a
    multiple of the dash period, so on a straight lane a dash begins at its start)."""
    from sim.adapter import LaneSampling
    from sim.camera.road import DASH_LENGTH_M, DASH_PERIOD_M, shared_line

    grid_m = LaneSampling().step_m
    if not math.isclose(grid_m / DASH_PERIOD_M, round(grid_m / DASH_PERIOD_M)):
        logger.warning("lane sampling step %.1f m is not a multiple of the dash period", grid_m)
        return []
    lines = []
    for i, lane in enumerate(road_lanes):
        kinds = [(0, lane.left_line)] if i == 0 else []
        right = lane.right_line
        if i + 1 < len(road_lanes):
            right = shared_line(right, road_lanes[i + 1].left_line)
        kinds.append((i + 1, right))
        for boundary_index, kind in kinds:
            # TODO(#7): dashes of curved lanes are laid along the offset line from a sample that
            # moves with the ego, so they do not stay put on the road; only straight ones are
            # mapped.
            if kind != "dashed" or type(segment[i]).__name__ != "StraightLane":
                continue
            side = 0.5 if boundary_index == i else -0.5
            lines.append(
                DashedLine(
                    road_id=lane.road_id,
                    boundary_index=boundary_index,
                    start=_lateral(segment[i], 0.0, side),
                    end=_lateral(segment[i], float(segment[i].length), side),
                    dash_length_m=DASH_LENGTH_M,
                    period_m=DASH_PERIOD_M,
                    phase_m=0.0,
                )
            )
    return lines


def _lateral(lane, s_m: float, side: float) -> tuple[float, float]:
    """Point at arc length ``s_m`` of a highway-env lane, ``side`` lane widths to its left."""
    x, y = xy_from_highway(lane.position(s_m, 0.0))
    heading = -float(lane.heading_at(s_m))  # highway-env's y points right
    width = float(lane.width_at(s_m))
    return (
        float(x - side * width * math.sin(heading)),
        float(y + side * width * math.cos(heading)),
    )


def write_map(hd_map: HdMap, path: str | os.PathLike) -> None:
    """Write ``hd_map`` as JSON, atomically (a reader never sees half a file)."""
    encoded = msgspec.json.encode(hd_map, enc_hook=_encode_numpy)
    write_text(path, msgspec.json.format(encoded, indent=1).decode("utf-8") + "\n")


def read_map(path: str | os.PathLike) -> HdMap:
    """Read a map file.

    :raises OSError: the file cannot be read.
    :raises MapFormatError: the file is not valid JSON, not a drivestack map, of another
        version, or has missing or mistyped fields; the message names the file.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise OSError(
            f"map file {str(path)!r} does not exist; write one with 'drivestack build-map'"
        ) from None
    except OSError as error:
        raise OSError(f"map file {str(path)!r} cannot be read: {error.strerror or error}") from None
    try:
        probe = msgspec.json.decode(data, type=_VersionProbe)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise MapFormatError(f"map file {str(path)!r} is not a valid map: {error}") from None
    if probe.format != MAP_FORMAT:
        raise MapFormatError(
            f"map file {str(path)!r} has format {probe.format!r}, expected {MAP_FORMAT!r}"
        )
    if probe.version != MAP_VERSION:
        raise MapFormatError(
            f"map file {str(path)!r} has version {probe.version}; this drivestack reads version "
            f"{MAP_VERSION} only; rebuild it with 'drivestack build-map'"
        )
    try:
        hd_map = msgspec.json.decode(data, type=HdMap)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise MapFormatError(f"map file {str(path)!r} is corrupt: {error}") from None
    _check_finite(hd_map, path)
    return hd_map


def _check_finite(hd_map: HdMap, path: str | os.PathLike) -> None:
    values = [v for lane in hd_map.lanes for point in lane.centerline for v in point]
    values += [v for lm in hd_map.landmarks for v in (lm.pose.x, lm.pose.y, lm.pose.yaw)]
    values += [v for sign in hd_map.signs for v in (sign.pose.x, sign.pose.y, sign.pose.yaw)]
    values += [v for line in hd_map.dashed_lines for v in (*line.start, *line.end, line.phase_m)]
    if not all(math.isfinite(v) for v in values):
        raise MapFormatError(f"map file {str(path)!r} has non-finite coordinates")
    for line in hd_map.dashed_lines:
        if not 0 < line.dash_length_m < line.period_m < math.inf or line.start == line.end:
            raise MapFormatError(
                f"map file {str(path)!r}: dashed line {line.road_id}/{line.boundary_index} needs "
                "0 < dash_length_m < period_m and distinct start and end points"
            )
    for lane in hd_map.lanes:
        if len(lane.centerline) < 2 or lane.width_m <= 0:
            raise MapFormatError(
                f"map file {str(path)!r}: lane {lane.road_id}/{lane.lane_index} needs at least 2 "
                "centre-line points and a positive width"
            )


MAP_MATCH_TOLERANCE_M = 0.5
"""A map file matches a running world when its lane centre lines and landmarks lie within
this distance of the world's [m]."""


class MapMismatchError(ValueError):
    """A map file that was built for another world than the one being driven."""


def check_map_matches(hd_map: HdMap, world_map: HdMap, source: str) -> None:
    """Refuse ``hd_map`` (read from ``source``) unless it describes ``world_map``'s world.

    Compares the environment id, the seed, the lane centre lines and the landmark positions
    (within :data:`MAP_MATCH_TOLERANCE_M`). Signs and dash layouts are taken as the file
    gives them.

    :raises MapMismatchError: naming ``source`` and the first difference found.
    """
    rebuild = (
        f"; build the map of this world with 'drivestack build-map --env {world_map.env_id} "
        f"--seed {world_map.seed}'"
    )
    if hd_map.env_id != world_map.env_id:
        raise MapMismatchError(
            f"map {source!r} was built for {hd_map.env_id!r}, not {world_map.env_id!r}{rebuild}"
        )
    if hd_map.seed != world_map.seed:
        raise MapMismatchError(
            f"map {source!r} holds the world of seed {hd_map.seed}, not of seed "
            f"{world_map.seed}{rebuild}"
        )
    difference = _geometry_difference(hd_map, world_map)
    if difference:
        raise MapMismatchError(
            f"map {source!r} does not match the world of {world_map.env_id} seed "
            f"{world_map.seed}: {difference}{rebuild}"
        )


def check_map_for(
    hd_map: HdMap, source: str, env_id: str, seeds: list[int], advice: str = ""
) -> None:
    """Refuse ``hd_map`` (read from ``source``) for drives of ``env_id`` with ``seeds``
    unless it is the map of exactly that world (builds the world's map: about a second).

    A map holds one seed's world (each seed places its own signs and landmarks), so every
    seed must be the map's. ``advice`` is appended to the seed error (how to fix the
    command line).

    :raises MapMismatchError: naming ``source`` and what differs.
    """
    if env_id != hd_map.env_id:
        raise MapMismatchError(
            f"map {source!r} was built for {hd_map.env_id!r}, not {env_id!r}; build one of "
            f"{env_id!r} with 'drivestack build-map --env {env_id}'"
        )
    others = sorted(set(seeds) - {hd_map.seed})
    if others:
        listed = ", ".join(str(s) for s in others[:5]) + (", ..." if len(others) > 5 else "")
        raise MapMismatchError(
            f"map {source!r} holds the world of seed {hd_map.seed} only (each seed's world has "
            f"its own signs and landmarks), but seed(s) {listed} would be driven{advice}"
        )
    check_map_of_world(hd_map, source)


def check_map_of_world(hd_map: HdMap, source: str) -> None:
    """Refuse ``hd_map`` unless it matches the world its own env id and seed generate.

    :raises MapMismatchError: naming ``source`` and what differs.
    """
    from sim.envs import make_env

    env = make_env(hd_map.env_id)
    try:
        world_map = build_map(env, hd_map.seed, env_id=hd_map.env_id)
    finally:
        env.close()
    check_map_matches(hd_map, world_map, source)


def _geometry_difference(hd_map: HdMap, world_map: HdMap) -> str:
    """What differs between the lanes and landmarks of two maps, or "" when they match."""
    lanes = {(lane.road_id, lane.lane_index): lane.centerline for lane in hd_map.lanes}
    world_lanes = {(lane.road_id, lane.lane_index): lane.centerline for lane in world_map.lanes}
    if lanes.keys() != world_lanes.keys():
        return f"it has {len(lanes)} lanes, the world {len(world_lanes)} (other roads)"
    for key, centerline in world_lanes.items():
        if len(lanes[key]) != len(centerline) or _max_distance_m(lanes[key], centerline) > (
            MAP_MATCH_TOLERANCE_M
        ):
            return f"lane {key[0]}/{key[1]} lies elsewhere"
    if len(hd_map.landmarks) != len(world_map.landmarks):
        return f"it has {len(hd_map.landmarks)} landmarks, the world {len(world_map.landmarks)}"
    points = [(lm.pose.x, lm.pose.y) for lm in hd_map.landmarks]
    world_points = [(lm.pose.x, lm.pose.y) for lm in world_map.landmarks]
    if points and _max_distance_m(points, world_points) > MAP_MATCH_TOLERANCE_M:
        return "its landmarks lie elsewhere"
    return ""


def _max_distance_m(a, b) -> float:
    return float(np.max(np.hypot(*(np.asarray(a, float) - np.asarray(b, float)).T)))


def heading_difference(a_rad: float, b_rad: float) -> float:
    """Signed smallest difference a - b [rad], in [-pi, pi)."""
    return wrap_angle(a_rad - b_rad)
