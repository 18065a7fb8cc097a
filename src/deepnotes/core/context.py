"""The run context handed to every experiment, and the runner that creates it.

``run_experiment`` does, in this order: look up the experiment, build and check its config,
pick the device, join the process group (under torchrun), choose the run folder
``OUT/NAME/<run-id>/`` (or find the one to resume), and only then write anything. Bad input
therefore raises :class:`~deepnotes.core.errors.ConfigError` with nothing written.

One run per folder: a new folder is claimed by an exclusive ``mkdir`` and the process running
it holds a lock on it (:class:`RunLock`), so two processes never write into the same folder.
``config.json`` records what determines the results: preset, seed, config, the ``--set``
overrides, and the settings that change floating-point results (``--threads``, the device
type, the world size); a resume uses those, refuses different ones, and appends itself to the
record's ``resumes``. ``--resume`` continues only a folder that holds a checkpoint or a cached
sub-result; it first removes the temporary files of writes that were killed mid-way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from deepnotes.core import config as config_mod
from deepnotes.core import distributed
from deepnotes.core.checkpoint import load_checkpoint, save_checkpoint
from deepnotes.core.errors import ConfigError, UsageError
from deepnotes.core.io import (
    atomic_save,
    atomic_write_json,
    check_folder,
    make_folder,
    name_max,
    remove_temp_files,
)
from deepnotes.core.metrics import MetricsLogger
from deepnotes.core.progress import Progress
from deepnotes.core.registry import Experiment, Outcome, complete, get_experiment
from deepnotes.core.seeding import derive_seed, resolve_device, seed_everything, seeded
from deepnotes.core.text import shorten
from deepnotes.core.threads import limit_threads

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a run folder is still claimed by mkdir
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")


def _key_default(obj: Any) -> Any:
    if isinstance(obj, tuple | list):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cache keys hold numbers, strings and lists, got {type(obj).__name__}")


@dataclass
class RunContext:
    """Everything an experiment needs besides its config.

    Attributes:
        name: the experiment's registered name.
        seed: the run's seed (already applied to every global generator).
        device: where tensors should live.
        out_dir: the run folder; only the main rank writes to it.
        preset: "quick" or "full".
        resume: True when continuing an interrupted run (the Trainer restores checkpoints).
        distributed: rank and world size under torchrun.
        metrics: the ``metrics.jsonl`` logger.
        show_progress: False silences progress output.
    """

    name: str
    seed: int
    device: torch.device
    out_dir: Path
    preset: str = "quick"
    resume: bool = False
    distributed: distributed.DistInfo = field(default_factory=distributed.DistInfo)
    metrics: MetricsLogger = field(default_factory=lambda: MetricsLogger(None))
    show_progress: bool = True

    @property
    def is_main(self) -> bool:
        return self.distributed.is_main

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to ``metrics.jsonl`` (main rank only)."""
        if self.is_main:
            self.metrics.log(record)

    def progress(self, total: int, description: str) -> Progress:
        """A progress reporter; silent on non-main ranks."""
        return Progress(total, description, enabled=self.show_progress and self.is_main)

    def path(self, name: str) -> Path:
        """A path inside the run folder."""
        return self.out_dir / name

    def savefig(self, fig: Any, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as PNG atomically (main rank only) and return its path."""
        path = self.path(name if name.endswith(".png") else f"{name}.png")
        if self.is_main:
            atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))
        return path

    # ------------------------------------------------------------------ seed streams
    def seed_for(self, *keys: int | str) -> int:
        """The seed of the independent stream ``keys`` of this run (see
        :func:`~deepnotes.core.seeding.derive_seed`): the same keys always give the same seed,
        different keys unrelated ones."""
        return derive_seed(self.seed, *keys)

    def stream(self, *keys: int | str) -> torch.Generator:
        """A CPU ``torch.Generator`` for the stream ``keys`` (data draws, subsets, masks)."""
        return torch.Generator().manual_seed(self.seed_for(*keys))

    def numpy_rng(self, *keys: int | str) -> np.random.Generator:
        """A NumPy generator for the stream ``keys``."""
        return np.random.default_rng(self.seed_for(*keys))

    def seeded(self, *keys: int | str) -> AbstractContextManager[None]:
        """A block in which the global generators are seeded from the stream ``keys`` (and
        restored after it), e.g. ``with ctx.seeded("init", r): net = MLP(...)``: the weights
        depend on ``keys`` alone, not on what ran before (so a resumed run that skips finished
        fits initialises the remaining ones exactly as an uninterrupted run does)."""
        return seeded(self.seed_for(*keys))

    def child(self, *keys: int | str) -> RunContext:
        """This context with the seed of the stream ``keys``: what a Trainer shuffles with, so
        that independent fits do not all see the same minibatch order."""
        return dataclasses.replace(self, seed=self.seed_for(*keys))

    # ------------------------------------------------------------------ resumable sub-results
    def cached(self, kind: str, key: Mapping[str, Any], compute: Callable[[], T]) -> T:
        """``compute()``, kept in the run folder under ``cache/`` and keyed by ``key``.

        An experiment made of many fits wraps each in ``cached`` with what determines it (the
        config fields it uses, its stream keys): a run killed after 20 of 30 fits resumes with
        the 20 read back and trains only the remaining 10. Values must be tensors, numbers,
        strings, NumPy arrays or lists/tuples/dicts of them; they are read back with
        ``weights_only=True``. A file whose stored key differs is recomputed and replaced.
        """
        if not kind or not kind.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"cache kind must be a plain name, got {kind!r}")
        text = json.dumps(dict(key), sort_keys=True, default=_key_default)
        digest = hashlib.blake2b(text.encode(), digest_size=10).hexdigest()
        path = self.out_dir / "cache" / f"{kind}-{digest}.pt"
        if path.exists():
            stored = load_checkpoint(path)
            if stored.get("key") == text:
                return stored["value"]
        value = compute()
        if self.is_main:
            save_checkpoint(path, {"key": text, "value": value})
        return value


@dataclass
class RunResult:
    """A finished run: its folder and the outcome record written to ``outcome.json``."""

    run_dir: Path
    record: dict[str, Any]
    outcome: Outcome


def new_run_id(seed: int) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-s{seed}-{secrets.token_hex(2)}"


CONFIG_FILE = "config.json"
"""What a run records about itself: name, preset, seed, overrides, settings, config, resumes."""

LOCK_FILE = ".lock"
"""The file in a run folder that the process running it holds locked (see :class:`RunLock`)."""

RESUMABLE = ("checkpoints/*.pt", "cache/*.pt")
"""What a run folder must hold for ``--resume`` to have something to continue from."""


def has_progress(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a checkpoint or a cached sub-result (see :data:`RESUMABLE`)."""
    return any(next(run_dir.glob(pattern), None) is not None for pattern in RESUMABLE)


class RunLock:
    """An exclusive lock on a run folder, held by the one process that runs it.

    ``fcntl.flock`` on ``RUN/.lock``: the system releases it when the process ends, however it
    ends, so a killed run never leaves a stale lock. A second process (a second ``--resume`` of
    the same run) is refused at once. The file is removed on :meth:`release`. Where ``fcntl``
    does not exist (Windows) the lock is a no-op.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise ConfigError(
                    f"run {shorten(str(self.path.parent))} is in use by another process (it "
                    f"holds {LOCK_FILE}); wait for it to end or use another --run-id"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file its previous holder removed while we opened it
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def find_resumable(root: Path, run_id: str | None) -> tuple[Path, list[str]]:
    """The run folder to resume and the unfinished folders passed over (one line each).

    With ``run_id``, that run; else the newest (by its config.json) unfinished run that holds a
    checkpoint or a cached sub-result. A folder without either (a run killed or refused before
    its first checkpoint) has nothing to continue from: it is skipped and named.

    Raises:
        ConfigError: no such run, it finished, it has nothing to resume, or no run qualifies.
    """
    if run_id is not None:
        run_dir = root / run_id
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(
                f"cannot resume: no run {shorten(run_id)!r} in {shorten(str(root))} "
                f"(no {CONFIG_FILE})"
            )
        if (run_dir / "outcome.json").exists():
            raise ConfigError(f"cannot resume: run {run_dir} already finished (has outcome.json)")
        if not has_progress(run_dir):
            raise ConfigError(
                f"cannot resume: run {run_dir} has nothing to resume (no checkpoint or cached "
                "result: it stopped before its first checkpoint); remove the folder and start "
                "the run again"
            )
        return run_dir, []
    unfinished = sorted(
        (
            p.parent
            for p in root.glob(f"*/{CONFIG_FILE}")
            if not (p.parent / "outcome.json").exists()
        ),
        key=lambda d: (d / CONFIG_FILE).stat().st_mtime,
        reverse=True,
    )
    skipped = []
    for run_dir in unfinished:
        if has_progress(run_dir):
            return run_dir, skipped
        skipped.append(f"{run_dir.name} (no checkpoint or cached result yet)")
    passed = f"; skipped {len(skipped)}: {shorten(', '.join(skipped), 300)}" if skipped else ""
    raise ConfigError(f"cannot resume: no unfinished run with a checkpoint under {root}{passed}")


@dataclass
class _Start:
    """Rank 0's decision about where and how a run goes (broadcast to every rank)."""

    run_dir: Path
    cfg: Any
    seed: int
    preset: str
    threads: int | None
    record: dict[str, Any]
    """What config.json will hold."""
    created: list[Path] = field(default_factory=list)
    """Folders this start created (run folder last), removed again if the start fails."""
    skipped: list[str] = field(default_factory=list)


def run_experiment(
    name: str,
    *,
    preset: str | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    seed: int | None = None,
    device: str = "auto",
    out: str | Path = "runs",
    resume: bool = False,
    run_id: str | None = None,
    show_progress: bool = True,
    threads: int | None = None,
    notify: Callable[[str], None] | None = None,
) -> RunResult:
    """Run one experiment end to end and write its artefacts.

    Arguments:
        name: registered experiment name.
        preset: "quick" (default) or "full"; ``overrides`` (``"key=value"``) are applied on top.
        seed: the seed (default 0; on resume, the stored seed).
        device: auto|cpu|cuda|mps.
        out: root folder; the run goes to ``out/name/<run-id>/``.
        resume: continue the run ``run_id`` (or the newest unfinished one with a checkpoint) from
            its checkpoints, with its stored config, seed and settings; folders passed over are
            named through ``notify``.
        run_id: name of the run folder (default: timestamp, seed and a random suffix). The folder
            is claimed atomically: of two runs started with the same id, the second is refused.
        threads: torch's intra-op CPU threads and NumPy's BLAS threads for this run (default:
            the libraries' own choice); 1 is much faster for small models on a shared CPU.
            Restored afterwards. Recorded in config.json since it changes floating-point
            results: a resume uses the recorded value and refuses a different one.
        notify: called with one line for things the user should know (default: print to stderr).

    Raises:
        ConfigError: bad name, preset, key, value, device, ``out``, run id, or nothing to
            resume; nothing written.
        DivergenceError: training produced a non-finite loss (see the Trainer).
    """
    exp = get_experiment(name)
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    cfg = config_mod.apply_overrides(config_mod.preset(exp.config, preset or "quick"), overrides)
    dev = resolve_device(device, distributed.env_info().local_rank)
    info = distributed.init(dev)
    # rank 0 decides (it alone looks at the folder before writing); every rank gets its answer
    # or its error, so no process of a torchrun job is left waiting for the others
    decision: tuple[str, Any] = ("error", "")
    lock: RunLock | None = None
    if info.is_main:
        try:
            chosen, lock = _start(
                exp, Path(out), cfg, preset, overrides, seed, resume, run_id, threads, dev, info
            )
            decision = ("ok", chosen)
        except UsageError as err:
            decision = ("error", str(err))
    try:
        status, value = distributed.broadcast_object(decision)
        if status == "error":
            raise ConfigError(value)
        start: _Start = value
        if info.is_main:
            for line in start.skipped:
                (notify or _print_note)(f"--resume passed over {line}")
        try:
            return _run_in_folder(exp, start, dev, info, show_progress, resume)
        except UsageError:
            # the experiment refused its input (a data file it cannot read, say): a new run
            # folder holds nothing worth keeping, so it goes, and bad input leaves nothing behind
            if not resume and info.is_main:
                shutil.rmtree(start.run_dir, ignore_errors=True)
                for folder in reversed(start.created[:-1]):
                    with contextlib.suppress(OSError):
                        folder.rmdir()  # only when empty: other runs keep theirs
            raise
    finally:
        if lock is not None:
            lock.release()


def _run_in_folder(
    exp: Experiment,
    start: _Start,
    dev: torch.device,
    info: distributed.DistInfo,
    show_progress: bool,
    resume: bool,
) -> RunResult:
    run_dir, cfg, seed, preset, threads = (
        start.run_dir, start.cfg, start.seed, start.preset, start.threads
    )  # fmt: skip
    if info.is_main:
        if resume:
            remove_temp_files(run_dir)  # of writes killed mid-way; this process holds the lock
        atomic_write_json(run_dir / CONFIG_FILE, start.record)
    distributed.barrier()
    ctx = RunContext(
        name=exp.name,
        seed=seed,
        device=dev,
        out_dir=run_dir,
        preset=preset,
        resume=resume,
        distributed=info,
        metrics=MetricsLogger(run_dir / "metrics.jsonl" if info.is_main else None),
        show_progress=show_progress,
    )
    seed_everything(seed)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    try:
        with limit_threads(threads):
            outcome = exp.fn(cfg, ctx)
    except UsageError:
        ctx.metrics.path = None  # the caller removes a new folder: the flush must not restore it
        raise
    finally:
        ctx.metrics.flush()
    if not isinstance(outcome, Outcome):
        raise TypeError(f"experiment {exp.name!r} returned {type(outcome).__name__}, not Outcome")
    outcome = complete(exp, outcome)
    record = {
        "name": exp.name,
        "topic": exp.topic,
        "description": exp.description,
        "draft": exp.draft,
        "run_id": run_dir.name,
        "preset": preset,
        "seed": seed,
        "device": str(dev),
        "world_size": info.world_size,
        "config": config_mod.to_dict(cfg),
        "metrics": dict(outcome.metrics),
        "figures": [_relative(p, run_dir) for p in outcome.figures],
        "declared": {"claims": list(exp.claims), "checks": list(exp.checks)},
        "claims": [c.to_dict() for c in outcome.claims],
        "all_hold": outcome.all_hold,
        "unexpected_failures": outcome.unexpected_failures,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t0, 2),
        "versions": _versions(),
    }
    if info.is_main:
        atomic_write_json(run_dir / "outcome.json", record)
    distributed.barrier()
    return RunResult(run_dir, json.loads(json.dumps(record, default=str)), outcome)


