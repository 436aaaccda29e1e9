"""Progress bars are drawn on a terminal only, never into logs or pipes."""

from __future__ import annotations

import io
import sys

from sim.progress import progress_bar, stderr_is_terminal


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_drawn_on_a_terminal(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    with progress_bar(total=3, desc="work") as bar:
        drawn = not bar.disable
        bar.update(3)

    assert drawn
    assert "3/3" in terminal.getvalue()


def test_no_bar_when_stderr_is_a_file_or_pipe(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)

    with progress_bar(total=3, desc="work") as bar:
        hidden = bar.disable
        bar.update(3)

    assert hidden and not stderr_is_terminal()
    assert log.getvalue() == ""


def test_no_progress_hides_the_bar_on_a_terminal(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    with progress_bar(False, total=3) as bar:
        hidden = bar.disable
        bar.update(3)

    assert hidden and terminal.getvalue() == ""


def test_closed_or_missing_stderr_counts_as_no_terminal(monkeypatch):
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    assert not stderr_is_terminal()
    monkeypatch.setattr(sys, "stderr", None)
    assert not stderr_is_terminal()
