r"""White-box adversarial attacks: FGSM and PGD for the L-inf and L2 balls (notes, discussion 11,
part 2, "Adversarial Attacks").

The attacker's problem (the notes' formulation) is

.. math:: \delta^* = \arg\max_{\|\delta\| \le \epsilon} L_\theta(x + \delta, y),
          \qquad x' = \mathrm{clip}_{[0, 1]}(x + \delta^*).

**FGSM** (Goodfellow, Shlens & Szegedy 2015, "Explaining and harnessing adversarial examples",
https://arxiv.org/abs/1412.6572) maximises the first-order model
:math:`L(x) + g^\top \delta`, :math:`g = \nabla_x L`, over the ball; the maximiser is
:math:`\epsilon\,\mathrm{sign}(g)` for L-inf and :math:`\epsilon\, g / \|g\|_2` for L2 (the notes'
problem 3; :func:`steepest_step`).

**PGD** (Madry, Makelov, Schmidt, Tsipras & Vladu 2018, "Towards deep learning models resistant
to adversarial attacks", https://arxiv.org/abs/1706.06083) repeats that step with a smaller step
size and projects back: :math:`\delta \leftarrow \Pi_{\|\delta\| \le \epsilon}(\delta +
\mathrm{step}(g, \alpha))`, then :math:`x' = \mathrm{clip}_{[0,1]}(x + \delta)`, from a random
start, with restarts that keep each example's best perturbation.

Every attack (the bugs users report most in attack libraries): checks its input
(:func:`check_inputs`); runs the model in eval mode with its parameters' ``requires_grad`` off
and restores both afterwards (:func:`attacking`), so no gradient reaches ``p.grad``; never
modifies ``x``; and returns ``x`` exactly (a clone) at ``eps = 0``.

Deviation: each PGD iterate is the clipped image, so the perturbation carried to the next step is
``clip(x + delta) - x`` (the projection onto the intersection of the L-inf ball and the pixel box;
for L2 the ball projection followed by the box clip), as in Madry et al.'s code and torchattacks.

Example:
    >>> x_adv = pgd(model, x, y, eps=0.1, steps=40, generator=torch.Generator().manual_seed(0))
    >>> robust_accuracy(model, lambda xb, yb: fgsm(model, xb, yb, 0.1), x, y)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.errors import ConfigError

NORMS = ("linf", "l2")
"""The perturbation balls: ``||delta||_inf <= eps`` and ``||delta||_2 <= eps``."""

LossFn = Callable[..., Tensor]
"""A torch functional loss ``loss_fn(logits, y, reduction=...)`` (``"sum"`` and ``"none"``), e.g.
``F.cross_entropy``."""


def check_inputs(x: Tensor, eps: float, norm: str) -> None:
    """Raise :class:`ConfigError` unless ``x`` lies in [0, 1], ``eps`` is finite and >= 0 and
    ``norm`` is one of :data:`NORMS`; the message names what was expected."""
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {NORMS}, got {norm!r}")
    if not (isinstance(eps, int | float) and math.isfinite(eps) and eps >= 0):
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    if x.numel() == 0:
        raise ConfigError(f"inputs must hold at least one example, got shape {tuple(x.shape)}")
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if not (lo >= 0.0 and hi <= 1.0):
        raise ConfigError(
            f"inputs must lie in [0, 1] (pixels scaled to the unit interval), got min {lo:.4g} "
            f"max {hi:.4g}"
        )


@contextmanager
def attacking(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter inside the block; every module's
    mode and every parameter's flag restored on exit, even on an exception."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def input_gradient(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    loss_fn: LossFn = F.cross_entropy,
    targeted: bool = False,
) -> Tensor:
    r"""The gradient of the per-example loss summed over the batch with respect to the input.

    Each row of the result is that example's own :math:`\nabla_x L(x_i, y_i)` (the examples do
    not interact in eval mode). With ``targeted``, ``y`` holds the target classes and the result
    is :math:`-\nabla_x L(x_i, t_i)`: ascending it approaches the target.

    Arguments:
        model: maps (B, ...) inputs to (B, K) logits; run in eval mode (:func:`attacking`).
        x: inputs (B, ...); not modified.
        y: labels (or targets) (B,).
        loss_fn: a functional loss accepting ``reduction="sum"``.
        targeted: return the negative loss's gradient.

    Returns:
        (B, ...) like ``x``, detached; no gradient reaches the model's parameters.
    """
    with attacking(model):
        return _gradient(model, x, y, loss_fn, targeted)


def _gradient(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn, targeted: bool) -> Tensor:
    """:func:`input_gradient` for a model already inside :func:`attacking`."""
    with torch.enable_grad():
        x_var = x.detach().requires_grad_(True)  # a new leaf sharing x's memory, x untouched
        loss = loss_fn(model(x_var), y, reduction="sum")  # sum of the per-example losses
        if targeted:
            loss = -loss
        (grad,) = torch.autograd.grad(loss, x_var)
    return grad.detach()


def _norms(t: Tensor) -> Tensor:
    """Per-example L2 norms of (B, ...), shaped (B, 1, ..., 1) to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def steepest_step(g: Tensor, eps: float, norm: str) -> Tensor:
    r"""The maximiser of :math:`g^\top \delta` over :math:`\|\delta\| \le \epsilon`, per example
    (the notes' problem 3): ``eps * sign(g)`` for "linf", ``eps * g / ||g||_2`` for "l2" (zero for
    an example whose gradient is zero).

    Arguments:
        g: gradients (B, ...).
        eps: the radius.
        norm: "linf" or "l2".

    Returns:
        (B, ...) like ``g``.
    """
    if norm == "linf":
        return eps * g.sign()
    if norm == "l2":
        n = _norms(g)
        return eps * g / torch.where(n > 0, n, torch.ones_like(n))  # g = 0 where n = 0
    raise ConfigError(f"norm must be one of {NORMS}, got {norm!r}")


