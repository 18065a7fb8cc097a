"""Tests for deepnotes.core.report: finding outcomes, counting claims and checks, the HTML
report, the README summary and the full claims list."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from deepnotes.core.report import (
    Outcomes,
    Tally,
    TopicSummary,
    build_report,
    claim_kind,
    claims_doc_markdown,
    claims_markdown,
    find_outcomes,
    first_sentence,
    format_value,
    latest_outcomes,
    not_holding,
    not_holding_markdown,
    runtime_text,
    summary_markdown,
    summary_total,
    tally,
    threshold_text,
    topic_summaries,
    write_report,
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


def _claim(
    statement: str, measured: Any, threshold: Any, comparison: str, holds: Any, **over: Any
) -> dict:
    return {
        "statement": statement,
        "measured": measured,
        "threshold": threshold,
        "comparison": comparison,
        "holds": holds,
        "detail": "",
        **over,
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


# ------------------------------------------------------------------------------ a tiny DOM

_VOID = {"img", "br", "meta", "input", "link", "hr", "source", "col", "wbr", "area", "base"}


@dataclass
class Node:
    """An element of the parsed page: tag, attributes, children (nodes and text)."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [
            node
            for node in self.iter()
            if (tag is None or node.tag == tag) and (cls is None or cls in node.classes)
        ]

    def by_id(self, anchor: str) -> Node:
        found = [node for node in self.iter() if node.attrs.get("id") == anchor]
        assert len(found) == 1, (anchor, len(found))
        return found[0]

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#root", {})
        self._stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self._stack[-1].children.append(node)
        if tag not in _VOID:
            self._stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert tag not in _VOID
        assert self._stack[-1].tag == tag, f"</{tag}> closes <{self._stack[-1].tag}>"
        self._stack.pop()

    def handle_data(self, data: str) -> None:
        self._stack[-1].children.append(data)


def _parse(index: Path) -> tuple[str, Node]:
    text = index.read_text(encoding="utf-8")
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    assert [n.tag for n in builder._stack] == ["#root"], "unclosed elements"
    return text, builder.root


def _table_rows(table: Node, section: str = "tbody") -> list[list[str]]:
    body = table.find_all(section)[0]
    return [[td.text() for td in tr.find_all("td")] for tr in body.find_all("tr")]


