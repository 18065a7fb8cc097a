"""Tests for deepnotes.core.progress in plain (non-terminal) mode."""

from __future__ import annotations

import io
import re

import pytest

from deepnotes.core import progress as progress_module
from deepnotes.core.progress import Progress

LINE = re.compile(
    r"^(?P<desc>.+): (?P<done>\d+)/(?P<total>\d+) \[(?P<secs>\d+\.\d)s\](?P<rest>.*)$"
)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_plain_mode_prints_every_step_without_throttle() -> None:
    stream = io.StringIO()
    assert not stream.isatty()
    with Progress(3, "epochs", stream=stream, min_interval=0.0) as bar:
        assert bar._rich is None
        for epoch in range(3):
            bar.advance(loss=0.123456, epoch=epoch, name="sgd")
    lines = _lines(stream)
    assert len(lines) == 3
    for i, line in enumerate(lines, start=1):
        match = LINE.match(line)
        assert match is not None, line
        assert match["desc"] == "epochs"
        assert (int(match["done"]), int(match["total"])) == (i, 3)
        assert float(match["secs"]) >= 0.0
        assert match["rest"] == f" loss=0.1235  epoch={i - 1}  name=sgd"
    assert bar.done == 3


def test_plain_mode_without_postfix_has_no_trailing_space() -> None:
    stream = io.StringIO()
    with Progress(2, "reps", stream=stream, min_interval=0.0) as bar:
        bar.advance()
        bar.advance()
    lines = _lines(stream)
    assert [LINE.match(line)["done"] for line in lines] == ["1", "2"]
    assert all(line.endswith("s]") for line in lines)


def test_min_interval_huge_prints_only_final_line() -> None:
    stream = io.StringIO()
    with Progress(5, "epochs", stream=stream, min_interval=1e9) as bar:
        for step in range(5):
            bar.advance(acc=step / 10)
    lines = _lines(stream)
    assert len(lines) == 1
    match = LINE.match(lines[0])
    assert match is not None
    assert (match["done"], match["total"]) == ("5", "5")
    assert match["rest"] == " acc=0.4"


def test_advance_by_several_units() -> None:
    stream = io.StringIO()
    with Progress(10, "items", stream=stream, min_interval=1e9) as bar:
        bar.advance(4)
        bar.advance(6, loss=1.0)
    assert bar.done == 10
    (line,) = _lines(stream)
    assert line.startswith("items: 10/10 [")
    assert line.endswith("s] loss=1")


def test_throttling_with_controlled_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: clock[0])
    stream = io.StringIO()
    with Progress(6, "steps", stream=stream, min_interval=2.0) as bar:
        for now in (1000.5, 1001.0, 1002.6, 1003.0, 1004.7, 1004.8):
            clock[0] = now
            bar.advance()
    lines = _lines(stream)
    # printed at 1000.5 (first), 1002.6 (>= 2 s later), 1004.7 (>= 2 s later), 1004.8 (last)
    assert [LINE.match(line)["done"] for line in lines] == ["1", "3", "5", "6"]
    assert [LINE.match(line)["secs"] for line in lines] == ["0.5", "2.6", "4.7", "4.8"]


def test_disabled_prints_nothing_but_counts() -> None:
    stream = io.StringIO()
    with Progress(3, "epochs", enabled=False, stream=stream, min_interval=0.0) as bar:
        for _ in range(3):
            bar.advance(loss=1.0)
    assert stream.getvalue() == ""
    assert bar.done == 3


class _FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_disabled_on_a_terminal_does_not_start_rich() -> None:
    stream = _FakeTty()
    with Progress(2, "epochs", enabled=False, stream=stream) as bar:
        assert bar._rich is None
        bar.advance()
    assert stream.getvalue() == ""