def project(delta: Tensor, eps: float, norm: str) -> Tensor:
    """Euclidean projection of each example's ``delta`` onto the ball of radius ``eps``:
    coordinate-wise clipping to [-eps, eps] for "linf", radial rescaling to norm ``eps`` of the
    examples outside the ball for "l2".

    Arguments:
        delta: perturbations (B, ...).
        eps: the radius (>= 0).
        norm: "linf" or "l2".

    Returns:
        (B, ...) like ``delta``.
    """
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        n = _norms(delta)
        scale = torch.where(n > eps, eps / torch.where(n > 0, n, torch.ones_like(n)), 1.0)
        return delta * scale
    raise ConfigError(f"norm must be one of {NORMS}, got {norm!r}")


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: str = "linf",
    targeted: bool = False,
    loss_fn: LossFn = F.cross_entropy,
) -> Tensor:
    """The fast gradient (sign) method: ``clip(x + steepest_step(grad, eps, norm), 0, 1)``.

    Arguments:
        model: the classifier (B, ...) -> (B, K); its mode and parameters are left as found.
        x: inputs (B, ...) in [0, 1]; not modified.
        y: true labels (B,), or target classes with ``targeted``.
        eps: the radius of the ball (in pixel units of [0, 1]).
        norm: "linf" (the sign step) or "l2" (the normalised gradient).
        targeted: step towards the class ``y`` instead of away from it.
        loss_fn: a functional loss accepting ``reduction``.

    Returns:
        Adversarial inputs (B, ...) in [0, 1], detached; a clone of ``x`` when ``eps == 0``.

    Raises:
        ConfigError: ``x`` outside [0, 1], a negative or non-finite ``eps``, an unknown norm.
    """
    check_inputs(x, eps, norm)
    if eps == 0:
        return x.detach().clone()
    with attacking(model):
        g = _gradient(model, x, y, loss_fn, targeted)
    return (x.detach() + steepest_step(g, eps, norm)).clamp(0.0, 1.0)


