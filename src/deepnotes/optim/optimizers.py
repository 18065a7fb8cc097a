"""The notes' optimisers as ``torch.optim.Optimizer`` subclasses (notes, discussion 2, section 3).

Every class implements its update rule literally as the notes write it, with the notes' symbols:
step size ``alpha`` (argument ``lr``, PyTorch's name), momentum ``m``, decay ``beta``, stability
constant ``epsilon``. The (possibly stochastic) gradient at iterate t is ``g = grad L(theta^t)``,
whatever ``.grad`` holds when :meth:`step` is called: a full-batch gradient makes :class:`SGD`
the notes' gradient descent, a minibatch gradient makes it SGD.

Buffers (``v``, ``s``, Adam's moments) live in ``self.state[p]`` so that ``state_dict()`` /
``load_state_dict()`` resume an optimiser exactly; every update runs under ``torch.no_grad()``.

Example:
    >>> opt = RMSProp(model.parameters(), lr=1e-3, beta=0.9)
    >>> loss = F.cross_entropy(model(x), y)
    >>> opt.zero_grad(); loss.backward(); opt.step()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]
"""What torch optimisers accept: tensors, or parameter groups (dicts with a ``params`` key)."""


def _check_lr(lr: float) -> None:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr (the step size alpha) must be a finite number > 0, got {lr!r}")


def _check_eps(eps: float) -> None:
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps (epsilon) must be a finite number >= 0, got {eps!r}")


def _check_unit(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def _gradients(group: dict[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (parameter, gradient) pairs of a group that have a dense gradient."""
    pairs = []
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise ValueError(f"sparse gradients are not supported (parameter of shape {p.shape})")
        pairs.append((p, p.grad))
    return pairs


