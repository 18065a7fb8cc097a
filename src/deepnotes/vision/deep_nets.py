r"""Deep fully connected networks for the training-technique questions of the notes: plain and
residual stacks, BatchNorm placement, weight initialisation, and the measurements that make the
phenomena visible (gradient norm per layer, activation statistics, dead ReLU units, the variance
of a linear layer's output).

Notes: discussion 4, section 1 ("Problem: Vanishing Gradients in ResNet"), section 2 ("Batch
Normalization"), section 5 ("Weight Initialization", "Problem: Deriving Xavier Initialization")
and section 6 ("Aside: ReLU Activations and its Relatives").

The network of this module, :class:`DeepMLP`, is

.. math::

    h_1 = \phi(W_1 x + b_1), \qquad
    h_l = \begin{cases} \phi(W_l h_{l-1} + b_l) & \text{plain} \\
                        h_{l-1} + \phi(W_l h_{l-1} + b_l) & \text{residual} \end{cases}
    \quad (l = 2..L), \qquad \text{logits} = W_{L+1} h_L + b_{L+1},

where :math:`\phi` is the nonlinearity, optionally preceded ("before") or followed ("after") by
BatchNorm, the two placements the notes allow. The first hidden layer changes the width and is
never residual; the residual blocks are exactly the notes' skip connection
:math:`y = x + f(x)`, whose Jacobian :math:`I + \partial f / \partial x` carries the gradient
through the identity however small :math:`\partial f / \partial x` is.

Initialisation (biases zero for every scheme but "default"):

- ``"xavier"``: :math:`W_{ij} \sim \mathcal{N}(0, 1 / D_a)` with :math:`D_a` the fan-in, the
  notes' Xavier initialisation (from :math:`\mathrm{Var}(z) = D_a \mathrm{Var}(W)\mathrm{Var}(a)`).
- ``"he"``: :math:`\mathcal{N}(0, 2 / D_a)`, the ReLU version (ReLU halves :math:`E[a^2]`).
- ``"normal"``: :math:`\mathcal{N}(0, \sigma^2)` with an absolute standard deviation.
- ``"default"``: PyTorch's own ``reset_parameters`` (Kaiming-uniform, variance
  :math:`1 / (3 D_a)`, and uniform biases).

Every scheme takes a ``scale`` that multiplies the weights' standard deviation.

This module holds no plotting and no I/O; the modules of :mod:`deepnotes.vision.experiments`
(``skip_connections``, ``batchnorm_init``, ``init``, ``activations``) run the experiments.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATION_NAMES",
    "ActivationStats",
    "DeepMLP",
    "HiddenLayer",
    "LayerTrace",
    "ResidualBlock",
    "activation_statistics",
    "dead_unit_fraction",
    "dead_unit_masks",
    "init_std",
    "init_weights_",
    "kill_units_",
    "layer_gradient_norms",
    "linear_output_variance",
    "make_activation",
    "monte_carlo_linear_variance",
    "plain_mlp",
    "residual_mlp",
    "tanh_mean_field_variances",
    "xavier_weight_variance",
]

Activation = Literal["relu", "leaky_relu", "elu", "sigmoid", "tanh", "identity"]
Norm = Literal["none", "before", "after"]
InitScheme = Literal["default", "normal", "xavier", "he"]
DeadRule = Literal["zero_output", "never_positive"]

ACTIVATION_NAMES: tuple[str, ...] = ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "identity")
NORMS: tuple[str, ...] = ("none", "before", "after")
INIT_SCHEMES: tuple[str, ...] = ("default", "normal", "xavier", "he")


def make_activation(name: str, negative_slope: float = 0.01, alpha: float = 1.0) -> nn.Module:
    """The nonlinearity ``name`` as a module.

    Arguments:
        name: "relu", "leaky_relu" (slope ``negative_slope`` for x < 0), "elu"
            (``alpha (e^x - 1)`` for x < 0), "sigmoid", "tanh" or "identity".
        negative_slope: Leaky ReLU's slope on the negative side.
        alpha: ELU's saturation value on the negative side.
    """
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "elu":
        return nn.ELU(alpha)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "identity":
        return nn.Identity()
    raise ValueError(f"activation must be one of {list(ACTIVATION_NAMES)}, got {name!r}")


@dataclass(frozen=True)
class LayerTrace:
    """What one hidden layer computed for a batch, each of shape (B, width).

    Attributes:
        pre: the nonlinearity's input (after the linear map and a "before" BatchNorm), z.
        post: the nonlinearity's output, phi(z).
        out: the layer's output (after an "after" BatchNorm and the skip connection, if any).
    """

    pre: torch.Tensor
    post: torch.Tensor
    out: torch.Tensor


class HiddenLayer(nn.Module):
    """``Linear -> [BatchNorm] -> activation -> [BatchNorm]``, BatchNorm placed by ``norm``.

    Arguments:
        in_features, out_features: the linear map's sizes.
        activation: a name accepted by :func:`make_activation`.
        norm: "none", "before" (BatchNorm between the linear map and the nonlinearity) or
            "after" (BatchNorm after the nonlinearity).
    """

    def __init__(
        self, in_features: int, out_features: int, activation: str = "relu", norm: str = "none"
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
        self.linear = nn.Linear(in_features, out_features)
        self.norm_before = nn.BatchNorm1d(out_features) if norm == "before" else nn.Identity()
        self.activation = make_activation(activation)
        self.norm_after = nn.BatchNorm1d(out_features) if norm == "after" else nn.Identity()

    def trace(self, x: torch.Tensor) -> LayerTrace:
        pre = self.norm_before(self.linear(x))  # z = BN(W x + b) or W x + b, (B, out)
        post = self.activation(pre)  # phi(z)
        return LayerTrace(pre, post, self.norm_after(post))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_after(self.activation(self.norm_before(self.linear(x))))


class ResidualBlock(nn.Module):
    """The skip connection ``h -> h + f(h)`` with ``f`` a width-preserving :class:`HiddenLayer`.

    Example:
        >>> block = ResidualBlock(32, "sigmoid")
        >>> h = torch.randn(4, 32)
        >>> torch.allclose(block(h), h + block.f(h))
        True
    """

    def __init__(self, width: int, activation: str = "relu", norm: str = "none") -> None:
        super().__init__()
        self.f = HiddenLayer(width, width, activation, norm)

    def trace(self, h: torch.Tensor) -> LayerTrace:
        inner = self.f.trace(h)
        return LayerTrace(inner.pre, inner.post, h + inner.out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.f(h)


class DeepMLP(nn.Module):
    """``depth`` hidden layers of equal ``width`` (plain or residual) and a linear head.

    Arguments:
        in_features: input size (images are flattened).
        width: width of every hidden layer.
        depth: number of hidden layers L >= 1; with ``residual`` the layers 2..L are
            :class:`ResidualBlock`\\ s (the first one changes the width).
        out_features: number of outputs (logits).
        activation: the nonlinearity of every hidden layer.
        residual: add skip connections ``h + f(h)`` around the hidden layers 2..L.
        norm: BatchNorm placement "none", "before" or "after" the nonlinearity.

    Example:
        >>> net = DeepMLP(64, 128, 20, 10, activation="sigmoid", residual=True)
        >>> net(torch.randn(8, 64)).shape
        torch.Size([8, 10])
        >>> len(net.linears())  # 20 hidden layers and the head
        21
    """

    def __init__(
        self,
        in_features: int,
        width: int,
        depth: int,
        out_features: int,
        activation: str = "relu",
        residual: bool = False,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if min(in_features, width, depth, out_features) < 1:
            raise ValueError(
                "in_features, width, depth and out_features must be >= 1, got "
                f"{in_features}, {width}, {depth}, {out_features}"
            )
        layers: list[nn.Module] = [HiddenLayer(in_features, width, activation, norm)]
        for _ in range(depth - 1):
            block = (
                ResidualBlock(width, activation, norm)
                if residual
                else HiddenLayer(width, width, activation, norm)
            )
            layers.append(block)
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(width, out_features)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)  # (B, D_in)
        for layer in self.layers:
            h = layer(h)  # (B, width)
        return self.head(h)  # (B, out_features)

    def trace(self, x: torch.Tensor) -> list[LayerTrace]:
        """Pre-activations, activations and outputs of every hidden layer, in order."""
        h = x.flatten(1)
        traces = []
        for layer in self.layers:
            record = layer.trace(h)
            traces.append(record)
            h = record.out
        return traces

    def linears(self) -> list[nn.Linear]:
        """The linear maps W_1..W_L of the hidden layers, then the head W_{L+1}."""
        hidden = [
            layer.f.linear if isinstance(layer, ResidualBlock) else layer.linear
            for layer in self.layers
        ]
        return [*hidden, self.head]


def init_std(scheme: str, fan_in: int, std: float | None = None) -> float:
    """The weights' standard deviation under ``scheme`` for a layer with ``fan_in`` inputs.

    "xavier": sqrt(1 / fan_in); "he": sqrt(2 / fan_in); "normal": ``std``; "default": PyTorch's
    Kaiming-uniform, sqrt(1 / (3 fan_in)).
    """
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, got {fan_in}")
    if scheme == "xavier":
        return math.sqrt(1.0 / fan_in)
    if scheme == "he":
        return math.sqrt(2.0 / fan_in)
    if scheme == "default":
        return math.sqrt(1.0 / (3.0 * fan_in))
    if scheme == "normal":
        if std is None or std < 0:
            raise ValueError(f"the 'normal' scheme needs a standard deviation std >= 0, got {std}")
        return float(std)
    raise ValueError(f"init scheme must be one of {list(INIT_SCHEMES)}, got {scheme!r}")


@torch.no_grad()
def init_weights_(
    model: nn.Module,
    scheme: str,
    *,
    std: float | None = None,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Re-initialise every ``nn.Linear`` of ``model`` in place and return ``model``.

    Arguments:
        model: any module; only its linear layers are touched (BatchNorm keeps gamma=1, beta=0).
        scheme: "xavier", "he", "normal" (with ``std``) or "default" (see the module docstring).
        std: the absolute standard deviation of the "normal" scheme.
        scale: multiplies the standard deviation (e.g. 0.01 times the He scale).
        generator: the random stream (default: torch's global generator).

    Example:
        >>> net = init_weights_(DeepMLP(64, 128, 6, 10), "he", scale=0.1)
    """
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    for layer in model.modules():
        if not isinstance(layer, nn.Linear):
            continue
        fan_in = layer.in_features
        if scheme == "default":
            bound = 1.0 / math.sqrt(fan_in)  # what reset_parameters draws, with our generator
            layer.weight.uniform_(-bound, bound, generator=generator).mul_(scale)
            if layer.bias is not None:
                layer.bias.uniform_(-bound, bound, generator=generator)
            continue
        layer.weight.normal_(0.0, scale * init_std(scheme, fan_in, std), generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()
    return model


def plain_mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    *,
    activation: str = "relu",
    norm: str = "none",
    init: str = "default",
    std: float | None = None,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> DeepMLP:
    """A plain :class:`DeepMLP` (no skip connections) initialised with :func:`init_weights_`."""
    net = DeepMLP(in_features, width, depth, out_features, activation, residual=False, norm=norm)
    return init_weights_(net, init, std=std, scale=scale, generator=generator)


def residual_mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    *,
    activation: str = "relu",
    norm: str = "none",
    init: str = "default",
    std: float | None = None,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> DeepMLP:
    """A residual :class:`DeepMLP` (``h + f(h)`` from layer 2 on), initialised like
    :func:`plain_mlp`."""
    net = DeepMLP(in_features, width, depth, out_features, activation, residual=True, norm=norm)
    return init_weights_(net, init, std=std, scale=scale, generator=generator)


# ---------------------------------------------------------------------------------------------
# Measurements


def layer_gradient_norms(
    model: DeepMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> torch.Tensor:
    """Frobenius norm of dL/dW_l for every linear map of ``model`` (hidden layers, then head).

    The gradients are computed with ``torch.autograd.grad``, so the parameters' ``.grad``
    fields are left untouched. The model's train/eval mode is the caller's choice.

    Returns:
        a float64 tensor of shape (L + 1,).
    """
    weights = [layer.weight for layer in model.linears()]
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, weights)
    return torch.stack([g.detach().double().norm() for g in grads])


@dataclass(frozen=True)
class ActivationStats:
    """Per-hidden-layer statistics of a batch, each a float64 tensor of shape (L,).

    Variances are pooled over every example and unit of the layer (the variance of one entry,
    as in the Xavier derivation, where the weights are random).

    Attributes:
        pre_var: Var(z_l), the nonlinearity's input.
        post_var: Var(a_l) = Var(phi(z_l)).
        out_var: variance of the layer's output (equal to post_var without BN or skip).
        saturation: fraction of entries with |phi(z_l)| > ``threshold``.
        input_var: variance of the network's input (pooled), the a_0 of layer 1.
        threshold: the saturation threshold used.
    """

    pre_var: torch.Tensor
    post_var: torch.Tensor
    out_var: torch.Tensor
    saturation: torch.Tensor
    input_var: float
    threshold: float

    @property
    def gain(self) -> torch.Tensor:
        """Var(z_l) / Var(a_{l-1}) (a_0 = the input): what each linear map does to the variance,
        the quantity the Xavier derivation sets to 1."""
        previous = torch.cat([self.out_var.new_tensor([self.input_var]), self.out_var[:-1]])
        return self.pre_var / previous


@dataclass(frozen=True)
class ScaleInvariance:
    """What multiplying the weights of every BatchNorm-normalised layer by ``factor`` does."""

    factor: float
    output_change: float
    """max |logits(c W) - logits(W)| / max |logits(W)|: zero for an exactly invariant net."""
    gradient_deviation: float
    """max over those layers of max |c grad(c W) - grad(W)| / max |grad(W)|: zero when every
    gradient is exactly divided by c."""


def batchnorm_scale_invariance(
    model: DeepMLP, x: torch.Tensor, y: torch.Tensor, factor: float, *, scale_eps: bool = True
) -> ScaleInvariance:
    """Check BatchNorm's scale invariance on a batch, the reason large weights train slowly.

    With BN right after a linear layer, ``BN(c W h + c b) = BN(W h + b)`` for every c > 0, so the
    loss does not change when the layer's parameters are multiplied by c, and differentiating
    ``L(c W) = L(W)`` gives ``grad L(c W) = grad L(W) / c``: weights c times too large get
    gradients c times too small, so an SGD step moves them c^2 times less relative to their size.
    Both nets run in training mode (batch statistics).

    BatchNorm's eps is the one thing that breaks the identities, by O(eps / Var z); with
    ``scale_eps`` (the default) the scaled copy's eps is multiplied by c^2, which makes them
    exact, so what is left is rounding. With ``scale_eps=False`` the outputs still agree to about
    eps / Var z, but a ReLU input that sits that close to the kink can change side, and the
    gradients of every layer below it then move by a few percent.

    Raises:
        ValueError: if ``model`` has no layer with BatchNorm between the linear map and the
            nonlinearity (``norm="before"``), or ``factor`` is not > 0.
    """
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    normalised = [
        i for i, layer in enumerate(model.layers) if isinstance(layer.norm_before, nn.BatchNorm1d)
    ]
    if not normalised:
        raise ValueError("the model has no BatchNorm right after a linear layer (norm='before')")
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        for i in normalised:
            for param in scaled.layers[i].linear.parameters():
                param.mul_(factor)
            if scale_eps:
                scaled.layers[i].norm_before.eps *= factor**2
    outputs, grads = [], []
    for net in (model, scaled):
        was_training = net.training
        net.train()
        net.zero_grad(set_to_none=True)
        logits = net(x)
        F.cross_entropy(logits, y).backward()
        outputs.append(logits.detach())
        grads.append([net.layers[i].linear.weight.grad.detach().clone() for i in normalised])
        net.zero_grad(set_to_none=True)
        net.train(was_training)
    base, after = outputs
    output_change = ((after - base).abs().max() / base.abs().max()).item()
    deviation = max(
        ((factor * g_c - g).abs().max() / g.abs().max()).item()
        for g, g_c in zip(grads[0], grads[1], strict=True)
    )
    return ScaleInvariance(factor, output_change, deviation)


@torch.no_grad()
def activation_statistics(
    model: DeepMLP, x: torch.Tensor, threshold: float = 0.99
) -> ActivationStats:
    """Variances and saturation of every hidden layer of ``model`` on the batch ``x``."""
    traces = model.trace(x)

    def var(t: torch.Tensor) -> float:
        return t.double().var(unbiased=False).item()

    return ActivationStats(
        pre_var=torch.tensor([var(t.pre) for t in traces], dtype=torch.float64),
        post_var=torch.tensor([var(t.post) for t in traces], dtype=torch.float64),
        out_var=torch.tensor([var(t.out) for t in traces], dtype=torch.float64),
        saturation=torch.tensor(
            [(t.post.abs() > threshold).double().mean().item() for t in traces],
            dtype=torch.float64,
        ),
        input_var=var(x.flatten(1)),
        threshold=threshold,
    )


@torch.no_grad()
def dead_unit_masks(
    model: DeepMLP, x: torch.Tensor, rule: str = "zero_output"
) -> list[torch.Tensor]:
    """For every hidden layer, a boolean mask (width,) of the units that are dead on ``x``.

    Arguments:
        model: the network (put it in eval mode first if it has BatchNorm).
        x: the examples, e.g. the whole training set.
        rule: "zero_output": the nonlinearity's output is exactly 0 for every example (a dead
            ReLU; Leaky ReLU, ELU and sigmoid are never 0 on a nonzero input, so they have none
            by construction); "never_positive": the pre-activation is <= 0 for every example
            (the negative regime, where ReLU passes no gradient and Leaky ReLU/ELU still do).
    """
    if rule not in ("zero_output", "never_positive"):
        raise ValueError(f"rule must be 'zero_output' or 'never_positive', got {rule!r}")
    masks = []
    for t in model.trace(x):
        if rule == "zero_output":
            masks.append((t.post == 0).all(dim=0))
        else:
            masks.append((t.pre <= 0).all(dim=0))
    return masks


def dead_unit_fraction(model: DeepMLP, x: torch.Tensor, rule: str = "zero_output") -> float:
    """The fraction of all hidden units that are dead on ``x`` (see :func:`dead_unit_masks`)."""
    masks = dead_unit_masks(model, x, rule)
    return float(sum(m.sum().item() for m in masks) / sum(m.numel() for m in masks))


@torch.no_grad()
def kill_units_(
    model: DeepMLP,
    x: torch.Tensor,
    fraction: float,
    margin: float,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    r"""Push a random ``fraction`` of every hidden layer's units into the negative regime on
    ``x``, in place, and return the masks (width,) of the units pushed, layer by layer.

    A chosen unit j of layer l gets the bias
    :math:`b_j \leftarrow b_j - \max_x z_j(x) - \text{margin}\cdot\mathrm{std}_x z_j(x)`,
    so that its pre-activation is at most ``-margin`` standard deviations on every example of
    ``x``: a ReLU unit so placed is dead (output 0 and gradient 0 on every example), the state
    a large update leaves a unit in. Layers are treated in order, each traced after the ones
    below it were changed. The weights are not touched.

    Arguments:
        model: a :class:`DeepMLP` without BatchNorm (BN would undo the shift).
        x: the examples that define "every input", e.g. the whole training set.
        fraction: the share of each layer's units to push, in [0, 1].
        margin: how far below zero the largest pre-activation lands, in standard deviations.
        generator: the random stream that picks the units.

    Raises:
        ValueError: ``fraction`` outside [0, 1], ``margin`` < 0, or a model with BatchNorm.

    Example:
        >>> net = plain_mlp(64, 32, 3, 10, activation="relu", init="he")
        >>> x = torch.randn(500, 64)
        >>> killed = kill_units_(net, x, 0.25, 0.5)
        >>> all(bool(d[k].all()) for d, k in zip(dead_unit_masks(net, x), killed))
        True
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
        raise ValueError("kill_units_ needs a model without BatchNorm (norm='none')")
    masks = []
    for index in range(len(model.layers)):
        pre = model.trace(x)[index].pre  # z of this layer, (N, width)
        width = pre.shape[1]
        chosen = torch.randperm(width, generator=generator)[: round(fraction * width)]
        mask = torch.zeros(width, dtype=torch.bool)
        mask[chosen] = True
        shift = pre.max(dim=0).values + margin * pre.std(dim=0)  # (width,)
        layer = model.layers[index]
        linear = layer.f.linear if isinstance(layer, ResidualBlock) else layer.linear
        linear.bias[mask] -= shift[mask].to(linear.bias.dtype)
        masks.append(mask)
    return masks


# ---------------------------------------------------------------------------------------------
# The Xavier derivation


def linear_output_variance(d_a: int, var_w: float, var_a: float) -> float:
    r"""Closed form :math:`\mathrm{Var}(z) = D_a \mathrm{Var}(W) \mathrm{Var}(a)` of
    :math:`z = \sum_{j=1}^{D_a} W_j a_j` with independent, zero-mean weights and inputs."""
    return d_a * var_w * var_a


def xavier_weight_variance(d_a: int) -> float:
    r"""The Var(W) that makes :math:`\mathrm{Var}(z) = \mathrm{Var}(a)`: :math:`1 / D_a`."""
    if d_a < 1:
        raise ValueError(f"d_a must be >= 1, got {d_a}")
    return 1.0 / d_a


def monte_carlo_linear_variance(
    d_a: int,
    var_w: float,
    var_a: float,
    samples: int,
    generator: torch.Generator,
    chunk: int = 20_000,
) -> tuple[float, float]:
    r"""Monte Carlo estimate of Var(z) for :math:`z = \sum_j W_j a_j` and its standard error.

    Every sample draws fresh weights :math:`W_j \sim \mathcal{N}(0, \mathrm{Var}(W))` and fresh
    inputs :math:`a_j \sim \mathcal{U}(-c, c)` with :math:`c = \sqrt{3 \mathrm{Var}(a)}` (zero
    mean, variance ``var_a``), all independent, as the derivation assumes. Since E[z] = 0 the
    estimate is the mean of :math:`z^2`, and its standard error is std(z^2) / sqrt(samples).

    Returns:
        (estimate, standard error), in float64.
    """
    if d_a < 1 or samples < 2 or chunk < 1:
        raise ValueError(f"need d_a >= 1, samples >= 2, chunk >= 1; got {d_a}, {samples}, {chunk}")
    if var_w < 0 or var_a < 0:
        raise ValueError(f"variances must be >= 0, got var_w={var_w}, var_a={var_a}")
    c = math.sqrt(3.0 * var_a)
    squares = []
    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        w = torch.randn(n, d_a, dtype=torch.float64, generator=generator) * math.sqrt(var_w)
        a = (torch.rand(n, d_a, dtype=torch.float64, generator=generator) * 2.0 - 1.0) * c
        squares.append((w * a).sum(dim=1) ** 2)  # z^2 per sample, (n,)
    z2 = torch.cat(squares)
    return z2.mean().item(), (z2.std() / math.sqrt(samples)).item()


def tanh_mean_field_variances(
    input_var: float, depth: int, weight_gain: float = 1.0, nodes: int = 101
) -> np.ndarray:
    r"""Mean-field prediction of Var(a_l) through a tanh net with :math:`D_a \mathrm{Var}(W) =`
    ``weight_gain`` (1 for Xavier) and zero biases.

    Without the notes' linearisation Var(a) = Var(z), the recursion is
    :math:`v^z_l = g\, v^a_{l-1}`, :math:`v^a_l = E[\tanh(z)^2]` with
    :math:`z \sim \mathcal{N}(0, v^z_l)`, evaluated by Gauss-Hermite quadrature. For small
    variances :math:`E[\tanh(z)^2] \approx v - 2 v^2`, so with g = 1 the variance decays like
    :math:`1 / (2 l)`: slowly, but it does decay.

    Returns:
        Var(a_1), ..., Var(a_depth) as a float64 array.
    """
    points, weights = np.polynomial.hermite_e.hermegauss(nodes)  # for weight exp(-x^2 / 2)
    weights = weights / weights.sum()
    var_a, out = input_var, []
    for _ in range(depth):
        var_z = weight_gain * var_a
        var_a = float(np.sum(weights * np.tanh(math.sqrt(var_z) * points) ** 2))
        out.append(var_a)
    return np.asarray(out)
