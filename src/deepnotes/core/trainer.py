"""The supervised Trainer: the training engine (:class:`~deepnotes.core.engine.Loop`) in epoch
mode with a step that does forward, loss, backward and update, plus model selection.

The protocol is the one of the notes (discussion 1, "Dataset splits during training"): train on
the training set only; choose the epoch (and, in experiments, the hyperparameters) on the
validation set; evaluate the test set exactly once, at the end, with the selected model.

What it does besides the loop:

- per-epoch train metrics (running averages over the epoch) and validation metrics, logged to
  ``metrics.jsonl``;
- selection of the best epoch on a validation metric, optional early stopping;
- gradient clipping and a per-step learning-rate schedule;
- (from the engine) a checkpoint after every epoch (model, optimiser, schedule, selection
  state, RNG states, history), written atomically and read back safely; with ``ctx.resume`` a
  killed run continues from it and ends with exactly the metrics of an uninterrupted run
  (batches depend only on ``(seed, epoch)``);
- (from the engine) a guard that stops with :class:`~deepnotes.core.errors.DivergenceError`
  at the first non-finite loss, or at a loss that has exploded to ``explode_factor`` times the
  first step's loss (Adam with a huge step keeps the loss finite but astronomically large),
  naming the step and the last good checkpoint;
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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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
from deepnotes.core.engine import WEIGHT, Loop
from deepnotes.core.schedules import make_scheduler

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A metric maps (model output, target) to one value per example; the Trainer averages them."""

Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
"""Maps (model, inputs, targets) of a training batch to the inputs trained on instead, e.g. an
attack's adversarial examples (adversarial training on the robust loss)."""

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
    train_seconds: float = 0.0
    """Time in the training steps of the epochs this call ran (no evaluation, checkpoints or
    logging): what a per-epoch training cost is measured from."""
    kept_epoch: int = 0


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
        patience: stop after this many (>= 1) epochs without improvement (None: never).
        grad_clip: clip the global gradient norm to this finite value > 0 (None: no clipping).
        schedule: learning-rate schedule name (see :func:`deepnotes.core.schedules.make_scheduler`)
            or a callable ``(optimizer, total_steps) -> LRScheduler``.
        warmup_epochs: linear warm-up length for the named schedules.
        eval_batch_size: batch size for evaluation.
        tag: names this fit in logs and its checkpoint file (``checkpoints/<tag>.pt``); use a
            different tag for every fit in one experiment.
        checkpoint: write a checkpoint every epoch (and resume from it when ``ctx.resume``).
        progress: show a progress bar over epochs.
        log: log per-epoch records to ``metrics.jsonl``.
        explode_factor: treat a training loss above ``explode_factor`` (finite, > 1) times the
            first step's loss as divergence (None: only non-finite losses).
        keep: the weights the model holds after ``fit`` and the test set is scored with:
            "best" (the epoch selected on validation) or "last" (the final epoch's, for
            experiments about where training ends, such as snapshots or weight averages).
        on_epoch_end: an :data:`EpochHook`, e.g. to score the training set in eval mode; what it
            returns is added to the epoch's record (history, ``metrics.jsonl``, checkpoint).
        perturb: a :data:`Perturb` applied to every training batch before the forward pass
            (called with the unwrapped model); the loss, metrics and update use its output.
            Validation and test batches are never perturbed. It must leave the model in
            training mode and its parameters' gradients as it found them.
        state: more state the checkpoint must carry for a resumed fit to equal an uninterrupted
            one, by name (anything the engine tracks: e.g. the ``torch.Generator`` a
            ``perturb`` draws its random starts from).
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
        perturb: Perturb | None = None,
        state: Mapping[str, Any] | None = None,
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
        if eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience}")
        if grad_clip is not None and not (_finite(grad_clip) and grad_clip > 0):
            raise ValueError(f"grad_clip must be a finite number > 0 or None, got {grad_clip}")
        if explode_factor is not None and not (_finite(explode_factor) and explode_factor > 1):
            raise ValueError(
                f"explode_factor must be a finite number > 1 or None, got {explode_factor}"
            )
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
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
        self.perturb = perturb
        self.state = dict(state or {})
        clash = sorted(set(self.state) & {"model", "optimizer", "selection", "scheduler"})
        if clash:
            raise ValueError(f"state names {clash} are the Trainer's own; choose other names")
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
        # the selection state the checkpoint must carry besides the model and optimiser
        selection: dict[str, Any] = {
            "best_value": math.nan,
            "best_epoch": 0,
            "bad_epochs": 0,
            "best_weights": {},
        }
        track: dict[str, Any] = {
            "model": self.model,
            "optimizer": self.optimizer,
            "selection": selection,
        }
        if scheduler is not None:
            track["scheduler"] = scheduler
        track.update(self.state)
        loop = Loop(
            self.ctx,
            tag=self.tag,
            track=track,
            watch=("train_loss",),
            explode_factor=self.explode_factor,
            checkpoint=self.checkpoint,
            progress=self.show_progress,
            log=self.log_records,
        )

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            sampler.set_epoch(epoch)  # the order depends on (seed, epoch) only
            indices = list(sampler)
            net.train()
            for start in range(0, len(indices), per_rank_batch):
                yield self._batch(train, indices[start : start + per_rank_batch])

        def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
            x, y = batch
            if self.perturb is not None:
                x = self.perturb(self.model, x, y)
            output = net(x)
            loss = self.loss_fn(output, y)
            n = y.shape[0]
            sums = torch.stack(
                [
                    loss.detach().double() * n,
                    torch.tensor(float(n), dtype=torch.float64, device=loss.device),
                ]
                + [fn(output.detach(), y).double().sum() for fn in self.metrics.values()]
            )
            distributed.all_reduce_sum(sums)  # every rank sees the same values (and verdict)
            count = sums[1].item()
            values = (sums / count).tolist()
            record = {"train_loss": values[0], WEIGHT: count}
            record.update({f"train_{k}": values[2 + i] for i, k in enumerate(self.metrics)})
            if not math.isfinite(values[0]):
                return record  # the loop's guard stops here, before a poisoned update
            self.optimizer.zero_grad(set_to_none=True)
            with distributed.collective("gradient all-reduce"):  # DDP reduces in backward
                loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            if scheduler is not None:
                scheduler.step()
            return record

        def evaluate(epoch: int) -> dict[str, float]:
            val_stats = self.evaluate(val)
            record = {f"val_{k}": v for k, v in val_stats.items()}
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            if self.on_epoch_end is not None:
                extra = self.on_epoch_end(self, epoch) or {}
                reserved = {"tag", "epoch", "seconds", "train_loss", *record}
                reserved |= {f"train_{k}" for k in self.metrics}
                clash = sorted(set(extra) & reserved)
                if clash:
                    raise ValueError(f"on_epoch_end returned reserved keys {clash}")
                record.update({k: float(v) for k, v in extra.items()})
            if self._select(selection, epoch, val_stats[self.select]):
                loop.stop()  # patience exhausted: early stopping
            return record

        outcome = loop.run(step, epochs=self.epochs, batches=batches, evaluate=evaluate)
        history = outcome.history
        best_epoch = int(selection["best_epoch"])
        if self.keep == "best" and selection["best_weights"]:
            self.model.load_state_dict(selection["best_weights"])
        best = {k[4:]: v for k, v in history[best_epoch - 1].items() if k.startswith("val_")}
        result = FitResult(
            best_epoch=best_epoch,
            epochs_run=outcome.rounds,
            stopped_early=outcome.stopped_early,
            best=best,
            history=history,
            kept_epoch=best_epoch if self.keep == "best" else outcome.rounds,
            train_seconds=outcome.step_seconds,
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
    def _select(self, selection: dict[str, Any], epoch: int, value: float) -> bool:
        """Record ``epoch`` if it is the best so far; True when patience is exhausted."""
        best = selection["best_value"]
        better = (
            math.isnan(best)
            or (self.mode == "min" and value < best)
            or (self.mode == "max" and value > best)
        )
        if better:
            selection.update(best_value=value, best_epoch=epoch, bad_epochs=0)
            selection["best_weights"] = copy.deepcopy(self.model.state_dict())
        else:
            selection["bad_epochs"] += 1
        return self.patience is not None and selection["bad_epochs"] >= self.patience

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


def make_optimizer(
    name: str,
    params: Any,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """A torch optimiser by name: "sgd" (with optional heavy-ball momentum), "adam" or "adamw".

    Raises:
        ValueError: ``lr`` not a finite number > 0, ``momentum`` outside [0, 1) (checked for
            every optimiser, though only SGD uses it), ``weight_decay`` not a finite number
            >= 0, or an unknown ``name``.
    """
    if not (_finite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if not (_finite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', got {name!r}")


def _finite(value: float) -> bool:
    """True for a finite real number (False for inf, nan and what is not a number)."""
    try:
        return math.isfinite(value)
    except TypeError:
        return False