class _NotesOptimizer(Optimizer):
    """Shared ``step``: closure, no-grad, loop over groups; subclasses update one tensor."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Apply one update to every parameter that has a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p, g in _gradients(group):
                self._update(p, g, group, self.state[p])
        return loss

    def _update(
        self, p: torch.Tensor, g: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        raise NotImplementedError


class SGD(_NotesOptimizer):
    r"""(Stochastic) gradient descent, notes section 3.1-3.2.

    Method: Robbins & Monro, "A stochastic approximation method" (1951); gradient descent goes
    back to Cauchy (1847). With the full-data gradient this is batch gradient descent, with a
    minibatch gradient it is minibatch SGD; the update is the same:

    .. math:: \theta^{t+1} = \theta^t - \alpha \nabla L(\theta^t)

    Deviation: none from ``torch.optim.SGD(lr=alpha)`` (momentum 0, no weight decay, no
    Nesterov, no ``maximize``); those options are not offered here.

    Arguments:
        params: parameters or parameter groups.
        lr: the step size alpha > 0.

    Example:
        >>> opt = SGD(model.parameters(), lr=0.1)
    """

    def __init__(self, params: Params, lr: float) -> None:
        _check_lr(lr)
        super().__init__(params, {"lr": lr})

    def _update(
        self, p: torch.Tensor, g: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        p.add_(g, alpha=-group["lr"])  # theta <- theta - alpha g


GD = SGD
"""Full-batch gradient descent: :class:`SGD` fed the gradient of the whole training set."""


class Momentum(_NotesOptimizer):
    r"""Heavy-ball momentum exactly as the notes write it (section 3.4, "SGD with momentum").

    Method: Polyak, "Some methods of speeding up the convergence of iteration methods" (1964).
    The buffer ``v`` accumulates past gradients with weight ``m`` and starts at zero:

    .. math::
        \mathbf{v}^t = m \mathbf{v}^{t-1} + \nabla L(\theta^t), \qquad
        \theta^{t+1} = \theta^t - \alpha \mathbf{v}^t, \qquad \mathbf{v}^0 = 0.

    Deviation: none from ``torch.optim.SGD(lr=alpha, momentum=m, dampening=0)``, which writes the
    same recursion (its first buffer is the first gradient, i.e. v^0 = 0). Polyak's own form,
    theta^{t+1} = theta^t - alpha g + m (theta^t - theta^{t-1}), is the same iteration.

    Arguments:
        params: parameters or parameter groups.
        lr: the step size alpha > 0.
        momentum: m in [0, 1); 0 gives plain SGD.

    Example:
        >>> opt = Momentum(model.parameters(), lr=0.01, momentum=0.9)
    """

    def __init__(self, params: Params, lr: float, momentum: float = 0.9) -> None:
        _check_lr(lr)
        _check_unit("momentum (m)", momentum)
        super().__init__(params, {"lr": lr, "momentum": momentum})

    def _update(
        self, p: torch.Tensor, g: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        if "v" not in state:
            state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        v = state["v"]
        v.mul_(group["momentum"]).add_(g)  # v^t = m v^{t-1} + g
        p.add_(v, alpha=-group["lr"])  # theta^{t+1} = theta^t - alpha v^t


class RMSProp(_NotesOptimizer):
    r"""RMSProp exactly as the notes write it (section 3.5, "RMSProp and Adagrad").

    Method: Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine
    Learning (2012). A running average ``s`` of the squared gradient rescales every coordinate:

    .. math::
        s_k^t = \beta s_k^{t-1} + (1 - \beta) (\nabla_{\theta_k} L(\theta^t))^2, \qquad
        \theta_k^{t+1} = \theta_k^t - \frac{\alpha}{\sqrt{s_k^t + \epsilon}}
            \nabla_{\theta_k} L(\theta^t), \qquad s^0 = 0.

    Deviation: ``torch.optim.RMSprop(lr=alpha, alpha=beta, eps=eps)`` divides by
    ``sqrt(s) + eps``; the notes (and this class) divide by ``sqrt(s + eps)``. The two agree
    exactly for eps = 0 and differ by a factor ``(sqrt(s) + eps) / sqrt(s + eps)`` per step
    otherwise (so an eps of 1e-8 here acts like an eps of about 1e-4 there where s is tiny).
    No centring, momentum or weight decay.

    Arguments:
        params: parameters or parameter groups.
        lr: the step size alpha > 0.
        beta: decay of the running average, in [0, 1).
        eps: epsilon >= 0 inside the square root (0 gives 0/0 = NaN for a coordinate whose
            gradients have all been exactly zero).

    Example:
        >>> opt = RMSProp(model.parameters(), lr=1e-3, beta=0.9)
    """

    def __init__(
        self, params: Params, lr: float = 1e-2, beta: float = 0.9, eps: float = 1e-8
    ) -> None:
        _check_lr(lr)
        _check_unit("beta", beta)
        _check_eps(eps)
        super().__init__(params, {"lr": lr, "beta": beta, "eps": eps})

    def _update(
        self, p: torch.Tensor, g: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        if "s" not in state:
            state["s"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        s, beta = state["s"], group["beta"]
        s.mul_(beta).addcmul_(g, g, value=1 - beta)  # s^t = beta s^{t-1} + (1 - beta) g^2
        # theta^{t+1} = theta^t - alpha g / sqrt(s^t + eps)
        p.addcdiv_(g, s.add(group["eps"]).sqrt_(), value=-group["lr"])

    def effective_step(self, p: torch.Tensor) -> torch.Tensor:
        """The per-coordinate step ``alpha / sqrt(s + eps)`` the next update would use for ``p``."""
        return _effective_step(self, p, "s")


class Adagrad(_NotesOptimizer):
    r"""Adagrad exactly as the notes write it (section 3.5, "RMSProp and Adagrad").

    Method: Duchi, Hazan & Singer, "Adaptive subgradient methods for online learning and
    stochastic optimization", JMLR (2011). ``s`` is a *sum* of squared gradients, so it never
    decreases and every coordinate's effective step ``alpha / sqrt(s + eps)`` never increases:

    .. math::
        s_k^t = s_k^{t-1} + \beta (\nabla_{\theta_k} L(\theta^t))^2, \qquad
        \theta_k^{t+1} = \theta_k^t - \frac{\alpha}{\sqrt{s_k^t + \epsilon}}
            \nabla_{\theta_k} L(\theta^t), \qquad s^0 = 0.

    Deviation: ``torch.optim.Adagrad(lr=alpha, eps=eps)`` divides by ``sqrt(s) + eps`` and has
    no beta (it is beta = 1); the notes (and this class) divide by ``sqrt(s + eps)`` and scale
    the squared gradient by beta. With eps = 0 the two agree exactly when beta = 1, and a beta
    != 1 is the same as torch's with lr = alpha / sqrt(beta). No ``lr_decay``,
    ``initial_accumulator_value`` (it is 0) or weight decay.

    Arguments:
        params: parameters or parameter groups.
        lr: the step size alpha > 0.
        beta: weight > 0 of each squared gradient in the sum (the notes' beta; 1 is the paper's).
        eps: epsilon >= 0 inside the square root (0 gives 0/0 = NaN for a coordinate whose
            gradients have all been exactly zero).

    Example:
        >>> opt = Adagrad(model.parameters(), lr=0.05)
    """

    def __init__(
        self, params: Params, lr: float = 1e-2, beta: float = 1.0, eps: float = 1e-8
    ) -> None:
        _check_lr(lr)
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
        _check_eps(eps)
        super().__init__(params, {"lr": lr, "beta": beta, "eps": eps})

    def _update(
        self, p: torch.Tensor, g: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        if "s" not in state:
            state["s"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        s = state["s"]
        s.addcmul_(g, g, value=group["beta"])  # s^t = s^{t-1} + beta g^2
        # theta^{t+1} = theta^t - alpha g / sqrt(s^t + eps)
        p.addcdiv_(g, s.add(group["eps"]).sqrt_(), value=-group["lr"])

    def effective_step(self, p: torch.Tensor) -> torch.Tensor:
        """The per-coordinate step ``alpha / sqrt(s + eps)`` the next update would use for ``p``."""
        return _effective_step(self, p, "s")


class Adam(_NotesOptimizer):
    r"""Adam: RMSProp's per-coordinate scaling combined with momentum (notes section 3.6).

    Method: Kingma & Ba, "Adam: A method for stochastic optimization", ICLR (2015). The notes
    give no equations; these are the paper's, with the bias correction of both moments
    (``m^0 = v^0 = 0``, t counts updates from 1):

    .. math::
        m^t = \beta_1 m^{t-1} + (1 - \beta_1) g^t, \qquad
        v^t = \beta_2 v^{t-1} + (1 - \beta_2) (g^t)^2, \\
        \hat m^t = \frac{m^t}{1 - \beta_1^t}, \qquad \hat v^t = \frac{v^t}{1 - \beta_2^t}, \qquad
        \theta^{t+1} = \theta^t - \alpha \frac{\hat m^t}{\sqrt{\hat v^t} + \epsilon}.

    Deviation: none in the mathematics from ``torch.optim.Adam(lr, betas, eps)`` (eps outside
    the square root, as in the paper); torch folds the corrections into the step size, so the
    two agree to rounding error, not bitwise. No weight decay, AMSGrad or ``maximize``.

    Arguments:
        params: parameters or parameter groups.
        lr: the step size alpha > 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: epsilon >= 0 added to sqrt(v_hat).

    Example:
        >>> opt = Adam(model.parameters(), lr=1e-3)
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        _check_lr(lr)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check_unit("betas[0] (beta1)", betas[0])
        _check_unit("betas[1] (beta2)", betas[1])
        _check_eps(eps)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    def _update(
        self, p: torch.Tensor, g: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        if "step" not in state:
            state["step"] = 0
            state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)  # m^t = beta1 m^{t-1} + (1 - beta1) g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v^t = beta2 v^{t-1} + (1 - beta2) g^2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        # theta^{t+1} = theta^t - alpha m_hat / (sqrt(v_hat) + eps)
        p.addcdiv_(m_hat, v_hat.sqrt_().add_(group["eps"]), value=-group["lr"])


def _effective_step(opt: Optimizer, p: torch.Tensor, key: str) -> torch.Tensor:
    """``alpha / sqrt(s + eps)`` for parameter ``p`` of an optimiser with an ``s`` buffer."""
    for group in opt.param_groups:
        if any(q is p for q in group["params"]):
            s = opt.state[p].get(key)
            s = torch.zeros_like(p) if s is None else s
            with torch.no_grad():
                return group["lr"] / (s + group["eps"]).sqrt()
    raise ValueError(f"the tensor of shape {tuple(p.shape)} is not a parameter of this optimizer")
