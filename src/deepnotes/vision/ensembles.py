"""Ensembles: prediction averaging, parameter averaging, snapshots and head-only ensembles.

Notes, discussion 4, section 3 ("Ensembles"). N networks trained on the same task are combined
into one predictor, to average out the variance of the individual networks:

- **Prediction averaging** (Lakshminarayanan, Pritzel and Blundell 2017, "Simple and Scalable
  Predictive Uncertainty Estimation using Deep Ensembles", https://arxiv.org/abs/1612.01474):
  ``p(y | x) = 1/N sum_i softmax(f_i(x))_y`` (:func:`ensemble_probabilities`), or a majority
  vote of the members' arg-max classes (:func:`majority_vote`). Since ``-log`` is convex, the
  ensemble's negative log-likelihood is at most the members' mean NLL on every example (Jensen).
- **Parameter averaging** ``theta = 1/N sum_i theta_i`` (:func:`average_state_dicts`). The notes:
  it works only for parameters from *one* trajectory (snapshots of one run, as in stochastic
  weight averaging: Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
  Generalization", https://arxiv.org/abs/1803.05407), not across independent runs, whose hidden
  units are permuted relative to each other.
- **Snapshot ensembles** (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free",
  https://arxiv.org/abs/1704.00109): one run with a cyclic cosine learning rate (restarts as in
  Loshchilov and Hutter 2017, SGDR, https://arxiv.org/abs/1608.03983)
  ``alpha(t) = alpha_0 / 2 * (1 + cos(pi * (t mod L) / L))``, ``L = ceil(T / M)``, saving the
  weights at the end of each of the M cycles (:class:`CyclicCosineLR`, :func:`cyclic_cosine`).
- **Head-only ensembles** (the notes' "only make classification layers ensembles"; Lee et al.
  2015, "Why M Heads are Better than One", https://arxiv.org/abs/1511.06314): a shared trunk with
  N classifier heads (:class:`HeadEnsemble`), trained with the mean of the heads' losses.

This module holds no plotting, logging or I/O; the experiment lives in
:mod:`deepnotes.vision.experiments.ensembles`.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "CyclicCosineFactory",
    "CyclicCosineLR",
    "HeadEnsemble",
    "average_state_dicts",
    "averaged_model",
    "cyclic_cosine",
    "cyclic_cosine_factor",
    "ensemble_probabilities",
    "head_ensemble_accuracy",
    "majority_vote",
    "multi_head_cross_entropy",
    "negative_log_likelihood",
    "prediction_scores",
]

# ---------------------------------------------------------------------------------------------
# Prediction averaging


def _stack_logits(logits: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Members' logits as one tensor of shape (N, B, C)."""
    stacked = logits if isinstance(logits, torch.Tensor) else torch.stack(list(logits))
    if stacked.ndim != 3 or stacked.shape[0] == 0:
        raise ValueError(
            "expected the logits of N >= 1 members, shape (N, B, C) or a list of (B, C), got "
            f"shape {tuple(stacked.shape)}"
        )
    return stacked


