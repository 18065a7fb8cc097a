"""The run context handed to every experiment, and the runner that creates it.

``run_experiment`` does, in this order: look up the experiment, build and check its config,
pick the device, join the process group (under torchrun), choose the run folder
``OUT/NAME/<run-id>/`` (or find the one to resume), and only then write anything. Bad input
therefore raises :class:`~deepnotes.core.errors.ConfigError` with nothing written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import platform
import secrets
import shutil
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
from deepnotes.core.io import atomic_save, atomic_write_json
from deepnotes.core.metrics import MetricsLogger
from deepnotes.core.progress import Progress
from deepnotes.core.registry import Experiment, Outcome, complete, get_experiment
from deepnotes.core.seeding import derive_seed, resolve_device, seed_everything, seeded

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


def find_resumable(root: Path, run_id: str | None) -> Path:
    """The run folder to resume: ``run_id`` if given, else the newest one without outcome.json."""
    if run_id is not None:
        run_dir = root / run_id
        if not (run_dir / "config.json").is_file():
            raise ConfigError(f"cannot resume: no run {run_id!r} in {root} (no config.json)")
        if (run_dir / "outcome.json").exists():
            raise ConfigError(f"cannot resume: run {run_dir} already finished (has outcome.json)")
        return run_dir
    candidates = sorted(
        (p for p in root.glob("*/config.json") if not (p.parent / "outcome.json").exists()),
        key=lambda p: p.stat().st_mtime,
    )
    if not candidates:
        raise ConfigError(f"cannot resume: no unfinished run under {root}")
    return candidates[-1].parent


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
) -> RunResult:
    """Run one experiment end to end and write its artefacts.

    Arguments:
        name: registered experiment name.
        preset: "quick" (default) or "full"; ``overrides`` (``"key=value"``) are applied on top.
        seed: the seed (default 0; on resume, the stored seed).
        device: auto|cpu|cuda|mps.
        out: root folder; the run goes to ``out/name/<run-id>/``.
        resume: continue the run ``run_id`` (or the newest unfinished one) from its checkpoints,
            with its stored config and seed.
        run_id: name of the run folder (default: timestamp, seed and a random suffix).
        threads: torch's intra-op CPU threads and NumPy's BLAS threads for this run (default:
            the libraries' own choice); 1 is much faster for small models on a shared CPU.
            Restored afterwards.

    Raises:
        ConfigError: bad name, preset, key, value, device, or nothing to resume; nothing written.
        DivergenceError: training produced a non-finite loss (see the Trainer).
    """
    exp = get_experiment(name)
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    cfg = config_mod.apply_overrides(config_mod.preset(exp.config, preset or "quick"), overrides)
    dev = resolve_device(device, distributed.env_info().local_rank)
    info = distributed.init(dev)
    root = Path(out) / name
    # rank 0 decides (it alone looks at the folder before writing); every rank gets its answer
    # or its error, so no process of a torchrun job is left waiting for the others
    decision = None
    if info.is_main:
        try:
            decision = (
                "ok",
                _choose_run_dir(exp, root, cfg, preset, overrides, seed, resume, run_id),
            )
        except ConfigError as err:
            decision = ("error", str(err))
    status, value = distributed.broadcast_object(decision)
    if status == "error":
        raise ConfigError(value)
    run_dir, cfg, seed, preset = value
    fresh = not resume and not run_dir.exists()
    made_root = fresh and not root.exists()
    if info.is_main:
        atomic_write_json(
            run_dir / "config.json",
            {
                "name": name,
                "preset": preset,
                "seed": seed,
                "overrides": list(overrides),
                "config": config_mod.to_dict(cfg),
            },
        )
    distributed.barrier()
    ctx = RunContext(
        name=name,
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
    previous_threads = torch.get_num_threads()
    blas_limit = contextlib.nullcontext()
    if threads is not None:
        torch.set_num_threads(threads)
        # NumPy's BLAS too: a small matmul on a busy CPU is 100x slower with every core's thread
        from threadpoolctl import threadpool_limits

        blas_limit = threadpool_limits(limits=threads)
    try:
        with blas_limit:
            outcome = exp.fn(cfg, ctx)
    except UsageError:
        # the experiment refused its input (a data file it cannot read, say): a new run folder
        # holds nothing worth keeping, so it goes, and bad input leaves nothing behind
        if fresh and info.is_main:
            ctx.metrics.path = None  # the flush below must not bring the folder back
            shutil.rmtree(run_dir, ignore_errors=True)
            if made_root and not any(root.iterdir()):
                root.rmdir()
        raise
    finally:
        ctx.metrics.flush()
        torch.set_num_threads(previous_threads)
    if not isinstance(outcome, Outcome):
        raise TypeError(f"experiment {name!r} returned {type(outcome).__name__}, not Outcome")
    outcome = complete(exp, outcome)
    record = {
        "name": name,
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


def _choose_run_dir(
    exp: Experiment,
    root: Path,
    cfg: Any,
    preset: str | None,
    overrides: tuple[str, ...] | list[str],
    seed: int | None,
    resume: bool,
    run_id: str | None,
) -> tuple[Path, Any, int, str]:
    if run_id is not None and (not run_id or "/" in run_id or run_id.startswith(".")):
        raise ConfigError(f"run id must be a plain folder name, got {run_id!r}")
    if not resume:
        seed = 0 if seed is None else seed
        if not 0 <= seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2**32), got {seed}")
        run_id = run_id or new_run_id(seed)
        if (root / run_id / "config.json").exists():
            raise ConfigError(f"run {root / run_id} exists; use --resume or another --run-id")
        return root / run_id, cfg, seed, preset or "quick"
    run_dir = find_resumable(root, run_id)
    stored = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    stored_cfg = config_mod.from_dict(exp.config, stored["config"])
    stored_preset = stored.get("preset", "quick")
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
    return run_dir, stored_cfg, int(stored["seed"]), stored_preset


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
