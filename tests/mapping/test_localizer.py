"""Landmark localizer: the pose solve on exact observations, and a briefly trained CNN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bus.messages import Pose2D
from bus.messages.world import Landmark, LandmarkShape
from mapping.hdmap import HdMap, MapLane
from mapping.localizer import Localizer, Observations
from mapping.localizer_net import LocalizerNet


def _landmark(landmark_id: int, x_m: float, y_m: float) -> Landmark:
    return Landmark(
        landmark_id=landmark_id,
        shape=LandmarkShape.TOWER,
        pose=Pose2D(x_m, y_m, 0.0),
        length_m=4.0,
        width_m=4.0,
        height_m=16.0,
        colors_rgb=((200, 40, 40),),
    )


@pytest.fixture
def straight_map() -> HdMap:
    lanes = tuple(
        MapLane(
            road_id="0-1",
            lane_index=i,
            centerline=((0.0, -4.0 * i), (1000.0, -4.0 * i)),
            width_m=4.0,
            speed_limit_mps=30.0,
            left_line="dashed",
            right_line="dashed",
        )
        for i in range(3)
    )
    landmarks = (
        _landmark(30000, 140.0, 15.0),
        _landmark(30001, 190.0, -25.0),
        _landmark(30002, 260.0, 12.0),
    )
    return HdMap(lanes=lanes, landmarks=landmarks)


def _observations(localizer: Localizer, truth: Pose2D) -> Observations:
    """What a perfect CNN would report at ``truth``."""
    pixels, ahead = localizer.camera.project(localizer.index.landmark_xyz, truth)
    seen = ahead & (pixels[:, 0] >= 0) & (pixels[:, 0] < localizer.camera.config.width_px)
    camera_xy = localizer.camera.camera_position_map(truth)[:2]
    ranges = np.hypot(*(localizer.index.landmark_xyz[seen, :2] - camera_xy).T)
    lateral_m = truth.y - (-4.0)  # lane 1
    return Observations(
        u_px=pixels[seen, 0],
        range_m=ranges,
        score=np.ones(seen.sum()),
        lane_phase=2 * math.pi * lateral_m / 4.0,
        lane_heading_rad=truth.yaw,
    )


def test_solve_recovers_the_pose_from_a_poor_prior(straight_map):
    localizer = Localizer(LocalizerNet(), straight_map)
    truth = Pose2D(100.0, -3.4, math.radians(1.5))
    observations = _observations(localizer, truth)
    assert len(observations.u_px) >= 2
    prior = Pose2D(104.0, -4.2, 0.0)
    prior_covariance = np.diag([4.0**2, 1.0**2, math.radians(2.0) ** 2])
    pose, covariance, ids, lane_used = localizer.solve(observations, prior, prior_covariance)
    assert lane_used
    assert set(ids) <= {30000, 30001, 30002} and len(ids) >= 2
    assert math.hypot(pose.x - truth.x, pose.y - truth.y) < 0.1
    assert abs(pose.yaw - truth.yaw) < math.radians(0.1)
    assert np.sqrt(covariance[0, 0]) < 1.0  # x is observed through the landmarks


def test_solve_takes_the_lane_the_landmarks_agree_with(straight_map):
    # The CNN's lane offset is known modulo a lane width; after a lane change the prior lags
    # by most of a lane, and the landmarks must tell which lane the ego is in.
    localizer = Localizer(LocalizerNet(), straight_map)
    truth = Pose2D(100.0, -3.6, 0.0)
    prior = Pose2D(101.0, -0.6, 0.0)  # 3 m off, nearer lane 0 than lane 1
    prior_covariance = np.diag([1.0, 1.0, math.radians(1.0) ** 2])
    pose, _, ids, _ = localizer.solve(_observations(localizer, truth), prior, prior_covariance)
    assert len(ids) >= 2
    assert abs(pose.y - truth.y) < 0.1


def test_without_landmarks_x_stays_uncertain(straight_map):
    localizer = Localizer(LocalizerNet(), straight_map)
    truth = Pose2D(100.0, -4.5, 0.0)
    observations = _observations(localizer, truth)
    blind = Observations(
        np.zeros(0),
        np.zeros(0),
        np.zeros(0),
        observations.lane_phase,
        observations.lane_heading_rad,
    )
    prior_covariance = np.diag([3.0**2, 1.0**2, math.radians(2.0) ** 2])
    pose, covariance, ids, _ = localizer.solve(blind, Pose2D(102.0, -4.0, 0.0), prior_covariance)
    assert ids == ()
    assert abs(pose.y - truth.y) < 0.05
    assert np.sqrt(covariance[0, 0]) > 3.0  # only the (weakened) prior constrains x


def test_weights_that_are_not_a_state_dict_are_refused(tmp_path):
    from mapping.localizer import load_net

    path = tmp_path / "localizer.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(OSError, match=r"localizer\.pt.*state_dict"):
        load_net(path)


@pytest.mark.slow
def test_briefly_trained_localizer_beats_dead_reckoning_on_a_held_out_drive():
    import torch

    from mapping.dataset import generate_dataset
    from mapping.drives import DriveConfig
    from mapping.evaluation import OdometryNoise, evaluate
    from mapping.localizer import LocalizerConfig
    from mapping.localizer_training import TrainConfig, train_net

    torch.set_num_threads(2)
    drive = DriveConfig(steps=10, views_per_step=4)
    data = generate_dataset([11, 12], drive)
    net = train_net(data, TrainConfig(epochs=60, batch_size=16, learning_rate=4e-3, width=16))
    noise = OdometryNoise(speed_scale_sigma=0.04)
    held_out = DriveConfig(steps=12)
    result = evaluate(net, [901], held_out, noise)
    fused = np.mean(result.fused_position_m)
    dead_reckoning = np.mean(result.dead_reckoning_position_m)
    assert result.frames == 12
    # Measured here: fused 0.16 m against 6.8 m mean error for dead reckoning (the lane
    # dashes need the CNN's lane offset to find the lines).
    assert fused < 0.25 * dead_reckoning, (fused, dead_reckoning)

    # The CNN's landmarks and lane offset alone, in the lane nearest the prior (with so
    # brief a training its landmarks are too poor to choose among lanes): its single-frame
    # fixes still beat dead reckoning. Measured: 4.1 m against 6.8 m.
    # TODO(#7): the fused estimate of this CNN-only set-up is worse than its fixes (8.1 m;
    # it was 4.8 m with the package versions of the session); not yet investigated.
    cnn_only = LocalizerConfig(use_dashes=False, use_lane_paint=False, lane_hypotheses=1)
    result = evaluate(net, [901], held_out, noise, cnn_only)
    fix = np.mean(result.fix_position_m)
    assert fix < 0.85 * dead_reckoning, (fix, dead_reckoning)


def _junk_weights(kind: str, path) -> None:
    import torch

    from mapping.localizer_net import LocalizerNet

    if kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind in ("truncated-half", "truncated-head"):
        torch.save(LocalizerNet().state_dict(), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if kind == "truncated-half" else data[:100])
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "not-a-state-dict":
        torch.save([torch.zeros(2)], path)
    elif kind == "other-network":
        torch.save(LocalizerNet(width=16).state_dict(), path)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("text", "not a torch state_dict file"),
        ("empty", "empty"),
        ("truncated-half", "truncated"),
        ("truncated-head", "truncated"),
        ("random-bytes", "not a"),
        ("not-a-state-dict", "holds a list"),
        ("other-network", "do not match.*another shape"),
    ],
)
def test_unloadable_weights_are_refused_naming_the_file(tmp_path, kind, reason):
    from mapping.localizer import load_net

    path = tmp_path / "junk.pt"
    _junk_weights(kind, path)
    with pytest.raises(OSError, match=rf"junk\.pt.*{reason}"):
        load_net(path)


def test_eval_localizer_with_junk_weights_exits_2_and_writes_nothing(tmp_path, capsys):
    from sim.cli import main

    path = tmp_path / "fake.pt"
    path.write_text("this is not a model\n")
    out = tmp_path / "eval"
    assert main(["eval-localizer", "--weights", str(path), "--out", str(out)]) == 2
    assert "fake.pt' cannot be loaded" in capsys.readouterr().err
    assert not out.exists()