def _print_note(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


def _check_run_id(run_id: str, root: Path) -> None:
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith(".") or "\0" in run_id:
        raise ConfigError(f"run id must be a plain folder name, got {shorten(repr(run_id))}")
    size, limit = len(os.fsencode(run_id)), name_max(root)
    if size > limit:
        raise ConfigError(
            f"run id must be at most {limit} bytes (the file system's limit for a folder name), "
            f"got {size} bytes: {shorten(repr(run_id))}"
        )


def _start(
    exp: Experiment,
    out: Path,
    cfg: Any,
    preset: str | None,
    overrides: tuple[str, ...] | list[str],
    seed: int | None,
    resume: bool,
    run_id: str | None,
    threads: int | None,
    dev: torch.device,
    info: distributed.DistInfo,
) -> tuple[_Start, RunLock]:
    """Claim a new run folder, or find and lock the one to resume; nothing is written on error.

    The new folder is created with an exclusive ``mkdir``, so of two runs started at once with
    the same ``--run-id`` exactly one gets it.
    """
    root = out / exp.name
    check_folder(out, "--out")
    if run_id is not None:
        _check_run_id(run_id, out)
    settings = {"threads": threads, "device": dev.type, "world_size": info.world_size}
    if not resume:
        seed = 0 if seed is None else seed
        if not 0 <= seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2**32), got {seed}")
        run_dir = root / (run_id or new_run_id(seed))
        try:
            created = make_folder(run_dir, "--out", exclusive=True)
        except FileExistsError:
            raise ConfigError(
                f"run {shorten(str(run_dir))} exists; use --resume or another --run-id"
            ) from None
        lock = RunLock(run_dir).acquire()
        record = {
            "name": exp.name,
            "preset": preset or "quick",
            "seed": seed,
            "overrides": list(overrides),
            **settings,
            "config": config_mod.to_dict(cfg),
            "resumes": [],
        }
        return _Start(run_dir, cfg, seed, preset or "quick", threads, record, created), lock
    run_dir, skipped = find_resumable(root, run_id)
    lock = RunLock(run_dir).acquire()
    try:
        if (run_dir / "outcome.json").exists():  # finished while we were looking
            raise ConfigError(f"cannot resume: run {run_dir} already finished (has outcome.json)")
        stored, stored_cfg = _read_run_config(exp, run_dir)
        start = _resume_start(
            exp, run_dir, stored, stored_cfg, preset, overrides, seed, threads, settings
        )
    except BaseException:
        lock.release()
        raise
    start.skipped = skipped
    return start, lock


