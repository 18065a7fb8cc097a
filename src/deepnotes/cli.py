"""The ``deepnotes`` command line: list, run, tour, report, derivations, problems.

Exit codes: 0 success (every claim holds, or is a documented known failure); 1 a claim does not
hold unexpectedly, or an experiment failed, or (report, tour) an outcome file or figure could
not be used (the page is written, the problems printed); 2 bad input (unknown experiment, key,
type, value, device, file, --out, run id), with nothing written; 3 training diverged (non-finite
or exploding loss); 4 a collective of a torchrun job timed out (another rank stopped or stalled:
``DEEPNOTES_DIST_TIMEOUT``); 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deepnotes.core.config import PRESETS
from deepnotes.core.errors import (
    CollectiveTimeoutError,
    ConfigError,
    DivergenceError,
    UsageError,
)
from deepnotes.core.text import shorten

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Deep-learning course notes as tested software: run experiments and check their claims.",
)

EXIT_CLAIM_FAILED, EXIT_USAGE, EXIT_DIVERGED, EXIT_COLLECTIVE, EXIT_INTERRUPTED = 1, 2, 3, 4, 130

console = Console(width=None if sys.stdout.isatty() else 160, highlight=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160, highlight=False)

PresetOpt = Annotated[str, typer.Option("--preset", help="quick (<= 60 s each) or full.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for every RNG (default 0).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Root folder of the run folders.")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="torch CPU threads (1 is fastest on a busy CPU).")
]


MESSAGE_LIMIT = 1000
"""The most characters of an error message printed: messages shorten the values they echo
(:func:`~deepnotes.core.text.shorten`); this only guards against one that does not."""


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    line = shorten(" ".join(message.split()), MESSAGE_LIMIT)
    err_console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
    return typer.Exit(code)


def _warn(message: str) -> None:
    line = shorten(" ".join(message.split()), MESSAGE_LIMIT)
    err_console.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)


def _note(message: str) -> None:
    err_console.print(f"note: {escape(shorten(message, MESSAGE_LIMIT))}", soft_wrap=True)


def _check_preset(preset: str | None) -> None:
    if preset is not None and preset not in PRESETS:
        raise ConfigError(
            f"unknown preset {shorten(repr(preset))}; expected one of {', '.join(PRESETS)}"
        )


def _is_main() -> bool:
    from deepnotes.core.distributed import env_info

    return env_info().is_main


@app.command("list")
def list_experiments(
    out: OutOpt = Path("runs"),
    topic: Annotated[list[str] | None, typer.Option("--topic", help="Only these topics.")] = None,
) -> None:
    """List the experiments: name, topic, what it shows (the first sentence of its docstring),
    claims and checks of the latest run, quick runtime if known."""
    from deepnotes.core.registry import experiments
    from deepnotes.core.report import latest_outcomes, tally

    try:
        exps = experiments(topic)
    except UsageError as err:
        raise _fail(str(err)) from None
    found = latest_outcomes(out)
    latest = {o["name"]: o for o in found}
    unreadable: dict[str, int] = {}  # experiment folder -> how many outcome files were skipped
    for path in found.problem_files:
        folder = path.parent.parent.name
        unreadable[folder] = unreadable.get(folder, 0) + 1
    table = Table(title=f"{len(exps)} experiments")
    for column in ("experiment", "topic", "what it shows", "latest run", "quick runtime"):
        table.add_column(column)
    for exp in exps:
        outcome = latest.get(exp.name)
        claims, runtime = "not run yet", "unknown"
        if exp.name in unreadable:
            claims = "[yellow]unreadable outcome (see below)[/]"
        if outcome is not None:
            claims = escape(tally(outcome["claims"]).text() + f" ({outcome['preset']})")
            if exp.name in unreadable:
                claims += " [yellow](another outcome is unreadable, see below)[/]"
            if outcome["preset"] == "quick":
                runtime = f"{outcome['duration_s']:.0f} s"
        what = escape(_what_it_shows(exp))
        if exp.draft:
            what += f" [yellow](draft: {escape(exp.draft)})[/]"
        table.add_row(exp.name, exp.topic, what, claims, runtime)
    console.print(table)
    for problem in found.problems:
        _warn(f"unreadable outcome, left out: {problem}")


@app.command()
def run(
    name: Annotated[
        str, typer.Argument(help="Experiment name, e.g. foundations.supervised_digits.")
    ],
    preset: Annotated[str | None, typer.Option(help="quick (default) or full.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config field: key=value.")
    ] = None,
    seed: SeedOpt = None,
    device: DeviceOpt = "auto",
    out: OutOpt = Path("runs"),
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the newest unfinished run (or --run-id).")
    ] = False,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Name of the run folder.")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Run one experiment, print its claims, write runs/NAME/<run-id>/."""
    from deepnotes.core.context import run_experiment

    try:
        _check_preset(preset)
        result = run_experiment(
            name,
            preset=preset,
            overrides=tuple(set_ or ()),
            seed=seed,
            device=device,
            out=out,
            resume=resume,
            run_id=run_id,
            threads=threads,
            notify=_note,
        )
    except UsageError as err:
        raise _fail(str(err)) from None
    except DivergenceError as err:
        raise _fail(str(err), EXIT_DIVERGED) from None
    except CollectiveTimeoutError as err:  # another rank of a torchrun job stopped
        raise _fail(str(err), EXIT_COLLECTIVE) from None
    except KeyboardInterrupt:
        raise _fail(
            "interrupted; continue with --resume (a run stopped before its first checkpoint has "
            "nothing to resume: start it again)",
            EXIT_INTERRUPTED,
        ) from None
    if not _is_main():
        return
    _print_claims([result.record])
    console.print(f"artefacts: {result.run_dir}")
    if _unexpected(result.record["claims"]):
        raise typer.Exit(EXIT_CLAIM_FAILED)


