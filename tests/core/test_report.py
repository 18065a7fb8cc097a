"""Tests for deepnotes.core.report: finding outcomes, the HTML report and the markdown table."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from deepnotes.core.report import (
    Outcomes,
    build_report,
    claims_markdown,
    find_outcomes,
    format_value,
    latest_outcomes,
    not_holding_markdown,
)


def _png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A minimal valid RGB PNG (all white)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\xff" * (3 * width) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _claim(statement: str, measured: Any, threshold: Any, comparison: str, holds: bool) -> dict:
    return {
        "statement": statement,
        "measured": measured,
        "threshold": threshold,
        "comparison": comparison,
        "holds": holds,
        "detail": "",
    }


def _outcome(name: str, topic: str, run_id: str, finished: str, **over: Any) -> dict[str, Any]:
    outcome = {
        "name": name,
        "topic": topic,
        "description": f"Description of {name}.",
        "run_id": run_id,
        "preset": "quick",
        "seed": 0,
        "device": "cpu",
        "world_size": 1,
        "config": {"epochs": 3, "lr": 0.001, "hidden": [256, 128]},
        "metrics": {"test_acc": 0.98123, "best_epoch": 2},
        "figures": [],
        "claims": [_claim("acc >= 0.97", 0.98123, 0.97, ">=", True)],
        "all_hold": True,
        "started": "2026-11-24T09:01:02+00:00",
        "finished": finished,
        "duration_s": 12.3,
        "versions": {"deepnotes": "0.1.0", "torch": "2.4.0", "python": "3.11.7"},
    }
    outcome.update(over)
    return outcome


def _write_run(
    runs: Path,
    outcome: dict[str, Any] | None,
    figures: tuple[str, ...] = (),
    raw: str | None = None,
) -> Path:
    """Create ``runs/<name>/<run_id>/`` with config.json, the given PNGs and outcome.json."""
    name = outcome["name"] if outcome else "broken.experiment"
    run_id = outcome["run_id"] if outcome else "20260101-000000-s0-zzzz"
    run_dir = runs / name / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}", encoding="utf-8")
    (run_dir / "metrics.jsonl").write_text("", encoding="utf-8")
    for figure in figures:
        (run_dir / figure).write_bytes(_png_bytes())
    if raw is not None:
        (run_dir / "outcome.json").write_text(raw, encoding="utf-8")
    elif outcome is not None:
        (run_dir / "outcome.json").write_text(json.dumps(outcome), encoding="utf-8")
    return run_dir


class _PageParser(HTMLParser):
    """Collects <img> sources/alts, <figure> count, and the cells of the summary table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.figures = 0
        self.summary_rows: list[list[tuple[str, str]]] = []  # (td class, text)
        self._in_summary = False
        self._cell: list[str] | None = None
        self._cell_class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "img":
            self.imgs.append(attr)
        elif tag == "figure":
            self.figures += 1
        elif tag == "table" and attr.get("id") == "summary":
            self._in_summary = True
        elif self._in_summary and tag == "tr" and "claim" in (attr.get("class") or ""):
            self.summary_rows.append([])
        elif self._in_summary and tag == "td" and self.summary_rows:
            self._cell, self._cell_class = [], attr.get("class") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_summary = False
        elif tag == "td" and self._cell is not None:
            self.summary_rows[-1].append((self._cell_class, "".join(self._cell)))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(index: Path) -> tuple[str, _PageParser]:
    text = index.read_text(encoding="utf-8")
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    return text, parser


def _populate(runs: Path) -> None:
    """Two topics, one experiment with two runs, a malformed file, an unfinished run."""
    old = _outcome(
        "foundations.digits",
        "foundations",
        "20261124-090000-s0-aaaa",
        "2026-11-24T09:00:10+00:00",
        claims=[_claim("OLD RUN CLAIM", 0.5, 0.97, ">=", False)],
    )
    new = _outcome(
        "foundations.digits",
        "foundations",
        "20261124-100000-s0-bbbb",
        "2026-11-24T10:00:10+00:00",
        figures=["curves.png", "confusion.png"],
        claims=[
            _claim("acc >= 0.97", 0.98123, 0.97, ">=", True),
            _claim("loss < 0.1", 0.2, 0.1, "<", False),
        ],
    )
    other = _outcome(
        "optim.sgd",
        "optim",
        "20261124-110000-s0-cccc",
        "2026-11-24T11:00:10+00:00",
        figures=["loss.png", "curves.png"],  # curves.png is not written: missing
        claims=[
            _claim("<script>alert('x')</script> & a<b", float("nan"), [0.9, 1.1], "within", True)
        ],
    )
    _write_run(runs, old, ("curves.png",))
    _write_run(runs, new, ("curves.png", "confusion.png"))
    _write_run(runs, other, ("loss.png",))
    _write_run(runs, None, raw="{not json")  # malformed
    unfinished = runs / "optim.adam" / "20261124-120000-s0-dddd"
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text("{}", encoding="utf-8")


