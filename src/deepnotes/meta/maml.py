"""Model-Agnostic Meta-Learning (Finn et al. 2017; notes, discussion 12, algorithm 2).

The notes write every meta-learner as ``phi_i = f_adapt(theta, D_i^tr)`` followed by a loss on
``D_i^ts``. MAML's ``f_adapt`` is plain gradient descent on the support set,

    phi^(0) = theta,   phi^(j+1) = phi^(j) - alpha * grad L_tr(phi^(j)),   phi_i = phi^(k),

and the meta-objective is ``sum_i L_ts(phi_i)``, minimised over ``theta`` by differentiating
through the inner steps. The chain rule gives the notes' problem 1,

    d L_ts(phi^(k)) / d theta = prod_{j=k-1..0} (I - alpha H_j) grad L_ts(phi^(k)),

with ``H_j`` the Hessian of the support loss at ``phi^(j)``: second-order MAML keeps the
Hessian terms (``create_graph=True``, autograd differentiates the inner gradients); first-order
MAML (FOMAML) drops them, using ``grad L_ts(phi^(k))`` itself as the meta-gradient.

:func:`adapt` is ``f_adapt`` on any module through :func:`torch.func.functional_call`;
:class:`MAML` wraps a model with the inner-loop settings: ``meta_loss`` over a list of tasks of any
shapes, and ``meta_loss_batched`` over same-shaped tasks stacked on a leading axis, vectorised with
:func:`torch.func.vmap` or, for plain MLPs, with batched matrix products (the fastest of the
three for many small tasks: ``benchmarks/maml.py``).

Example:
    >>> import torch.nn as nn, torch.nn.functional as F
    >>> net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
    >>> maml = MAML(net, inner_lr=0.01, inner_steps=1, loss_fn=F.mse_loss)
    >>> loss = maml.meta_loss([(xs, ys, xq, yq) for xs, ys, xq, yq in tasks])  # doctest: +SKIP
    >>> loss.backward()                       # meta-gradient in net's .grad   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from deepnotes.core.errors import ConfigError

__all__ = ["MAML", "LossFn", "adapt", "adaptation_curve"]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(prediction, target) -> scalar`` (e.g. ``F.mse_loss``, ``F.cross_entropy``)."""

Params = dict[str, Tensor]