def _read_run_config(exp: Experiment, run_dir: Path) -> tuple[dict[str, Any], Any]:
    """The stored record of ``run_dir`` and its config, or a ConfigError naming the file."""
    path = run_dir / CONFIG_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"cannot resume: {path} is not a readable run config (expected JSON written by "
            f"deepnotes, got {shorten(str(err))})"
        ) from None
    expected = {"name": str, "preset": str, "seed": int, "config": dict}
    if not isinstance(stored, dict):
        problem = f"a JSON {type(stored).__name__} instead of an object"
    else:
        missing = [key for key in expected if key not in stored]
        wrong = [
            f"{key} ({type(stored[key]).__name__})"
            for key, kind in expected.items()
            if key in stored
            and (not isinstance(stored[key], kind) or isinstance(stored[key], bool))
        ]
        problem = (
            f"missing keys {', '.join(missing)}"
            if missing
            else f"wrong types: {', '.join(wrong)}"
            if wrong
            else ""
        )
    if problem:
        raise ConfigError(
            f"cannot resume: {path} is incomplete (expected keys name, preset, seed, config; "
            f"got {problem})"
        )
    if stored["name"] != exp.name:
        raise ConfigError(
            f"cannot resume: {path} belongs to experiment {shorten(stored['name'])!r}, "
            f"not {exp.name!r}"
        )
    missing = sorted(set(config_mod.field_types(exp.config)) - set(stored["config"]))
    if missing:
        # a default filled in for a lost value would resume a different run without a word
        raise ConfigError(
            f"cannot resume: {path} is incomplete: its config lacks "
            f"{shorten(', '.join(missing))} (every field of {exp.config.__name__} is recorded)"
        )
    try:
        stored_cfg = config_mod.from_dict(exp.config, stored["config"])
    except (UsageError, TypeError, ValueError) as err:
        raise ConfigError(
            f"cannot resume: {path} holds a config that does not fit: {err}"
        ) from None
    return stored, stored_cfg


