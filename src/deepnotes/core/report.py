"""Build the HTML report, the README summary and the full claims list from finished runs.

Each run writes ``RUNS/<experiment-name>/<run-id>/``; a run that finished also writes
``outcome.json`` there. This module reads only those outcome files (and the figure files they
list) and keeps the most recently finished run of every experiment. Every record in an outcome's
``claims`` list is either a **claim** (a statement of the notes or a published result: it can
fail) or a **check** (an identity of the implementation, e.g. "equals torch to 1e-12"); the two
are counted apart everywhere (:class:`Tally`). Records written before ``kind`` existed count as
claims. It renders:

* :func:`build_report`: ``<out_dir>/index.html``, a self-contained page (inline ``<style>`` and a
  few lines of inline script, no external CSS/JS/fonts, relative links only) that opens with a
  summary by topic, lists what does not hold (with a filter that hides everything else), then a
  table of contents and one section per topic: each experiment with its figures as thumbnails
  linking to the full-size file, and each claim folded (``<details>``) with its detail. Figures are
  copied to ``<out_dir>/figures/<name>/<file>`` so the page works straight from the filesystem.
* :func:`summary_markdown`: the per-topic summary table for the README.
* :func:`claims_doc_markdown`: every claim and check, per topic and experiment (``docs/claims.md``).
* :func:`not_holding_markdown`: the list of what does not hold, for the README.

Malformed outcome files never crash the report: they are skipped and listed as problems
(``Outcomes.problems``), which the HTML page shows in a warning box and :func:`write_report`
returns, so that the command line can name them and exit non-zero. Only figures that are plain
files inside their run folder are copied: a figure that is a symbolic link, or that lies (or
resolves) outside the run folder, is left out and listed as a problem.

Example:
    >>> from deepnotes.core.report import build_report, latest_outcomes, summary_markdown
    >>> index = build_report("runs")  # doctest: +SKIP
    >>> print(summary_markdown(latest_outcomes("runs")))  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from deepnotes.core.errors import UsageError
from deepnotes.core.io import atomic_copy, atomic_write_text, check_folder
from deepnotes.core.registry import (
    FAILS,
    HOLDS,
    KNOWN,
    UNKNOWN,
    first_sentence,
    verdict,
    verdict_text,
)
from deepnotes.core.text import shorten

__all__ = [
    "CHECK",
    "CLAIM",
    "OUTCOME_FILE",
    "REPORT_DIRNAME",
    "REQUIRED_KEYS",
    "BuiltReport",
    "Outcomes",
    "Tally",
    "TopicSummary",
    "build_report",
    "claim_kind",
    "claims_doc_markdown",
    "claims_markdown",
    "find_outcomes",
    "first_sentence",
    "format_value",
    "latest_outcomes",
    "not_holding",
    "not_holding_markdown",
    "runtime_text",
    "summary_markdown",
    "summary_total",
    "tally",
    "threshold_text",
    "topic_summaries",
    "write_report",
]

OUTCOME_FILE = "outcome.json"
"""File name a finished run writes into its run folder."""

REPORT_DIRNAME = "report"
"""Default report folder inside the runs directory; never scanned for outcomes."""

REQUIRED_KEYS: tuple[str, ...] = (
    "name",
    "topic",
    "description",
    "run_id",
    "preset",
    "seed",
    "device",
    "world_size",
    "config",
    "metrics",
    "figures",
    "claims",
    "all_hold",
    "started",
    "finished",
    "duration_s",
    "versions",
)
"""Keys every outcome.json must contain; a file missing any of them is reported and skipped."""

_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "topic": (str,),
    "description": (str,),
    "run_id": (str,),
    "preset": (str,),
    "seed": (int,),
    "device": (str,),
    "world_size": (int,),
    "config": (dict,),
    "metrics": (dict,),
    "all_hold": (bool,),
    "started": (str,),
    "finished": (str,),
    "duration_s": (int, float),
    "versions": (dict,),
}
"""The JSON type each required field must have (``name``, ``figures`` and ``claims`` are checked
more closely); a file with another type is reported and skipped, never shown half-broken."""

CLAIM, CHECK = "claim", "check"
"""The two kinds of record in an outcome's ``claims`` list (see :func:`claim_kind`)."""

_VERDICT_CLASS = {HOLDS: "holds", FAILS: "fails", KNOWN: "known", UNKNOWN: "unknown"}


@dataclass
class Outcomes:
    """Outcome records found under a runs directory, plus the files that could not be used.

    Behaves like a read-only sequence of its ``items`` (``len``, iteration, indexing), so it can be
    passed wherever a list of outcome dicts is expected (e.g. ``summary_markdown``).

    Attributes:
        items: One dict per usable ``outcome.json`` (its JSON content) with an extra key
            ``"run_dir"`` holding the :class:`~pathlib.Path` of the run folder.
        problems: One human-readable line per skipped file: ``"<path>: <reason>"``.
        problem_files: The path of each skipped file, in the order of ``problems``.
    """

    items: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_files: list[Path] = field(default_factory=list)

    def skip(self, path: Path, reason: str) -> None:
        """Record that the file ``path`` was skipped, and why."""
        self.problems.append(f"{path}: {reason}")
        self.problem_files.append(path)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


# --------------------------------------------------------------------------------------------
# Finding outcomes
# --------------------------------------------------------------------------------------------


