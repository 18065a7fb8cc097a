r"""Adversarial training: the inner maximisation of the robust loss as a training-batch
perturbation, and what a model trained on one ball is guaranteed on others. Notes: discussion
11, section 2.3 "Adversarial Defense" and its problem 4.

The robust loss of the notes,

.. math:: \theta^* = \arg\min_\theta \sum_{(x, y) \in D} \max_{\|\delta\| \le \epsilon}
    L_\theta(x + \delta, y),

is minimised by the core :class:`~deepnotes.core.trainer.Trainer` with ``perturb=``: every
training batch is replaced by an approximate maximiser of the inner problem before the forward
pass (validation and test batches never are). Two inner maximisers:

- :func:`pgd_perturb`: projected gradient ascent with a random start, the inner maximiser of
  Madry, Makelov, Schmidt, Tsipras & Vladu (2018, "Towards Deep Learning Models Resistant to
  Adversarial Attacks", https://arxiv.org/abs/1706.06083): ``k`` steps of
  :func:`deepnotes.robustness.attacks.pgd`, so a batch costs about ``k + 1`` forward-backward
  passes.
- :func:`fgsm_rs_perturb`: FGSM with a random start (Wong, Rice & Kolter, 2020, "Fast is better
  than free: revisiting adversarial training", https://arxiv.org/abs/2001.03994, algorithm 3):
  :math:`\delta_0 \sim U[-\epsilon, \epsilon]^d`, then one step
  :math:`\delta = \Pi_\epsilon(\delta_0 + \alpha\,\mathrm{sign}(\nabla_x L(x + \delta_0, y)))`
  with :math:`\alpha = 1.25 \epsilon`, and :math:`x + \delta` clamped to [0, 1]: two passes per
  batch.

Both return a :data:`~deepnotes.core.trainer.Perturb`, ``(model, x, y) -> x_adv``, that runs
inside :func:`~deepnotes.robustness.attacks.attacking` (so the model is back in training mode
afterwards) and leaves the parameters' ``.grad`` untouched.

The containment arithmetic of problem 4 (:func:`enclosing_radius`, :func:`ball_inside`): a
model robust on a ball is guaranteed (up to how well the attack solves the inner problem) on
every set inside it, and on nothing else. With :math:`\|\delta\|_\infty \le \|\delta\|_2 \le
\sqrt{d}\,\|\delta\|_\infty`, the L2 ball of radius ``r`` lies in the L-inf ball of radius
``r`` (and no smaller), and the L-inf ball of radius ``r`` in the L2 ball of radius
:math:`r\sqrt{d}`.

Deviation: no epsilon warm-up. The Trainer hands the perturbation ``(model, x, y)`` only; a
ramp keyed to a call counter would not survive a resumed run (the counter restarts at zero), so
a killed and resumed fit would differ from an uninterrupted one. The digits need no warm-up at
the training radii used here.

Example:
    >>> perturb = pgd_perturb(0.1, steps=7, generator=ctx.stream("pgd-train"))  # doctest: +SKIP
    >>> fitted = fit_classifier(settings, ctx, splits, tag="pgd-mlp", perturb=perturb,
    ...                         perturb_key=pgd_key(0.1, 7))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from deepnotes.core.errors import ConfigError
from deepnotes.core.trainer import Perturb
from deepnotes.robustness.attacks import (
    NORMS,
    attacking,
    check_inputs,
    input_gradient,
    pgd,
    project,
    steepest_step,
)

FGSM_RS_ALPHA = 1.25
"""Wong et al.'s FGSM step for training, in units of eps (their section 4: alpha = 1.25 eps;
2 eps and above led to catastrophic overfitting)."""


def _check_radius(eps: float, norm: str) -> None:
    if not (isinstance(eps, int | float) and math.isfinite(eps) and eps >= 0):
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {NORMS}, got {norm!r}")


def pgd_perturb(
    eps: float,
    steps: int = 7,
    norm: str = "linf",
    step_size: float | None = None,
    generator: torch.Generator | None = None,
) -> Perturb:
    """The inner maximiser of Madry et al.: PGD with a random start, ``steps`` ascent steps.

    Arguments:
        eps: the training radius (pixel units, inputs in [0, 1]).
        steps: ``k``, the number of PGD steps per training batch (>= 1).
        norm: "linf" or "l2".
        step_size: the ascent step (default :func:`~deepnotes.robustness.attacks.pgd`'s
            ``2.5 * eps / steps``).
        generator: the stream of the random starts (a CPU ``torch.Generator``).

    Returns:
        ``(model, x, y) -> x_adv``, ``x_adv`` of the shape of ``x`` (N, C, H, W), inside the
        ball around ``x`` and in [0, 1].
    """
    _check_radius(eps, norm)
    if not (isinstance(steps, int) and steps >= 1):
        raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise ConfigError(f"step_size must be a finite number > 0 or None, got {step_size!r}")

    def perturb(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return pgd(
            model,
            x,
            y,
            eps,
            norm=norm,
            steps=steps,
            step_size=step_size,
            random_start=True,
            restarts=1,
            generator=generator,
        )

    return perturb


def fgsm_rs_perturb(
    eps: float, alpha: float | None = None, generator: torch.Generator | None = None
) -> Perturb:
    r"""FGSM with a random start (Wong, Rice & Kolter 2020), L-inf.

    :math:`\delta_0 \sim U[-\epsilon, \epsilon]^d`; :math:`g = \nabla_x L(\mathrm{clamp}(x +
    \delta_0, 0, 1), y)`; :math:`\delta = \Pi_\epsilon(\delta_0 + \alpha\,\mathrm{sign}(g))`;
    returns :math:`\mathrm{clamp}(x + \delta, 0, 1)`.

    Arguments:
        eps: the training radius (L-inf, pixel units).
        alpha: the FGSM step (default :data:`FGSM_RS_ALPHA` ``* eps``).
        generator: the stream of the random starts (a CPU ``torch.Generator``).
    """
    _check_radius(eps, "linf")
    step = FGSM_RS_ALPHA * eps if alpha is None else alpha
    if not (math.isfinite(step) and step >= 0):
        raise ConfigError(f"alpha must be a finite number >= 0 or None, got {alpha!r}")

    def perturb(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        check_inputs(x, eps, "linf")
        if eps == 0:
            return x.detach().clone()
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)  # U[0, 1), on the CPU
        delta = eps * (2 * noise.to(x.device) - 1)  # U[-eps, eps], (N, C, H, W)
        start = (x.detach() + delta).clamp(0, 1)
        g = input_gradient(model, start, y)  # inside attacking(model): eval mode, no p.grad
        delta = project(start - x.detach() + steepest_step(g, step, "linf"), eps, "linf")
        return (x.detach() + delta).clamp(0, 1)

    return perturb


class TimedPerturb:
    """A :data:`~deepnotes.core.trainer.Perturb` that adds up its own wall time and calls: the
    cost of the inner maximisation alone, apart from the epoch's update, validation and
    checkpoint."""

    def __init__(self, perturb: Perturb) -> None:
        self.perturb = perturb
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        start = time.perf_counter()
        out = self.perturb(model, x, y)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def pgd_key(eps: float, steps: int, norm: str = "linf", step_size: float | None = None) -> dict:
    """The ``perturb_key`` of :func:`pgd_perturb` for the classifier cache."""
    return {"attack": "pgd", "eps": eps, "steps": steps, "norm": norm, "step_size": step_size}


def fgsm_rs_key(eps: float, alpha: float | None = None) -> dict:
    """The ``perturb_key`` of :func:`fgsm_rs_perturb` for the classifier cache."""
    return {
        "attack": "fgsm-rs",
        "eps": eps,
        "alpha": FGSM_RS_ALPHA * eps if alpha is None else alpha,
    }


# ---------------------------------------------------------------------- perturbation sets


def enclosing_radius(norm: str, radius: float, within: str, dim: int) -> float:
    r"""The radius of the smallest ``within``-ball (centred at 0) that contains the ``norm``-ball
    of ``radius`` in :math:`\mathbb{R}^{dim}`.

    ``linf`` inside ``l2``: :math:`r\sqrt{d}` (the vertex :math:`r\mathbf{1}`); ``l2`` inside
    ``linf``: ``r`` (the point :math:`r e_1`); the same norm: ``r``.
    """
    for name in (norm, within):
        if name not in NORMS:
            raise ConfigError(f"norm must be one of {NORMS}, got {name!r}")
    if not (math.isfinite(radius) and radius >= 0):
        raise ConfigError(f"radius must be a finite number >= 0, got {radius!r}")
    if not (isinstance(dim, int) and dim >= 1):
        raise ConfigError(f"dim must be an integer >= 1, got {dim!r}")
    if norm == "linf" and within == "l2":
        return radius * math.sqrt(dim)
    return radius


def ball_inside(norm: str, radius: float, within: str, within_radius: float, dim: int) -> bool:
    """Whether the ``norm``-ball of ``radius`` lies inside the ``within``-ball of
    ``within_radius`` (both centred at the same point) in dimension ``dim``."""
    return enclosing_radius(norm, radius, within, dim) <= within_radius


def farthest_point(norm: str, radius: float, within: str, dim: int) -> Tensor:
    """A point of the ``norm``-ball of ``radius`` whose ``within``-norm is the largest (the
    witness of :func:`enclosing_radius`), shape (dim,), float64."""
    enclosing_radius(norm, radius, within, dim)  # validates
    point = torch.zeros(dim, dtype=torch.float64)
    if norm == "linf":
        point += radius  # a vertex of the box: every coordinate at the bound
    else:
        point[0] = radius  # all of the L2 budget on one coordinate
    return point


def norm_of(delta: Tensor, norm: str) -> Tensor:
    """Per-example L-inf or L2 norm of ``delta`` (N, ...) -> (N,)."""
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {NORMS}, got {norm!r}")
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def correct_under(
    model: nn.Module,
    attack: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    batch_size: int = 512,
) -> tuple[Tensor, Tensor]:
    """Per-example correctness of ``model`` on ``attack(x, y)`` (batch by batch, eval mode),
    for paired comparisons on the same test examples.

    Arguments:
        model: the classifier scored.
        attack: ``(x_batch, y_batch) -> x_adv_batch``, e.g. a PGD or a brightness change.
        x, y: inputs (N, C, H, W) and labels (N,).
        batch_size: examples per attack call.

    Returns:
        ``(correct, x_adv)``: (N,) float64 of 1.0 / 0.0, and the attacked inputs (N, C, H, W).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    correct, attacked = [], []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        x_adv = attack(xb, yb)
        with attacking(model), torch.no_grad():
            correct.append((model(x_adv).argmax(dim=1) == yb).to(torch.float64))
        attacked.append(x_adv)
    return torch.cat(correct), torch.cat(attacked)