def ensemble_probabilities(logits: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Prediction averaging: the mean of the members' softmax probabilities.

    Arguments:
        logits: the members' logits, a tensor (N, B, C) or a list of N tensors (B, C).

    Returns:
        ``1/N sum_i softmax(z_i)``, shape (B, C); every row sums to 1.

    Example:
        >>> probs = ensemble_probabilities([net(x) for net in members])
        >>> predicted = probs.argmax(-1)
    """
    return _stack_logits(logits).softmax(dim=-1).mean(dim=0)  # (N, B, C) -> (B, C)


def majority_vote(logits: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """The class most members predict (arg-max of each member), shape (B,).

    A tie goes to the smallest class index among the most voted ones.
    """
    stacked = _stack_logits(logits)
    votes = F.one_hot(stacked.argmax(dim=-1), stacked.shape[-1]).sum(dim=0)  # (B, C) counts
    return votes.argmax(dim=-1)  # first maximum: smallest index on ties


def negative_log_likelihood(
    probabilities: torch.Tensor, target: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """``-log p(y | x)`` per example from probabilities (B, C) and labels (B,); ``p`` is
    clamped below at ``eps`` so that a zero probability gives a large finite value."""
    if probabilities.ndim != 2 or target.shape != probabilities.shape[:1]:
        raise ValueError(
            f"expected probabilities (B, C) and targets (B,), got {tuple(probabilities.shape)} "
            f"and {tuple(target.shape)}"
        )
    picked = probabilities.gather(1, target.long().unsqueeze(1)).squeeze(1)  # p_y, (B,)
    return -picked.clamp_min(eps).log()


def prediction_scores(probabilities: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Accuracy (arg-max) and mean negative log-likelihood of probabilities (B, C) for labels
    (B,), as floats: ``{"acc": ..., "nll": ...}``.

    Example:
        >>> prediction_scores(ensemble_probabilities(member_logits), y_test)["nll"]
    """
    return {
        "acc": float((probabilities.argmax(-1) == target).double().mean()),
        "nll": float(negative_log_likelihood(probabilities, target).double().mean()),
    }


# ---------------------------------------------------------------------------------------------
# Parameter averaging


def average_state_dicts(
    state_dicts: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """Parameter averaging ``theta = sum_i w_i theta_i`` of models with the same architecture.

    Floating-point entries (parameters and buffers such as BatchNorm running statistics) are
    averaged; other entries (integer counters such as ``num_batches_tracked``) cannot be
    averaged meaningfully and are copied from the first state dict.

    Arguments:
        state_dicts: one ``model.state_dict()`` per member, with the same keys and shapes.
        weights: the averaging weights ``w_i`` (default: ``1/N`` each); they must sum to 1.

    Returns:
        A new state dict (tensors detached, on the device of the first state dict).

    Example:
        >>> swa = averaged_model(net, snapshots[-3:])   # average of the last three snapshots
    """
    if not state_dicts:
        raise ValueError("need at least one state dict to average")
    n = len(state_dicts)
    weights = [1.0 / n] * n if weights is None else [float(w) for w in weights]
    if len(weights) != n:
        raise ValueError(f"expected {n} weights (one per state dict), got {len(weights)}")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1, got {sum(weights)}")
    first = state_dicts[0]
    for i, other in enumerate(state_dicts[1:], start=1):
        if set(other) != set(first):
            missing, extra = sorted(set(first) - set(other)), sorted(set(other) - set(first))
            raise ValueError(
                f"state dict {i} has other keys than state dict 0: missing {missing}, extra {extra}"
            )
        for key, value in first.items():
            if other[key].shape != value.shape:
                raise ValueError(
                    f"{key!r} has shape {tuple(other[key].shape)} in state dict {i} but "
                    f"{tuple(value.shape)} in state dict 0"
                )
    averaged: dict[str, torch.Tensor] = {}
    for key, value in first.items():
        if not torch.is_floating_point(value):
            averaged[key] = value.detach().clone()
            continue
        total = torch.zeros_like(value, dtype=torch.float64)
        for w, sd in zip(weights, state_dicts, strict=True):
            total += w * sd[key].detach().to(device=value.device, dtype=torch.float64)
        averaged[key] = total.to(value.dtype)
    return averaged


def averaged_model(
    template: nn.Module,
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float] | None = None,
) -> nn.Module:
    """A deep copy of ``template`` holding the average of ``state_dicts`` (in eval mode).

    Deviation: stochastic weight averaging recomputes BatchNorm statistics with a pass over the
    training data after averaging (``torch.optim.swa_utils.update_bn``); here running statistics
    are averaged like the weights, which is exact for networks without BatchNorm.
    """
    model = copy.deepcopy(template)
    model.load_state_dict(average_state_dicts(state_dicts, weights))
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Head-only ensembles


class HeadEnsemble(nn.Module):
    """A shared trunk with N linear classifier heads: the notes' cheap "FC-layer" ensemble.

    ``forward`` returns every head's logits, shape (B, N, C); train it with
    :func:`multi_head_cross_entropy` (the mean of the heads' cross-entropies) and combine the
    heads with :meth:`predict_proba` (prediction averaging). The heads differ only by their
    random initialisation; the trunk is trained by the sum of their gradients.

    Arguments:
        trunk: maps an input batch to features (B, in_features).
        in_features: the trunk's output width F.
        num_classes: classes C per head.
        num_heads: N, the number of heads.

    Parameters: ``trunk + N (F C + C)``, against ``N (trunk + F C + C)`` for N full networks.

    Example:
        >>> trunk = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU())
        >>> model = HeadEnsemble(trunk, 128, num_classes=10, num_heads=5)
        >>> model(torch.randn(32, 64)).shape
        torch.Size([32, 5, 10])
    """

    def __init__(self, trunk: nn.Module, in_features: int, num_classes: int, num_heads: int):
        super().__init__()
        if min(in_features, num_classes, num_heads) < 1:
            raise ValueError(
                "in_features, num_classes and num_heads must be >= 1, got "
                f"{in_features}, {num_classes}, {num_heads}"
            )
        self.trunk = trunk
        self.heads = nn.ModuleList(nn.Linear(in_features, num_classes) for _ in range(num_heads))

    @property
    def num_heads(self) -> int:
        return len(self.heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.trunk(x)  # (B, F), computed once for all heads
        return torch.stack([head(features) for head in self.heads], dim=1)  # (B, N, C)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """The heads' averaged probabilities, shape (B, C) (the module's mode is unchanged)."""
        return ensemble_probabilities(self(x).transpose(0, 1))  # (N, B, C) -> (B, C)


def _check_heads(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim != 3 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"expected head logits (B, N, C) and targets (B,), got {tuple(logits.shape)} and "
            f"{tuple(target.shape)}"
        )


def multi_head_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1/N sum_i CE(z_i, y)`` averaged over the batch, for head logits (B, N, C)."""
    _check_heads(logits, target)
    b, n, c = logits.shape
    # every head is scored on every example: (B*N, C) against the label repeated N times
    return F.cross_entropy(logits.reshape(b * n, c), target.repeat_interleave(n))


def head_ensemble_accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example accuracy (1.0/0.0) of the heads' averaged probabilities, for the Trainer."""
    _check_heads(logits, target)
    probs = ensemble_probabilities(logits.transpose(0, 1))  # (B, C)
    return (probs.argmax(dim=-1) == target).to(torch.float64)


# ---------------------------------------------------------------------------------------------
# Cyclic cosine schedule with snapshots


def cyclic_cosine_factor(step: int, cycle_length: int) -> float:
    """The multiplier ``1/2 (1 + cos(pi (t mod L) / L))`` of the base rate after ``t`` steps.

    It is 1 at every restart (``t = kL``) and ``1/2 (1 + cos(pi (L - 1) / L))``, close to 0, on
    the last step of each cycle.
    """
    if cycle_length < 1 or step < 0:
        raise ValueError(f"need cycle_length >= 1 and step >= 0, got {cycle_length}, {step}")
    return 0.5 * (1.0 + math.cos(math.pi * (step % cycle_length) / cycle_length))


class CyclicCosineLR(LambdaLR):
    """Cyclic cosine annealing with restarts, optionally saving a snapshot at each cycle's end.

    Stepped once per optimiser step (as the Trainer does). After the step that ends cycle k
    (``t = kL``, or the last step ``t = T`` of a shorter final cycle) the weights are at the
    bottom of the cycle's learning rate, and a copy of ``snapshot_model.state_dict()`` is
    appended to :attr:`snapshots` before the rate restarts.

    Arguments:
        optimizer: the optimiser whose base learning rate ``alpha_0`` is scheduled.
        total_steps: T, the number of optimiser steps of the run.
        cycles: M; each cycle lasts ``L = ceil(T / M)`` steps.
        snapshot_model: the model to snapshot (None: schedule only).

    Example:
        >>> schedule = cyclic_cosine(cycles=5, snapshot_model=net)
        >>> Trainer(net, opt, ctx, epochs=50, schedule=schedule).fit(train, val)
        >>> len(schedule.last.snapshots)
        5
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        cycles: int,
        snapshot_model: nn.Module | None = None,
    ) -> None:
        if cycles < 1 or total_steps < cycles:
            raise ValueError(f"need 1 <= cycles <= total_steps, got {cycles}, {total_steps}")
        self.total_steps = total_steps
        self.cycles = cycles
        self.cycle_length = math.ceil(total_steps / cycles)
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.snapshot_steps: list[int] = []
        self._snapshot_model = snapshot_model  # set before LambdaLR's first (step-0) call
        factor = functools.partial(cyclic_cosine_factor, cycle_length=self.cycle_length)
        super().__init__(optimizer, factor)

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        t = self.last_epoch  # optimiser steps taken so far
        at_cycle_end = t > 0 and (t % self.cycle_length == 0 or t == self.total_steps)
        if self._snapshot_model is not None and at_cycle_end:
            self.snapshots.append(
                {k: v.detach().clone() for k, v in self._snapshot_model.state_dict().items()}
            )
            self.snapshot_steps.append(t)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler state with its snapshots, without the model reference."""
        state = super().state_dict()
        state.pop("_snapshot_model", None)
        return state


class CyclicCosineFactory:
    """A Trainer ``schedule`` callable that keeps the scheduler it built as ``.last``."""

    def __init__(self, cycles: int, snapshot_model: nn.Module | None) -> None:
        self.cycles = cycles
        self.snapshot_model = snapshot_model
        self.last: CyclicCosineLR | None = None

    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> CyclicCosineLR:
        self.last = CyclicCosineLR(optimizer, total_steps, self.cycles, self.snapshot_model)
        return self.last


def cyclic_cosine(cycles: int, snapshot_model: nn.Module | None = None) -> CyclicCosineFactory:
    """A schedule factory ``(optimizer, total_steps) -> CyclicCosineLR`` for the Trainer.

    The returned callable keeps the scheduler it built as ``.last``, so the snapshots of a run
    are ``factory.last.snapshots`` after ``Trainer.fit``.
    """
    if cycles < 1:
        raise ValueError(f"cycles must be >= 1, got {cycles}")
    return CyclicCosineFactory(cycles, snapshot_model)