def find_outcomes(runs_dir: str | os.PathLike[str]) -> Outcomes:
    """Load every ``runs_dir/*/*/outcome.json`` (skipping the ``report`` folder).

    Files that are unreadable, not valid JSON, not a JSON object, missing any of
    :data:`REQUIRED_KEYS`, or whose ``name``/``config``/``metrics``/``figures``/``claims`` have the
    wrong type are skipped and described in ``problems``. Run folders without ``outcome.json``
    (unfinished runs) are ignored silently.

    Arguments:
        runs_dir: The runs directory; a missing directory yields no outcomes.

    Returns:
        An :class:`Outcomes` whose items are in sorted path order, each with ``"run_dir"`` added.

    Example:
        >>> found = find_outcomes("runs")  # doctest: +SKIP
        >>> [o["name"] for o in found], found.problems  # doctest: +SKIP
        (['foundations.supervised_digits'], [])
    """
    root = Path(runs_dir)
    result = Outcomes()
    if not root.is_dir():
        return result
    for path in sorted(root.glob(f"*/*/{OUTCOME_FILE}")):
        if path.relative_to(root).parts[0] == REPORT_DIRNAME or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            result.skip(path, f"cannot be read ({exc})")
            continue
        except json.JSONDecodeError as exc:
            result.skip(path, f"invalid JSON ({exc})")
            continue
        reason = _validate(data)
        if reason is not None:
            result.skip(path, reason)
            continue
        data["run_dir"] = path.parent
        result.items.append(data)
    return result


def _validate(data: Any) -> str | None:
    """Return why ``data`` is not a usable outcome record, or ``None`` when it is."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        return "missing keys: " + ", ".join(missing)
    if not isinstance(data["name"], str) or not data["name"].strip():
        return "'name' must be a non-empty string"
    for key, types in _FIELD_TYPES.items():
        value = data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in types))
            return f"'{key}' must be {expected}, got {_JSON_NAMES.get(type(value), 'another type')}"
    if not isinstance(data["figures"], list) or not all(
        isinstance(item, str) for item in data["figures"]
    ):
        return "'figures' must be a list of strings"
    if not isinstance(data["claims"], list) or not all(
        isinstance(item, dict) for item in data["claims"]
    ):
        return "'claims' must be a list of objects"
    return None


_JSON_NAMES = {
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "a list",
    type(None): "null",
}


def _finished_key(outcome: dict[str, Any]) -> tuple[datetime, str]:
    """Sort key "most recently finished": parsed ``finished`` time, then ``run_id``."""
    moment = datetime.min.replace(tzinfo=timezone.utc)
    value = outcome.get("finished")
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return moment, str(outcome.get("run_id"))


def latest_outcomes(runs_dir: str | os.PathLike[str]) -> Outcomes:
    """The most recently finished run of every experiment, sorted by topic then name.

    "Most recent" compares ``finished`` as an ISO-8601 time (unparsable times count as oldest),
    ties broken by the larger ``run_id``. Problems from :func:`find_outcomes` are kept.

    Arguments:
        runs_dir: The runs directory.

    Returns:
        An :class:`Outcomes` with one item per experiment name and all problems found.

    Example:
        >>> latest = latest_outcomes("runs")  # doctest: +SKIP
        >>> latest[0]["run_id"]  # doctest: +SKIP
        '20261124-090102-s0-ab12'
    """
    found = find_outcomes(runs_dir)
    best: dict[str, dict[str, Any]] = {}
    for outcome in found.items:
        current = best.get(outcome["name"])
        if current is None or _finished_key(outcome) > _finished_key(current):
            best[outcome["name"]] = outcome
    items = sorted(best.values(), key=lambda o: (str(o["topic"]), o["name"]))
    return Outcomes(
        items=items, problems=list(found.problems), problem_files=list(found.problem_files)
    )


# --------------------------------------------------------------------------------------------
# Claims and checks: kinds, verdicts, counts
# --------------------------------------------------------------------------------------------


def claim_kind(claim: Mapping[str, Any]) -> str:
    """:data:`CHECK` for a record whose ``kind`` is ``"check"``, else :data:`CLAIM`.

    Outcome files written before ``kind`` existed have no such key: their records are claims.

    Example:
        >>> claim_kind({"kind": "check"}), claim_kind({}), claim_kind({"kind": None})
        ('check', 'claim', 'claim')
    """
    return CHECK if str(claim.get("kind") or "").strip().lower() == CHECK else CLAIM


def _is_not_holding(claim: Mapping[str, Any]) -> bool:
    """Does not hold (known, unexpected or unknown), or holds although marked as known failure."""
    return verdict(claim) != HOLDS or bool(str(claim.get("known_failure") or "").strip())


@dataclass(frozen=True)
class Tally:
    """How many claims hold, are known failures or fail, and how many checks pass or fail.

    ``fail`` counts the claims that do not hold unexpectedly together with malformed ones (no
    boolean ``holds``), so ``hold + known + fail == claims``. A claim marked as a known failure
    that holds in this run counts as holding. A check that does not hold, whatever its marking,
    counts in ``checks_fail``.
    """

    claims: int = 0
    hold: int = 0
    known: int = 0
    fail: int = 0
    checks: int = 0
    checks_fail: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.claims + other.claims,
            self.hold + other.hold,
            self.known + other.known,
            self.fail + other.fail,
            self.checks + other.checks,
            self.checks_fail + other.checks_fail,
        )

    def claims_text(self) -> str:
        """E.g. ``"62/71 claims hold, 9 known not to hold, 1 fail"`` (the last two only when
        there are some)."""
        text = f"{self.hold}/{self.claims} claims hold"
        if self.known:
            text += f", {self.known} known not to hold"
        if self.fail:
            text += f", {self.fail} fail"
        return text

    def checks_text(self) -> str:
        """E.g. ``"12/12 checks pass"``; ``""`` when there are no checks."""
        return f"{self.checks - self.checks_fail}/{self.checks} checks pass" if self.checks else ""

    def text(self) -> str:
        """The claims, then the checks (when there are any), e.g.
        ``"62/71 claims hold, 9 known not to hold; 12/12 checks pass"``.

        Example:
            >>> Tally(claims=5, hold=3, known=1, fail=1, checks=2, checks_fail=0).text()
            '3/5 claims hold, 1 known not to hold, 1 fail; 2/2 checks pass'
        """
        return "; ".join(filter(None, (self.claims_text(), self.checks_text())))


def tally(claims: Iterable[Mapping[str, Any]]) -> Tally:
    """Count the records of one or more outcomes' ``claims`` lists (see :class:`Tally`).

    Example:
        >>> tally([{"holds": True}, {"holds": False, "known_failure": "why"},
        ...        {"holds": True, "kind": "check"}])
        Tally(claims=2, hold=1, known=1, fail=0, checks=1, checks_fail=0)
    """
    counts = dict.fromkeys(("claims", "hold", "known", "fail", "checks", "checks_fail"), 0)
    for claim in claims:
        v = verdict(claim)
        if claim_kind(claim) == CHECK:
            counts["checks"] += 1
            counts["checks_fail"] += v != HOLDS
        else:
            counts["claims"] += 1
            key = "hold" if v == HOLDS else "known" if v == KNOWN else "fail"
            counts[key] += 1
    return Tally(**counts)


@dataclass(frozen=True)
class TopicSummary:
    """One topic's line of the summary: experiments, claim/check counts and quick runtime.

    Attributes:
        topic: The topic name (``"all"`` for a total).
        experiments: How many experiments (latest runs) the topic has.
        tally: Their claims and checks counted.
        quick_runtime_s: The sum of ``duration_s`` of those latest runs made with the quick
            preset.
        quick_runs: How many of the latest runs were quick (the rest are not in the runtime).
    """

    topic: str
    experiments: int
    tally: Tally
    quick_runtime_s: float
    quick_runs: int


def _duration(outcome: Mapping[str, Any]) -> float:
    value = outcome.get("duration_s")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0


def topic_summaries(outcomes: Iterable[Mapping[str, Any]]) -> list[TopicSummary]:
    """One :class:`TopicSummary` per topic, in the order topics first appear in ``outcomes``.

    Arguments:
        outcomes: Outcome dicts, e.g. the result of :func:`latest_outcomes` (one per experiment).

    Returns:
        The per-topic summaries; :func:`summary_total` adds them up.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for outcome in outcomes:
        groups.setdefault(str(outcome.get("topic", "")), []).append(outcome)
    result = []
    for topic, group in groups.items():
        quick = [o for o in group if o.get("preset") == "quick"]
        result.append(
            TopicSummary(
                topic=topic,
                experiments=len(group),
                tally=tally(c for o in group for c in (o.get("claims") or [])),
                quick_runtime_s=sum(_duration(o) for o in quick),
                quick_runs=len(quick),
            )
        )
    return result


