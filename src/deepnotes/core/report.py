"""Build a static HTML report (and a markdown claims table) from finished experiment runs.

Each run writes ``RUNS/<experiment-name>/<run-id>/``; a run that finished also writes
``outcome.json`` there. This module reads only those outcome files (and the figure files they
list), keeps the most recently finished run of every experiment, and renders:

* ``build_report``: ``<out_dir>/index.html``, a self-contained page (inline ``<style>``, no
  external CSS/JS/fonts, relative links only) with a summary table of every claim and one section
  per experiment, grouped by topic. Figures are copied to ``<out_dir>/figures/<name>/<file>`` so the
  page works when opened straight from the filesystem.
* ``claims_markdown``: a deterministic GitHub-markdown table of the claims, for the README.

Malformed outcome files never crash the report: they are skipped and listed as problems
(``Outcomes.problems``), which the HTML page shows in a warning box.

Example:
    >>> from deepnotes.core.report import build_report, claims_markdown, latest_outcomes
    >>> index = build_report("runs")  # doctest: +SKIP
    >>> print(claims_markdown(latest_outcomes("runs")))  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from deepnotes.core.io import atomic_copy, atomic_write_text
from deepnotes.core.registry import FAILS, HOLDS, KNOWN, UNKNOWN, verdict, verdict_text

__all__ = [
    "OUTCOME_FILE",
    "REPORT_DIRNAME",
    "REQUIRED_KEYS",
    "Outcomes",
    "build_report",
    "claims_markdown",
    "find_outcomes",
    "format_value",
    "latest_outcomes",
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

_VERDICT_CLASS = {HOLDS: "holds", FAILS: "fails", KNOWN: "known", UNKNOWN: "unknown"}


@dataclass
class Outcomes:
    """Outcome records found under a runs directory, plus the files that could not be used.

    Behaves like a read-only sequence of its ``items`` (``len``, iteration, indexing), so it can be
    passed wherever a list of outcome dicts is expected (e.g. ``claims_markdown``).

    Attributes:
        items: One dict per usable ``outcome.json`` (its JSON content) with an extra key
            ``"run_dir"`` holding the :class:`~pathlib.Path` of the run folder.
        problems: One human-readable line per skipped file: ``"<path>: <reason>"``.
    """

    items: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

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
            result.problems.append(f"{path}: cannot be read ({exc})")
            continue
        except json.JSONDecodeError as exc:
            result.problems.append(f"{path}: invalid JSON ({exc})")
            continue
        reason = _validate(data)
        if reason is not None:
            result.problems.append(f"{path}: {reason}")
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
    for key in ("config", "metrics"):
        if not isinstance(data[key], dict):
            return f"'{key}' must be an object"
    if not isinstance(data["figures"], list) or not all(
        isinstance(item, str) for item in data["figures"]
    ):
        return "'figures' must be a list of strings"
    if not isinstance(data["claims"], list) or not all(
        isinstance(item, dict) for item in data["claims"]
    ):
        return "'claims' must be a list of objects"
    return None


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
    return Outcomes(items=items, problems=list(found.problems))


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


def _detail_text(claim: dict[str, Any]) -> str:
    """The claim's detail, followed by its known-failure reason when it has one."""
    detail = str(claim.get("detail") or "")
    known = str(claim.get("known_failure") or "").strip()
    if known:
        detail = f"{detail} Known failure: {known}" if detail else f"Known failure: {known}"
    return detail


def _threshold_text(claim: dict[str, Any]) -> str:
    """``"<comparison> <threshold>"``, e.g. ``">= 0.97"``; free-text comparisons kept as given."""
    comparison = claim.get("comparison")
    parts = [] if comparison in (None, "") else [str(comparison)]
    if "threshold" in claim or not parts:
        parts.append(format_value(claim.get("threshold")))
    return " ".join(parts)


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