def _resume_start(
    exp: Experiment,
    run_dir: Path,
    stored: dict[str, Any],
    stored_cfg: Any,
    preset: str | None,
    overrides: tuple[str, ...] | list[str],
    seed: int | None,
    threads: int | None,
    settings: dict[str, Any],
) -> _Start:
    stored_preset = stored["preset"]
    if preset is not None and preset != stored_preset:
        raise ConfigError(f"--resume continues {run_dir} with its stored preset {stored_preset!r}")
    if (
        overrides
        and config_mod.apply_overrides(config_mod.preset(exp.config, stored_preset), overrides)
        != stored_cfg
    ):
        raise ConfigError(
            f"--resume continues {run_dir} with its stored config; the --set values given differ"
        )
    if seed is not None and seed != stored["seed"]:
        raise ConfigError(f"--resume continues {run_dir} with its stored seed {stored['seed']}")
    # settings that change floating-point results: the recorded ones, or a refusal
    if "threads" in stored:
        if threads is not None and threads != stored["threads"]:
            recorded = stored["threads"] or "the libraries' default"
            raise ConfigError(
                f"--resume continues {run_dir} with its recorded --threads ({recorded}), since "
                f"the thread count changes floating-point results; got --threads {threads}"
            )
        threads = stored["threads"]
    for key, option in (("device", "--device"), ("world_size", "torchrun's world size")):
        if key in stored and stored[key] != settings[key]:
            raise ConfigError(
                f"--resume continues {run_dir} with its recorded {option} {stored[key]!r}, "
                f"since it changes floating-point results; this run would use {settings[key]!r}"
            )
    history = stored.get("resumes")
    record = {
        **stored,
        "threads": threads,
        "device": settings["device"],
        "world_size": settings["world_size"],
        "resumes": [
            *(history if isinstance(history, list) else []),
            {
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "overrides": list(overrides),
            },
        ],
    }
    return _Start(run_dir, stored_cfg, int(stored["seed"]), stored_preset, threads, record)


def _relative(path: Path | str, run_dir: Path) -> str:
    path = Path(path)
    try:
        return path.relative_to(run_dir).as_posix()
    except ValueError:
        return path.name if path.parent == Path(".") else path.as_posix()


def _versions() -> dict[str, str]:
    from deepnotes import __version__

    return {
        "deepnotes": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
