"""The run context handed to every experiment, and the runner that creates it.

``run_experiment`` does, in this order: look up the experiment, build and check its config,
pick the device, join the process group (under torchrun), choose the run folder
``OUT/NAME/<run-id>/`` (or find the one to resume), and only then write anything. Bad input
therefore raises :class:`~deepnotes.core.errors.ConfigError` with nothing written.
"""

from __future__ import annotations

import json
import platform
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from deepnotes.core import config as config_mod
from deepnotes.core import distributed
from deepnotes.core.errors import ConfigError, UsageError
from deepnotes.core.io import atomic_save, atomic_write_json
from deepnotes.core.metrics import MetricsLogger
from deepnotes.core.progress import Progress
from deepnotes.core.registry import Experiment, Outcome, get_experiment
from deepnotes.core.seeding import resolve_device, seed_everything


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

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed (``offset`` separates independent streams)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)


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
        threads: torch's intra-op CPU threads for this run (default: torch's own choice); 1 is
            much faster for small models on a shared CPU. Restored afterwards.

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
    if threads is not None:
        torch.set_num_threads(threads)
    try:
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