def claims_markdown(outcomes: Iterable[dict[str, Any]]) -> str:
    """A GitHub-markdown table of every claim: experiment | claim | measured | threshold | holds
    | detail.

    Rows follow the order of ``outcomes`` and of each outcome's claims, so the same input always
    gives the same text. ``|`` in any cell is escaped as ``\\|`` and line breaks become spaces.

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
            cells = [
                name,
                str(claim.get("statement", "")),
                format_value(claim.get("measured")),
                _threshold_text(claim),
                verdict_text(claim),
                _detail_text(claim),
            ]
            lines.append("| " + " | ".join(_md_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def not_holding_markdown(outcomes: Iterable[dict[str, Any]]) -> str:
    """A markdown list of every claim that does not hold (or holds only this time although it is
    marked as a known failure), with what was measured and why; ``"(none)"`` when every claim
    holds.

    Example:
        >>> out = {"name": "a.b", "claims": [{"statement": "acc >= 0.9", "measured": 0.85,
        ...        "threshold": 0.9, "comparison": ">=", "holds": False,
        ...        "known_failure": "too few epochs"}]}
        >>> print(not_holding_markdown([out]))
        - `a.b`: acc >= 0.9 — measured 0.85 (>= 0.9): does not hold (known). Why: too few epochs
    """
    lines = []
    for outcome in outcomes:
        for claim in outcome.get("claims") or []:
            if verdict(claim) == HOLDS and not claim.get("known_failure"):
                continue
            line = (
                f"- `{outcome.get('name', '')}`: {claim.get('statement', '')} — measured "
                f"{format_value(claim.get('measured'))} ({_threshold_text(claim)}): "
                f"{verdict_text(claim)}"
            )
            known = str(claim.get("known_failure") or "").strip()
            lines.append(" ".join((line + (f". Why: {known}" if known else "")).split()))
    return "\n".join(lines) if lines else "(none)"


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d2125; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
h2.topic { border-bottom: 2px solid #ccd; padding-bottom: 0.2rem; margin-top: 2.5rem; }
section.experiment { margin: 1.5rem 0 2.5rem; }
.meta, .built { color: #5a6270; }
.count { font-size: 1.1rem; font-weight: 600; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.92rem; }
th, td { border: 1px solid #d5d9e0; padding: 0.3rem 0.6rem; text-align: left;
         vertical-align: top; }
th { background: #f2f4f7; }
td.num, td.val { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
td.num { white-space: nowrap; }
td.val { overflow-wrap: anywhere; }
.holds { color: #11672c; background: #e6f5ea; font-weight: 600; }
.fails { color: #9b1c1c; background: #fbe9e9; font-weight: 600; }
.unknown, .known { color: #7a5b00; background: #fff6d6; font-weight: 600; }
.warning { border: 1px solid #e0b400; background: #fff8db; padding: 0.6rem 1rem;
           border-radius: 4px; margin: 1rem 0; }
.missing { color: #9b1c1c; font-style: italic; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; border: 1px solid #e1e4e8; padding: 0.5rem; border-radius: 4px; }
figure img { max-width: 32rem; width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85rem; color: #5a6270; text-align: center; margin-top: 0.3rem; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
"""


def _e(value: Any) -> str:
    """HTML-escape the plain-text rendering of ``value``."""
    return html.escape(format_value(value), quote=True)


