"""Few-shot sinusoid regression (Finn et al. 2017, section 5.1): the network, MAML / first-order
MAML meta-training, the pretrained baseline, and the evaluation over gradient steps.

Setup of the paper: a 1-40-40-1 ReLU MLP, MSE loss, ``K = 10`` support points per task, one inner
step of size ``alpha = 0.01``, meta-batches of 25 tasks, Adam with meta learning rate ``1e-3``
(:func:`deepnotes.data.tasks.sample_sinusoids` draws the tasks). The pretrained baseline is the
same network trained by Adam to regress every sampled task at once (the support and query points
of each task pooled); at test time it is fine-tuned exactly as MAML adapts, with gradient steps of
size ``alpha`` on the ``K`` support points.

Every fit runs through :class:`~deepnotes.core.engine.Loop` with one meta-iteration per step; the
loop tracks the model, the optimiser and the task stream, so a killed run resumes bitwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import ConfigError
from deepnotes.data.tasks import sample_sinusoids
from deepnotes.meta.maml import MAML, adaptation_curve

__all__ = ["METHODS", "evaluate_curves", "fit_sinusoid", "mlp"]

METHODS = ("maml", "fomaml", "pretrained")
"""Second-order MAML, first-order MAML, and pretraining on all tasks."""


def mlp(hidden: Sequence[int] = (40, 40), *, inputs: int = 1, outputs: int = 1) -> nn.Sequential:
    """A ReLU MLP ``inputs - hidden... - outputs`` (Finn et al.'s 1-40-40-1 by default)."""
    if not hidden or any(h < 1 for h in hidden):
        raise ConfigError(f"hidden must be one or more widths >= 1, got {tuple(hidden)}")
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def fit_sinusoid(
    model: nn.Module,
    ctx: RunContext,
    *,
    method: str,
    tag: str,
    iterations: int,
    meta_batch: int,
    shots: int,
    inner_lr: float,
    inner_steps: int,
    meta_lr: float,
    every: int,
    data: torch.Generator,
) -> list[dict[str, float]]:
    """Train ``model`` in place by ``method`` for ``iterations`` (meta-)iterations.

    Args:
        method: "maml" (second order), "fomaml" (first order) or "pretrained" (plain regression
            on the pooled support and query points of each meta-batch).
        tag: the loop's name (its checkpoint).
        iterations: Adam steps, one meta-batch of ``meta_batch`` tasks each.
        shots: support (and query) points per task, ``K``.
        every: a metrics record every this many iterations.
        data: the task stream (tracked by the loop).

    Returns:
        The loop's records (``loss``: the mean training loss of each round).

    Raises:
        ConfigError: an unknown method.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    opt = torch.optim.Adam(model.parameters(), lr=meta_lr)
    learner = MAML(
        model,
        inner_lr=inner_lr,
        inner_steps=inner_steps,
        first_order=method == "fomaml",
        loss_fn=F.mse_loss,
    )

    def step(_: int) -> dict[str, float]:
        xs, ys, xq, yq, _, _ = sample_sinusoids(meta_batch, shots, data)
        if method == "pretrained":
            loss = F.mse_loss(model(torch.cat([xs, xq], 1)), torch.cat([ys, yq], 1))
        else:
            loss = learner.meta_loss_batched(xs, ys, xq, yq)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    loop = Loop(ctx, tag=tag, track={"model": model, "opt": opt, "data": data}, progress=False)
    return loop.run(step, steps=iterations, every=every).history


def evaluate_curves(
    model: nn.Module,
    tasks: tuple[Tensor, Tensor, Tensor, Tensor],
    *,
    inner_lr: float,
    steps: int,
) -> Tensor:
    """Query MSE of every test task after 0..``steps`` gradient steps, ``(T, steps + 1)``.

    ``tasks`` is ``(support_x (T, K, 1), support_y, query_x (T, Q, 1), query_y)``.
    """
    xs, ys, xq, yq = tasks
    params = dict(model.named_parameters())
    return adaptation_curve(
        model, params, xs, ys, xq, yq, F.mse_loss, inner_lr=inner_lr, steps=steps
    )