@app.command()
def tour(
    topic: Annotated[list[str] | None, typer.Option("--topic", help="Only these topics.")] = None,
    preset: PresetOpt = "quick",
    seed: SeedOpt = None,
    device: DeviceOpt = "auto",
    out: OutOpt = Path("runs"),
    threads: ThreadsOpt = None,
    drafts: Annotated[
        bool, typer.Option("--drafts", help="Also run draft experiments (claims not settled).")
    ] = False,
) -> None:
    """Run every experiment (quick preset), print the claims table, write the HTML report.

    Draft experiments (see `deepnotes list`) are left out unless --drafts is given.
    """
    from deepnotes.core.context import run_experiment
    from deepnotes.core.registry import experiments
    from deepnotes.core.report import tally, write_report

    try:
        _check_preset(preset)
        exps = experiments(topic, drafts=drafts)
    except UsageError as err:
        raise _fail(str(err)) from None
    if not exps:
        raise _fail(f"no experiments to run for topics {topic} (drafts are left out)")
    records: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    for i, exp in enumerate(exps, start=1):
        console.print(f"[bold]({i}/{len(exps)}) {exp.name}[/] — {escape(_what_it_shows(exp))}")
        try:
            result = run_experiment(
                exp.name,
                preset=preset,
                seed=seed,
                device=device,
                out=out,
                threads=threads,
                notify=_note,
            )
            records.append(result.record)
            console.print(f"    done in {result.record['duration_s']:.1f} s")
        except KeyboardInterrupt:
            raise _fail("tour interrupted", EXIT_INTERRUPTED) from None
        except UsageError as err:
            raise _fail(str(err)) from None
        except CollectiveTimeoutError as err:  # the job has lost a rank: nothing more can run
            raise _fail(str(err), EXIT_COLLECTIVE) from None
        except Exception as err:  # one broken experiment must not hide the others' claims
            traceback.print_exc()
            failures.append((exp.name, f"{type(err).__name__}: {err}"))
    _print_claims(records)
    for name, message in failures:
        err_console.print(f"[bold red]{name} failed:[/] {escape(message)}", soft_wrap=True)
    try:
        built = write_report(out)
    except UsageError as err:
        raise _fail(str(err)) from None
    for problem in built.problems:
        _warn(problem)
    unexpected = _unexpected([c for r in records for c in r["claims"]])
    console.print(
        f"{tally(c for r in records for c in r['claims']).text()}; "
        f"{len(failures)} experiments failed, "
        f"{time.perf_counter() - t0:.0f} s. Report: {built.index}"
    )
    if failures or unexpected or built.problems:
        raise typer.Exit(EXIT_CLAIM_FAILED)