def test_find_outcomes_skips_malformed_and_unfinished(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _populate(runs)
    missing_keys = _outcome("x.y", "x", "r1", "2026-11-24T09:00:00+00:00")
    del missing_keys["claims"]
    _write_run(runs, missing_keys)
    _write_run(runs, _outcome("z.list", "z", "r2", "t"), raw="[1, 2]")
    # a report folder that happens to contain an outcome.json-shaped file is ignored
    _write_run(runs / "report", _outcome("report.x", "r", "r3", "t"))

    found = find_outcomes(runs)
    assert isinstance(found, Outcomes)
    assert len(found) == 3
    assert all(isinstance(o["run_dir"], Path) and o["run_dir"].is_dir() for o in found)
    assert {o["name"] for o in found} == {"foundations.digits", "optim.sgd"}
    assert len(found.problems) == 3
    joined = "\n".join(found.problems)
    assert "invalid JSON" in joined
    assert "missing keys: claims" in joined
    assert "expected a JSON object" in joined
    assert "optim.adam" not in joined  # unfinished run is not a problem


def test_latest_outcome_chosen_and_sorted(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _populate(runs)
    latest = latest_outcomes(runs)
    assert [o["name"] for o in latest] == ["foundations.digits", "optim.sgd"]
    assert latest[0]["run_id"] == "20261124-100000-s0-bbbb"
    assert len(latest.problems) == 1


def test_latest_tie_break_by_run_id_and_time_zones(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    same = "2026-11-24T09:00:00+00:00"
    _write_run(runs, _outcome("a.b", "a", "run-1", same))
    _write_run(runs, _outcome("a.b", "a", "run-2", same))
    # 10:30+02:00 is 08:30 UTC: older than the others despite the larger wall-clock text
    _write_run(runs, _outcome("a.b", "a", "run-9", "2026-11-24T10:30:00+02:00"))
    assert latest_outcomes(runs)[0]["run_id"] == "run-2"


def test_build_report_page(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _populate(runs)
    built = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    index = build_report(runs, built=built)
    assert index == runs / "report" / "index.html"
    assert index.is_file()
    text, page = _parse(index)

    assert "2026-11-25T08:00:00+00:00" in text
    assert "3 claims, 2 hold" in text

    # every image resolves relative to index.html, each has alt text and a figure
    assert len(page.imgs) == 3
    for img in page.imgs:
        assert img["alt"]
        src = img["src"] or ""
        assert not src.startswith(("/", "http:", "https:", "file:"))
        assert (index.parent / src).is_file()
    assert page.figures == 3
    assert (index.parent / "figures" / "foundations.digits" / "confusion.png").is_file()
    assert "<figcaption>confusion.png</figcaption>" in text
    assert '<p class="missing">missing: curves.png</p>' in text

    # one summary row per claim of the latest runs, with the right marking
    rows = page.summary_rows
    assert len(rows) == 3
    marks = [(row[0][1], row[-1]) for row in rows]
    assert marks == [
        ("foundations.digits", ("holds", "holds")),
        ("foundations.digits", ("fails", "does not hold")),
        ("optim.sgd", ("holds", "holds")),
    ]
    assert "OLD RUN CLAIM" not in text
    assert rows[2][2][1] == "nan"
    assert rows[2][3][1] == "within [0.9,1.1]"
    assert 'href="#exp-foundations-digits"' in text
    assert 'id="exp-foundations-digits"' in text

    # HTML special characters in user text are escaped
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; a&lt;b" in text
    assert rows[2][1][1] == "<script>alert('x')</script> & a<b"

    # malformed outcome reported in a warning box; topics as headings
    assert 'class="warning"' in text
    assert "broken.experiment" in text and "invalid JSON" in text
    assert '<h2 class="topic" id="topic-foundations">foundations</h2>' in text
    assert text.index("topic-foundations") < text.index("topic-optim")
    # no external resources
    assert "http://" not in text and "https://" not in text
    assert "<link" not in text and "<script" not in text


def test_build_report_custom_out_dir_and_rebuild(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _populate(runs)
    out = tmp_path / "site"
    first = build_report(runs, out)
    second = build_report(runs, out)
    assert first == second == out / "index.html"
    _, page = _parse(second)
    assert all((out / (img["src"] or "")).is_file() for img in page.imgs)
    assert not (runs / "report").exists()


def test_build_report_empty_runs_dir(tmp_path: Path) -> None:
    runs = tmp_path / "empty"
    runs.mkdir()
    index = build_report(runs)
    text, page = _parse(index)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "No runs were found" in text
    assert "0 claims, 0 hold" in text
    assert page.imgs == [] and page.summary_rows == []
    # building again ignores the report folder it wrote
    assert find_outcomes(runs).items == []
    assert build_report(tmp_path / "does-not-exist").is_file()


def test_figure_path_escaping_run_dir_is_missing(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (tmp_path / "secret.png").write_bytes(_png_bytes())
    _write_run(runs, _outcome("a.b", "a", "r1", "t", figures=["../../../secret.png"]))
    text, page = _parse(build_report(runs))
    assert page.imgs == []
    assert "missing: ../../../secret.png" in text


def test_claims_markdown_exact() -> None:
    outcomes = [
        {
            "name": "foundations.digits",
            "claims": [
                _claim("MLP reaches acc >= 0.97", 0.981, 0.97, ">=", True),
                _claim("a | b", float("nan"), 0.1, "<", False),
            ],
        },
        {
            "name": "optim.sgd",
            "claims": [{**_claim("ratio", 1.0, [0.9, 1.1], "within", True), "detail": "2 runs"}],
        },
        {"name": "no.claims", "claims": []},
    ]
    expected = (
        "| experiment | claim | measured | threshold | holds | detail |\n"
        "|---|---|---|---|---|---|\n"
        "| foundations.digits | MLP reaches acc >= 0.97 | 0.981 | >= 0.97 | holds |  |\n"
        "| foundations.digits | a \\| b | nan | < 0.1 | does not hold |  |\n"
        "| optim.sgd | ratio | 1 | within [0.9,1.1] | holds | 2 runs |\n"
    )
    assert claims_markdown(outcomes) == expected
    assert claims_markdown(outcomes) == claims_markdown(outcomes)
    assert claims_markdown([]).count("\n") == 2


def test_known_failures_in_markdown_and_html(tmp_path: Path) -> None:
    known = {**_claim("BN trains at 10x", 0.86, 0.9, ">=", False), "known_failure": "slow"}
    lucky = {**_claim("noisy gap > 0", 0.01, 0.0, ">", True), "known_failure": "seed-dependent"}
    outcomes = [
        {"name": "v.bn", "claims": [known, _claim("plain stalls", 0.1, 0.5, "<=", True)]},
        {"name": "v.gap", "claims": [lucky, _claim("broken", 0.0, 1.0, ">=", False)]},
    ]
    table = claims_markdown(outcomes).splitlines()
    assert table[2] == (
        "| v.bn | BN trains at 10x | 0.86 | >= 0.9 | does not hold (known) | Known failure: slow |"
    )
    assert "| holds (marked as a known failure) | Known failure: seed-dependent |" in table[4]
    assert table[5].endswith("| does not hold |  |")
    assert not_holding_markdown(outcomes).splitlines() == [
        "- `v.bn`: BN trains at 10x — measured 0.86 (>= 0.9): does not hold (known). Why: slow",
        "- `v.gap`: noisy gap > 0 — measured 0.01 (> 0): holds (marked as a known failure). "
        "Why: seed-dependent",
        "- `v.gap`: broken — measured 0 (>= 1): does not hold",
    ]
    assert not_holding_markdown(outcomes[:1][:0]) == "(none)"


def test_claims_markdown_accepts_outcomes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _populate(runs)
    text = claims_markdown(latest_outcomes(runs))
    lines = text.splitlines()
    assert len(lines) == 2 + 3
    assert lines[-1].startswith("| optim.sgd | <script>") and "| nan | within [0.9,1.1] |" in text


def test_format_value() -> None:
    assert format_value(0.98123) == "0.9812"
    assert format_value(17) == "17"
    assert format_value(True) == "true"
    assert format_value(None) == "n/a"
    assert format_value(float("inf")) == "inf"
    assert format_value(float("nan")) == "nan"
    assert format_value([256, 128]) == "[256,128]"
    assert format_value({"a": 1}) == '{"a":1}'
    assert format_value("text") == "text"
