"""``drivestack eval-policy``: statistics and the comparison outputs."""

from __future__ import annotations

import csv
import json

import pytest

from sim.cli import main
from sim.commands.eval_policy import planner_spec, summarize, wilson_interval


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(0, 100)
    assert low == 0.0 and high == pytest.approx(0.0370, abs=1e-4)
    low, high = wilson_interval(40, 100)
    assert (low, high) == (pytest.approx(0.3094, abs=1e-4), pytest.approx(0.4980, abs=1e-4))


def test_summary_rates_use_distance_and_sim_time():
    episodes = [
        {
            "episode_return": 20.0,
            "crashed": False,
            "distance_m": 750.0,
            "sim_time_s": 30.0,
            "lane_changes": 3,
            "steps": 30,
        },
        {
            "episode_return": 10.0,
            "crashed": True,
            "distance_m": 250.0,
            "sim_time_s": 10.0,
            "lane_changes": 1,
            "steps": 10,
        },
    ]
    summary = summarize(episodes)
    assert summary["mean_return"] == 15.0 and summary["std_return"] == 5.0
    assert summary["crash_rate"] == 0.5
    assert summary["mean_speed_mps"] == 25.0
    assert summary["lane_changes_per_km"] == 4.0
    assert summary["mean_steps"] == 20.0


def test_model_arguments_map_to_planners():
    assert planner_spec("runs/x/policy.pt") == "dqn:runs/x/policy.pt"
    assert planner_spec("q.npz") == "qlearning:q.npz"
    assert planner_spec("rule") == "rule"
    with pytest.raises(ValueError, match="model 'weights.bin'"):
        planner_spec("weights.bin")


@pytest.mark.slow
def test_eval_policy_compares_rule_and_random_in_one_table(tmp_path, capsys):
    # Two worker processes: the pool must start cleanly (spawned, not forked).
    code = main(
        [
            "eval-policy",
            "rule",
            "random",
            "--episodes",
            "2",
            "--seeds",
            "0,1",
            "--workers",
            "2",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert [m["model"] for m in report["models"]] == ["rule", "random"]
    assert all(m["episodes"] == 4 for m in report["models"])
    rows = list(csv.DictReader((tmp_path / "eval.csv").open()))
    assert {r["eval_seed"] for r in rows} == {"all", "0", "1"}
    assert "crash 95% CI" in capsys.readouterr().out


def test_eval_policy_rejects_a_non_policy_file(tmp_path, capsys):
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"not a policy")
    code = main(["eval-policy", str(fake), "--episodes", "1", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "fake" in capsys.readouterr().err
