"""The supervised Trainer every topic reuses.

The protocol is the one of the notes (discussion 1, "Dataset splits during training"): train on
the training set only; choose the epoch (and, in experiments, the hyperparameters) on the
validation set; evaluate the test set exactly once, at the end, with the selected model.

What it does besides the loop:

- per-epoch train metrics (running averages over the epoch) and validation metrics, logged to
  ``metrics.jsonl``;
- selection of the best epoch on a validation metric, optional early stopping;
- gradient clipping and a per-step learning-rate schedule;
- a checkpoint after every epoch (model, optimiser, schedule, RNG states, history), written
  atomically; with ``ctx.resume`` a killed run continues from it and ends with exactly the
  metrics of an uninterrupted run (batches depend only on ``(seed, epoch)``);
- a guard that stops with :class:`~deepnotes.core.errors.DivergenceError` at the first
  non-finite loss, or at a loss that has exploded to ``explode_factor`` times the first step's
  loss (Adam with a huge step keeps the loss finite but astronomically large), naming the step
  and the last good checkpoint;
- DistributedDataParallel under torchrun: the global batch is split across ranks with a
  ``DistributedSampler``, evaluation metrics are summed across ranks (exactly, no padding), and
  only rank 0 writes.

Example:
    >>> trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-3), ctx, epochs=20)
    >>> result = trainer.fit(splits.train, splits.val, splits.test)
    >>> result.test["acc"]
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, TensorDataset
from torch.utils.data._utils.collate import default_collate

from deepnotes.core import distributed
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DivergenceError
from deepnotes.core.io import atomic_save
from deepnotes.core.progress import Progress
from deepnotes.core.schedules import make_scheduler
from deepnotes.core.seeding import rng_state, set_rng_state

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A metric maps (model output, target) to one value per example; the Trainer averages them."""

EpochHook = Callable[["Trainer", int], Mapping[str, float] | None]
"""Called as ``hook(trainer, epoch)`` after each epoch's validation, while the model holds that
epoch's weights; the numbers it returns join the epoch's record."""

