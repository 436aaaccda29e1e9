"""Feature-map localization on real KITTI frames from ../shared (skips without it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mapping.posed_images import FeatureMap, pose_errors, read_kitti_poses
from tests.conftest import require_shared


@pytest.mark.slow
def test_kitti_frame_between_keyframes_is_localized_within_20_cm():
    folder = require_shared("data/poses/kitti_odometry_06")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from localizer import kitti_frame

    poses = read_kitti_poses(folder / "06.txt")
    feature_map = FeatureMap(
        [kitti_frame(name, poses) for name in ("kitti06-12.png", "kitti06-14-color.png")]
    )
    query = kitti_frame("kitti06-13.png", poses)
    result = feature_map.localize(query.image, query.k)
    assert result.camera_to_world is not None
    position_m, rotation_deg = pose_errors(result.camera_to_world, query.camera_to_world)
    assert position_m < 0.2
    assert rotation_deg < 0.5


def test_malformed_pose_file_names_the_line(tmp_path):
    path = tmp_path / "poses.txt"
    path.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n1 2 3\n")
    with pytest.raises(ValueError, match=r"poses\.txt:2"):
        read_kitti_poses(path)
