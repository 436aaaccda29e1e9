"""``drivestack sim`` end to end: outputs, determinism, and refusal of bad input."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest

from sim.cli import main
from sim.loop import ClosedLoop


def _run(tmp_path, *extra: str) -> int:
    return main(["-q", "sim", "--env", "highway-fast-v0", "--no-progress", *extra])


def _without_timing(summary: dict) -> dict:
    summary = dict(summary)
    summary.pop("timing")
    return summary


def test_sim_writes_table_summary_and_a_video_with_content(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(tmp_path, "--episodes", "2", "--seed", "0", "--out", str(out)) == 0

    printed = capsys.readouterr().out
    assert "return" in printed and "crash rate" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and len(summary["episodes"]) == 2
    assert summary["aggregate"]["episodes"] == 2

    frames = iio.imread(out / "episode_000.mp4")
    assert len(frames) > summary["episodes"][0]["steps"]  # intermediate frames included
    assert frames.mean() > 30  # a drawn road, not a black screen
    assert not (out / "episode_001.mp4").exists()  # --video-episodes defaults to 1


def test_two_runs_with_the_same_seed_have_identical_summaries(tmp_path):
    summaries = []
    for name in ("a", "b"):
        assert (
            _run(
                tmp_path,
                "--episodes",
                "2",
                "--seed",
                "5",
                "--video-episodes",
                "0",
                "--out",
                str(tmp_path / name),
            )
            == 0
        )
        summaries.append(
            _without_timing(json.loads((tmp_path / name / "summary.json").read_text()))
        )
    assert summaries[0] == summaries[1]


def test_unknown_env_lists_the_supported_ones(tmp_path, capsys):
    assert main(["sim", "--env", "nope-v0", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "nope-v0" in error and "highway-fast-v0" in error and "merge-v0" in error


@pytest.mark.parametrize(
    "option,value",
    [("--episodes", "-1"), ("--episodes", "0"), ("--seed", "-3"), ("--episodes", "two")],
)
def test_invalid_numbers_are_refused(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert value in capsys.readouterr().err


def test_unwritable_output_directory_is_reported_before_the_run(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert main(["sim", "--out", str(blocker / "run")]) == 2
    error = capsys.readouterr().err
    assert "output directory" in error and "a_file" in error


def test_unknown_planner_lists_the_known_ones(tmp_path, capsys):
    assert main(["sim", "--planner", "magic", "--out", str(tmp_path)]) == 2
    assert "rule" in capsys.readouterr().err


def test_ctrl_c_still_writes_the_summary_of_finished_episodes(tmp_path, monkeypatch):
    original = ClosedLoop.run_episode

    def interrupt_second(self, episode, *args, **kwargs):
        if episode == 1:
            raise KeyboardInterrupt
        return original(self, episode, *args, **kwargs)

    monkeypatch.setattr(ClosedLoop, "run_episode", interrupt_second)
    out = tmp_path / "run"
    assert _run(tmp_path, "--episodes", "3", "--video-episodes", "3", "--out", str(out)) == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and not summary["complete"]
    assert [e["episode"] for e in summary["episodes"]] == [0]
    assert (out / "episode_000.mp4").exists()
    assert not (out / "episode_001.mp4").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def _interrupt_episode_after(monkeypatch, episode_to_stop: int, steps: int) -> None:
    """Make ``ClosedLoop.run_episode`` raise KeyboardInterrupt ``steps`` steps into episode
    ``episode_to_stop``, as Ctrl-C in the middle of a drive."""
    original = ClosedLoop.run_episode

    def run_episode(self, episode, *args, **kwargs):
        if episode == episode_to_stop:
            stepped = iter(range(steps - 1))

            def on_step(_):
                if next(stepped, None) is None:
                    raise KeyboardInterrupt

            kwargs["on_step"] = on_step
        return original(self, episode, *args, **kwargs)

    monkeypatch.setattr(ClosedLoop, "run_episode", run_episode)


def test_ctrl_c_counts_only_finished_episodes(tmp_path, monkeypatch, capsys):
    _interrupt_episode_after(monkeypatch, episode_to_stop=1, steps=4)
    out = tmp_path / "run"
    args = ("--episodes", "3", "--video-episodes", "0", "--localize", "--out", str(out))
    assert _run(tmp_path, *args) == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["recording"] == "run.mcap"
    frames = summary["episodes"][0]["steps"] + 1  # the reset state and each step
    assert summary["bus"]["/sim/ego"]["count"] == frames
    assert summary["localization"]["frames"] == frames
    assert f"localization: {frames} poses" in capsys.readouterr().out


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    text = capsys.readouterr().out
    for option in ("--env", "--episodes", "--seed", "--planner", "--out", "--video-episodes"):
        assert option in text


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return capsys.readouterr().out


def test_help_texts_name_the_recording_and_every_planner_form(capsys):
    text = " ".join(_help(capsys, "sim").split())
    assert "OUT/run.mcap" in text and "drivestack log" in text
    assert "a bare policy file" in text and "qlearning:QTABLE.npz" in text
    assert "qlearning," not in text  # a bare 'qlearning' needs a Q-table: not offered
    assert "95% Wilson" in " ".join(_help(capsys, "eval-policy").split())
    for action in ("info", "echo", "replay"):
        assert "an MCAP recording" in " ".join(_help(capsys, "log", action).split())


def test_an_unknown_option_shows_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["log", "echo", "run.mcap", "--topic", "/sim/ego", "--skip"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: drivestack log echo")
    assert "drivestack log echo: error: unrecognized arguments: --skip" in error


def test_make_dataset_defaults_to_the_same_env_as_the_other_commands():
    from sim.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["make-dataset", "--out", "d"]).env == "highway-fast-v0"
    assert parser.parse_args(["sim"]).env == "highway-fast-v0"


def test_merge_env_drives_from_the_command_line(tmp_path):
    out = tmp_path / "merge"
    assert _run(tmp_path, "--env", "merge-v0", "--episodes", "1", "--out", str(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "merge-v0" and summary["episodes"][0]["steps"] > 0


def test_a_failed_start_leaves_an_earlier_run_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(tmp_path, "--episodes", "1", "--video-episodes", "0", "--out", str(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code = main(["sim", "--transport", "zenoh", "--zenoh-connect", "garbage", "--out", str(out)])
    assert code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_new_run_removes_videos_an_earlier_run_left(tmp_path):
    out = tmp_path / "run"
    assert _run(tmp_path, "--episodes", "2", "--video-episodes", "2", "--out", str(out)) == 0
    assert (out / "episode_001.mp4").exists()
    assert _run(tmp_path, "--episodes", "1", "--out", str(out)) == 0
    assert (out / "episode_000.mp4").exists() and not (out / "episode_001.mp4").exists()


def test_empty_output_directory_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "--out", ""])
    assert "empty" in capsys.readouterr().err


def test_a_new_run_without_recording_or_camera_leaves_no_stale_outputs(tmp_path):
    out = tmp_path / "run"
    assert _run(tmp_path, "--episodes", "1", "--camera-video", "--out", str(out)) == 0
    assert (out / "run.mcap").exists() and (out / "camera_000.mp4").exists()
    assert _run(tmp_path, "--episodes", "1", "--no-record", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["episode_000.mp4", "summary.json"]


def test_a_policy_whose_weights_do_not_fit_says_what_does_not_fit(tmp_path, capsys):
    from planning.dqn import NetworkSpec, build_q_network
    from planning.observation import KinematicsConfig
    from planning.policy_io import save_dqn_policy

    declared = NetworkSpec(input_size=25, hidden_sizes=(8,), n_actions=5)
    other = NetworkSpec(input_size=25, hidden_sizes=(16,), n_actions=5)
    save_dqn_policy(
        tmp_path / "p.pt",
        build_q_network(other).state_dict(),
        {"algo": "dqn", "network": declared.to_dict(), "observation": KinematicsConfig().to_dict()},
    )
    assert main(["sim", "--planner", f"dqn:{tmp_path / 'p.pt'}", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "weights do not fit the declared network (0.weight has shape (16, 25)" in error
