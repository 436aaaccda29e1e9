"""autolabel into a folder that already holds a dataset: runs never mix."""

from __future__ import annotations

import pytest

from perception.autolabel import _clear_earlier_run


def test_an_earlier_autolabel_dataset_is_replaced(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "train" / "old.jpg").write_bytes(b"x")
    (tmp_path / "summary.json").write_text('{"command": "autolabel"}')
    _clear_earlier_run(tmp_path)
    assert not (tmp_path / "images").exists() and not (tmp_path / "summary.json").exists()


def test_folders_another_tool_wrote_are_never_deleted(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(OSError, match="did not write"):
        _clear_earlier_run(tmp_path)
    assert (tmp_path / "images" / "mine.jpg").exists()