INNER_FIT: Mapping[str, bool] = MappingProxyType(
    {"checkpoint": False, "progress": False, "log": False}
)
"""Trainer settings of one fit among many inside an experiment (``Trainer(..., **INNER_FIT)``):
no per-epoch checkpoint, no progress bar, nothing in ``metrics.jsonl``; the experiment reports
what it needs from the returned :class:`FitResult`."""


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1.0 where the arg-max class equals the target, else 0.0 (one value per example)."""
    return (output.argmax(dim=-1) == target).to(torch.float64)


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns. The model holds the weights of ``kept_epoch``: the
    epoch selected on validation (``best_epoch``), or the last one with ``keep="last"``."""

    best_epoch: int
    epochs_run: int
    stopped_early: bool
    best: dict[str, float]
    history: list[dict[str, Any]]
    test: dict[str, float] | None = None
    test_outputs: torch.Tensor | None = None
    seconds: float = 0.0
    kept_epoch: int = 0


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    best_value: float = math.nan
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    initial_loss: float = math.nan
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Supervised training with validation-based model selection.

    Arguments:
        model: the network; ``model(x)`` gives the output passed to ``loss_fn`` and metrics.
        optimizer: built on ``model.parameters()``.
        ctx: the run context (device, seed, run folder, resume flag, distributed info).
        epochs: maximum number of epochs.
        batch_size: global batch size (split evenly across ranks under torchrun).
        loss_fn: ``loss_fn(output, target)`` returning the mean loss over the batch.
        metrics: extra per-example metrics, by name (default: ``{"acc": accuracy}``).
        select: the validation quantity that picks the best epoch: "loss" or a metric name.
        mode: "min" or "max" for ``select`` (default: "min" for loss, else "max").
        patience: stop after this many epochs without improvement (None: never).
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        schedule: learning-rate schedule name (see :func:`deepnotes.core.schedules.make_scheduler`)
            or a callable ``(optimizer, total_steps) -> LRScheduler``.
        warmup_epochs: linear warm-up length for the named schedules.
        eval_batch_size: batch size for evaluation.
        tag: names this fit in logs and its checkpoint file (``checkpoints/<tag>.pt``); use a
            different tag for every fit in one experiment.
        checkpoint: write a checkpoint every epoch (and resume from it when ``ctx.resume``).
        progress: show a progress bar over epochs.
        log: log per-epoch records to ``metrics.jsonl``.
        explode_factor: treat a training loss above ``explode_factor`` times the first step's
            loss as divergence (None: only non-finite losses).
        keep: the weights the model holds after ``fit`` and the test set is scored with:
            "best" (the epoch selected on validation) or "last" (the final epoch's, for
            experiments about where training ends, such as snapshots or weight averages).
        on_epoch_end: an :data:`EpochHook`, e.g. to score the training set in eval mode; what it
            returns is added to the epoch's record (history, ``metrics.jsonl``, checkpoint).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        ctx: RunContext,
        *,
        epochs: int,
        batch_size: int = 64,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        metrics: Mapping[str, MetricFn] | None = None,
        select: str = "loss",
        mode: str | None = None,
        patience: int | None = None,
        grad_clip: float | None = None,
        schedule: str | Callable[..., Any] = "constant",
        warmup_epochs: int = 0,
        eval_batch_size: int = 1024,
        tag: str = "model",
        checkpoint: bool = True,
        progress: bool = True,
        log: bool = True,
        explode_factor: float | None = 1e4,
        keep: str = "best",
        on_epoch_end: EpochHook | None = None,
    ) -> None:
        self.metrics = dict({"acc": accuracy} if metrics is None else metrics)
        if keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {keep!r}")
        if select != "loss" and select not in self.metrics:
            raise ValueError(
                f"select must be 'loss' or one of {sorted(self.metrics)}, got {select!r}"
            )
        mode = mode or ("min" if select == "loss" else "max")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience}")
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip}")
        self.model = model.to(ctx.device)
        self.optimizer = optimizer
        self.ctx = ctx
        self.epochs = epochs
        self.batch_size = batch_size
        self.loss_fn = loss_fn
        self.select, self.mode = select, mode
        self.patience = patience
        self.grad_clip = grad_clip
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.eval_batch_size = eval_batch_size
        self.tag = tag
        self.checkpoint = checkpoint
        self.show_progress = progress
        self.log_records = log
        self.explode_factor = explode_factor
        self.keep = keep
        self.on_epoch_end = on_epoch_end
        self.world = ctx.distributed.world_size
        self.rank = ctx.distributed.rank
        self._test_done = False

    # ------------------------------------------------------------------ public API
    @property
    def checkpoint_path(self) -> Path:
        return self.ctx.out_dir / "checkpoints" / f"{self.tag}.pt"

    def fit(self, train: Dataset, val: Dataset, test: Dataset | None = None) -> FitResult:
        """Train on ``train``, select on ``val``, then evaluate ``test`` once with the kept model
        (the selected one unless ``keep="last"``).

        Raises:
            DivergenceError: at the first non-finite training loss.
        """
        t0 = time.perf_counter()
        net = self._wrap(self.model)
        per_rank_batch = max(1, self.batch_size // self.world)
        sampler = DistributedSampler(
            train, num_replicas=self.world, rank=self.rank, shuffle=True, seed=self.ctx.seed
        )
        steps_per_epoch = math.ceil(len(sampler) / per_rank_batch)
        scheduler = self._scheduler(steps_per_epoch)
        state = _State()
        if self.checkpoint and self.ctx.resume and self.checkpoint_path.exists():
            state = self._restore(scheduler)
        description = f"{self.ctx.name} [{self.tag}]"
        bar_or_silence = (
            self.ctx.progress(self.epochs, description)
            if self.show_progress
            else Progress(self.epochs, description, enabled=False)
        )
        with bar_or_silence as bar:
            if state.epoch:
                bar.advance(state.epoch)  # epochs restored from the checkpoint
            while not state.finished:
                epoch = state.epoch + 1
                t_epoch = time.perf_counter()
                sampler.set_epoch(epoch)
                train_stats = self._train_epoch(
                    state,
                    net,
                    train,
                    list(sampler),
                    per_rank_batch,
                    scheduler,
                    epoch,
                    steps_per_epoch,
                )
                val_stats = self.evaluate(val)
                record = {
                    "tag": self.tag,
                    "epoch": epoch,
                    **{f"train_{k}": v for k, v in train_stats.items()},
                    **{f"val_{k}": v for k, v in val_stats.items()},
                    "lr": self.optimizer.param_groups[0]["lr"],
                }
                if self.on_epoch_end is not None:
                    extra = self.on_epoch_end(self, epoch) or {}
                    clash = sorted(set(extra) & set(record))
                    if clash:
                        raise ValueError(f"on_epoch_end returned reserved keys {clash}")
                    record.update({k: float(v) for k, v in extra.items()})
                record["seconds"] = round(time.perf_counter() - t_epoch, 4)
                state.history.append(record)
                self._select(state, epoch, val_stats[self.select])
                state.epoch = epoch
                if epoch >= self.epochs:
                    state.finished = True
                elif self.patience is not None and state.bad_epochs >= self.patience:
                    state.finished = state.stopped_early = True
                if self.log_records:
                    self.ctx.log(record)
                if self.checkpoint:
                    self._save(state, scheduler)
                bar.advance(
                    1,
                    loss=train_stats["loss"],
                    val_loss=val_stats["loss"],
                    **{f"val_{k}": val_stats[k] for k in self.metrics},
                )
        if self.keep == "best" and state.best_weights is not None:
            self.model.load_state_dict(state.best_weights)
        best = {
            k[4:]: v for k, v in state.history[state.best_epoch - 1].items() if k.startswith("val_")
        }
        result = FitResult(
            best_epoch=state.best_epoch,
            epochs_run=state.epoch,
            stopped_early=state.stopped_early,
            best=best,
            history=state.history,
            kept_epoch=state.best_epoch if self.keep == "best" else state.epoch,
        )
        if test is not None:
            result.test, result.test_outputs = self.evaluate_test(test)
        result.seconds = time.perf_counter() - t0
        return result

    def evaluate_test(self, test: Dataset) -> tuple[dict[str, float], torch.Tensor]:
        """Evaluate the test set with the current (selected) model; allowed once per Trainer.

        Returns the mean loss and metrics, and the model's outputs for every test example in
        dataset order (on the CPU), so that nothing needs a second pass over the test set.
        """
        if self._test_done:
            raise RuntimeError(
                f"the test set of {self.tag!r} was already evaluated; it is evaluated once, "
                "after model selection (use the validation set to compare models)"
            )
        self._test_done = True
        stats, outputs = self.evaluate(test, return_outputs=True)
        if self.log_records:
            self.ctx.log(
                {"tag": self.tag, "split": "test", **{f"test_{k}": v for k, v in stats.items()}}
            )
        return stats, outputs

    @torch.no_grad()
    def evaluate(self, dataset: Dataset, return_outputs: bool = False) -> Any:
        """Mean loss and metrics over ``dataset`` in eval mode (exact under DDP: no padding).

        With ``return_outputs`` also returns the outputs for every example in dataset order
        (gathered from all ranks, on the CPU).
        """
        was_training = self.model.training
        self.model.eval()
        indices = list(range(self.rank, len(dataset), self.world))
        sums = torch.zeros(2 + len(self.metrics), dtype=torch.float64, device=self.ctx.device)
        outputs = []
        for start in range(0, len(indices), self.eval_batch_size):
            x, y = self._batch(dataset, indices[start : start + self.eval_batch_size])
            output = self.model(x)
            if return_outputs:
                outputs.append(output.cpu())
            n = y.shape[0]
            sums[0] += self.loss_fn(output, y).double() * n
            sums[1] += n
            for i, fn in enumerate(self.metrics.values()):
                sums[2 + i] += fn(output, y).double().sum()
        distributed.all_reduce_sum(sums)
        self.model.train(was_training)
        count = sums[1].item()
        if count == 0:
            raise ValueError("cannot evaluate an empty dataset")
        values = (sums / count).tolist()
        stats = {"loss": values[0], **{k: values[2 + i] for i, k in enumerate(self.metrics)}}
        if not return_outputs:
            return stats
        mine = torch.cat(outputs) if outputs else torch.empty(0)
        shards = distributed.all_gather_object(mine)
        ordered = torch.empty((len(dataset), *mine.shape[1:]), dtype=mine.dtype)
        for rank, shard in enumerate(shards):
            ordered[rank :: self.world] = shard
        return stats, ordered

    # ------------------------------------------------------------------ internals
    def _train_epoch(
        self,
        state: _State,
        net: nn.Module,
        train: Dataset,
        indices: list[int],
        batch_size: int,
        scheduler: Any,
        epoch: int,
        steps_per_epoch: int,
    ) -> dict[str, float]:
        net.train()
        totals = torch.zeros(2 + len(self.metrics), dtype=torch.float64, device=self.ctx.device)
        for step, start in enumerate(range(0, len(indices), batch_size), start=1):
            x, y = self._batch(train, indices[start : start + batch_size])
            output = net(x)
            loss = self.loss_fn(output, y)
            n = y.shape[0]
            batch_sums = torch.stack(
                [
                    loss.detach().double() * n,
                    torch.tensor(float(n), dtype=torch.float64, device=loss.device),
                ]
                + [fn(output.detach(), y).double().sum() for fn in self.metrics.values()]
            )
            distributed.all_reduce_sum(batch_sums)  # every rank sees the same verdict below
            mean_loss = (batch_sums[0] / batch_sums[1]).item()
            if math.isnan(state.initial_loss):
                state.initial_loss = abs(mean_loss)
            if not math.isfinite(mean_loss):
                self._diverged(f"loss is {mean_loss}", epoch, step, steps_per_epoch)
            if (
                self.explode_factor is not None
                and state.initial_loss > 0
                and mean_loss > self.explode_factor * state.initial_loss
            ):
                self._diverged(
                    f"loss exploded to {mean_loss:.3g} (more than {self.explode_factor:g} times "
                    f"the first step's {state.initial_loss:.3g})",
                    epoch,
                    step,
                    steps_per_epoch,
                )
            totals += batch_sums
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            if scheduler is not None:
                scheduler.step()
        values = (totals / totals[1]).tolist()
        return {"loss": values[0], **{k: values[2 + i] for i, k in enumerate(self.metrics)}}

    def _diverged(self, what: str, epoch: int, step: int, steps_per_epoch: int) -> None:
        self.ctx.metrics.flush()
        global_step = (epoch - 1) * steps_per_epoch + step
        if self.checkpoint and self.checkpoint_path.exists():
            last = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
            where = f"last good checkpoint: {self.checkpoint_path} (after epoch {last['epoch']})"
        else:
            where = "no checkpoint was written before it (it diverged in the first epoch)"
        group = self.optimizer.param_groups[0]
        lr = group.get("initial_lr", group["lr"])
        raise DivergenceError(
            f"training diverged: [{self.tag}] {what} at epoch {epoch}, step {step} "
            f"(global step {global_step}); {where}. The learning rate was {lr:g}: try a smaller "
            "one, or set a gradient clip."
        )

    def _select(self, state: _State, epoch: int, value: float) -> None:
        better = (
            math.isnan(state.best_value)
            or (self.mode == "min" and value < state.best_value)
            or (self.mode == "max" and value > state.best_value)
        )
        if better:
            state.best_value, state.best_epoch, state.bad_epochs = value, epoch, 0
            state.best_weights = copy.deepcopy(self.model.state_dict())
        else:
            state.bad_epochs += 1

    def _batch(self, dataset: Dataset, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(dataset, TensorDataset):
            index = torch.as_tensor(indices, dtype=torch.long)
            x, y = (t[index] for t in dataset.tensors[:2])
        else:
            x, y = default_collate([dataset[i] for i in indices])[:2]
        device = self.ctx.device
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.ctx.distributed.is_distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _scheduler(self, steps_per_epoch: int) -> Any:
        total = self.epochs * steps_per_epoch
        if callable(self.schedule):
            return self.schedule(self.optimizer, total)
        return make_scheduler(
            self.schedule, self.optimizer, total, warmup_steps=self.warmup_epochs * steps_per_epoch
        )

    def _save(self, state: _State, scheduler: Any) -> None:
        if not self.ctx.is_main:
            return
        self.ctx.metrics.flush()
        payload = {
            "epoch": state.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "best_value": state.best_value,
            "best_epoch": state.best_epoch,
            "best_weights": state.best_weights,
            "bad_epochs": state.bad_epochs,
            "initial_loss": state.initial_loss,
            "finished": state.finished,
            "stopped_early": state.stopped_early,
            "history": state.history,
            "rng": rng_state(),
        }
        atomic_save(self.checkpoint_path, lambda f: torch.save(payload, f))

    def _restore(self, scheduler: Any) -> _State:
        ckpt = torch.load(self.checkpoint_path, map_location=self.ctx.device, weights_only=False)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(_to_cpu(ckpt["rng"]))
        if self.log_records:
            for record in ckpt["history"]:
                self.ctx.log(record)
        return _State(
            epoch=ckpt["epoch"],
            best_value=ckpt["best_value"],
            best_epoch=ckpt["best_epoch"],
            best_weights=ckpt["best_weights"],
            bad_epochs=ckpt["bad_epochs"],
            initial_loss=ckpt["initial_loss"],
            finished=ckpt["finished"],
            stopped_early=ckpt["stopped_early"],
            history=ckpt["history"],
        )


def _to_cpu(state: dict) -> dict:
    out = dict(state)
    out["torch"] = state["torch"].cpu()
    if "cuda" in state:
        out["cuda"] = [s.cpu() for s in state["cuda"]]
    return out


def make_optimizer(
    name: str,
    params: Any,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """A torch optimiser by name: "sgd" (with optional heavy-ball momentum), "adam" or "adamw"."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', got {name!r}")