@app.command()
def report(
    out: OutOpt = Path("runs"),
    readme: Annotated[
        Path | None,
        typer.Option(
            help="Also rewrite the generated blocks of this README (summary by topic, what does "
            "not hold) and write the full list of claims to docs/claims.md next to it."
        ),
    ] = None,
) -> None:
    """Build runs/report/index.html from the outcome.json files (latest run of each experiment).

    Files that cannot be used (an unreadable outcome.json, a figure that is a link) are left out,
    listed on the page and printed; the exit code is then 1.
    """
    from deepnotes.core.report import write_report

    try:
        built = write_report(out)
        if readme is not None:
            claims_doc = write_readme(readme, out)
    except UsageError as err:
        raise _fail(str(err)) from None
    for problem in built.problems:
        _warn(problem)
    console.print(f"report: {built.index}")
    if readme is not None:
        console.print(f"README: {readme}; claims: {claims_doc}")
    if built.problems:
        raise _fail(
            f"{len(built.problems)} file(s) could not be used (listed above and on the page)",
            EXIT_CLAIM_FAILED,
        )


@app.command("derivations")
def derivations_cmd(
    topic: Annotated[list[str] | None, typer.Option("--topic", help="Only these topics.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check every hand-derived gradient against autograd (float64); exit 1 if one fails."""
    from deepnotes.core.catalog import run_derivations

    try:
        rows = run_derivations(topic)
    except UsageError as err:
        raise _fail(str(err)) from None
    if json_:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2, default=str))
    else:
        table = Table(title=f"{len(rows)} derivations, closed form vs autograd (float64)")
        for column in ("derivation", "closed form used", "max abs error", "tolerance", "pass"):
            table.add_column(column, overflow="fold")
        for r in rows:
            verdict = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
            unit = f" {r.unit}" if r.unit else ""
            error = f"{r.max_abs_error:.2e}{unit}" if not r.error else escape(r.error)
            table.add_row(
                escape(r.name),
                escape(r.closed_form),
                error,
                f"{r.tolerance:.0e}{unit}",
                verdict,
            )
        console.print(table)
    if not all(r.passed for r in rows):
        raise typer.Exit(EXIT_CLAIM_FAILED)


@app.command("problems")
def problems_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Only these problems.")] = None,
    topic: Annotated[list[str] | None, typer.Option("--topic", help="Only these topics.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Answer the notes' numeric problems with the library's own functions."""
    from deepnotes.core.catalog import run_problems

    try:
        rows = run_problems(topic, names or ())
    except UsageError as err:
        raise _fail(str(err)) from None
    if json_:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2, default=str))
    else:
        for r in rows:
            console.print(f"[bold]{escape(r.name)}[/]  ({escape(r.source)}, topic {r.topic})")
            table = Table()
            table.add_column("quantity", overflow="fold")
            table.add_column("answer", overflow="fold")
            for quantity, value in r.quantities:
                table.add_row(escape(str(quantity)), escape(_show(value)))
            if r.error:
                table.add_row("[bold red]error[/]", escape(r.error))
            console.print(table)
            if r.note:
                console.print(f"  {escape(r.note)}\n")
    if any(r.error for r in rows):
        raise typer.Exit(EXIT_CLAIM_FAILED)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return _show_array(value)
    return str(value)


def _show_array(value: list) -> str:
    if value and isinstance(value[0], list):
        return "\n".join(_show_array(row) for row in value)
    return "[" + ", ".join(_show(v) for v in value) + "]"


CLAIMS_DOC = Path("docs") / "claims.md"
"""Where ``deepnotes report --readme README.md`` writes the full list, relative to the README."""


def update_readme(
    path: Path, blocks: dict[str, str], *, required: tuple[str, ...] = ("summary",)
) -> None:
    """Fill the generated blocks of ``path`` atomically: for every ``name: body`` the text between
    ``<!-- name:start -->`` and ``<!-- name:end -->`` becomes ``body``. The ``required`` blocks
    must exist (UsageError otherwise, and the file is left as it was); the others are filled
    where the file has their markers. Filling twice with the same blocks changes nothing."""
    from deepnotes.core.io import atomic_write_text

    if not path.is_file():
        raise UsageError(f"README not found: {path}")
    text = path.read_text(encoding="utf-8")
    for name, body in blocks.items():
        start, end = text.find(f"<!-- {name}:start -->"), text.find(f"<!-- {name}:end -->")
        if start < 0 or end < start:
            if name in required:
                raise UsageError(
                    f"{path} has no '<!-- {name}:start -->' ... '<!-- {name}:end -->' block to fill"
                )
            continue
        start += len(f"<!-- {name}:start -->")
        text = f"{text[:start]}\n{body.rstrip()}\n{text[end:]}"
    atomic_write_text(path, text)


def write_readme(readme: Path, runs: Path) -> Path:
    """Regenerate the README's blocks from the latest run of each experiment in ``runs`` and
    write the full list of claims and checks to ``<readme dir>/docs/claims.md``.

    Blocks: ``summary`` (required: the per-topic summary, linking to docs/claims.md; it also
    lists draft experiments when there are any), ``not-holding`` and ``drafts`` (filled where
    the README has their markers). Regenerating from the same runs changes nothing.

    Returns:
        The path of the claims document.
    """
    from deepnotes.core.io import atomic_write_text
    from deepnotes.core.report import (
        claims_doc_markdown,
        latest_outcomes,
        not_holding_markdown,
        summary_markdown,
    )

    outcomes = _latest(runs, latest_outcomes)
    summary = summary_markdown(outcomes, claims_link=CLAIMS_DOC.as_posix())
    drafts = drafts_markdown()
    if drafts != "(none)":
        summary += (
            "\n\nDraft experiments (claims still being designed; left out of the plain tour, "
            "run with `deepnotes tour --drafts`):\n\n" + drafts
        )
    update_readme(
        readme,
        {"summary": summary, "not-holding": not_holding_markdown(outcomes), "drafts": drafts},
    )
    back = "/".join([".."] * (len(CLAIMS_DOC.parts) - 1) + [readme.name])
    return atomic_write_text(
        readme.parent / CLAIMS_DOC, claims_doc_markdown(outcomes, back_link=back)
    )


def _what_it_shows(exp: Any) -> str:
    """The whole first sentence of the experiment's docstring (its description if none)."""
    from deepnotes.core.report import first_sentence

    return first_sentence(getattr(exp.fn, "__doc__", None)) or exp.description


def drafts_markdown() -> str:
    """A markdown list of the draft experiments and why each is a draft."""
    from deepnotes.core.registry import experiments

    lines = [f"- `{e.name}`: {e.draft}" for e in experiments() if e.draft]
    return "\n".join(lines) if lines else "(none)"


def _latest(out: Path, latest_outcomes: Any) -> list[dict[str, Any]]:
    result = latest_outcomes(out)
    return list(getattr(result, "items", result))


def _unexpected(claims: list[dict[str, Any]]) -> int:
    """How many claims do not hold without being marked as known failures."""
    from deepnotes.core.registry import FAILS, verdict

    return sum(verdict(c) == FAILS for c in claims)


_VERDICT_STYLE = {
    "holds": "[green]yes[/]",
    "fails": "[bold red]NO[/]",
    "known failure": "[yellow]no (known)[/]",
    "unknown": "[yellow]?[/]",
}


def _print_claims(records: list[dict[str, Any]]) -> None:
    """Print the claims of ``records`` as one table and their checks, if any, as another."""
    from deepnotes.core.registry import verdict
    from deepnotes.core.report import CHECK, CLAIM, claim_kind, format_value, threshold_text

    for kind in (CLAIM, CHECK):
        rows = [(r, c) for r in records for c in r["claims"] if claim_kind(c) == kind]
        if kind == CHECK and not rows:
            continue
        table = Table(title=f"{kind}s")
        for column in ("experiment", kind, "measured", "threshold", "holds"):
            table.add_column(column, overflow="fold")
        for record, claim in rows:
            shown = _VERDICT_STYLE[verdict(claim)]
            if claim.get("known_failure"):
                shown += f"\n[dim]known failure: {escape(str(claim['known_failure']))}[/]"
            table.add_row(
                record["name"],
                escape(str(claim.get("statement", ""))),
                escape(format_value(claim.get("measured"))),
                escape(threshold_text(claim)),
                shown,
            )
        console.print(table)


def main() -> None:
    """Entry point of the ``deepnotes`` script and ``python -m deepnotes``."""
    app()


if __name__ == "__main__":
    main()