def _check(inner_lr: float, steps: int) -> None:
    """Refuse a negative step count or a non-finite / negative inner learning rate."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"inner steps must be an integer >= 0, got {steps!r}")
    if not (inner_lr >= 0 and inner_lr < float("inf")):
        raise ConfigError(f"inner_lr must be a finite number >= 0, got {inner_lr!r}")


def adapt(
    model: nn.Module,
    params: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    *,
    inner_lr: float,
    steps: int,
    first_order: bool,
) -> Params:
    """The notes' ``phi = f_adapt(theta, D_tr)``: ``steps`` gradient-descent steps on ``(x, y)``.

    Args:
        model: the network; its own parameters are not used or changed, ``params`` replace them
            through :func:`torch.func.functional_call` (buffers stay the module's).
        params: ``theta`` by name (usually ``dict(model.named_parameters())``).
        x: support inputs ``(n, ...)``.
        y: support targets ``(n, ...)``.
        loss_fn: ``loss_fn(model(x), y) -> scalar``.
        inner_lr: step size ``alpha`` (>= 0).
        steps: number of inner steps ``k`` (>= 0; 0 returns ``params``).
        first_order: when True the inner gradients are constants (no graph through them):
            ``d phi / d theta = I`` (FOMAML); when False the graph of every inner gradient is
            kept (``create_graph=True``), so backward through the result is second-order MAML.

    Returns:
        ``phi`` by name, same shapes as ``params``; differentiable w.r.t. ``params``.

    Raises:
        ConfigError: ``steps < 0`` (or not an integer) or a negative / non-finite ``inner_lr``.
    """
    _check(inner_lr, steps)
    phi: Params = dict(params)
    for _ in range(steps):
        # a parameter that is not part of any graph (frozen, or detached for evaluation) is
        # made a leaf here so that its inner gradient exists; nothing flows back to it
        phi = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in phi.items()}
        loss = loss_fn(functional_call(model, phi, (x,)), y)
        grads = torch.autograd.grad(
            loss, list(phi.values()), create_graph=not first_order, allow_unused=True
        )
        phi = {
            k: v if g is None else v - inner_lr * g
            for (k, v), g in zip(phi.items(), grads, strict=True)
        }
    return phi


class MAML(nn.Module):
    """A model with MAML's inner loop: adapt to a task's support set, predict, meta-loss.

    Args:
        model: the network whose parameters are ``theta`` (the outer optimiser trains
            ``maml.parameters()``, which are the model's).
        inner_lr: inner step size ``alpha``.
        inner_steps: inner steps ``k`` (>= 0).
        first_order: FOMAML (drop the Hessian terms) instead of second-order MAML.
        loss_fn: ``loss_fn(prediction, target) -> scalar`` for both the inner and the query loss.

    Raises:
        ConfigError: ``inner_steps < 0`` or a negative / non-finite ``inner_lr``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_lr: float,
        inner_steps: int,
        first_order: bool = False,
        loss_fn: LossFn,
    ) -> None:
        super().__init__()
        _check(inner_lr, inner_steps)
        self.model = model
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.first_order = first_order
        self.loss_fn = loss_fn

    def params(self) -> Params:
        """``theta``: the model's parameters by name (the live tensors, differentiable)."""
        return dict(self.model.named_parameters())

    def adapt(self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None) -> Params:
        """``phi = f_adapt(theta, D_tr)`` with this learner's settings (``steps`` overrides k)."""
        return adapt(
            self.model,
            self.params(),
            support_x,
            support_y,
            self.loss_fn,
            inner_lr=self.inner_lr,
            steps=self.inner_steps if steps is None else steps,
            first_order=self.first_order,
        )

    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """The model's output on ``x`` with parameters ``params`` (e.g. an adapted ``phi``)."""
        return functional_call(self.model, dict(params), (x,))

    def meta_loss(self, tasks: Sequence[tuple[Tensor, Tensor, Tensor, Tensor]]) -> Tensor:
        """Mean over tasks of the query loss after adaptation: ``(1/T) sum_i L_ts(phi_i)``.

        Args:
            tasks: ``(support_x, support_y, query_x, query_y)`` per task; shapes may differ
                between tasks.

        Returns:
            A scalar; ``.backward()`` puts the (second- or first-order) meta-gradient in the
            model's ``.grad``.

        Raises:
            ConfigError: no tasks.
        """
        if len(tasks) == 0:
            raise ConfigError("meta_loss needs at least one task, got none")
        losses = []
        for support_x, support_y, query_x, query_y in tasks:
            phi = self.adapt(support_x, support_y)
            losses.append(self.loss_fn(self(phi, query_x), query_y))
        return torch.stack(losses).mean()

    def meta_loss_batched(
        self,
        support_x: Tensor,
        support_y: Tensor,
        query_x: Tensor,
        query_y: Tensor,
        *,
        path: str = "auto",
    ) -> Tensor:
        """:meth:`meta_loss` for ``T`` same-shaped tasks stacked on dim 0, vectorised.

        Args:
            support_x: ``(T, n, ...)``; support_y ``(T, n, ...)``; query_x ``(T, m, ...)``;
                query_y ``(T, m, ...)``.
            path: ``"vmap"`` (any model: :func:`torch.func.grad` inside :func:`torch.func.vmap`
                over tasks), ``"bmm"`` (an ``nn.Sequential`` of ``nn.Linear`` and elementwise
                activations on ``(T, n, features)`` inputs with ``F.mse_loss`` or
                ``F.cross_entropy``: one copy of the parameters per task, batched matrix
                products, the per-task inner gradients in one ``autograd.grad`` of the summed
                task losses) or ``"auto"`` (``"bmm"`` where it applies, else ``"vmap"``). The
                two give the same value and gradients; ``bmm`` is about 1.3-1.5x faster on
                the sinusoid MLP (``benchmarks/maml.py``).

        Returns:
            The same scalar as :meth:`meta_loss` on the unstacked tasks (equal to rounding),
            differentiable w.r.t. the model's parameters.

        Raises:
            ConfigError: tensors that disagree on ``T``, an empty batch, an unknown path, or
                ``"bmm"`` for a model or loss it does not cover.
        """
        sizes = {t.shape[0] for t in (support_x, support_y, query_x, query_y)}
        if len(sizes) != 1 or 0 in sizes:
            raise ConfigError(
                f"batched tasks need one non-zero leading size T, got {sorted(sizes)}"
            )
        if path not in ("auto", "vmap", "bmm"):
            raise ConfigError(f"path must be 'auto', 'vmap' or 'bmm', got {path!r}")
        fits = _is_plain_mlp(self.model) and self.loss_fn in _MEAN_LOSSES and support_x.dim() == 3
        if path == "bmm" and not fits:
            raise ConfigError(
                "path 'bmm' needs an nn.Sequential of Linear layers and elementwise activations, "
                "inputs (T, n, features) and F.mse_loss or F.cross_entropy"
            )
        if path == "bmm" or (path == "auto" and fits):
            return self._meta_loss_bmm(support_x, support_y, query_x, query_y)
        model, loss_fn, lr = self.model, self.loss_fn, self.inner_lr

        def support_loss(phi: Params, x: Tensor, y: Tensor) -> Tensor:
            return loss_fn(functional_call(model, phi, (x,)), y)

        def task_loss(theta: Params, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
            phi = theta
            for _ in range(self.inner_steps):
                g = grad(support_loss)(phi, xs, ys)
                if self.first_order:
                    g = {k: v.detach() for k, v in g.items()}
                phi = {k: phi[k] - lr * g[k] for k in phi}
            return support_loss(phi, xq, yq)

        losses = vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(
            self.params(), support_x, support_y, query_x, query_y
        )
        return losses.mean()

    def _meta_loss_bmm(self, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
        """The ``"bmm"`` path of :meth:`meta_loss_batched` (see there)."""
        tasks = xs.shape[0]
        phi = {k: v.unsqueeze(0).expand(tasks, *v.shape) for k, v in self.params().items()}
        for _ in range(self.inner_steps):
            # the mean loss over equal-sized tasks times T is the sum of the task losses, whose
            # gradient w.r.t. task t's copy of the parameters is task t's own gradient
            total = self._pooled_loss(phi, xs, ys) * tasks
            grads = torch.autograd.grad(
                total, list(phi.values()), create_graph=not self.first_order
            )
            phi = {k: v - self.inner_lr * g for (k, v), g in zip(phi.items(), grads, strict=True)}
        return self._pooled_loss(phi, xq, yq)

    def _pooled_loss(self, phi: Params, x: Tensor, y: Tensor) -> Tensor:
        """Mean loss over all tasks' examples of the per-task MLPs ``phi`` (each ``(T, ...)``)."""
        h = x
        for i, layer in enumerate(self.model):
            if isinstance(layer, nn.Linear):
                w, b = phi[f"{i}.weight"], phi.get(f"{i}.bias")
                h = (
                    h @ w.transpose(1, 2)
                    if b is None
                    else torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
                )
            else:
                h = layer(h)
        return self.loss_fn(h.flatten(0, 1), y.flatten(0, 1))


_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.Identity)
_MEAN_LOSSES = (F.mse_loss, F.cross_entropy)


def _is_plain_mlp(model: nn.Module) -> bool:
    """An ``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations only."""
    return isinstance(model, nn.Sequential) and all(
        isinstance(layer, (nn.Linear, *_ELEMENTWISE)) for layer in model
    )


def adaptation_curve(
    model: nn.Module,
    params: Mapping[str, Tensor],
    support_x: Tensor,
    support_y: Tensor,
    query_x: Tensor,
    query_y: Tensor,
    loss_fn: LossFn,
    *,
    inner_lr: float,
    steps: int,
) -> Tensor:
    """Query loss of every task after 0, 1, ..., ``steps`` inner steps (evaluation, no graph).

    Each of ``T`` same-shaped tasks starts from ``params`` and takes plain gradient steps of size
    ``inner_lr`` on its support set, vectorised over tasks with :func:`torch.func.vmap`.

    Args:
        support_x: ``(T, n, ...)``; support_y ``(T, n, ...)``; query_x ``(T, m, ...)``;
            query_y ``(T, m, ...)``.

    Returns:
        ``(T, steps + 1)`` detached query losses; column ``j`` is after ``j`` steps.

    Raises:
        ConfigError: ``steps < 0`` or a negative / non-finite ``inner_lr``.
    """
    _check(inner_lr, steps)
    theta = {k: v.detach() for k, v in params.items()}

    def loss(phi: Params, x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(functional_call(model, phi, (x,)), y)

    def curve(xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
        phi, out = theta, [loss(theta, xq, yq)]
        for _ in range(steps):
            g = grad(loss)(phi, xs, ys)
            phi = {k: phi[k] - inner_lr * g[k] for k in phi}
            out.append(loss(phi, xq, yq))
        return torch.stack(out)

    return vmap(curve)(support_x, support_y, query_x, query_y).detach()
