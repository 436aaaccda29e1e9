"""HD map file: round trip, version and corruption checks, lane queries."""

from __future__ import annotations

import json

import pytest

from mapping.hdmap import MAP_VERSION, MapFormatError, MapIndex, build_map, read_map, write_map
from sim.envs import make_env


@pytest.fixture(scope="module")
def hd_map():
    env = make_env("highway-fast-v0")
    try:
        return build_map(env, seed=5, env_id="highway-fast-v0")
    finally:
        env.close()


def test_map_holds_lanes_signs_and_landmarks(hd_map):
    assert len(hd_map.lanes) >= 2
    assert len(hd_map.signs) > 0
    assert len(hd_map.landmarks) > 0
    # REP-103: highway-env's lanes 0, 1, 2 lie at y = 0, -4, -8 (y left).
    lane_y = sorted(lane.centerline[0][1] for lane in hd_map.lanes)
    assert lane_y[0] < lane_y[-1] <= 0.0


def test_round_trip_is_equal(hd_map, tmp_path):
    path = tmp_path / "map.json"
    write_map(hd_map, path)
    assert read_map(path) == hd_map
    assert not [p for p in tmp_path.iterdir() if p.name != "map.json"], "temporary file left"


def test_same_seed_gives_same_map(hd_map):
    env = make_env("highway-fast-v0")
    try:
        assert build_map(env, seed=5, env_id="highway-fast-v0") == hd_map
        assert build_map(env, seed=6, env_id="highway-fast-v0").landmarks != hd_map.landmarks
    finally:
        env.close()


def test_version_mismatch_is_refused(hd_map, tmp_path):
    path = tmp_path / "old.json"
    write_map(hd_map, path)
    data = json.loads(path.read_text())
    data["version"] = MAP_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(MapFormatError, match=r"old\.json.*version"):
        read_map(path)


def test_map_holds_the_dash_layout_and_round_trips_it(hd_map, tmp_path):
    from sim.camera.road import DASH_LENGTH_M, DASH_PERIOD_M

    # highway-fast-v0: 3 lanes at y = 0, -4, -8; the boundaries between them are dashed.
    assert sorted(line.start[1] for line in hd_map.dashed_lines) == [-6.0, -2.0]
    for line in hd_map.dashed_lines:
        assert (line.dash_length_m, line.period_m, line.phase_m) == (
            DASH_LENGTH_M,
            DASH_PERIOD_M,
            0.0,
        )
        assert line.end[0] > line.start[0] + 1000 and line.end[1] == line.start[1]
    path = tmp_path / "map.json"
    write_map(hd_map, path)
    assert read_map(path).dashed_lines == hd_map.dashed_lines


def test_version_1_map_without_dashes_is_refused(hd_map, tmp_path):
    path = tmp_path / "v1.json"
    write_map(hd_map, path)
    data = json.loads(path.read_text())
    data["version"] = 1
    del data["dashed_lines"]
    path.write_text(json.dumps(data))
    with pytest.raises(MapFormatError, match=r"v1\.json.*version 1.*rebuild"):
        read_map(path)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{not json", "not a valid map"),
        ('{"format": "geojson", "version": 1}', "format"),
        (
            f'{{"format": "drivestack-hdmap", "version": {MAP_VERSION}, '
            '"lanes": [{"road_id": 3}]}',
            "corrupt",
        ),
        (
            f'{{"format": "drivestack-hdmap", "version": {MAP_VERSION}, "dashed_lines": [{{'
            '"road_id": "0-1", "boundary_index": 1, "start": [0, -2], "end": [100, -2], '
            '"dash_length_m": 12, "period_m": 10, "phase_m": 0}]}',
            "dash_length_m < period_m",
        ),
    ],
    ids=["truncated", "other-format", "wrong-field-type", "dash-longer-than-period"],
)
def test_corrupt_file_is_refused_naming_the_file(tmp_path, text, reason):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(MapFormatError, match=rf"bad\.json.*{reason}"):
        read_map(path)


def test_nearest_lane_offset_is_positive_to_the_left(hd_map):
    index = MapIndex(hd_map)
    lateral_m, heading_rad, width_m = index.nearest_lane(100.0, -3.0)  # 1 m left of lane 1
    assert lateral_m == pytest.approx(1.0)
    assert heading_rad == pytest.approx(0.0)
    assert width_m == pytest.approx(4.0)


def test_build_map_command_writes_a_readable_map(tmp_path):
    from sim.cli import main

    out = tmp_path / "maps" / "map.json"
    assert main(["build-map", "--env", "highway-fast-v0", "--seed", "5", "--out", str(out)]) == 0
    hd_map = read_map(out)
    assert hd_map.seed == 5 and hd_map.env_id == "highway-fast-v0"
    assert hd_map.landmarks


def _moved_landmark(hd_map, dx_m: float):
    import msgspec

    first = hd_map.landmarks[0]
    moved = msgspec.structs.replace(
        first, pose=msgspec.structs.replace(first.pose, x=first.pose.x + dx_m)
    )
    return msgspec.structs.replace(hd_map, landmarks=(moved, *hd_map.landmarks[1:]))


def test_map_of_another_world_is_refused(hd_map):
    import msgspec

    from mapping.hdmap import MapMismatchError, check_map_matches

    check_map_matches(hd_map, hd_map, "map.json")
    check_map_matches(_moved_landmark(hd_map, 0.2), hd_map, "map.json")  # survey error
    cases = [
        (msgspec.structs.replace(hd_map, env_id="merge-v0"), "built for 'merge-v0'"),
        (msgspec.structs.replace(hd_map, seed=6), "seed 6, not of seed 5"),
        (msgspec.structs.replace(hd_map, lanes=hd_map.lanes[1:]), "lanes"),
        (_moved_landmark(hd_map, 3.0), "landmarks lie elsewhere"),
    ]
    for other, reason in cases:
        with pytest.raises(MapMismatchError, match=rf"map\.json.*{reason}.*build-map"):
            check_map_matches(other, hd_map, "map.json")


def test_map_is_refused_for_seeds_it_does_not_hold(hd_map):
    from mapping.hdmap import MapMismatchError, check_map_for

    with pytest.raises(MapMismatchError, match=r"seed 5 only.*seed\(s\) 6, 7 would be driven"):
        check_map_for(hd_map, "map.json", "highway-fast-v0", [5, 6, 7])
    with pytest.raises(MapMismatchError, match=r"built for 'highway-fast-v0', not 'merge-v0'"):
        check_map_for(hd_map, "map.json", "merge-v0", [5])
    check_map_for(hd_map, "map.json", "highway-fast-v0", [5])  # builds the world: it matches


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "must name a map file"),
        ("runs", "'runs' is a directory"),
        ("f/map.json", "'f' is a file"),
    ],
    ids=["empty", "directory", "under-a-file"],
)
def test_build_map_errors_name_the_users_path(tmp_path, monkeypatch, capsys, out, message):
    from sim.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "f").write_text("")
    if out == "":
        with pytest.raises(SystemExit):  # argparse refuses it
            main(["build-map", "--out", out])
    else:
        assert main(["build-map", "--out", out]) == 2
    err = capsys.readouterr().err
    assert message in err and ".map." not in err  # no temporary name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "runs"]
    assert not list((tmp_path / "runs").iterdir())
