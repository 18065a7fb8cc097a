r"""DeepDream and style transfer: optimising an image through a fixed CNN. Notes: discussion 5,
sections 4 "DeepDream" and 5 "Style Transfer".

**DeepDream** (Mordvintsev, Olah & Tyka 2015, "Inceptionism"), the notes' four steps:

1. pick a layer;
2. forward propagate the image to the layer, activation :math:`a`;
3. set the gradient at that layer to the activation, :math:`\partial/\partial a := a`;
4. backpropagate to the image and update it.

Step 3 makes the image gradient :math:`J^\top a = \nabla_x \tfrac12 \|a(x)\|^2` (with
:math:`J = \partial a / \partial x`), so the steps are gradient ascent on half the squared
activation norm; :func:`dream_gradient` does it literally (``torch.autograd.grad(a, x,
grad_outputs=a)``, i.e. ``a.backward(gradient=a)``). The
update is normalised, :math:`x \leftarrow x + \eta\, g / \mathrm{mean}|g|`, the image is
jittered (rolled by a random shift, up to ``jitter`` pixels, before the gradient and rolled
back after) and kept in [0, 1] by clipping after every step. Octaves: the image is processed
at ``octaves`` scales, from the smallest (side divided by ``octave_scale`` per octave) up to the
original; the detail dreamt at one scale is upsampled and added to the next
(:func:`deep_dream`).

**Style transfer** (Gatys, Ecker & Bethge 2016, "Image style transfer using convolutional neural
networks"): with content image :math:`p`, style image :math:`a` and activations
:math:`F^l(x)` (C, H, W) of layer :math:`l`, the content representation is :math:`C(x) =
F^{l_c}(x)` and the style representation the Gram matrices

.. math:: S^l(x) = G^l(x) = \frac{1}{H W} F^l(x) F^l(x)^\top \quad (C \times C),

(:func:`gram_matrix`; averaged over the positions), and the loss is the notes'

.. math:: \mathcal{L}(x) = \|C(x) - C(p)\|_2 + k \|S(x) - S(a)\|_2,

with Frobenius norms, not squared, each layer's error relative to its target:

.. math:: \|C(x) - C(p)\| := \sum_{l_c} \frac{\|C^{l}(x) - C^{l}(p)\|}{\|C^{l}(p)\|}, \qquad
          \|S(x) - S(a)\| := \sum_{l} \frac{\|S^l(x) - S^l(a)\|}{\|S^l(a)\|}

(:class:`StyleTransferLoss`; pinned by tests/vision/test_visualisation.py). Deviations: Gatys et
al. use the squared errors with fixed layer weights; the notes write the norms, which this
module follows, and the notes leave the combination of layers open. Dividing each layer by its
target's norm makes the layers weigh alike: with the raw norms the deepest style layer's
gradient swamps the first layer's, whose error then hardly falls (measured in pilot runs of
``vision.style_transfer``: relu1_1's error fell from 8.6 to 5.5 in 300 Adam steps while
relu3_1's fell 30-fold). The optimisation (:func:`transfer_style`) is either Adam with a cosine
decay of the step size to 0, the image clipped to [0, 1] after every step, or L-BFGS (Gatys et
al.'s choice) over :math:`z` with the image :math:`x = \sin^2 z`, which keeps it in [0, 1]
without clipping.

Both optimisations are written as a *step* and a *runner*: :func:`deep_dream` and
:func:`transfer_style` call ``run(tag, steps, step, track)``, which must call ``step(i)`` for
``i = 1..steps``; the default runs a plain loop, an experiment passes one that runs the
engine's :class:`~deepnotes.core.engine.Loop` (checkpoints of ``track``, progress, metrics).

The feature extractor is anything with ``activations(image, layers) -> {name: (N, C, H, W)}``,
e.g. :class:`deepnotes.vision.vgg.VGG19`.

Example:
    >>> model = random_vgg19((16, 32, 64, 128, 128), torch.Generator().manual_seed(0))
    >>> dreamt = deep_dream(model, photo("china", 96), "relu3_1", steps=20, lr=0.01)
    >>> loss = StyleTransferLoss(model, photo("china", 96), photo("flower", 96), k=10.0)
    >>> result = transfer_style(loss, photo("china", 96), steps=200, lr=0.02)
    >>> result = transfer_style(loss, photo("china", 96), steps=10, optimiser="lbfgs", inner=20)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.errors import UsageError

StepFn = Callable[[int], Mapping[str, float]]
"""``step(i)`` for ``i = 1..steps`` -> scalars by name (logged by the runner)."""
Runner = Callable[[str, int, StepFn, Mapping[str, Any]], None]
"""``run(tag, steps, step, track)``: call ``step(i)`` for ``i = 1..steps``; ``track`` names the
state a resumable runner checkpoints (modules, optimisers, generators)."""

GRADIENT_EPS = 1e-8
"""Added to mean|g| in the normalised DeepDream step (a zero gradient leaves the image)."""


class FeatureExtractor(Protocol):
    def activations(self, image: Tensor, layers: Sequence[str]) -> dict[str, Tensor]: ...


def run_plain(tag: str, steps: int, step: StepFn, track: Mapping[str, Any]) -> None:
    """The default runner: ``step(i)`` for ``i = 1..steps``, nothing logged or saved."""
    for i in range(1, steps + 1):
        step(i)


class ImageParameter(nn.Module):
    """An image (N, 3, H, W) held as a parameter, so that optimisers and checkpoints see it."""

    def __init__(self, image: Tensor) -> None:
        super().__init__()
        self.image = nn.Parameter(image.detach().clone())


# ----------------------------------------------------------------------------- DeepDream
def dream_gradient(extractor: FeatureExtractor, image: Tensor, layer: str) -> tuple[Tensor, Tensor]:
    """The notes' four steps: forward ``image`` (N, 3, H, W) to ``layer``, set the gradient at
    the layer to its activation ``a`` and backpropagate. Returns (the image gradient
    :math:`J^\\top a`, same shape as ``image``; :math:`\\|a\\|` over the whole batch)."""
    x = image.detach().requires_grad_(True)
    a = extractor.activations(x, [layer])[layer]  # steps 1-2: (N, C, H', W')
    (grad,) = torch.autograd.grad(a, x, grad_outputs=a.detach())  # steps 3-4
    return grad, a.detach().norm()


def half_squared_norm_gradient(extractor: FeatureExtractor, image: Tensor, layer: str) -> Tensor:
    """:math:`\\nabla_x \\tfrac12 \\|a(x)\\|^2` by autograd, for checking :func:`dream_gradient`."""
    x = image.detach().requires_grad_(True)
    a = extractor.activations(x, [layer])[layer]
    (grad,) = torch.autograd.grad(0.5 * a.pow(2).sum(), x)
    return grad


def activation_norm(extractor: FeatureExtractor, image: Tensor, layer: str) -> float:
    """:math:`\\|a(x)\\|` at ``layer`` (no gradient)."""
    with torch.no_grad():
        return float(extractor.activations(image, [layer])[layer].norm())


def octave_shapes(
    shape: tuple[int, int], octaves: int, octave_scale: float
) -> list[tuple[int, int]]:
    """The (H, W) of each octave, smallest first, the last ``shape`` itself: side divided by
    ``octave_scale`` per octave below the original (at least 1 pixel)."""
    if octaves < 1 or not octave_scale >= 1.0:
        raise UsageError(f"need octaves >= 1 and octave_scale >= 1, got {octaves}, {octave_scale}")
    h, w = shape
    return [
        (max(1, round(h / octave_scale**o)), max(1, round(w / octave_scale**o)))
        for o in range(octaves - 1, -1, -1)
    ]


def deep_dream(
    extractor: FeatureExtractor,
    image: Tensor,
    layer: str,
    *,
    steps: int,
    lr: float,
    octaves: int = 1,
    octave_scale: float = 1.4,
    jitter: int = 0,
    generator: torch.Generator | None = None,
    run: Runner = run_plain,
) -> Tensor:
    """DeepDream on ``image`` (N, 3, H, W) in [0, 1]: ``steps`` normalised ascent steps of step
    size ``lr`` per octave (module docstring). Returns the dreamt image, same shape, in [0, 1].

    Arguments:
        extractor: the fixed network (its parameters should not require gradients).
        layer: the layer whose activation norm is raised.
        jitter: largest random shift in pixels (0: none), drawn from ``generator``.
        run: the runner of each octave's steps, called with tag ``octave{o}``.
    """
    if steps < 1 or not lr > 0 or jitter < 0:
        raise UsageError(f"need steps >= 1, lr > 0, jitter >= 0; got {steps}, {lr}, {jitter}")
    if image.dim() != 4 or image.shape[1] != 3:
        raise UsageError(f"image must be (N, 3, H, W), got shape {tuple(image.shape)}")
    base = image.detach()
    shapes = octave_shapes(tuple(base.shape[-2:]), octaves, octave_scale)
    detail = torch.zeros_like(base[..., : shapes[0][0], : shapes[0][1]])
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    for o, shape in enumerate(shapes):
        scaled = _resize(base, shape)  # the photo at this octave (N, 3, h, w)
        holder = ImageParameter((scaled + _resize(detail, shape)).clamp(0.0, 1.0))

        def step(i: int, holder: ImageParameter = holder) -> dict[str, float]:
            x = holder.image.data
            dy, dx = _shift(jitter, gen)
            grad, norm = dream_gradient(extractor, torch.roll(x, (dy, dx), (-2, -1)), layer)
            grad = torch.roll(grad, (-dy, -dx), (-2, -1))
            x.add_(lr * grad / (grad.abs().mean() + GRADIENT_EPS)).clamp_(0.0, 1.0)
            return {"activation_norm": float(norm)}

        run(f"octave{o}", steps, step, {"image": holder, "jitter": gen})
        detail = holder.image.detach() - scaled
    return holder.image.detach().clone()


def _resize(x: Tensor, shape: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False)


def _shift(jitter: int, generator: torch.Generator) -> tuple[int, int]:
    if jitter == 0:
        return 0, 0
    dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
    return int(dy), int(dx)


# ----------------------------------------------------------------------------- style transfer
def gram_matrix(features: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, C): :math:`G = F F^\\top / (H W)` with F the (C, H W) matrix of
    each image's activations (correlations between channels, averaged over positions)."""
    if features.dim() != 4:
        raise UsageError(f"features must be (N, C, H, W), got shape {tuple(features.shape)}")
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)  # (N, C, HW)
    return flat @ flat.transpose(1, 2) / (h * w)  # (N, C, C)


