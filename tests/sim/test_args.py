"""The shared argument types: one seed-list syntax for every ``--seeds``-like option."""

from __future__ import annotations

import argparse

import pytest

from sim.cli import main
from sim.commands.args import MAX_SEEDS, seed_list


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("1,2,3", [1, 2, 3]),
        ("0-4", [0, 1, 2, 3, 4]),
        ("7-7", [7]),
        ("0-2, 9", [0, 1, 2, 9]),
        ("5", [5]),
    ],
)
def test_seed_lists_and_ranges_are_read(text, seeds):
    assert seed_list(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1000-999", "1000-999: the range end is below its start"),
        ("1,2,1", "seed(s) 1 given more than once"),
        ("0-3,2", "seed(s) 2 given more than once"),
        ("1,x", "'x' is neither a seed"),
        ("-3", "'-3' is neither a seed"),
        ("1-", "'1-' is neither a seed"),
        ("", "expected seeds as A,B,C or A-B"),
        (f"0-{MAX_SEEDS}", f"more than {MAX_SEEDS} seeds"),
    ],
)
def test_bad_seed_lists_are_refused_saying_why(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        seed_list(text)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "command",
    [
        ["eval-policy", "rule", "--seeds"],
        ["eval-localizer", "--seeds"],
        ["train-localizer", "--train-seeds"],
        ["train-localizer", "--eval-seeds"],
    ],
)
def test_every_seeds_option_uses_the_shared_parser(command, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "1000-999", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "1000-999: the range end is below its start" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
