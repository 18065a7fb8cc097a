"""The training engine: one loop for every kind of training, owning everything around the step.

A topic writes the step (what one update does) and, optionally, what to evaluate; the
:class:`Loop` owns the rest, once for every topic:

- iteration, by steps (``run(step, steps=N, every=K)``: ``step(i)`` for ``i = 1..N``, a record
  every ``K`` steps) or by epochs (``run(step, epochs=E, batches=fn)``: ``step(batch)`` for each
  batch of ``fn(epoch)``, a record per epoch);
- a record per round (the steps' scalars averaged, weighted by ``n`` when a step returns it, plus
  what ``evaluate`` returns), logged to ``metrics.jsonl`` and shown in the progress bar;
- an atomic checkpoint after every round holding the state of everything it tracks: modules,
  optimisers, schedulers, any object with ``state_dict``/``load_state_dict`` (a replay buffer),
  ``torch``/``numpy`` generators, plain dicts of numbers and tensors (a running mean), the global
  RNG states and the history. With ``ctx.resume`` the loop restores it and continues: the
  rounds it replays are bitwise those of an uninterrupted run, as long as a round's work
  depends only on the tracked state (and, in epoch mode, ``batches(epoch)`` on the epoch);
- the divergence guard: every watched scalar (by default each one whose name contains
  ``"loss"``) is checked after every step; a non-finite value, or one that has grown beyond
  ``explode_factor`` times its first value, raises :class:`~deepnotes.core.errors.DivergenceError`
  naming the scalar, the step and the last good checkpoint (the CLI exits 3).

Checkpoints are read with ``torch.load(weights_only=True)`` (:mod:`deepnotes.core.checkpoint`).

Example (a GAN's two optimisers, resumable):
    >>> loop = Loop(ctx, tag="gan", track={"G": G, "D": D, "opt_G": opt_g, "opt_D": opt_d})
    >>> def step(i):
    ...     d_loss = train_discriminator()
    ...     g_loss = train_generator()
    ...     return {"loss_D": d_loss, "loss_G": g_loss}
    >>> result = loop.run(step, steps=2000, every=100, evaluate=lambda r: {"modes": count()})
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DivergenceError
from deepnotes.core.progress import Progress
from deepnotes.core.seeding import rng_state, set_rng_state

StepFn = Callable[[Any], Mapping[str, Any]]
"""``step(i)`` (step mode, ``i`` from 1) or ``step(batch)`` (epoch mode) -> scalars by name."""

EvalFn = Callable[[int], Mapping[str, Any] | None]
"""``evaluate(round)`` after a round -> scalars added to its record (may call ``loop.stop()``)."""

WEIGHT = "n"
"""A step may return the weight of its values under this name (e.g. its batch size)."""


@dataclass
class LoopResult:
    """What :meth:`Loop.run` returns: one record per round, and how the run went."""

    history: list[dict[str, Any]]
    steps: int
    """Steps taken in all (restored ones included)."""
    rounds: int
    stopped_early: bool
    restored_rounds: int
    """Rounds read back from the checkpoint instead of run (0 for a fresh run)."""
    seconds: float
    step_seconds: float = 0.0
    """Time spent in the steps of the rounds run by this call (drawing their batches
    included; evaluation, checkpoints and logging excluded): the cost of training alone."""


class Loop:
    """A resumable training loop (see the module docstring).

    Arguments:
        ctx: the run context (run folder, resume flag, progress, metrics, rank).
        tag: names the loop in records, messages and its checkpoint ``checkpoints/<tag>.pt``;
            every loop of one experiment needs its own.
        track: what the checkpoint holds, by name: ``nn.Module``, optimiser, scheduler, any
            object with ``state_dict``/``load_state_dict``, ``torch.Generator``,
            ``numpy.random.Generator``, or a plain ``dict`` (restored in place).
        watch: the scalars the divergence guard checks (default: each name containing "loss").
        explode_factor: a watched value above this many times its first value (in absolute
            value) is divergence; None checks finiteness only.
        checkpoint: write a checkpoint after every round and resume from it under
            ``ctx.resume``.
        progress: show a progress bar over rounds.
        log: write each round's record to ``metrics.jsonl``.
    """

    def __init__(
        self,
        ctx: RunContext,
        *,
        tag: str = "loop",
        track: Mapping[str, Any] | None = None,
        watch: Sequence[str] | None = None,
        explode_factor: float | None = 1e4,
        checkpoint: bool = True,
        progress: bool = True,
        log: bool = True,
    ) -> None:
        if not tag or "/" in tag or tag.startswith("."):
            raise ValueError(f"tag must be a plain name, got {tag!r}")
        if explode_factor is not None and explode_factor <= 1:
            raise ValueError(f"explode_factor must be > 1 or None, got {explode_factor}")
        self.ctx = ctx
        self.tag = tag
        self.track = dict(track or {})
        for name, obj in self.track.items():
            _check_trackable(name, obj)
        self.watch = None if watch is None else tuple(watch)
        self.explode_factor = explode_factor
        self.checkpoint = checkpoint
        self.show_progress = progress
        self.log_records = log
        self.history: list[dict[str, Any]] = []
        self.initial: dict[str, float] = {}
        self._stop = False

    # ------------------------------------------------------------------ public API
    @property
    def checkpoint_path(self) -> Path:
        return self.ctx.out_dir / "checkpoints" / f"{self.tag}.pt"

    def stop(self) -> None:
        """Finish after the current round (early stopping); the checkpoint records it."""
        self._stop = True

    def run(
        self,
        step: StepFn,
        *,
        steps: int | None = None,
        every: int = 1,
        epochs: int | None = None,
        batches: Callable[[int], Iterable[Any]] | None = None,
        evaluate: EvalFn | None = None,
    ) -> LoopResult:
        """Run ``step`` for ``steps`` steps (a record every ``every``) or for ``epochs`` epochs
        over ``batches(epoch)`` (a record per epoch), calling ``evaluate(round)`` after each
        round.

        Raises:
            DivergenceError: a watched scalar became non-finite or exploded.
        """
        if (steps is None) == (epochs is None):
            raise ValueError("give exactly one of steps= (with every=) or epochs= (with batches=)")
        if steps is not None:
            if steps < 1 or every < 1:
                raise ValueError(f"steps and every must be >= 1, got {steps}, {every}")
            if batches is not None:
                raise ValueError("batches= goes with epochs=, not steps=")
            rounds, unit = math.ceil(steps / every), "step"
        else:
            if epochs < 1:
                raise ValueError(f"epochs must be >= 1, got {epochs}")
            if batches is None:
                raise ValueError("epochs= needs batches=, a function of the epoch")
            rounds, unit = epochs, "epoch"
        t0 = time.perf_counter()
        step_seconds = 0.0
        done, taken, finished = 0, 0, False
        self.history, self.initial, self._stop = [], {}, False
        if self.checkpoint and self.ctx.resume and self.checkpoint_path.exists():
            done, taken, finished = self._restore()
        restored = done
        description = f"{self.ctx.name} [{self.tag}]"
        bar_or_silence = (
            self.ctx.progress(rounds, description)
            if self.show_progress
            else Progress(rounds, description, enabled=False)
        )
        with bar_or_silence as bar:
            if done:
                bar.advance(done)
            while not finished and done < rounds:
                r = done + 1
                t_round = time.perf_counter()
                sums: dict[str, float] = {}
                weight = 0.0
                if unit == "step":
                    work: Iterable[Any] = range((r - 1) * every + 1, min(r * every, steps) + 1)
                else:
                    work = batches(r)
                for k, item in enumerate(work, start=1):
                    values = _scalars(step(item), self.tag)
                    taken += 1
                    self._guard(values, unit, r, k, taken)
                    w = float(values.pop(WEIGHT, 1.0))
                    weight += w
                    for key, value in values.items():
                        sums[key] = sums.get(key, 0.0) + w * value
                step_seconds += time.perf_counter() - t_round
                if weight == 0:
                    raise ValueError(f"[{self.tag}] {unit} {r} ran no step (empty batches?)")
                record: dict[str, Any] = {"tag": self.tag, unit: r if unit == "epoch" else taken}
                record.update({k: v / weight for k, v in sums.items()})
                if evaluate is not None:
                    extra = _scalars(evaluate(r) or {}, self.tag)
                    clash = sorted(set(extra) & set(record))
                    if clash:
                        raise ValueError(f"evaluate returned keys the step already uses: {clash}")
                    record.update(extra)
                record["seconds"] = round(time.perf_counter() - t_round, 4)
                self.history.append(record)
                done = r
                finished = self._stop or done >= rounds
                if self.log_records:
                    self.ctx.log(record)
                if self.checkpoint:
                    self._save(done, taken, finished)
                bar.advance(1, **{k: v for k, v in record.items() if k not in ("tag", unit)})
        return LoopResult(
            history=self.history,
            steps=taken,
            rounds=done,
            stopped_early=done < rounds,
            restored_rounds=restored,
            seconds=time.perf_counter() - t0,
            step_seconds=step_seconds,
        )

    # ------------------------------------------------------------------ internals
    def _guard(self, values: dict[str, float], unit: str, r: int, k: int, taken: int) -> None:
        for key, value in values.items():
            if key == WEIGHT:
                continue
            if self.watch is not None and key not in self.watch:
                continue
            if self.watch is None and "loss" not in key:
                continue
            first = self.initial.setdefault(key, abs(value))
            if not math.isfinite(value):
                self._diverged(f"{key} is {value}", unit, r, k, taken)
            if (
                self.explode_factor is not None
                and first > 0
                and abs(value) > self.explode_factor * first
            ):
                self._diverged(
                    f"{key} exploded to {value:.3g} (more than {self.explode_factor:g} times "
                    f"its first value {first:.3g})",
                    unit,
                    r,
                    k,
                    taken,
                )

    def _diverged(self, what: str, unit: str, r: int, k: int, taken: int) -> None:
        self.ctx.metrics.flush()
        where = f"epoch {r}, step {k} (global step {taken})" if unit == "epoch" else f"step {taken}"
        if self.checkpoint and self.checkpoint_path.exists():
            try:
                last = load_checkpoint(self.checkpoint_path)
                after = f"after {unit} {last['round'] if unit == 'epoch' else last['steps']}"
            except Exception:  # the message must not hide the divergence behind another error
                after = "unreadable"
            saved = f"last good checkpoint: {self.checkpoint_path} ({after})"
        else:
            saved = f"no checkpoint was written before it (it diverged in the first {unit})"
        raise DivergenceError(
            f"training diverged: [{self.tag}] {what} at {where}; {saved}. Try a smaller "
            "learning rate, or a gradient clip."
        )

    def _save(self, done: int, taken: int, finished: bool) -> None:
        if not self.ctx.is_main:
            return
        self.ctx.metrics.flush()
        save_checkpoint(
            self.checkpoint_path,
            {
                "tag": self.tag,
                "round": done,
                "steps": taken,
                "finished": finished,
                "stopped": self._stop,
                "history": self.history,
                "initial": self.initial,
                "rng": rng_state(),
                "track": {name: _state_of(obj) for name, obj in self.track.items()},
            },
        )

    def _restore(self) -> tuple[int, int, bool]:
        ckpt = load_checkpoint(self.checkpoint_path, map_location=self.ctx.device)
        if ckpt.get("tag") != self.tag or set(ckpt.get("track", {})) != set(self.track):
            raise _mismatch(self.checkpoint_path, ckpt, self)
        for name, obj in self.track.items():
            _load_state(obj, ckpt["track"][name])
        set_rng_state(ckpt["rng"])
        self.history = list(ckpt["history"])
        self.initial = dict(ckpt["initial"])
        self._stop = bool(ckpt["stopped"])
        if self.log_records:
            for record in self.history:
                self.ctx.log(record)
        return int(ckpt["round"]), int(ckpt["steps"]), bool(ckpt["finished"])


def _mismatch(path: Path, ckpt: dict[str, Any], loop: Loop) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} belongs to another loop (tag {ckpt.get('tag')!r} tracking "
        f"{sorted(ckpt.get('track', {}))}; this loop is {loop.tag!r} tracking {sorted(loop.track)})"
    )


def _scalars(values: Mapping[str, Any], tag: str) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise TypeError(
            f"[{tag}] a step must return a dict of scalars, got {type(values).__name__}"
        )
    out = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise TypeError(f"[{tag}] {key!r} must be a scalar, got shape {tuple(value.shape)}")
            value = value.item()
        out[str(key)] = float(value)
    return out


def _check_trackable(name: str, obj: Any) -> None:
    ok = isinstance(obj, torch.Generator | np.random.Generator | dict) or (
        hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")
    )
    if not ok:
        raise TypeError(
            f"cannot track {name!r} ({type(obj).__name__}): track modules, optimisers, "
            "schedulers, objects with state_dict/load_state_dict, generators or dicts"
        )


def _state_of(obj: Any) -> Any:
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    if isinstance(obj, dict):
        return dict(obj)
    return obj.state_dict()


def _load_state(obj: Any, state: Any) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state.cpu())
    elif isinstance(obj, np.random.Generator):
        obj.bit_generator.state = state
    elif isinstance(obj, dict):
        obj.clear()
        obj.update(state)
    else:
        obj.load_state_dict(state)