def content_loss(features: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> Tensor:
    """:math:`\\sum_l \\|C^l(x) - C^l(p)\\|_2 / \\|C^l(p)\\|_2` (Frobenius) over the layers of
    ``target``."""
    return sum(  # type: ignore[return-value]
        (features[name] - t).norm() / t.norm() for name, t in target.items()
    )


def style_loss(features: Mapping[str, Tensor], target_grams: Mapping[str, Tensor]) -> Tensor:
    """:math:`\\sum_l \\|S^l(x) - S^l(a)\\|_2 / \\|S^l(a)\\|_2` with Gram matrices
    :math:`S^l`, over the layers of ``target_grams``."""
    return sum(  # type: ignore[return-value]
        (gram_matrix(features[name]) - g).norm() / g.norm() for name, g in target_grams.items()
    )


class StyleTransferLoss(nn.Module):
    """The notes' loss :math:`\\|C(x) - C(p)\\| + k \\|S(x) - S(a)\\|` for fixed ``content``
    :math:`p` and ``style`` :math:`a` (each (1, 3, H, W) in [0, 1]; the sizes may differ).

    ``forward(x)`` returns (total, content term, style term before the factor ``k``).
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        content: Tensor,
        style: Tensor,
        *,
        k: float,
        content_layers: Sequence[str] = ("relu4_2",),
        style_layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
    ) -> None:
        super().__init__()
        if not k > 0 or not content_layers or not style_layers:
            raise UsageError(
                f"need k > 0 and some content and style layers, got {k}, "
                f"{list(content_layers)}, {list(style_layers)}"
            )
        self.extractor = extractor
        self.k = float(k)
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        with torch.no_grad():
            c = extractor.activations(content, self.content_layers)
            s = extractor.activations(style, self.style_layers)
        self.content_target = {name: c[name].detach() for name in self.content_layers}
        self.style_target = {name: gram_matrix(s[name]).detach() for name in self.style_layers}

    def terms(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """(content term, style term) of ``image`` (1, 3, H, W), with gradients."""
        acts = self.extractor.activations(image, self.layers)
        return content_loss(acts, self.content_target), style_loss(acts, self.style_target)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        content, style = self.terms(image)
        return content + self.k * style, content, style


OPTIMISERS = ("adam", "lbfgs")
"""The optimisers :func:`transfer_style` offers."""
LBFGS_HISTORY = 100
"""Curvature pairs L-BFGS keeps (torch's default)."""
START_EPS = 1e-3
"""The L-BFGS start: the initial image clipped to [eps, 1 - eps], where the map
:math:`z \\mapsto \\sin^2 z` has a non-zero slope (at 0 and 1 it has none: a pixel there would
never move)."""


def transfer_style(
    loss: StyleTransferLoss,
    init: Tensor,
    *,
    steps: int,
    lr: float = 0.05,
    optimiser: str = "adam",
    inner: int = 20,
    run: Runner = run_plain,
) -> Tensor:
    """Minimise ``loss`` over the image from ``init`` (1, 3, H, W) and return the image, in
    [0, 1], same shape. Every step returns ``loss`` and its two terms ``content_term`` and
    ``style_term`` at the image the step starts from (its first evaluation) and
    ``evaluations``, the number of loss-and-gradient evaluations the step made. (Only ``loss``
    has "loss" in its name, so the engine's divergence guard watches the objective and not the
    content term, which starts at or near 0 and is meant to grow.)

    ``optimiser="adam"``: ``steps`` Adam steps, the step size decayed from ``lr`` to 0 on a
    cosine over ``steps``, the image clipped to [0, 1] after every step (projected gradient);
    tracked: ``image``, ``opt``, ``schedule``.

    ``optimiser="lbfgs"`` (Gatys et al.'s choice): the image is :math:`x = \\sin^2 z` of an
    unconstrained :math:`z`, so it stays in [0, 1] without clipping (clipping would break
    L-BFGS's curvature pairs); the slope :math:`\\sin 2z` vanishes towards 0 and 1 only like
    :math:`2\\sqrt{x}`, where a logistic sigmoid's vanishes like :math:`x`. Start
    :math:`z_0 = \\arcsin \\sqrt{x_0}`, :math:`x_0` the initial image clipped to
    [:data:`START_EPS`, 1 - :data:`START_EPS`]; then ``steps`` calls of
    :class:`torch.optim.LBFGS` ``.step`` of at most ``inner`` iterations each (strong-Wolfe line
    search, history :data:`LBFGS_HISTORY`; ``lr`` is not used); tracked: ``angles`` (z),
    ``opt``.
    """
    if steps < 1 or not lr > 0 or inner < 1:
        raise UsageError(f"need steps >= 1, lr > 0 and inner >= 1, got {steps}, {lr}, {inner}")
    if optimiser not in OPTIMISERS:
        raise UsageError(f"optimiser must be one of {OPTIMISERS}, got {optimiser!r}")
    if optimiser == "lbfgs":
        return _transfer_lbfgs(loss, init, steps=steps, inner=inner, run=run)
    holder = ImageParameter(init.clamp(0.0, 1.0))
    opt = torch.optim.Adam(holder.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

    def step(i: int) -> dict[str, float]:
        opt.zero_grad(set_to_none=True)
        total, content, style = loss(holder.image)
        total.backward()
        opt.step()
        schedule.step()
        with torch.no_grad():
            holder.image.clamp_(0.0, 1.0)
        return {"evaluations": 1.0, **_scalars(total, content, style)}

    run("style", steps, step, {"image": holder, "opt": opt, "schedule": schedule})
    return holder.image.detach().clone()


def _transfer_lbfgs(
    loss: StyleTransferLoss, init: Tensor, *, steps: int, inner: int, run: Runner
) -> Tensor:
    start = init.detach().clamp(START_EPS, 1.0 - START_EPS)
    holder = ImageParameter(torch.asin(start.sqrt()))  # z (1, 3, H, W), unconstrained
    opt = torch.optim.LBFGS(
        holder.parameters(),
        lr=1.0,
        max_iter=inner,
        history_size=LBFGS_HISTORY,
        line_search_fn="strong_wolfe",
    )
    seen: dict[str, float] = {}

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        total, content, style = loss(torch.sin(holder.image) ** 2)
        total.backward()
        if not seen:  # the first evaluation is at the image the step starts from
            seen.update(_scalars(total, content, style))
        seen["evaluations"] = seen.get("evaluations", 0.0) + 1.0
        return total

    def step(i: int) -> dict[str, float]:
        seen.clear()
        opt.step(closure)
        return dict(seen)

    run("style", steps, step, {"angles": holder, "opt": opt})
    return (torch.sin(holder.image) ** 2).detach()


def _scalars(total: Tensor, content: Tensor, style: Tensor) -> dict[str, float]:
    return {"loss": total.item(), "content_term": content.item(), "style_term": style.item()}
