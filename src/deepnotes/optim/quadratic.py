r"""The quadratic of the notes' section 3.3, "When does gradient descent work poorly?".

.. math:: f(x_1, x_2) = a_1 x_1^2 + a_2 x_2^2, \qquad
    \nabla f = (2 a_1 x_1, 2 a_2 x_2), \qquad \kappa = \max(a_1, a_2) / \min(a_1, a_2).

The minimiser is the origin. Gradient descent multiplies coordinate k by ``1 - 2 alpha a_k``
every step, so it is stable only for ``alpha < 1 / max(a_k)`` and its best contraction,
``(kappa - 1) / (kappa + 1)`` at ``alpha = 1 / (a_1 + a_2)``, needs about ``kappa / 2``
iterations per factor e of progress; heavy-ball momentum with tuned (alpha, m) contracts by
``(sqrt(kappa) - 1) / (sqrt(kappa) + 1)``, about ``sqrt(kappa) / 2`` iterations per factor e.

Optimisers run on a real 2-vector parameter through any ``torch.optim.Optimizer``; the gradient
fed to them is the closed form above (tests compare it with autograd).

Example:
    >>> f = Quadratic(a1=0.05, a2=5.0)
    >>> path = trajectory(lambda p: Momentum(p, lr=0.3, momentum=0.7), f, (-9.0, 1.5), steps=50)
    >>> iterations_to_tolerance(lambda p: SGD(p, lr=0.19), f, (-9.0, 1.5), tol=1e-4)
    >>> best_setting(lambda p, lr, m: Momentum(p, lr=lr, momentum=m), (0.5, 0.9), f,
    ...              (-9.0, 1.5), lrs=[0.01, 0.1, 0.3], tol=1e-3)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.optim import Optimizer

MakeOptimizer = Callable[[list[torch.Tensor]], Optimizer]
"""Builds an optimiser for a list of parameters, e.g. ``lambda p: SGD(p, lr=0.1)``."""


@dataclass(frozen=True)
class Quadratic:
    """``f(x1, x2) = a1 x1^2 + a2 x2^2`` with a1, a2 > 0 (minimum 0 at the origin).

    Arguments:
        a1: curvature coefficient of x1 (the horizontal axis of the notes' figures).
        a2: curvature coefficient of x2 (the vertical axis).
    """

    a1: float
    a2: float

    def __post_init__(self) -> None:
        for name, value in (("a1", self.a1), ("a2", self.a2)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")

    @functools.cached_property
    def _a(self) -> torch.Tensor:
        return torch.tensor([self.a1, self.a2], dtype=torch.float64)

    @property
    def coefficients(self) -> torch.Tensor:
        """(a1, a2) as a float64 tensor of shape (2,)."""
        return self._a.clone()

    @property
    def condition_number(self) -> float:
        """kappa = largest / smallest eigenvalue of the Hessian diag(2 a1, 2 a2)."""
        return max(self.a1, self.a2) / min(self.a1, self.a2)

    @property
    def optimal_gd_step(self) -> float:
        """alpha = 2 / (L + mu) = 1 / (a1 + a2), the step with the fastest GD contraction."""
        return 1.0 / (self.a1 + self.a2)

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """f at points ``theta`` of shape (..., 2); returns shape (...)."""
        return (self._a.to(theta) * theta**2).sum(-1)  # a1 x1^2 + a2 x2^2

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """The closed-form gradient (2 a1 x1, 2 a2 x2) at ``theta`` of shape (..., 2)."""
        return 2 * self._a.to(theta) * theta

    def gd_contraction(self, lr: float) -> tuple[float, float]:
        """Per-step factors ``|1 - 2 lr a_k|`` by which GD shrinks each coordinate."""
        return abs(1 - 2 * lr * self.a1), abs(1 - 2 * lr * self.a2)


def _parameter(start: Sequence[float] | torch.Tensor) -> torch.Tensor:
    theta = torch.as_tensor(start, dtype=torch.float64).clone().reshape(2)
    return theta.requires_grad_(True)


def _step(opt: Optimizer, theta: torch.Tensor, f: Quadratic) -> None:
    theta.grad = f.grad(theta.detach())  # grad L(theta^t), the closed form
    opt.step()


def trajectory(
    make_optimizer: MakeOptimizer,
    f: Quadratic,
    start: Sequence[float] | torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """The iterates theta^0 .. theta^steps of an optimiser on ``f``, shape (steps + 1, 2).

    Iterates that overflow are kept as they are (inf/NaN), so a diverging run is visible.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    theta = _parameter(start)
    opt = make_optimizer([theta])
    path = torch.empty(steps + 1, 2, dtype=torch.float64)
    path[0] = theta.detach()
    for t in range(1, steps + 1):
        _step(opt, theta, f)
        path[t] = theta.detach()
    return path


def iterations_to_tolerance(
    make_optimizer: MakeOptimizer,
    f: Quadratic,
    start: Sequence[float] | torch.Tensor,
    tol: float,
    max_steps: int = 100_000,
    stay: int = 0,
    blowup: float = 1e6,
) -> int | None:
    """The first t with ``||theta^t|| <= tol * ||theta^0||`` (distance to the optimum, relative).

    Arguments:
        make_optimizer: builds the optimiser for the 2-vector parameter.
        f: the quadratic.
        start: theta^0 (not the origin).
        tol: relative tolerance in (0, 1).
        max_steps: the latest iteration t that counts.
        stay: t counts only if the iterates also stay within the tolerance for the next
            ``stay`` iterations (so a method that merely passes near the optimum, or circles
            it at a distance that does not shrink, is not credited with reaching it).
        blowup: give up as diverged once the distance exceeds ``blowup * ||theta^0||``.

    Returns:
        The iteration count, or None if the tolerance was not reached (and kept) by
        ``max_steps`` or the run diverged.
    """
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    if max_steps < 1 or stay < 0:
        raise ValueError(f"need max_steps >= 1 and stay >= 0, got {max_steps}, {stay}")
    theta = _parameter(start)
    initial = float(theta.detach().norm())
    if initial == 0:
        raise ValueError("start must differ from the optimum (the origin)")
    opt = make_optimizer([theta])
    target, limit = tol * initial, blowup * initial
    entered: int | None = None  # the iteration at which the current stay inside began
    for t in range(1, max_steps + stay + 1):
        _step(opt, theta, f)
        distance = float(theta.detach().norm())
        if distance > target or math.isnan(distance):
            entered = None
            if not distance <= limit or t >= max_steps:  # diverged (or NaN), or out of time
                return None
            continue
        if entered is None:
            entered = t
        if t - entered >= stay:
            return entered
    return None


@dataclass(frozen=True)
class StepChoice:
    """The best step size of a grid: the one reaching the tolerance in the fewest iterations."""

    lr: float | None
    """The chosen step size (None: no step of the grid reached the tolerance)."""
    iterations: int | None
    """Its iteration count."""


def best_step(
    make_optimizer: Callable[[list[torch.Tensor], float], Optimizer],
    f: Quadratic,
    start: Sequence[float] | torch.Tensor,
    lrs: Sequence[float],
    tol: float,
    max_steps: int = 100_000,
    stay: int = 0,
) -> StepChoice:
    """The step size of ``lrs`` that reaches ``tol`` (see :func:`iterations_to_tolerance`) first.

    Steps are tried from the largest down (large ones diverge within a few iterations), and each
    candidate runs for at most one iteration fewer than the best count so far, since it can only
    win by being strictly faster. Ties go to the larger step.

    Arguments:
        make_optimizer: ``(params, lr) -> Optimizer``, e.g. ``lambda p, lr: SGD(p, lr=lr)``.
        f, start, tol, max_steps, stay: as in :func:`iterations_to_tolerance`.
        lrs: the grid of step sizes.
    """
    if not lrs:
        raise ValueError("lrs must contain at least one step size")
    best = StepChoice(None, None)
    for lr in sorted(lrs, reverse=True):
        cap = max_steps if best.iterations is None else best.iterations - 1
        if cap < 1:
            break

        def build(params: list[torch.Tensor], lr: float = lr) -> Optimizer:
            return make_optimizer(params, lr)

        count = iterations_to_tolerance(build, f, start, tol, max_steps=cap, stay=stay)
        if count is not None:
            best = StepChoice(lr, count)
    return best


@dataclass(frozen=True)
class Setting:
    """A method's best (step size, second hyperparameter) on a problem, from grids."""

    lr: float | None
    """The chosen step size (None: no pair of the grids reached the tolerance)."""
    knob: float | None
    """The chosen second hyperparameter (m for momentum, beta for RMSProp, ...)."""
    iterations: int | None
    """Its iteration count (None when nothing reached the tolerance)."""

    @property
    def reached(self) -> bool:
        """Whether some pair of the grids reached the tolerance."""
        return self.iterations is not None


def best_setting(
    make_optimizer: Callable[[list[torch.Tensor], float, float], Optimizer],
    knobs: Sequence[float],
    f: Quadratic,
    start: Sequence[float] | torch.Tensor,
    lrs: Sequence[float],
    tol: float,
    max_steps: int = 100_000,
    stay: int = 0,
) -> Setting:
    """The (lr, knob) of the grids reaching ``tol`` in the fewest iterations (ties: first knob,
    then the larger step).

    Every pair is tried with a budget that grows by 4x (16, 64, ... up to ``max_steps``) until
    one reaches the tolerance; within a round, a candidate runs only as long as it could still
    beat the best so far. A pair that fails a round needs more iterations than that round's
    budget, so the first round with a success finds the optimum of the grids, while slow or
    circling pairs never cost ``max_steps`` iterations each.

    Arguments:
        make_optimizer: ``(params, lr, knob) -> Optimizer``, e.g.
            ``lambda p, lr, m: Momentum(p, lr=lr, momentum=m)``.
        knobs: the grid of the second hyperparameter (a single placeholder for GD).
        f, start, tol, max_steps, stay: as in :func:`iterations_to_tolerance`.
        lrs: the grid of step sizes.
    """
    if not knobs:
        raise ValueError("knobs must contain at least one value")
    budget = 16
    while True:
        budget = min(budget, max_steps)
        best = Setting(None, None, None)
        for knob in knobs:
            cap = budget if best.iterations is None else best.iterations - 1
            if cap < 1:
                break
            choice = best_step(
                lambda p, lr, knob=knob: make_optimizer(p, lr, knob),
                f,
                start,
                lrs,
                tol,
                max_steps=cap,
                stay=stay,
            )
            if choice.iterations is not None:
                best = Setting(choice.lr, knob, choice.iterations)
        if best.iterations is not None or budget >= max_steps:
            return best
        budget *= 4