def summary_total(summaries: Iterable[TopicSummary]) -> TopicSummary:
    """The sum of per-topic summaries, as a summary of topic ``"all"``."""
    total = TopicSummary("all", 0, Tally(), 0.0, 0)
    for s in summaries:
        total = TopicSummary(
            "all",
            total.experiments + s.experiments,
            total.tally + s.tally,
            total.quick_runtime_s + s.quick_runtime_s,
            total.quick_runs + s.quick_runs,
        )
    return total


def not_holding(
    outcomes: Iterable[Mapping[str, Any]],
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """``(outcome, record)`` for every claim or check that does not hold, in order.

    "Does not hold" means a verdict other than ``holds`` (unexpected failure, known failure,
    unknown) or a claim marked as a known failure that happens to hold in this run (shown so that
    a stale mark is seen). The README list and the report's list are both made from this.
    """
    return [
        (outcome, claim)
        for outcome in outcomes
        for claim in outcome.get("claims") or []
        if _is_not_holding(claim)
    ]


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """Render a value from an outcome file as short plain text.

    Floats get 4 significant digits (``nan``/``inf`` as such), ints stay ints, bools become
    ``true``/``false``, ``None`` becomes ``n/a``, lists and dicts compact JSON, strings as given.

    Arguments:
        value: Any JSON-like value.

    Returns:
        The text (not HTML-escaped).

    Example:
        >>> format_value(0.98123), format_value(17), format_value(True), format_value([256, 128])
        ('0.9812', '17', 'true', '[256,128]')
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        try:
            return json.dumps(value, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def runtime_text(seconds: float) -> str:
    """A duration for people: ``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``.

    Example:
        >>> runtime_text(41.6), runtime_text(185), runtime_text(3725)
        ('42 s', '3 min 05 s', '1 h 02 min')
    """
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _baseline(claim: Mapping[str, Any]) -> str:
    return " ".join(str(claim.get("baseline") or "").split())


def _detail_text(claim: Mapping[str, Any]) -> str:
    """The claim's detail, followed by its known-failure reason when it has one."""
    detail = str(claim.get("detail") or "")
    known = str(claim.get("known_failure") or "").strip()
    if known:
        detail = f"{detail} Known failure: {known}" if detail else f"Known failure: {known}"
    return detail


def threshold_text(claim: Mapping[str, Any]) -> str:
    """``"<comparison> <threshold>"``, e.g. ``">= 0.97"``; free-text comparisons kept as given.

    A claim whose threshold is relative to a baseline measured in the same run (non-empty
    ``baseline``) says so: ``"> 0.9812 (relative to a measured baseline: the single nets)"``.
    A claim that was not measured (comparison ``"n/a"``) gives ``"n/a"``.

    Example:
        >>> threshold_text({"comparison": "<", "threshold": 0.1})
        '< 0.1'
        >>> threshold_text({"comparison": ">", "threshold": 0.5, "baseline": "plain SGD"})
        '> 0.5 (relative to a measured baseline: plain SGD)'
    """
    comparison = claim.get("comparison")
    if str(comparison).strip().lower() == "n/a":
        text = "n/a"
    else:
        parts = [] if comparison in (None, "") else [str(comparison)]
        if "threshold" in claim or not parts:
            parts.append(format_value(claim.get("threshold")))
        text = " ".join(parts)
    baseline = _baseline(claim)
    return f"{text} (relative to a measured baseline: {baseline})" if baseline else text


def _duration_text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{format_value(value)} s"
    return format_value(value)


def _safe_component(text: str) -> str:
    """A single, harmless path component made from ``text`` (used for figure folders)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip()
    return "_" if cleaned in ("", ".", "..") else cleaned


def _safe_relative(figure: str) -> PurePosixPath | None:
    """``figure`` as a relative path inside the run folder, or ``None`` if it would escape it."""
    path = PurePosixPath(figure.replace("\\", "/"))
    if not figure.strip() or path.is_absolute() or ".." in path.parts:
        return None
    parts = [part for part in path.parts if part not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _md_cell(text: str) -> str:
    """Escape text for a markdown table cell: pipes escaped, line breaks flattened."""
    return " ".join(text.replace("|", "\\|").split())


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def claims_markdown(outcomes: Iterable[Mapping[str, Any]]) -> str:
    """A flat GitHub-markdown table of every claim and check: experiment | claim | measured |
    threshold | holds | detail.

    Rows follow the order of ``outcomes`` and of each outcome's claims, so the same input always
    gives the same text. ``|`` in any cell is escaped as ``\\|`` and line breaks become spaces.
    (:func:`claims_doc_markdown` is the per-topic document that keeps claims and checks apart.)

    Arguments:
        outcomes: Outcome dicts, e.g. the result of :func:`latest_outcomes`.

    Returns:
        The table, ending in a newline (only the header when there are no claims).

    Example:
        >>> out = {"name": "a.b", "claims": [{"statement": "acc >= 0.9", "measured": 0.95,
        ...        "threshold": 0.9, "comparison": ">=", "holds": True, "detail": ""}]}
        >>> print(claims_markdown([out]), end="")
        | experiment | claim | measured | threshold | holds | detail |
        |---|---|---|---|---|---|
        | a.b | acc >= 0.9 | 0.95 | >= 0.9 | holds |  |
    """
    lines = [
        "| experiment | claim | measured | threshold | holds | detail |",
        "|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        name = str(outcome.get("name", ""))
        for claim in outcome.get("claims") or []:
            lines.append(_md_row([name, *_claim_cells(claim)]))
    return "\n".join(lines) + "\n"


def _claim_cells(claim: Mapping[str, Any]) -> list[str]:
    return [
        str(claim.get("statement", "")),
        format_value(claim.get("measured")),
        threshold_text(claim),
        verdict_text(claim),
        _detail_text(claim),
    ]


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_md_cell(cell) for cell in cells) + " |"


def not_holding_markdown(outcomes: Iterable[Mapping[str, Any]]) -> str:
    """A markdown list of every claim or check that does not hold (or holds only this time
    although it is marked as a known failure; see :func:`not_holding`), with what was measured
    and why; ``"(none)"`` when everything holds. Checks are marked ``(check)``.

    Example:
        >>> out = {"name": "a.b", "claims": [{"statement": "acc >= 0.9", "measured": 0.85,
        ...        "threshold": 0.9, "comparison": ">=", "holds": False,
        ...        "known_failure": "too few epochs"}]}
        >>> print(not_holding_markdown([out]))
        - `a.b`: acc >= 0.9 — measured 0.85 (>= 0.9): does not hold (known). Why: too few epochs
    """
    lines = []
    for outcome, claim in not_holding(outcomes):
        check = " (check)" if claim_kind(claim) == CHECK else ""
        line = (
            f"- `{outcome.get('name', '')}`{check}: {claim.get('statement', '')} — measured "
            f"{format_value(claim.get('measured'))} ({threshold_text(claim)}): "
            f"{verdict_text(claim)}"
        )
        known = str(claim.get("known_failure") or "").strip()
        lines.append(" ".join((line + (f". Why: {known}" if known else "")).split()))
    return "\n".join(lines) if lines else "(none)"


def _runs_text(outcomes: list[Mapping[str, Any]]) -> str:
    """``"quick preset, seed 0"`` (or the presets and seeds that occur, when mixed)."""
    presets = sorted({format_value(o.get("preset")) for o in outcomes})
    seeds = sorted({format_value(o.get("seed")) for o in outcomes})
    preset = f"{presets[0]} preset" if len(presets) == 1 else "presets " + ", ".join(presets)
    seed = f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(seeds)
    return f"{preset}, {seed}"


def _md_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces
    to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _summary_row_cells(summary: TopicSummary) -> list[str]:
    t = summary.tally
    runtime = runtime_text(summary.quick_runtime_s) if summary.quick_runs else "n/a"
    if 0 < summary.quick_runs < summary.experiments:
        runtime += f" ({summary.quick_runs} of {summary.experiments} runs)"
    return [
        str(summary.experiments),
        str(t.claims),
        str(t.hold),
        str(t.known),
        str(t.fail),
        str(t.checks),
        str(t.checks_fail),
        runtime,
    ]


_SUMMARY_HEADER = (
    "experiments",
    "claims",
    "hold",
    "known failures",
    "fail",
    "checks",
    "checks failing",
    "quick runtime",
)


def summary_markdown(
    outcomes: Iterable[Mapping[str, Any]], *, claims_link: str | None = "docs/claims.md"
) -> str:
    """The per-topic summary for the README: a sentence with the totals, then a table with one
    row per topic (experiments, claims that hold / are known failures / fail, checks, checks
    failing, quick runtime) and a total row, then a link to the full list.

    The quick runtime is the sum of ``duration_s`` of the latest runs made with the quick preset,
    i.e. the time ``deepnotes tour`` spent running experiments on the machine that ran them.
    The text depends only on ``outcomes``, so regenerating it from the same runs gives the same
    text.

    Arguments:
        outcomes: Outcome dicts, e.g. the result of :func:`latest_outcomes`.
        claims_link: Relative link to the full list (:func:`claims_doc_markdown`); topics link
            to their section there. ``None``: no links.

    Returns:
        Markdown without a trailing newline.
    """
    items = list(outcomes)
    if not items:
        return "No runs yet: run `deepnotes tour`, then `deepnotes report --readme README.md`."
    summaries = topic_summaries(items)
    total = summary_total(summaries)
    lines = [
        f"Latest run of each of the {total.experiments} experiments ({_runs_text(items)}): "
        f"**{total.tally.text()}**. Quick runtime: {runtime_text(total.quick_runtime_s)}, the "
        "sum of the quick runs' durations on the machine that ran them.",
        "",
        "| topic | " + " | ".join(_SUMMARY_HEADER) + " |",
        "|---|" + "---:|" * len(_SUMMARY_HEADER),
    ]
    for summary in summaries:
        topic = summary.topic
        if claims_link is not None:
            topic = f"[{topic}]({claims_link}#{_md_anchor(topic)})"
        lines.append(_md_row([topic, *_summary_row_cells(summary)]))
    lines.append(_md_row(["**all**", *(f"**{c}**" for c in _summary_row_cells(total))]))
    if claims_link is not None:
        lines += [
            "",
            f"Every claim and check, with what was measured, the threshold and the detail: "
            f"[{claims_link}]({claims_link}).",
        ]
    return "\n".join(lines)


def claims_doc_markdown(
    outcomes: Iterable[Mapping[str, Any]], *, back_link: str | None = None
) -> str:
    """The full list of claims and checks as a markdown document (``docs/claims.md``).

    A title and a short explanation, the totals, links to the topics, then per topic a section
    with its counts and, per experiment, its description, its run and two tables: claims, then
    checks (each: statement | measured | threshold | verdict | detail). Deterministic for the same
    ``outcomes`` (no build time), so regenerating it is idempotent.

    Arguments:
        outcomes: Outcome dicts, e.g. the result of :func:`latest_outcomes`.
        back_link: Relative link to the README, shown at the top when given.

    Returns:
        The document, ending in a newline.
    """
    items = list(outcomes)
    lines = [
        "# Claims and checks",
        "",
        "Generated by `deepnotes report --readme README.md` from the latest `outcome.json` of "
        "each experiment; not typed by hand."
        + (f" Back to the [README]({back_link})." if back_link else ""),
        "",
        "A **claim** is a statement of the notes (or a published result) measured by an "
        'experiment; it can fail. A **check** is an identity of the implementation ("equals '
        'torch to 1e-12"); it fails only on a bug. They are counted apart. A threshold was fixed '
        "before the run unless it says it is relative to a measured baseline.",
        "",
    ]
    if not items:
        return "\n".join([*lines, "No runs yet."]) + "\n"
    summaries = topic_summaries(items)
    total = summary_total(summaries)
    lines += [
        f"{total.experiments} experiments ({_runs_text(items)}): **{total.tally.text()}**.",
        "",
        "Topics: "
        + " · ".join(f"[{s.topic}](#{_md_anchor(s.topic)}) ({s.tally.text()})" for s in summaries),
    ]
    by_topic: dict[str, list[Mapping[str, Any]]] = {}
    for outcome in items:
        by_topic.setdefault(str(outcome.get("topic", "")), []).append(outcome)
    for summary in summaries:
        runtime = runtime_text(summary.quick_runtime_s) if summary.quick_runs else "n/a"
        lines += [
            "",
            f"## {summary.topic}",
            "",
            f"{_plural(summary.experiments, 'experiment')}; {summary.tally.text()}; "
            f"quick runtime {runtime}.",
        ]
        for outcome in by_topic[summary.topic]:
            lines += ["", f"### {outcome.get('name', '')}", ""]
            description = " ".join(format_value(outcome.get("description", "")).split())
            if description:
                lines += [description, ""]
            lines.append(
                f"Run `{format_value(outcome.get('run_id'))}`: "
                f"{format_value(outcome.get('preset'))} preset, seed "
                f"{format_value(outcome.get('seed'))}, {format_value(outcome.get('device'))}, "
                f"{_duration_text(outcome.get('duration_s'))}; "
                f"{tally(outcome.get('claims') or []).text()}."
            )
            for kind in (CLAIM, CHECK):
                records = [c for c in outcome.get("claims") or [] if claim_kind(c) == kind]
                if not records:
                    continue
                lines += [
                    "",
                    f"| {kind} | measured | threshold | verdict | detail |",
                    "|---|---|---|---|---|",
                ]
                lines += [_md_row(_claim_cells(c)) for c in records]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 76rem; padding: 0 1rem; color: #1d2125; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2rem; }
h2.topic { border-bottom: 2px solid #ccd; padding-bottom: 0.2rem; margin-top: 3rem; }
section.experiment { margin: 1.2rem 0 2.2rem; padding-left: 0.8rem;
                     border-left: 3px solid #e1e4e8; }
section.experiment h3 { margin-bottom: 0.3rem; }
.meta, .built { color: #5a6270; }
.count { font-size: 1.1rem; font-weight: 600; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.92rem; }
th, td { border: 1px solid #d5d9e0; padding: 0.3rem 0.6rem; text-align: left;
         vertical-align: top; }
th { background: #f2f4f7; }
table.topics td.n, table.topics th.n { text-align: right; }
table.topics tfoot td { font-weight: 600; background: #f7f8fa; }
td.num, td.val { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
td.num { white-space: nowrap; }
td.val { overflow-wrap: anywhere; }
.holds { color: #11672c; background: #e6f5ea; }
.fails, td.bad { color: #9b1c1c; background: #fbe9e9; }
.unknown, .known { color: #7a5b00; background: #fff6d6; }
.badge { display: inline-block; font-size: 0.8rem; font-weight: 600; padding: 0.05rem 0.45rem;
         border-radius: 0.7rem; white-space: nowrap; vertical-align: 0.1rem; }
.badge.check { color: #24476b; background: #e7eff8; }
.warning { border: 1px solid #e0b400; background: #fff8db; padding: 0.6rem 1rem;
           border-radius: 4px; margin: 1rem 0; }
.missing { color: #9b1c1c; font-style: italic; }
.figures { display: flex; flex-wrap: wrap; gap: 0.6rem; margin: 0.5rem 0; }
figure { margin: 0; border: 1px solid #e1e4e8; padding: 0.3rem; border-radius: 4px; }
figure { max-width: 100%; box-sizing: border-box; }
img.thumb { max-height: 13rem; max-width: 100%; width: auto; height: auto; display: block; }
figcaption { font-size: 0.78rem; color: #5a6270; text-align: center; margin-top: 0.2rem; }
details.claim { border: 1px solid #e1e4e8; border-left: 4px solid #9aa3ad; border-radius: 4px;
                margin: 0.3rem 0; padding: 0.2rem 0.6rem; }
details.claim.v-holds { border-left-color: #2f8f4e; }
details.claim.v-fails { border-left-color: #c62828; background: #fdf3f3; }
details.claim.v-known, details.claim.v-unknown { border-left-color: #d4a400; }
details.claim > summary { cursor: pointer; }
details.claim .mv { color: #5a6270; font-size: 0.88rem; white-space: nowrap; }
details.claim .body { margin: 0.3rem 0 0.4rem 1.2rem; font-size: 0.92rem; }
details.claim .baseline { color: #24476b; }
details.run > summary { cursor: pointer; color: #5a6270; }
nav.contents ul { list-style: none; padding-left: 0; }
nav.contents ul ul { columns: 2 24rem; padding-left: 1.2rem; margin-bottom: 0.6rem; }
nav.contents li li { break-inside: avoid; }
ul.not-holding li { margin: 0.3rem 0; }
.filter { background: #f2f4f7; padding: 0.4rem 0.8rem; border-radius: 4px; display: inline-block; }
body.only-problems .ok { display: none; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
"""

_SCRIPT = """
(function () {
  var box = document.getElementById("only-problems");
  function filter() { document.body.classList.toggle("only-problems", box.checked); }
  if (box) { box.addEventListener("change", filter); filter(); }
  function openTarget() {
    var id = "";
    try { id = decodeURIComponent(window.location.hash.slice(1)); } catch (e) { return; }
    for (var el = id && document.getElementById(id); el; el = el.parentElement) {
      if (el.tagName === "DETAILS") { el.open = true; }
    }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
"""


def _e(value: Any) -> str:
    """HTML-escape the plain-text rendering of ``value``."""
    return html.escape(format_value(value), quote=True)


def _t(text: str) -> str:
    """HTML-escape text."""
    return html.escape(text, quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


class _Anchors:
    """Unique, attribute-safe ids for topics, experiments and claims."""

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._ids: dict[tuple[str, ...], str] = {}

    def get(self, *key: str) -> str:
        """The id for ``key`` (made on first use: the slug of its parts, made unique)."""
        if key not in self._ids:
            base = "-".join(_slug(part) for part in key)
            anchor, n = base, 2
            while anchor in self._used:
                anchor, n = f"{base}-{n}", n + 1
            self._used.add(anchor)
            self._ids[key] = anchor
        return self._ids[key]

    def claim(self, outcome: Mapping[str, Any], index: int) -> str:
        key = str(outcome["claims"][index].get("key") or "") or str(index + 1)
        return self.get("claim", outcome["name"], key, f"#{index}")


def _verdict_badge(claim: Mapping[str, Any]) -> str:
    v = verdict(claim)
    return f'<span class="badge {_VERDICT_CLASS[v]}">{_t(verdict_text(claim))}</span>'


def _tally_badges(t: Tally) -> str:
    if t.claims == 0:
        status = "unknown"
    elif t.fail:
        status = "fails"
    else:
        status = "known" if t.known else "holds"
    out = f'<span class="badge {status}">{_t(t.claims_text())}</span>'
    if t.checks:
        check_class = "fails" if t.checks_fail else "check"
        out += f' <span class="badge {check_class}">{_t(t.checks_text())}</span>'
    return out


def _ok_class(records: Iterable[Mapping[str, Any]]) -> str:
    """``"ok"`` when none of ``records`` is in the does-not-hold list, else ``"problem"``."""
    return "problem" if any(_is_not_holding(c) for c in records) else "ok"


def _summary_table(summaries: list[TopicSummary], anchors: _Anchors) -> list[str]:
    heads = "".join(f'<th class="n">{_t(h)}</th>' for h in _SUMMARY_HEADER)
    out = [
        '<table id="topics" class="topics">',
        f"<thead><tr><th>topic</th>{heads}</tr></thead>",
        "<tbody>",
    ]

    def cells(summary: TopicSummary) -> str:
        values = _summary_row_cells(summary)
        bad = {4: summary.tally.fail, 6: summary.tally.checks_fail}
        return "".join(
            f'<td class="n{" bad" if bad.get(i) else ""}">{_t(v)}</td>'
            for i, v in enumerate(values)
        )

    for summary in summaries:
        link = f'<a href="#{anchors.get("topic", summary.topic)}">{_t(summary.topic)}</a>'
        out.append(f'<tr class="topic-row"><td>{link}</td>{cells(summary)}</tr>')
    out += [
        "</tbody>",
        f"<tfoot><tr><td>all</td>{cells(summary_total(summaries))}</tr></tfoot>",
        "</table>",
    ]
    return out


def _not_holding_list(outcomes: list[dict[str, Any]], anchors: _Anchors) -> list[str]:
    out = [
        '<section id="not-holding">',
        "<h2>What does not hold</h2>",
        '<p class="filter"><label><input type="checkbox" id="only-problems"> '
        "Show only what does not hold in the sections below</label></p>",
    ]
    rows = []
    for outcome in outcomes:
        for index, claim in enumerate(outcome["claims"]):
            if not _is_not_holding(claim):
                continue
            anchor = anchors.claim(outcome, index)
            kind = " (check)" if claim_kind(claim) == CHECK else ""
            known = str(claim.get("known_failure") or "").strip()
            rows.append(
                f'<li class="{_VERDICT_CLASS[verdict(claim)]}-item">{_verdict_badge(claim)} '
                f'<a href="#{anchor}">{_t(outcome["name"])}</a>{_t(kind)}: '
                f"{_t(str(claim.get('statement', '')))} — measured "
                f"<code>{_e(claim.get('measured'))}</code> "
                f"(<code>{_t(threshold_text(claim))}</code>)"
                + (f'<br><span class="meta">Why: {_t(known)}</span>' if known else "")
                + "</li>"
            )
    if rows:
        out += ['<ul class="not-holding">', *rows, "</ul>"]
    else:
        out.append('<p class="meta">Every claim and check holds.</p>')
    out.append("</section>")
    return out


def _contents(
    summaries: list[TopicSummary], groups: dict[str, list[dict[str, Any]]], anchors: _Anchors
) -> list[str]:
    out = ['<nav id="contents" class="contents">', "<h2>Contents</h2>", "<ul>"]
    for summary in summaries:
        out.append(
            f'<li><a href="#{anchors.get("topic", summary.topic)}"><strong>'
            f"{_t(summary.topic)}</strong></a> "
            f'<span class="meta">{_plural(summary.experiments, "experiment")}</span> '
            f"{_tally_badges(summary.tally)}<ul>"
        )
        for outcome in groups[summary.topic]:
            out.append(
                f'<li><a href="#{anchors.get("exp", outcome["name"])}">'
                f"{_t(outcome['name'])}</a> {_tally_badges(tally(outcome['claims']))}</li>"
            )
        out.append("</ul></li>")
    out += ["</ul>", "</nav>"]
    return out


def _claim_details(claim: Mapping[str, Any], anchor: str) -> list[str]:
    v = verdict(claim)
    ok = "problem" if _is_not_holding(claim) else "ok"
    body = []
    detail = " ".join(str(claim.get("detail") or "").split())
    body.append(f"<p>{_t(detail)}</p>" if detail else '<p class="meta">No detail given.</p>')
    known = str(claim.get("known_failure") or "").strip()
    if known:
        body.append(f'<p class="known-why"><strong>Known failure:</strong> {_t(known)}</p>')
    baseline = _baseline(claim)
    if baseline:
        body.append(
            '<p class="baseline">The threshold is relative to a measured baseline: '
            f"{_t(baseline)} (measured in the same run, not fixed in advance).</p>"
        )
    key = str(claim.get("key") or "")
    if key:
        body.append(f'<p class="meta">{claim_kind(claim)} <code>{_t(key)}</code></p>')
    return [
        f'<details class="claim v-{_VERDICT_CLASS[v]} {ok}" id="{anchor}">',
        f"<summary>{_verdict_badge(claim)} {_t(str(claim.get('statement', '')))} "
        f'<span class="mv">measured <code>{_e(claim.get("measured"))}</code>, threshold '
        f"<code>{_t(threshold_text(claim))}</code></span></summary>",
        '<div class="body">',
        *body,
        "</div>",
        "</details>",
    ]


def _kv_table(mapping: dict[str, Any], css_class: str, empty: str) -> list[str]:
    if not mapping:
        return [f'<p class="meta">{_t(empty)}</p>']
    out = [f'<table class="{css_class}">', "<tbody>"]
    for key, value in mapping.items():
        out.append(f'<tr><th scope="row">{_t(str(key))}</th><td class="val">{_e(value)}</td></tr>')
    out += ["</tbody>", "</table>"]
    return out


def _figures(outcome: dict[str, Any], out_dir: Path, problems: list[str]) -> list[str]:
    """Copy the outcome's figures under ``out_dir/figures/<name>/`` and return their HTML: a
    thumbnail per figure that links to the full-size file."""
    if not outcome["figures"]:
        return []
    run_dir = Path(outcome["run_dir"])
    folder = _safe_component(outcome["name"])
    out = ['<div class="figures">']
    for figure in outcome["figures"]:
        rel = _safe_relative(figure)
        source = run_dir.joinpath(*rel.parts) if rel is not None else None
        refused = _unsafe_figure(run_dir, source) if source is not None else None
        if refused is not None:
            problems.append(f"{source}: figure not copied: {refused}")
            out.append(f'<p class="missing">not copied ({_t(refused)}): {_t(figure)}</p>')
            continue
        if source is None or not source.is_file():
            out.append(f'<p class="missing">missing: {_t(figure)}</p>')
            continue
        target_rel = PurePosixPath("figures", folder, *rel.parts)
        try:
            atomic_copy(source, out_dir.joinpath(*target_rel.parts))
        except OSError as exc:
            problems.append(f"{source}: could not copy figure ({exc})")
            out.append(f'<p class="missing">missing: {_t(figure)}</p>')
            continue
        src = _t(quote(str(target_rel)))
        alt = _t(f"{outcome['name']}: {rel}")
        out.append(
            f'<figure><a href="{src}" title="open full size">'
            f'<img class="thumb" src="{src}" alt="{alt}" loading="lazy"></a>'
            f"<figcaption>{_t(rel.name)}</figcaption></figure>"
        )
    out.append("</div>")
    return out


def _unsafe_figure(run_dir: Path, source: Path) -> str | None:
    """Why ``source`` must not be copied into the report (a link, or a file outside
    ``run_dir``), or None when it is a plain file of the run folder (or does not exist)."""
    part = source
    while part != run_dir and part != part.parent:
        if part.is_symlink():
            return "it is a symbolic link" if part == source else f"{part.name} is a symbolic link"
        part = part.parent
    if not source.exists():
        return None
    try:
        source.resolve().relative_to(run_dir.resolve())
    except ValueError:
        return "it lies outside the run folder"
    return None


def _experiment_section(
    outcome: dict[str, Any], anchors: _Anchors, out_dir: Path, problems: list[str]
) -> list[str]:
    claims = outcome["claims"]
    meta_rows = [
        ("run id", format_value(outcome["run_id"])),
        ("preset", format_value(outcome["preset"])),
        ("seed", format_value(outcome["seed"])),
        ("device", format_value(outcome["device"])),
        ("world size", format_value(outcome["world_size"])),
        ("duration", _duration_text(outcome["duration_s"])),
        ("started", format_value(outcome["started"])),
        ("finished", format_value(outcome["finished"])),
        ("versions", format_value(outcome["versions"])),
    ]
    out = [
        f'<section class="experiment {_ok_class(claims)}" '
        f'id="{anchors.get("exp", outcome["name"])}">',
        f"<h3>{_t(outcome['name'])}</h3>",
        f"<p>{_tally_badges(tally(claims))}</p>",
        f'<p class="description">{_e(outcome["description"])}</p>',
        f'<p class="meta">{_e(outcome["preset"])} preset, seed {_e(outcome["seed"])}, '
        f"{_e(outcome['device'])}, {_t(_duration_text(outcome['duration_s']))}</p>",
    ]
    out += _figures(outcome, out_dir, problems)
    for kind, title in ((CLAIM, "Claims"), (CHECK, "Checks")):
        indices = [i for i, c in enumerate(claims) if claim_kind(c) == kind]
        if not indices:
            if kind == CLAIM:
                out.append('<p class="meta">No claims.</p>')
            continue
        out.append(f'<h4 class="{_ok_class(claims[i] for i in indices)}">{title}</h4>')
        for i in indices:
            out += _claim_details(claims[i], anchors.claim(outcome, i))
    out += [
        '<details class="run"><summary>Run, config and metrics</summary>',
        '<table class="meta-table"><tbody>',
        *(
            f'<tr><th scope="row">{label}</th><td class="val">{_t(text)}</td></tr>'
            for label, text in meta_rows
        ),
        "</tbody></table>",
        "<h4>Config</h4>",
        *_kv_table(outcome["config"], "config", "No config."),
        "<h4>Metrics</h4>",
        *_kv_table(outcome["metrics"], "metrics", "No metrics."),
        "</details>",
        "</section>",
    ]
    return out


@dataclass(frozen=True)
class BuiltReport:
    """A written report: its page and the problems found while building it.

    Attributes:
        index: The path of ``index.html``.
        problems: One line per outcome file skipped or figure not copied (also shown on the
            page); empty when everything was used.
    """

    index: Path
    problems: list[str]


def build_report(
    runs_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    built: datetime | None = None,
) -> Path:
    """:func:`write_report`, returning only the path of ``index.html``."""
    return write_report(runs_dir, out_dir, built=built).index


def write_report(
    runs_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    built: datetime | None = None,
) -> BuiltReport:
    """Write ``<out_dir>/index.html`` for the latest run of every experiment and copy its figures.

    The page holds, in order: a title, the build time and the totals (:meth:`Tally.text`); a
    warning box for malformed outcome files; the summary by topic (``table#topics``: experiments,
    claims that hold / known failures / fail, checks, checks failing, quick runtime, and a total
    row); the list of what does not hold (``#not-holding``, each item linking to its claim) with a
    checkbox that hides everything that holds; a table of contents; then one section per topic
    (``#topic-<topic>``) and experiment (``#exp-<name>``): counts, description, run line,
    figure thumbnails linking to the full-size copies, claims and checks as folded
    ``<details class="claim">`` (``#claim-<name>-<key>-<index>``; the detail, the known-failure
    reason and, for a threshold relative to a measured baseline, that baseline), and run, config
    and metrics folded. Figures are copied (atomically) to ``<out_dir>/figures/<name>/<file>``; a
    listed figure that does not exist is shown as ``missing: <file>``. An empty or missing runs
    directory gives a page saying no runs were found. A figure that is a symbolic link or lies
    outside its run folder is not copied (shown as ``not copied (...)`` and listed as a problem).

    Arguments:
        runs_dir: The runs directory (``RUNS``).
        out_dir: Where to write the report; defaults to ``runs_dir / "report"``.
        built: Time to print as the build time (default: now, UTC); useful for reproducible pages.

    Returns:
        A :class:`BuiltReport`: the path of the written ``index.html`` and the problems.

    Raises:
        UsageError: ``runs_dir`` is not a folder (a file, a device), or the report folder cannot
            be written; nothing is written then.

    Example:
        >>> built = write_report("runs")  # doctest: +SKIP
        >>> built.index, built.problems  # doctest: +SKIP
        (PosixPath('runs/report/index.html'), [])
    """
    runs = Path(runs_dir)
    target = Path(out_dir) if out_dir is not None else runs / REPORT_DIRNAME
    if runs.exists() and not runs.is_dir():
        kind = "a file" if runs.is_file() else "a device or other non-folder"
        raise UsageError(f"--out {shorten(str(runs))}: expected a folder of runs, got {kind}")
    check_folder(target, "the report folder")
    stamp = (built or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    latest = latest_outcomes(runs)
    outcomes = latest.items
    problems = list(latest.problems)
    anchors = _Anchors()
    summaries = topic_summaries(outcomes)
    total = summary_total(summaries)
    groups: dict[str, list[dict[str, Any]]] = {}
    for outcome in outcomes:
        groups.setdefault(str(outcome["topic"]), []).append(outcome)

    body: list[str] = []
    if outcomes:
        body.append("<h2>Summary by topic</h2>")
        body += _summary_table(summaries, anchors)
        body += _not_holding_list(outcomes, anchors)
        body += _contents(summaries, groups, anchors)
        for summary in summaries:
            group = groups[summary.topic]
            runtime = runtime_text(summary.quick_runtime_s) if summary.quick_runs else "n/a"
            body += [
                f'<section class="topic {_ok_class(c for o in group for c in o["claims"])}" '
                f'id="{anchors.get("topic", summary.topic)}">',
                f'<h2 class="topic">{_t(summary.topic)}</h2>',
                f'<p class="meta">{_plural(summary.experiments, "experiment")}, quick runtime '
                f"{runtime}. "
                f"{_tally_badges(summary.tally)}</p>",
            ]
            for outcome in group:
                body += _experiment_section(outcome, anchors, target, problems)
            body.append("</section>")
    else:
        body.append(f'<p class="empty">No runs were found in <code>{_t(str(runs))}</code>.</p>')

    warning: list[str] = []
    if problems:
        warning = [
            '<div class="warning" role="alert">',
            f"<strong>{len(problems)} problem(s); affected files were skipped:</strong>",
            "<ul>",
            *(f"<li>{_t(problem)}</li>" for problem in problems),
            "</ul>",
            "</div>",
        ]

    page = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>deepnotes report</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<h1>deepnotes report</h1>",
        f'<p class="built">Built {_t(stamp)} from <code>{_t(str(runs))}</code>; '
        f"{len(outcomes)} experiment(s)"
        + (f", {_t(_runs_text(outcomes))}" if outcomes else "")
        + ".</p>",
        f'<p class="count">{_t(total.tally.text())}</p>',
        *warning,
        *body,
        f"<script>{_SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    index = target / "index.html"
    atomic_write_text(index, "\n".join(page) + "\n")
    return BuiltReport(index, problems)