def _random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A perturbation drawn uniformly from the L-inf box or the L2 ball, (B, ...) like ``x``."""
    shape = tuple(x.shape)
    if norm == "linf":
        u = torch.rand(shape, generator=generator, dtype=x.dtype)
        return ((2 * u - 1) * eps).to(x.device)
    # uniform in the d-ball: a uniform direction times eps * U^(1/d)
    d = x[0].numel()
    direction = torch.randn(shape, generator=generator, dtype=x.dtype)
    direction = direction / _norms(direction).clamp_min(torch.finfo(x.dtype).tiny)
    radius = torch.rand((shape[0],), generator=generator, dtype=x.dtype).pow(1.0 / d)
    return (eps * direction * radius.view(-1, *([1] * (x.dim() - 1)))).to(x.device)


def _per_example(
    model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn, targeted: bool
) -> tuple[Tensor, Tensor]:
    """(success, attacker's objective) per example: misclassified (or classified as the target)
    and the loss (or the negative loss towards the target)."""
    with torch.no_grad():
        logits = model(x)
        loss = loss_fn(logits, y, reduction="none")
    hit = logits.argmax(dim=1) == y
    return (hit if targeted else ~hit), (-loss if targeted else loss)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: str = "linf",
    steps: int = 40,
    step_size: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
    targeted: bool = False,
    generator: torch.Generator | None = None,
    loss_fn: LossFn = F.cross_entropy,
) -> Tensor:
    """Projected gradient descent (ascent on the loss) over the ``norm`` ball of radius ``eps``.

    Each step: ``delta = project(delta + steepest_step(grad, step_size, norm), eps, norm)``, the
    iterate ``x' = clip(x + delta, 0, 1)`` and ``delta = x' - x``. With ``restarts > 1`` each
    example keeps the perturbation of the first restart that succeeds (misclassified, or
    classified as the target), else the one with the highest loss; restart 1 uses a random start
    only if ``random_start``, so the result is never worse than one run of it.

    Arguments:
        model: the classifier (B, ...) -> (B, K); its mode and parameters are left as found.
        x: inputs (B, ...) in [0, 1]; not modified.
        y: true labels (B,), or target classes with ``targeted``.
        eps: the radius of the ball.
        norm: "linf" or "l2".
        steps: gradient steps per restart (>= 1).
        step_size: the step's radius (default ``2.5 * eps / steps``, Madry et al.).
        random_start: start restart 1 from a uniform draw in the ball (later restarts always do).
        restarts: independent runs (>= 1).
        targeted: move towards the class ``y``.
        generator: the random starts' source (CPU ``torch.Generator``; None: the global one).
        loss_fn: a functional loss accepting ``reduction``.

    Returns:
        Adversarial inputs (B, ...) in [0, 1] within the ball, detached; a clone of ``x`` when
        ``eps == 0``.

    Raises:
        ConfigError: bad ``x``, ``eps`` or ``norm`` (:func:`check_inputs`), ``steps`` or
            ``restarts`` below 1, a ``step_size`` that is not a finite number > 0.
    """
    check_inputs(x, eps, norm)
    if not (isinstance(steps, int) and steps >= 1):
        raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(restarts, int) and restarts >= 1):
        raise ConfigError(f"restarts must be an integer >= 1, got {restarts!r}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise ConfigError(f"step_size must be a finite number > 0 or None, got {step_size!r}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    alpha = 2.5 * eps / steps if step_size is None else step_size
    with attacking(model):
        return _pgd(
            model,
            x,
            y,
            eps,
            norm,
            steps,
            alpha,
            random_start,
            restarts,
            targeted,
            generator,
            loss_fn,
        )


def _pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str,
    steps: int,
    alpha: float,
    random_start: bool,
    restarts: int,
    targeted: bool,
    generator: torch.Generator | None,
    loss_fn: LossFn,
) -> Tensor:
    """:func:`pgd`'s restarts and steps for a model inside :func:`attacking`, valid arguments."""
    best, best_loss, done = x.clone(), None, None
    for r in range(restarts):
        x_adv = x
        if random_start or r > 0:
            x_adv = (x + _random_start(x, eps, norm, generator)).clamp(0.0, 1.0)
        for _ in range(steps):
            g = _gradient(model, x_adv, y, loss_fn, targeted)
            delta = project((x_adv - x) + steepest_step(g, alpha, norm), eps, norm)
            x_adv = (x + delta).clamp(0.0, 1.0)  # the iterate; its delta is x_adv - x
        if restarts == 1:
            return x_adv
        success, loss = _per_example(model, x_adv, y, loss_fn, targeted)
        if best_loss is None or done is None:
            best, best_loss, done = x_adv, loss, success
            continue
        # an example not yet fooled takes this restart if it succeeds or raises the loss
        take = ~done & (success | (loss > best_loss))
        mask = take.view(-1, *([1] * (x.dim() - 1)))
        best = torch.where(mask, x_adv, best)
        best_loss = torch.where(take, loss, best_loss)
        done = done | success
    return best


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on (x, y), in eval mode (the mode restored afterwards)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    correct = 0
    with attacking(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            pred = model(x[i : i + batch_size]).argmax(dim=1)
            correct += int((pred == y[i : i + batch_size]).sum())
    return correct / max(len(x), 1)


def robust_accuracy(
    model: nn.Module,
    attack: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    batch_size: int = 512,
) -> float:
    """Accuracy on ``attack(x_batch, y_batch)``, batch by batch (eval mode, restored after).

    Arguments:
        model: the classifier scored on the attacked inputs.
        attack: maps a batch (inputs, labels) to its adversarial inputs, e.g.
            ``lambda xb, yb: pgd(model, xb, yb, 0.1)``.
        x, y: inputs (N, ...) and labels (N,).
        batch_size: examples per attack call.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        x_adv = attack(xb, yb)
        with attacking(model), torch.no_grad():
            correct += int((model(x_adv).argmax(dim=1) == yb).sum())
    return correct / max(len(x), 1)


def brightness(x: Tensor, factor: float) -> Tensor:
    """``clip(factor * x, 0, 1)``: a global dimming (``factor < 1``) or brightening, the notes'
    stop sign photographed at night (problem 4). ``x`` is not modified."""
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor >= 0):
        raise ConfigError(f"brightness factor must be a finite number >= 0, got {factor!r}")
    return (factor * x.detach()).clamp(0.0, 1.0)
