r"""Normalizing flows: NICE (additive coupling + rescaling) and RealNVP (affine coupling).

Notes: discussion 10, section 4.3 "Normalizing Flows". A flow is an invertible, differentiable
map :math:`x = f_\theta(z)` from a standard-normal latent :math:`z \sim \mathcal N(0, I_D)` to
data; by the change of variables its exact log-likelihood is

.. math:: \log p_\theta(x) = \log p_Z(f_\theta^{-1}(x))
          + \log \left|\det \frac{\partial f_\theta^{-1}(x)}{\partial x}\right|,

and a composition :math:`f = f_K \circ \dots \circ f_1` adds the log-determinants of its layers.
Direction convention (the notes'): every layer's ``forward`` maps towards the data
(:math:`z \to x`, sampling) and returns :math:`\log|\det \partial f / \partial z|`;
``inverse`` maps :math:`x \to z` (density evaluation, training) and returns
:math:`\log|\det \partial f^{-1} / \partial x|`, the negative.

Coupling layers split the ``D`` coordinates into halves ``z[:, :D//2]`` and ``z[:, D//2:]``; a
layer of parity 0 conditions on the first half and transforms the second, parity 1 the other
way round, and the builders alternate them.

- **NICE** (Dinh, Krueger & Bengio, 2015, https://arxiv.org/abs/1410.8516): additive coupling
  :math:`x_2 = z_2 + m(z_1)`, :math:`x_1 = z_1` (Jacobian unit lower triangular: log-det 0,
  volume preserving), and a diagonal rescaling layer :math:`x = e^{s} \odot z` that carries all
  the volume change (log-det :math:`\sum_i s_i`). Here the rescaling is the first layer of the
  generative direction (NICE puts it last in the density direction: the same place).
- **RealNVP** (Dinh, Sohl-Dickstein & Bengio, 2017, https://arxiv.org/abs/1605.08803): affine
  coupling :math:`x_2 = z_2 \odot e^{s(z_1)} + t(z_1)` with a scale network ``s`` and a shift
  network ``t``; log-det :math:`\sum_i s_i(z_1)`. The log-scale is stabilised as in the paper,
  :math:`s = \alpha \odot \tanh(\tilde s(z_1))` with a learned per-coordinate :math:`\alpha`
  (initialised to 1), and the last layer of both networks starts at zero so that every coupling
  starts as the identity.

Deviation: the notes write RealNVP with one network ``h`` for both scale and shift,
:math:`x_2 = e^{h(z_1)} \odot z_2 + h(z_1)`; the library keeps the usual separate ``s`` and
``t`` (the shift then need not equal the log-scale). The notes' form is the special case
``AffineCoupling(..., scale_net=h, shift_net=h, bound=False)``, which
:func:`notes_affine_coupling` computes literally; tests/generative/test_flows.py pins the two
equal, log-determinant included.

Example:
    >>> flow = realnvp(dim=2, couplings=8, hidden=64)
    >>> nll = -flow.log_prob(x).mean()          # x: (N, 2); nats per point
    >>> samples = flow.sample(1000, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from deepnotes.core.errors import UsageError


def mlp(in_features: int, out_features: int, hidden: int, depth: int) -> nn.Sequential:
    """``depth`` hidden ReLU layers of width ``hidden``; the output layer starts at zero."""
    if depth < 1 or hidden < 1:
        raise UsageError(f"need depth >= 1 and hidden >= 1, got {depth}, {hidden}")
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    last = nn.Linear(width, out_features)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class Coupling(nn.Module):
    """The split of a coupling layer: ``(cond, trans)`` halves by parity, and back."""

    def __init__(self, dim: int, parity: int) -> None:
        super().__init__()
        if dim < 2 or parity not in (0, 1):
            raise UsageError(f"a coupling needs dim >= 2 and parity 0 or 1, got {dim}, {parity}")
        self.dim, self.parity, self.half = dim, parity, dim // 2

    @property
    def sizes(self) -> tuple[int, int]:
        """Sizes of the conditioning and the transformed half."""
        first, second = self.half, self.dim - self.half
        return (first, second) if self.parity == 0 else (second, first)

    def split(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, D)`` -> conditioning ``(N, d_c)``, transformed ``(N, d_t)``."""
        a, b = v[:, : self.half], v[:, self.half :]
        return (a, b) if self.parity == 0 else (b, a)

    def merge(self, cond: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split`: ``(N, D)`` in the original coordinate order."""
        return torch.cat((cond, trans) if self.parity == 0 else (trans, cond), dim=1)


class AdditiveCoupling(Coupling):
    """NICE's coupling: ``x_t = z_t + m(z_c)``, ``x_c = z_c``; log-det exactly 0."""

    def __init__(self, dim: int, parity: int, hidden: int = 64, depth: int = 2) -> None:
        super().__init__(dim, parity)
        cond, trans = self.sizes
        self.m = mlp(cond, trans, hidden, depth)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cond, trans = self.split(z)
        x = self.merge(cond, trans + self.m(cond))
        return x, z.new_zeros(z.shape[0])  # unit triangular Jacobian: volume preserving

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cond, trans = self.split(x)
        return self.merge(cond, trans - self.m(cond)), x.new_zeros(x.shape[0])


class Rescale(nn.Module):
    """NICE's diagonal rescaling ``x = exp(s) * z``; log-det ``sum_i s_i`` (all the volume)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))  # s, (D,)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z * self.log_scale.exp(), self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * (-self.log_scale).exp(), (-self.log_scale.sum()).expand(x.shape[0])


class TwinMLP(nn.Module):
    """Two independent MLPs of the same shape, the scale and the shift network of a coupling,
    evaluated together as batched matrix products over the pair: layer ``k`` holds weights
    ``(2, fan_in, fan_out)`` (index 0 the scale network's, 1 the shift network's). No
    parameter is shared; it only halves the kernel launches (tests/generative/test_flows.py
    pins it equal to two separate :func:`mlp`). Hidden layers start as ``nn.Linear`` does
    (uniform in +-1/sqrt(fan_in)), the output layer at zero.

    Arguments:
        in_features, out_features, hidden, depth: the shape of each network (as :func:`mlp`).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int, depth: int) -> None:
        super().__init__()
        if depth < 1 or hidden < 1:
            raise UsageError(f"need depth >= 1 and hidden >= 1, got {depth}, {hidden}")
        widths = [in_features] + [hidden] * depth + [out_features]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for k, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            last = k == depth
            bound = 0.0 if last else 1 / math.sqrt(fan_in)
            self.weights.append(
                nn.Parameter(torch.empty(2, fan_in, fan_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(2, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, in)`` -> the scale network's and the shift network's outputs, ``(N, out)``."""
        h = v.expand(2, *v.shape)  # (2, N, in): the same input to both networks
        last = len(self.weights) - 1
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias, h, weight)  # (2, N, fan_out)
            if k < last:
                h = torch.relu(h)
        return h[0], h[1]


class AffineCoupling(Coupling):
    r"""RealNVP's coupling: :math:`x_t = z_t \odot e^{s(z_c)} + t(z_c)`, :math:`x_c = z_c`.

    Arguments:
        dim, parity: the split (see :class:`Coupling`).
        hidden, depth: the scale and shift networks (a :class:`TwinMLP`) built when
            ``scale_net``/``shift_net`` are not given.
        bound: stabilise the log-scale as :math:`\alpha \odot \tanh(\tilde s)`; with False
            the scale network's output is the log-scale itself.
        scale_net, shift_net: networks ``(N, d_c) -> (N, d_t)`` to use instead (both or
            neither); passing the same module for both (and ``bound=False``) is the notes' form.
    """

    def __init__(
        self,
        dim: int,
        parity: int,
        hidden: int = 64,
        depth: int = 2,
        *,
        bound: bool = True,
        scale_net: nn.Module | None = None,
        shift_net: nn.Module | None = None,
    ) -> None:
        super().__init__(dim, parity)
        cond, trans = self.sizes
        if (scale_net is None) != (shift_net is None):
            raise UsageError("give both scale_net and shift_net, or neither")
        self.nets = TwinMLP(cond, trans, hidden, depth) if scale_net is None else None
        self.s, self.t = scale_net, shift_net
        self.alpha = nn.Parameter(torch.ones(trans)) if bound else None

    def scale_shift(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The log-scales ``s(z_c)`` and the shifts ``t(z_c)``, each ``(N, d_t)``."""
        if self.nets is not None:
            raw, shift = self.nets(cond)
        else:
            raw, shift = self.s(cond), self.t(cond)
        return (raw if self.alpha is None else self.alpha * torch.tanh(raw)), shift

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cond, trans = self.split(z)
        s, t = self.scale_shift(cond)  # (N, d_t) each
        x = self.merge(cond, trans * s.exp() + t)
        return x, s.sum(dim=1)  # log|det| = sum of the log-scales

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cond, trans = self.split(x)
        s, t = self.scale_shift(cond)
        z = self.merge(cond, (trans - t) * (-s).exp())
        return z, -s.sum(dim=1)


def notes_affine_coupling(
    z1: torch.Tensor, z2: torch.Tensor, h: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The notes' RealNVP step literally: :math:`x_2 = \exp(h(z_1)) \odot z_2 + h(z_1)`;
    returns ``x_2`` and :math:`\log|\det| = \sum_i h_i(z_1)` (problem 8), each per row."""
    hz = h(z1)  # (N, d_t)
    return hz.exp() * z2 + hz, hz.sum(dim=1)


class Flow(nn.Module):
    """A composition of invertible layers (in the sampling direction ``z -> x``) on a
    standard-normal base.

    Arguments:
        layers: modules with ``forward(z) -> (x, logdet)`` and ``inverse(x) -> (z, logdet)``.
        dim: D, the data dimension.
    """

    def __init__(self, layers: list[nn.Module], dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dim = dim

    def _check(self, v: torch.Tensor, who: str) -> None:
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise UsageError(f"{who} expects points of shape (N, {self.dim}), got {tuple(v.shape)}")

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = f(z)`` and ``log|det df/dz|``, ``(N, D)`` and ``(N,)``."""
        self._check(z, "Flow.forward")
        logdet = z.new_zeros(z.shape[0])
        for layer in self.layers:
            z, ld = layer(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = f^{-1}(x)`` and ``log|det df^{-1}/dx|``, ``(N, D)`` and ``(N,)``."""
        self._check(x, "Flow.inverse")
        logdet = x.new_zeros(x.shape[0])
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x)
            logdet = logdet + ld
        return x, logdet

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x) = log N(f^{-1}(x); 0, I) + log|det df^{-1}/dx|``, nats, ``(N,)``."""
        z, logdet = self.inverse(x)
        return standard_normal_log_prob(z) + logdet

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points ``f(z)``, ``z ~ N(0, I)`` drawn on the CPU from ``generator``."""
        param = next(self.parameters())
        z = torch.randn(n, self.dim, generator=generator, dtype=param.dtype).to(param.device)
        return self(z)[0]


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over the last dimension, ``(N,)``."""
    return -0.5 * z.pow(2).sum(dim=1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def nice(dim: int, couplings: int, hidden: int = 64, depth: int = 2) -> Flow:
    """NICE: the rescaling layer, then ``couplings`` additive couplings of alternating parity."""
    layers: list[nn.Module] = [Rescale(dim)]
    layers += [AdditiveCoupling(dim, k % 2, hidden, depth) for k in range(couplings)]
    return Flow(layers, dim)


def realnvp(dim: int, couplings: int, hidden: int = 64, depth: int = 2) -> Flow:
    """RealNVP: ``couplings`` affine couplings of alternating parity (tanh-bounded scales)."""
    return Flow([AffineCoupling(dim, k % 2, hidden, depth) for k in range(couplings)], dim)


def parameter_count(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def jacobian_logdet(f: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Brute force: ``log|det J|`` of the first output of ``f`` at each row of ``z``, from the
    full autograd Jacobian and ``torch.linalg.slogdet``, ``(N,)`` (use float64)."""
    out = []
    for row in z:
        J = torch.autograd.functional.jacobian(lambda v: f(v[None])[0][0], row)  # (D, D)
        out.append(torch.linalg.slogdet(J).logabsdet)
    return torch.stack(out)
