r"""Black-box attacks: a model seen only through its loss, finite-difference gradients, and FGSM
on the estimate. Notes: discussion 11, part 2, section 2.2 "Adversarial Attack Strategies"
(black-box attacks "only observe the model's predictions"; "a simple finite differences method
estimates gradients by taking small perturbations in each dimension").

The attacker holds a :class:`QueryOracle`: the per-example loss :math:`L(x, y)` of inputs it
chooses, and nothing else (no gradient, no weights); every example of every evaluation is one
query. Two estimates of :math:`g = \nabla_x L(x, y)` in :math:`d` pixels:

- **coordinate-wise central differences** (:func:`coordinate_gradient`), :math:`2d` queries:

  .. math:: \hat g_i = \frac{L(x + h e_i, y) - L(x - h e_i, y)}{2h},

  with truncation error :math:`O(h^2)` and round-off error :math:`O(\epsilon_{mach} |L| / h)`,
  so the estimate improves as :math:`h` shrinks until round-off takes over (the textbook step
  :math:`h = \epsilon_{mach}^{1/3}` balances the two: :func:`default_step`);
- **random directions** (:func:`random_direction_gradient`), :math:`2q` queries for :math:`q`
  directions :math:`u_k` with :math:`E[u u^\top] = I` (Gaussian or Rademacher), antithetic pairs:

  .. math:: \hat g = \frac{1}{q} \sum_{k=1}^{q} \frac{L(x + h u_k, y) - L(x - h u_k, y)}{2h}\, u_k,

  unbiased for a linear loss (:math:`E[u u^\top g] = g`) and cheaper than :math:`2d` queries
  when :math:`q < d`, at the price of variance (Nesterov & Spokoiny 2017, "Random
  gradient-free minimization of convex functions"; Ilyas et al. 2018, "Black-box adversarial
  attacks with limited queries and information", who use the antithetic Gaussian version).

:func:`black_box_fgsm` is FGSM (:func:`deepnotes.robustness.attacks.steepest_step`) on either
estimate, clamped to [0, 1].

Deviation: the probes :math:`x \pm h e_i` are not clamped to [0, 1] (a pixel at 0 is probed at
:math:`-h`): a one-sided difference at the box's faces would cost the central difference its
:math:`O(h^2)` error. The oracle is the model's loss on any input; an attacker facing an API that
rejects invalid images would use forward differences there.

Example:
    >>> oracle = QueryOracle(model)                        # doctest: +SKIP
    >>> x_adv = black_box_fgsm(oracle, x, y, eps=0.1)      # doctest: +SKIP
    >>> oracle.queries == 2 * x[0].numel() * len(x)        # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.errors import ConfigError
from deepnotes.robustness.attacks import attacking, check_inputs, steepest_step

ESTIMATORS = ("coordinate", "random")
DISTRIBUTIONS = ("gaussian", "rademacher")
DTYPES = {"float32": torch.float32, "float64": torch.float64}

LossFn = Callable[..., Tensor]


def default_step(dtype: torch.dtype) -> float:
    r"""The central difference's step :math:`h = \epsilon_{mach}^{1/3}` of ``dtype`` (about
    4.9e-3 in float32, 6.1e-6 in float64): it balances the :math:`O(h^2)` truncation error with
    the :math:`O(\epsilon_{mach}/h)` round-off error for a loss and derivatives of order 1
    (Press et al., "Numerical Recipes", section 5.7)."""
    return float(torch.finfo(dtype).eps) ** (1.0 / 3.0)


class QueryOracle:
    """A model seen only through its per-example loss, with a query counter.

    Arguments:
        model: the target classifier; it is evaluated in eval mode without autograd (its mode
            and its parameters' ``requires_grad`` are restored after every query).
        loss_fn: ``loss_fn(outputs, y, reduction="none") -> (N,)`` (``F.cross_entropy`` by
            default).
        dtype: ``None`` queries the model as it is; ``torch.float64`` queries a float64 copy
            (the original is untouched), to separate the estimators' error from round-off.

    Attributes:
        queries: how many examples were evaluated so far (one query per example per call).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn = F.cross_entropy,
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        if dtype is not None and dtype not in DTYPES.values():
            raise ConfigError(f"dtype must be None, torch.float32 or torch.float64, got {dtype}")
        self.model = model if dtype is None else float_copy(model, dtype)
        self.loss_fn = loss_fn
        self.dtype = dtype if dtype is not None else _parameter_dtype(model)
        self.queries = 0

    @torch.no_grad()
    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The loss of every example of ``x`` (N, ...) with labels ``y`` (N,): shape (N,), in the
        oracle's dtype; counts N queries."""
        if x.shape[0] != y.shape[0]:
            raise ConfigError(f"x and y must hold the same examples, got {x.shape[0]} and {len(y)}")
        with attacking(self.model):
            out = self.loss_fn(self.model(x.to(self.dtype)), y, reduction="none")
        if out.shape != (x.shape[0],):
            raise ConfigError(
                f"loss_fn must return one loss per example, shape ({x.shape[0]},), got "
                f"{tuple(out.shape)}: pass a loss that accepts reduction='none'"
            )
        self.queries += x.shape[0]
        return out


def _parameter_dtype(model: nn.Module) -> torch.dtype:
    first = next(model.parameters(), None)
    return first.dtype if first is not None else torch.get_default_dtype()


def float_copy(model: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A deep copy of ``model`` in ``dtype``, in eval mode (the original is untouched)."""
    return copy.deepcopy(model).to(dtype).eval()


def cosine_rows(a: Tensor, b: Tensor) -> Tensor:
    r"""Per-example cosine similarity of ``a`` and ``b`` (N, ...) flattened: shape (N,), float64.

    Defined as 0 where either row is zero (an estimate that found no change carries no
    direction)."""
    a = a.reshape(a.shape[0], -1).double()
    b = b.reshape(b.shape[0], -1).double()
    norms = a.norm(dim=1) * b.norm(dim=1)
    dots = (a * b).sum(dim=1)
    return torch.where(norms > 0, dots / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


def _check_step(h: float) -> None:
    if not (math.isfinite(h) and h > 0):
        raise ConfigError(f"the finite-difference step h must be a finite number > 0, got {h}")


def _central(oracle: QueryOracle, x: Tensor, y: Tensor, u: Tensor, h: float) -> Tensor:
    r"""Directional central differences :math:`(L(x + h u_k) - L(x - h u_k)) / 2h`.

    ``x`` (N, ...) in the oracle's dtype, ``u`` (K, N, ...): returns (K, N); 2 K N queries.
    """
    k, n = u.shape[0], x.shape[0]
    probes = torch.cat([x.unsqueeze(0) + h * u, x.unsqueeze(0) - h * u])  # (2K, N, ...)
    labels = y.repeat(2 * k)  # (2K N,) matching probes' (2K, N) order
    losses = oracle.loss(probes.reshape(2 * k * n, *x.shape[1:]), labels).reshape(2 * k, n)
    return (losses[:k] - losses[k:]) / (2 * h)


def coordinate_gradient(
    oracle: QueryOracle, x: Tensor, y: Tensor, h: float, *, chunk: int = 16
) -> tuple[Tensor, int]:
    r"""Coordinate-wise central-difference estimate of :math:`\nabla_x L` at every example.

    Arguments:
        oracle: the loss oracle.
        x: inputs (N, ...); y: labels (N,).
        h: the step (> 0); see :func:`default_step`.
        chunk: coordinates probed per oracle call (memory only; the result does not depend
            on it).

    Returns:
        ``(estimate, queries)``: the estimate, shape of ``x``, in the oracle's dtype, and the
        queries it spent: :math:`2 d N` for :math:`d` = ``x[0].numel()``.
    """
    _check_step(h)
    if chunk < 1:
        raise ConfigError(f"chunk must be >= 1, got {chunk}")
    before = oracle.queries
    x = x.detach().to(oracle.dtype)
    n, d = x.shape[0], x[0].numel()
    estimate = torch.empty(n, d, dtype=oracle.dtype, device=x.device)
    eye = torch.eye(d, dtype=oracle.dtype, device=x.device)
    for start in range(0, d, chunk):
        rows = eye[start : start + chunk]  # (K, d): the unit vectors e_i of this chunk
        u = rows[:, None, :].expand(-1, n, -1).reshape(rows.shape[0], *x.shape)  # (K, N, ...)
        estimate[:, start : start + chunk] = _central(oracle, x, y, u, h).T  # (N, K)
    return estimate.reshape(x.shape), oracle.queries - before


def random_directions(
    q: int,
    shape: tuple[int, ...],
    *,
    distribution: str = "gaussian",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``q`` directions of ``shape`` with identity second moment, shape (q, *shape): standard
    Gaussian or Rademacher (+-1 with probability 1/2), drawn on the CPU from ``generator``."""
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if q < 1:
        raise ConfigError(f"the number of directions q must be >= 1, got {q}")
    if distribution == "gaussian":
        return torch.randn(q, *shape, generator=generator, dtype=dtype)
    signs = torch.randint(0, 2, (q, *shape), generator=generator)
    return (2 * signs - 1).to(dtype)


def random_direction_gradient(
    oracle: QueryOracle,
    x: Tensor,
    y: Tensor,
    h: float,
    q: int,
    *,
    distribution: str = "gaussian",
    generator: torch.Generator | None = None,
    chunk: int = 64,
) -> tuple[Tensor, int]:
    r"""Antithetic random-direction estimate :math:`\frac1q \sum_k \frac{L(x + h u_k) -
    L(x - h u_k)}{2h} u_k` at every example (its own q directions per example).

    Arguments:
        oracle: the loss oracle.
        x: inputs (N, ...); y: labels (N,).
        h: the step (> 0) along each direction (a Gaussian direction has norm about
            :math:`\sqrt d`, so the probe moves by about :math:`h \sqrt d`).
        q: directions per example (>= 1).
        distribution: "gaussian" or "rademacher".
        generator: the directions' random stream (all q are drawn at once, so the estimate
            does not depend on ``chunk``).
        chunk: directions probed per oracle call (memory only).

    Returns:
        ``(estimate, queries)``: shape of ``x`` in the oracle's dtype, and :math:`2 q N`.
    """
    _check_step(h)
    if chunk < 1:
        raise ConfigError(f"chunk must be >= 1, got {chunk}")
    before = oracle.queries
    x = x.detach().to(oracle.dtype)
    u = random_directions(
        q, tuple(x.shape), distribution=distribution, generator=generator, dtype=oracle.dtype
    ).to(x.device)  # (q, N, ...)
    total = torch.zeros_like(x)
    for start in range(0, q, chunk):
        block = u[start : start + chunk]  # (K, N, ...)
        slopes = _central(oracle, x, y, block, h)  # (K, N): directional derivatives u_k . g
        total += (slopes.reshape(*slopes.shape, *([1] * (x.dim() - 1))) * block).sum(dim=0)
    return total / q, oracle.queries - before


def black_box_fgsm(
    oracle: QueryOracle,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: str = "linf",
    estimator: str = "coordinate",
    h: float | None = None,
    q: int = 1,
    distribution: str = "gaussian",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""FGSM on a finite-difference gradient: :math:`\mathrm{clamp}(x + \delta^*(\hat g), 0, 1)`
    with :math:`\delta^*` of :func:`~deepnotes.robustness.attacks.steepest_step`.

    Arguments:
        oracle: the target's loss oracle (its ``queries`` grow by the estimate's cost).
        x: inputs (N, ...) in [0, 1]; y: labels (N,).
        eps: the radius (>= 0); at 0 the inputs come back exactly and no query is spent.
        norm: "linf" or "l2".
        estimator: "coordinate" (2d queries per example) or "random" (2q).
        h: the finite-difference step; ``None`` takes :func:`default_step` of the oracle.
        q, distribution, generator: the random-direction estimator's (ignored for
            "coordinate").

    Returns:
        The adversarial inputs, shape and dtype of ``x``; ``x`` itself is untouched.
    """
    check_inputs(x, eps, norm)
    if estimator not in ESTIMATORS:
        raise ConfigError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if eps == 0:
        return x.clone()
    step = default_step(oracle.dtype) if h is None else h
    if estimator == "coordinate":
        g, _ = coordinate_gradient(oracle, x, y, step)
    else:
        g, _ = random_direction_gradient(
            oracle, x, y, step, q, distribution=distribution, generator=generator
        )
    delta = steepest_step(g.to(x.dtype), eps, norm)
    return (x.detach() + delta).clamp(0.0, 1.0)