def _anchor_ids(outcomes: list[dict[str, Any]]) -> dict[str, str]:
    """A unique, attribute-safe anchor id for every experiment name."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for outcome in outcomes:
        base = "exp-" + re.sub(r"[^A-Za-z0-9_-]+", "-", outcome["name"]).strip("-")
        anchor, n = base, 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        ids[outcome["name"]] = anchor
    return ids


def _holds_cell(claim: dict[str, Any]) -> str:
    return f'<td class="{_VERDICT_CLASS[verdict(claim)]}">{html.escape(verdict_text(claim))}</td>'


def _summary_table(outcomes: list[dict[str, Any]], anchors: dict[str, str]) -> list[str]:
    out = [
        '<table id="summary" class="summary">',
        "<thead><tr><th>experiment</th><th>claim</th><th>measured</th><th>threshold</th>"
        "<th>holds</th></tr></thead>",
        "<tbody>",
    ]
    for outcome in outcomes:
        link = f'<a href="#{anchors[outcome["name"]]}">{html.escape(outcome["name"])}</a>'
        for claim in outcome["claims"]:
            out.append(
                f'<tr class="claim {_VERDICT_CLASS[verdict(claim)]}-row">'
                f"<td>{link}</td>"
                f"<td>{html.escape(str(claim.get('statement', '')))}</td>"
                f'<td class="num">{_e(claim.get("measured"))}</td>'
                f'<td class="num">{html.escape(_threshold_text(claim))}</td>'
                f"{_holds_cell(claim)}</tr>"
            )
    out += ["</tbody>", "</table>"]
    return out


def _claims_table(claims: list[dict[str, Any]]) -> list[str]:
    if not claims:
        return ['<p class="meta">No claims.</p>']
    out = [
        '<table class="claims">',
        "<thead><tr><th>claim</th><th>measured</th><th>threshold</th><th>holds</th>"
        "<th>detail</th></tr></thead>",
        "<tbody>",
    ]
    for claim in claims:
        out.append(
            "<tr>"
            f"<td>{html.escape(str(claim.get('statement', '')))}</td>"
            f'<td class="num">{_e(claim.get("measured"))}</td>'
            f'<td class="num">{html.escape(_threshold_text(claim))}</td>'
            f"{_holds_cell(claim)}"
            f"<td>{html.escape(_detail_text(claim))}</td></tr>"
        )
    out += ["</tbody>", "</table>"]
    return out


def _kv_table(mapping: dict[str, Any], css_class: str, empty: str) -> list[str]:
    if not mapping:
        return [f'<p class="meta">{html.escape(empty)}</p>']
    out = [f'<table class="{css_class}">', "<tbody>"]
    for key, value in mapping.items():
        out.append(
            f'<tr><th scope="row">{html.escape(str(key))}</th><td class="val">{_e(value)}</td></tr>'
        )
    out += ["</tbody>", "</table>"]
    return out


def _figures(outcome: dict[str, Any], out_dir: Path, problems: list[str]) -> list[str]:
    """Copy the outcome's figures under ``out_dir/figures/<name>/`` and return their HTML."""
    if not outcome["figures"]:
        return []
    run_dir = Path(outcome["run_dir"])
    folder = _safe_component(outcome["name"])
    out = ['<div class="figures">']
    for figure in outcome["figures"]:
        rel = _safe_relative(figure)
        source = run_dir.joinpath(*rel.parts) if rel is not None else None
        if source is None or not source.is_file():
            out.append(f'<p class="missing">missing: {html.escape(figure)}</p>')
            continue
        target_rel = PurePosixPath("figures", folder, *rel.parts)
        try:
            atomic_copy(source, out_dir.joinpath(*target_rel.parts))
        except OSError as exc:
            problems.append(f"{source}: could not copy figure ({exc})")
            out.append(f'<p class="missing">missing: {html.escape(figure)}</p>')
            continue
        src = html.escape(quote(str(target_rel)), quote=True)
        alt = html.escape(f"{outcome['name']}: {rel}", quote=True)
        out.append(
            f'<figure><img src="{src}" alt="{alt}" loading="lazy">'
            f"<figcaption>{html.escape(rel.name)}</figcaption></figure>"
        )
    out.append("</div>")
    return out