def _assert_links_resolve(index: Path, root: Node) -> None:
    """Every in-page link names an existing id; every other link and image is a relative path
    to an existing file under the report folder."""
    ids = [n.attrs["id"] for n in root.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for node in root.iter():
        for attr in ("href", "src"):
            if attr not in node.attrs:
                continue
            target = node.attrs[attr]
            if target.startswith("#"):
                assert target[1:] in ids, target
            else:
                assert not target.startswith(("/", "http:", "https:", "file:", "//")), target
                assert (index.parent / unquote(target)).is_file(), target


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
    text, root = _parse(index)

    assert "2026-11-25T08:00:00+00:00" in text
    assert root.find_all("p", "count")[0].text() == "2/3 claims hold, 1 fail"
    _assert_links_resolve(index, root)

    # the page opens with the summary by topic, then what does not hold, the contents, topics
    order = ["topics", "not-holding", "contents", "topic-foundations", "topic-optim"]
    positions = [text.index(f'id="{anchor}"') for anchor in order]
    assert positions == sorted(positions)

    # figures: thumbnails that link to the full-size copy
    thumbs = root.find_all("img")
    assert len(thumbs) == 3
    for link in root.find_all("a"):
        imgs = link.find_all("img")
        if imgs:
            assert imgs[0].classes == {"thumb"} and imgs[0].attrs["alt"]
            assert link.attrs["href"] == imgs[0].attrs["src"]
    assert sum(len(a.find_all("img")) for a in root.find_all("a")) == 3
    assert (index.parent / "figures" / "foundations.digits" / "confusion.png").is_file()
    assert "<figcaption>confusion.png</figcaption>" in text
    assert '<p class="missing">missing: curves.png</p>' in text

    # claims of the latest run only, each folded with its verdict
    assert "OLD RUN CLAIM" not in text
    claims = root.find_all("details", "claim")
    assert [c.find_all("summary")[0].text().split(" measured ")[0] for c in claims] == [
        "holds acc >= 0.97",
        "does not hold loss < 0.1",
        "holds <script>alert('x')</script> & a<b",
    ]
    assert "measured nan , threshold within [0.9,1.1]" in claims[2].text()

    # HTML special characters in user text are escaped
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; a&lt;b" in text

    # malformed outcome reported in a warning box; topics as headings
    warning = root.find_all("div", "warning")[0].text()
    assert "broken.experiment" in warning and "invalid JSON" in warning
    assert '<h2 class="topic">foundations</h2>' in text
    # self-contained: no external resources, one inline script
    assert "http://" not in text and "https://" not in text and "<link" not in text
    scripts = root.find_all("script")
    assert len(scripts) == 1 and "src" not in scripts[0].attrs


def _counting_runs() -> list[dict[str, Any]]:
    """Two topics; claims of every verdict, checks, old records without kind, a full run."""
    return [
        _outcome(
            "alpha.one",
            "alpha",
            "r1",
            "2026-11-24T09:00:00+00:00",
            duration_s=10.0,
            claims=[
                _claim("a1 holds", 1.0, 0.5, ">=", True, kind="claim", key="a1"),
                _claim("a2 known", 0.1, 0.5, ">=", False, kind="claim", known_failure="why"),
                _claim("a3 fails", 0.1, 0.5, ">=", False, kind="claim"),
                _claim("a4 malformed", 0.1, 0.5, ">=", "yes", kind="claim"),
                _claim("c1 passes", 1e-13, 1e-12, "<=", True, kind="check", key="c1"),
                _claim("c2 fails", 1e-3, 1e-12, "<=", False, kind="check", key="c2"),
            ],
        ),
        _outcome(
            "alpha.two",
            "alpha",
            "r2",
            "2026-11-24T09:00:00+00:00",
            preset="full",
            duration_s=100.0,
            claims=[_claim("b1 holds", 1.0, 0.5, ">=", True)],
        ),
        _outcome(
            "beta.three",
            "beta",
            "r3",
            "2026-11-24T09:00:00+00:00",
            duration_s=65.5,
            claims=[
                _claim("old record", 1.0, 0.5, ">=", True),  # no "kind": a claim
                _claim("lucky", 1.0, 0.5, ">=", True, known_failure="seed-dependent"),
            ],
        ),
    ]


def test_tally_counts_claims_and_checks_apart() -> None:
    alpha = _counting_runs()[0]["claims"]
    assert tally(alpha) == Tally(claims=4, hold=1, known=1, fail=2, checks=2, checks_fail=1)
    assert tally(alpha).text() == "1/4 claims hold, 1 known not to hold, 2 fail; 1/2 checks pass"
    assert tally([]).text() == "0/0 claims hold"
    assert [claim_kind(c) for c in alpha] == ["claim"] * 4 + ["check"] * 2
    assert claim_kind({"statement": "old"}) == "claim"
    assert tally(alpha) + tally(alpha) == Tally(8, 2, 2, 4, 4, 2)


def test_topic_summaries_count_per_topic() -> None:
    summaries = topic_summaries(_counting_runs())
    assert summaries == [
        TopicSummary("alpha", 2, Tally(5, 2, 1, 2, 2, 1), 10.0, 1),
        TopicSummary("beta", 1, Tally(2, 2, 0, 0, 0, 0), 65.5, 1),
    ]
    assert summary_total(summaries) == TopicSummary("all", 3, Tally(7, 4, 1, 2, 2, 1), 75.5, 2)


def test_report_summary_table_counts_per_topic(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for outcome in _counting_runs():
        _write_run(runs, outcome)
    index = build_report(runs)
    _, root = _parse(index)
    table = root.by_id("topics")
    header = [th.text() for th in table.find_all("th")]
    assert header == [
        "topic",
        "experiments",
        "claims",
        "hold",
        "known failures",
        "fail",
        "checks",
        "checks failing",
        "quick runtime",
    ]
    assert _table_rows(table) == [
        ["alpha", "2", "5", "2", "1", "2", "2", "1", "10 s (1 of 2 runs)"],
        ["beta", "1", "2", "2", "0", "0", "0", "0", "1 min 06 s"],
    ]
    assert _table_rows(table, "tfoot") == [
        ["all", "3", "7", "4", "1", "2", "2", "1", "1 min 16 s (2 of 3 runs)"]
    ]
    assert [a.attrs["href"] for a in table.find_all("a")] == ["#topic-alpha", "#topic-beta"]
    count = root.find_all("p", "count")[0].text()
    assert count == "4/7 claims hold, 1 known not to hold, 2 fail; 1/2 checks pass"
    # claims and checks are listed apart in the experiment
    section = root.by_id("exp-alpha-one")
    headings = [h.text() for h in section.find_all("h4")]
    assert headings[:2] == ["Claims", "Checks"]
    checks = [d for d in section.find_all("details", "claim") if "c1 passes" in d.text()]
    assert len(checks) == 1 and "check c1" in checks[0].text()


def test_claims_are_folded_with_their_detail(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    claims = [
        _claim("first", 1.0, 0.5, ">=", True, detail="DETAIL-ONE: 40 runs"),
        _claim("second", 0.1, 0.5, ">=", False, detail="DETAIL-TWO", known_failure="WHY-TWO"),
    ]
    _write_run(runs, _outcome("a.b", "a", "r1", "t", claims=claims))
    text, root = _parse(build_report(runs))
    details = root.find_all("details", "claim")
    assert len(details) == 2
    for node, marker in zip(details, ("DETAIL-ONE: 40 runs", "DETAIL-TWO"), strict=True):
        assert "open" not in node.attrs  # folded
        body = node.find_all("div", "body")[0].text()
        assert marker in body and marker not in node.find_all("summary")[0].text()
    assert "Known failure: WHY-TWO" in details[1].find_all("div", "body")[0].text()
    # each detail appears once on the page (inside its fold), plus the "why" of the list
    assert text.count("DETAIL-ONE") == 1 and text.count("DETAIL-TWO") == 1
    # run, config and metrics are folded too
    run = root.find_all("details", "run")[0]
    assert "test_acc" in run.text() and "r1" in run.text()


def test_baseline_threshold_is_labelled(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    claims = [
        _claim("ensemble beats", 0.99, 0.97, ">", True, baseline="the best single net"),
        _claim("fixed", 0.99, 0.97, ">=", True, baseline=""),
    ]
    _write_run(runs, _outcome("v.ens", "v", "r1", "t", claims=claims))
    _, root = _parse(build_report(runs))
    relative, fixed = root.find_all("details", "claim")
    label = "relative to a measured baseline: the best single net"
    assert label in relative.find_all("summary")[0].text()
    assert "threshold > 0.97 (" + label + ")" in relative.text()
    assert "not fixed in advance" in relative.find_all("p", "baseline")[0].text()
    assert "relative to" not in fixed.text() and not fixed.find_all("p", "baseline")
    assert threshold_text(claims[0]) == "> 0.97 (" + label + ")"
    doc = claims_doc_markdown(latest_outcomes(runs))
    assert f"| ensemble beats | 0.99 | > 0.97 ({label}) | holds |" in doc
    assert "| fixed | 0.99 | >= 0.97 | holds |" in doc


def test_threshold_text_of_unmeasured_and_free_text_claims() -> None:
    unmeasured = _claim("k: declared but not measured", None, None, "n/a", False)
    assert threshold_text(unmeasured) == "n/a"
    assert threshold_text({"comparison": "within", "threshold": [0.9, 1.1]}) == "within [0.9,1.1]"
    assert threshold_text({"threshold": 3}) == "3"
    assert threshold_text({"comparison": "<"}) == "<"


def test_not_holding_list_is_exactly_what_does_not_hold(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for outcome in _counting_runs():
        _write_run(runs, outcome)
    expected = ["a2 known", "a3 fails", "a4 malformed", "c2 fails", "lucky"]
    outcomes = latest_outcomes(runs)
    assert [c["statement"] for _, c in not_holding(outcomes)] == expected

    index = build_report(runs)
    _, root = _parse(index)
    section = root.by_id("not-holding")
    items = section.find_all("li")
    targets = [root.by_id(li.find_all("a")[0].attrs["href"][1:]) for li in items]
    assert all(t.tag == "details" and "claim" in t.classes for t in targets)
    assert [t.find_all("summary")[0].text().split(" measured ")[0] for t in targets] == [
        "does not hold (known) a2 known",
        "does not hold a3 fails",
        "unknown a4 malformed",
        "does not hold c2 fails",
        "holds (marked as a known failure) lucky",
    ]
    assert "(check)" in items[3].text() and "Why: why" in items[0].text()
    # the filter hides exactly the rest: claims, checks and experiments marked "ok"
    for details in root.find_all("details", "claim"):
        statement = details.find_all("summary")[0].text()
        shown = any(s in statement for s in expected)
        assert ("problem" in details.classes) == shown and ("ok" in details.classes) != shown
    assert "ok" in root.by_id("exp-alpha-two").classes
    assert "problem" in root.by_id("exp-beta-three").classes
    assert root.by_id("only-problems").attrs["type"] == "checkbox"
    # the README list: one line per record, in the same order
    lines = not_holding_markdown(outcomes).splitlines()
    assert [line.split(": ", 1)[1].split(" — ")[0] for line in lines] == expected
    assert lines[3].startswith("- `alpha.one` (check): c2 fails")


def test_not_holding_list_when_everything_holds(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _write_run(runs, _outcome("a.b", "a", "r1", "t"))
    _, root = _parse(build_report(runs))
    section = root.by_id("not-holding")
    assert not section.find_all("li") and "Every claim and check holds." in section.text()


def test_contents_lists_every_experiment_by_topic(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for outcome in _counting_runs():
        _write_run(runs, outcome)
    _, root = _parse(build_report(runs))
    contents = root.by_id("contents")
    hrefs = [a.attrs["href"] for a in contents.find_all("a")]
    assert hrefs == [
        "#topic-alpha",
        "#exp-alpha-one",
        "#exp-alpha-two",
        "#topic-beta",
        "#exp-beta-three",
    ]
    assert "1/4 claims hold, 1 known not to hold, 2 fail 1/2 checks pass" in contents.text()


def test_build_report_custom_out_dir_and_rebuild(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _populate(runs)
    out = tmp_path / "site"
    first = build_report(runs, out, built=datetime(2026, 1, 1, tzinfo=timezone.utc))
    before = first.read_text()
    second = build_report(runs, out, built=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert first == second == out / "index.html"
    assert second.read_text() == before
    _, root = _parse(second)
    _assert_links_resolve(second, root)
    assert not (runs / "report").exists()


def test_build_report_empty_runs_dir(tmp_path: Path) -> None:
    runs = tmp_path / "empty"
    runs.mkdir()
    index = build_report(runs)
    text, root = _parse(index)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "No runs were found" in text
    assert root.find_all("p", "count")[0].text() == "0/0 claims hold"
    assert root.find_all("img") == [] and root.find_all("details") == []
    # building again ignores the report folder it wrote
    assert find_outcomes(runs).items == []
    assert build_report(tmp_path / "does-not-exist").is_file()


def test_figure_path_escaping_run_dir_is_missing(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (tmp_path / "secret.png").write_bytes(_png_bytes())
    _write_run(runs, _outcome("a.b", "a", "r1", "t", figures=["../../../secret.png"]))
    text, root = _parse(build_report(runs))
    assert root.find_all("img") == []
    assert "missing: ../../../secret.png" in text


def test_figures_that_are_links_or_outside_the_run_folder_are_not_copied(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret bytes, not a figure")
    run_dir = _write_run(
        runs,
        _outcome(
            "a.b", "a", "r1", "t", figures=["leak.png", "alias.png", "sub/deep.png", "ok.png"]
        ),
        ("ok.png",),
    )
    (run_dir / "leak.png").symlink_to(secret)  # a link out of the run folder
    (run_dir / "alias.png").symlink_to(run_dir / "ok.png")  # a link, even inside
    (run_dir / "sub").symlink_to(tmp_path)  # a linked folder
    (tmp_path / "deep.png").write_bytes(b"secret too")
    built = write_report(runs)
    copied = sorted(p.name for p in (built.index.parent / "figures").rglob("*") if p.is_file())
    assert copied == ["ok.png"]
    assert not any(b"secret" in p.read_bytes() for p in built.index.parent.rglob("*.png"))
    joined = "\n".join(built.problems)
    assert f"{run_dir / 'leak.png'}: figure not copied: it is a symbolic link" in joined
    assert f"{run_dir / 'alias.png'}: figure not copied: it is a symbolic link" in joined
    assert "sub is a symbolic link" in joined and len(built.problems) == 3
    text = built.index.read_text()
    assert "not copied (it is a symbolic link): leak.png" in text
    assert build_report(runs) == built.index  # the plain form returns the page only


def test_outcome_fields_of_the_wrong_type_are_skipped_and_named(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for run_id, field_, value, reason in (
        ("r1", "duration_s", "12", "'duration_s' must be a number, got a string"),
        ("r2", "preset", 3, "'preset' must be a string, got a number"),
        ("r3", "seed", True, "'seed' must be a number, got true or false"),
        ("r4", "all_hold", "yes", "'all_hold' must be true or false, got a string"),
        ("r5", "versions", [], "'versions' must be an object, got a list"),
    ):
        _write_run(runs, _outcome("a.b", "a", run_id, "t", **{field_: value}))
        found = find_outcomes(runs)
        assert found.items == [] and reason in found.problems[-1], found.problems
        assert found.problem_files[-1] == runs / "a.b" / run_id / "outcome.json"
    built = write_report(runs)
    assert len(built.problems) == 5 and built.index.is_file()


def test_summary_markdown_exact() -> None:
    expected = (
        "Latest run of each of the 3 experiments (presets full, quick, seed 0): **4/7 claims "
        "hold, 1 known not to hold, 2 fail; 1/2 checks pass**. Quick runtime: 1 min 16 s, the "
        "sum of the quick runs' durations on the machine that ran them.\n"
        "\n"
        "| topic | experiments | claims | hold | known failures | fail | checks | checks failing "
        "| quick runtime |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| [alpha](docs/claims.md#alpha) | 2 | 5 | 2 | 1 | 2 | 2 | 1 | 10 s (1 of 2 runs) |\n"
        "| [beta](docs/claims.md#beta) | 1 | 2 | 2 | 0 | 0 | 0 | 0 | 1 min 06 s |\n"
        "| **all** | **3** | **7** | **4** | **1** | **2** | **2** | **1** "
        "| **1 min 16 s (2 of 3 runs)** |\n"
        "\n"
        "Every claim and check, with what was measured, the threshold and the detail: "
        "[docs/claims.md](docs/claims.md)."
    )
    assert summary_markdown(_counting_runs()) == expected
    plain = summary_markdown(_counting_runs(), claims_link=None)
    assert "| alpha | 2 |" in plain and "docs/claims.md" not in plain
    assert summary_markdown([]).startswith("No runs yet")


def test_claims_doc_markdown_lists_every_record_by_topic() -> None:
    outcomes = _counting_runs()
    doc = claims_doc_markdown(outcomes, back_link="../README.md")
    assert doc == claims_doc_markdown(outcomes, back_link="../README.md")
    assert doc.startswith("# Claims and checks\n") and "[README](../README.md)" in doc
    lines = doc.splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert headings == [
        "# Claims and checks",
        "## alpha",
        "### alpha.one",
        "### alpha.two",
        "## beta",
        "### beta.three",
    ]
    assert "[alpha](#alpha) (2/5 claims hold, 1 known not to hold, 2 fail; 1/2 checks pass)" in doc
    # every record is one table row, claims and checks in their own tables
    for outcome in outcomes:
        for claim in outcome["claims"]:
            assert sum(line.startswith(f"| {claim['statement']} |") for line in lines) == 1
    one = doc[doc.index("### alpha.one") : doc.index("### alpha.two")]
    assert one.index("| claim | measured |") < one.index("| a4 malformed |")
    assert one.index("| a4 malformed |") < one.index("| check | measured |")
    assert one.index("| check | measured |") < one.index("| c1 passes |")
    assert "| c2 fails | 0.001 | <= 1e-12 | does not hold |" in one
    assert "| a2 known | 0.1 | >= 0.5 | does not hold (known) | Known failure: why |" in one
    assert "Run `r1`: quick preset, seed 0, cpu, 10 s;" in one
    assert "| check |" not in doc[doc.index("### alpha.two") :]
    assert claims_doc_markdown([]).endswith("No runs yet.\n")


@pytest.mark.parametrize(
    ("docstring", "sentence"),
    [
        (None, ""),
        ("", ""),
        ("One line.", "One line."),
        ("No full stop", "No full stop"),
        (
            "The training risk of a fitted model underestimates its risk; for a fixed model the\n"
            "    empirical risk converges to the risk like 1/sqrt(n).\n\n    More.\n    ",
            "The training risk of a fitted model underestimates its risk; for a fixed model the "
            "empirical risk converges to the risk like 1/sqrt(n).",
        ),
        (
            "Ill-conditioning slows GD. Momentum helps.\n\n    Deterministic.",
            "Ill-conditioning slows GD.",
        ),
        (
            "Gaussian vs. Xavier init, e.g. Xavier wins. Then more.",
            "Gaussian vs. Xavier init, e.g. Xavier wins.",
        ),
        ("N(0,0.01^2) vanishes. Rest.", "N(0,0.01^2) vanishes."),
        ("A paragraph\nwithout end\n\nSecond paragraph.", "A paragraph without end"),
        ("Does it hold? Yes.", "Does it hold?"),
        ("Version 2.0 of the net. Next", "Version 2.0 of the net."),
    ],
)
def test_first_sentence(docstring: str | None, sentence: str) -> None:
    assert first_sentence(docstring) == sentence


def test_runtime_text() -> None:
    assert [runtime_text(s) for s in (0, 12.3, 59.4, 60, 125.6, 3599, 3600, 7265)] == [
        "0 s",
        "12 s",
        "59 s",
        "1 min 00 s",
        "2 min 06 s",
        "59 min 59 s",
        "1 h 00 min",
        "2 h 01 min",
    ]


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