def _experiment_section(
    outcome: dict[str, Any], anchor: str, out_dir: Path, problems: list[str]
) -> list[str]:
    claims = outcome["claims"]
    verdicts = [verdict(claim) for claim in claims]
    n_hold = verdicts.count(HOLDS)
    if not claims:
        status = "unknown"
    elif FAILS in verdicts or UNKNOWN in verdicts:
        status = "fails"
    else:
        status = "known" if KNOWN in verdicts else "holds"
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
        f'<section class="experiment" id="{anchor}">',
        f"<h3>{html.escape(outcome['name'])} "
        f'<span class="{status}">{n_hold}/{len(claims)} hold</span></h3>',
        f"<p>{html.escape(format_value(outcome['description']))}</p>",
        '<table class="meta-table"><tbody>',
    ]
    out += [
        f'<tr><th scope="row">{label}</th><td class="val">{html.escape(text)}</td></tr>'
        for label, text in meta_rows
    ]
    out += ["</tbody></table>", "<h4>Claims</h4>"]
    out += _claims_table(claims)
    out.append("<h4>Config</h4>")
    out += _kv_table(outcome["config"], "config", "No config.")
    out.append("<h4>Metrics</h4>")
    out += _kv_table(outcome["metrics"], "metrics", "No metrics.")
    figures = _figures(outcome, out_dir, problems)
    if figures:
        out.append("<h4>Figures</h4>")
        out += figures
    out.append("</section>")
    return out


def build_report(
    runs_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    built: datetime | None = None,
) -> Path:
    """Write ``<out_dir>/index.html`` for the latest run of every experiment and copy its figures.

    The page holds a title, the build time, a ``"N claims, M hold"`` line, a summary table of all
    claims, a warning box for malformed outcome files, then one section per experiment grouped by
    topic. Figures are copied (atomically) to ``<out_dir>/figures/<name>/<file>``; a listed figure
    that does not exist is shown as ``missing: <file>``. An empty or missing runs directory gives
    a page saying no runs were found.

    Arguments:
        runs_dir: The runs directory (``RUNS``).
        out_dir: Where to write the report; defaults to ``runs_dir / "report"``.
        built: Time to print as the build time (default: now, UTC); useful for reproducible pages.

    Returns:
        The path of the written ``index.html``.

    Example:
        >>> index = build_report("runs")  # doctest: +SKIP
        >>> index  # doctest: +SKIP
        PosixPath('runs/report/index.html')
    """
    runs = Path(runs_dir)
    target = Path(out_dir) if out_dir is not None else runs / REPORT_DIRNAME
    stamp = (built or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    latest = latest_outcomes(runs)
    outcomes = latest.items
    problems = list(latest.problems)
    anchors = _anchor_ids(outcomes)

    n_claims = sum(len(o["claims"]) for o in outcomes)
    all_verdicts = [verdict(c) for o in outcomes for c in o["claims"]]
    n_hold, n_known = all_verdicts.count(HOLDS), all_verdicts.count(KNOWN)

    body: list[str] = []
    if outcomes:
        body.append("<h2>Summary</h2>")
        body += (
            _summary_table(outcomes, anchors) if n_claims else ['<p class="meta">No claims.</p>']
        )
        topic: str | None = None
        for outcome in outcomes:
            if str(outcome["topic"]) != topic:
                topic = str(outcome["topic"])
                topic_id = "topic-" + re.sub(r"[^A-Za-z0-9_-]+", "-", topic).strip("-")
                body.append(f'<h2 class="topic" id="{topic_id}">{html.escape(topic)}</h2>')
            body += _experiment_section(outcome, anchors[outcome["name"]], target, problems)
    else:
        body.append(
            f'<p class="empty">No runs were found in <code>{html.escape(str(runs))}</code>.</p>'
        )

    warning: list[str] = []
    if problems:
        warning = [
            '<div class="warning" role="alert">',
            f"<strong>{len(problems)} problem(s); affected files were skipped:</strong>",
            "<ul>",
            *(f"<li>{html.escape(problem)}</li>" for problem in problems),
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
        f'<p class="built">Built {html.escape(stamp)} from <code>{html.escape(str(runs))}</code>; '
        f"{len(outcomes)} experiment(s).</p>",
        f'<p class="count">{n_claims} claims, {n_hold} hold'
        + (f", {n_known} known not to hold" if n_known else "")
        + "</p>",
        *warning,
        *body,
        "</body>",
        "</html>",
    ]
    index = target / "index.html"
    atomic_write_text(index, "\n".join(page) + "\n")
    return index
