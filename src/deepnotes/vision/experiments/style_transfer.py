r"""Style transfer between two real photographs with Gram matrices. Notes: discussion 5, section 5
"Style Transfer" (content ``C`` from a layer's activations, style ``S`` as Gram matrices of early
to middle layers, loss ``||C(x) - C(p)|| + k ||S(x) - S(a)||`` minimised over the image); the
method of Gatys, Ecker & Bethge (2016, "Image style transfer using convolutional neural
networks"), the anchor.

Images: scikit-learn's photographs (:func:`deepnotes.data.photos.photo`), content ``china``
(:math:`p`) and style ``flower`` (:math:`a`), shorter side ``size``. Network: by default a VGG-19
of random He-normal filters with block widths ``(width, 2, 4, 8, 8 x width)``
(:func:`deepnotes.vision.vgg.random_vgg19`); with ``weights=PATH`` the real VGG-19 from a
torchvision-format state dict. Why random features by default: nothing may download, a trained
VGG-19 does not fit the quick budget, a small CNN trained on 8x8 grey digits has no colour or
texture features, and Gram-matrix texture losses are known to work with random multi-scale
filters (Ustyuzhaninov et al. 2016/2017, see :mod:`deepnotes.vision.vgg`); the claims below are
about the optimisation of the notes' loss, which is defined for any fixed network. The result
looks like the paper's only with the real weights (random deep features keep less of the
content's layout).

Loss (:class:`deepnotes.vision.visualisation.StyleTransferLoss`): content layer(s)
``content_layers`` (Gatys's relu4_2), style layers ``style_layers`` (relu1_1 ... relu4_1, the
early-to-middle ones), Frobenius norms as the notes write them, each layer's error divided by
its target's norm, style factor ``k``. Optimisation
(:func:`~deepnotes.vision.visualisation.transfer_style`, through the engine's
:class:`~deepnotes.core.engine.Loop`, resumable), from the content image, ``optimiser``:

- ``"lbfgs"`` (the quick preset; Gatys et al.'s optimiser): the image is :math:`\sin^2 z` of
  an unconstrained :math:`z`, so it stays in [0, 1] without clipping; ``steps`` Loop steps,
  each one ``torch.optim.LBFGS.step`` of at most ``inner`` iterations (strong-Wolfe line
  search, history 100);
- ``"adam"`` (the full preset): ``steps`` Adam steps, step size cosine-decayed from ``lr`` to
  0, the image clipped to [0, 1] after every step.

Claims (thresholds from the issue, fixed before the run):

- ``style_falls``: the style term :math:`\|S(x) - S(a)\|` of the optimised image is at least
  :data:`STYLE_FALL` = 100 times smaller than the content image's;
- ``content_kept``: the optimised image's content term :math:`\|C(x) - C(p)\|` stays below the
  style image's, :math:`\|C(a) - C(p)\|`.

Check: ``gram_permutation``: the Gram matrix is invariant to permuting the spatial positions
(max relative difference <= :data:`GRAM_TOL` = 1e-12, float64, the style image's features at
the first style layer under a random permutation).

Pooling: average pooling in the feature blocks (``pool="avg"``), as Gatys et al. (2016,
section 2) do for synthesis ("improves the gradient flow"); the weights are the same either way.

Design history (disclosed): the first design summed the raw (unnormalised) layer norms over a
max-pooling network; in pilot runs at seed 0 (96 px, width 8, 300 Adam steps) the style term
fell only 10-16x, held up by relu1_1, whose gradient the deeper layers swamped. Dividing each
layer by its target's norm and the cosine decay were chosen after those pilots, as were ``k`` =
10 and ``lr`` = 0.05 (pilots: 29x after 300 steps, 46x after 600, 63x after 1,000). The first
confirming runs (max pooling) measured 43x (quick) and 90x (full): ``style_falls`` failed. After
that failure, pilots with k = 30 or 100, a white-noise start or Adam 0.1 gave the same floor;
average pooling, the anchor's own choice, gave 115x in a 1,000-step pilot and was adopted. The
second confirming runs (seed 0, Adam) measured: quick preset (96 px, width 8, 2,000 steps)
94x (2.57 -> 0.027; content 0.68 against the style image's 1.15), a known failure, at 36 s of
CPU; full preset (128 px, width 16, 3,000 steps) 444x (6.22 -> 0.014; content 0.47 against
0.52): both claims hold. The full preset is that design, unchanged (not re-run with L-BFGS).

The quick preset was then redesigned to fit the vision tour's budget (<= 12 s of user CPU for
the whole run, of which about 8-9 s are the CLI's imports, the network and the figure):
L-BFGS, 80 px, width 8, 12 steps of 20 iterations (about 260 loss-and-gradient evaluations).
Pilots (a stand-alone script on this experiment's networks, 80 px, width 8, 15 L-BFGS steps of
20 iterations, about 320 evaluations, seed 0 unless said): the image through a logistic
sigmoid 25x (pixels saturate near 0: 40% below 0.02, where the sigmoid's slope vanishes,
against the style photo's 19%); with k = 30 or 100 28x and 27x; a straight-through clip 6x; a
reflecting (triangle-wave) map 11x; no constraint at all 79x before clipping but 2.5x after
it; :math:`\sin^2 z`, adopted, 34x (seeds 1 and 2: 345x and 449x). An earlier pilot on another
random network (96 px) gave 4x when the image was clipped after every L-BFGS step and 100x
through the sigmoid after 217 evaluations. At the adopted preset's budget (about 250
evaluations, runs of this experiment) L-BFGS against Adam (250 steps, cosine over 250, lr
0.05): seed 0 32x vs 49x (both short of 100x); seed 1 260x vs 77x; seed 2 394x (content 0.453 <
0.459) vs 182x (content 0.515 > 0.459, failing ``content_kept``): L-BFGS holds both claims at
two seeds of three, Adam at none, so it was adopted. The random network of seed 0 is the hard
one for either optimiser: its style term plateaus near 30x (relu1_1 and relu4_1 keep most of
the error), hence :data:`STYLE_SHORTFALL`.
The thresholds are the issue's and were never changed. Confirming runs of this quick preset
(the same configuration as the pilots above, so they reproduce them bitwise): seed 0 32x (2.60
-> 0.082; content 0.697 < 1.141), seed 1 260x (9.07 -> 0.035; content 0.583 < 0.596), seed 2
394x (5.99 -> 0.015; content 0.453 < 0.459): ``style_falls`` holds at seeds 1 and 2 and is a
known failure at seed 0; ``content_kept`` holds at all three, with margins of 2-3% at seeds 1
and 2. 11-15 s of user CPU each (wall 12-16 s) on the shared 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.photos import PHOTOS, photo
from deepnotes.vision.experiments.deepdream import extractor, loop_runner
from deepnotes.vision.vgg import LAYERS, POOLS
from deepnotes.vision.visualisation import (
    OPTIMISERS,
    StyleTransferLoss,
    gram_matrix,
    transfer_style,
)

STYLE_FALL = 100.0
"""The style term must fall by at least this factor from the content image's (the issue)."""
GRAM_TOL = 1e-12
"""Max relative difference of the Gram matrices before and after a permutation (float64)."""
FULL_STEPS = 3000
"""Adam steps of the full preset; fewer carry :data:`STYLE_SHORTFALL`."""
STYLE_SHORTFALL = (
    "random VGG-19 features: at the quick preset (L-BFGS, 80 px, width 8, 12 x 20 iterations) "
    "measured 32x at seed 0 (its style term plateaus near 30x; Adam with the same budget "
    "49x) and 260x, 394x at seeds 1, 2; the earlier Adam quick preset (96 px, 2,000 steps) "
    "measured 94x at seed 0. The full preset (Adam, width 16, 128 px, 3,000 steps) measured "
    "444x at seed 0 and holds. Not measured with the real VGG-19 weights (none offline)"
)
"""Why :data:`STYLE_FALL` is not reached (measured)."""


@dataclass(frozen=True)
class StyleTransferConfig:
    """Optimise an image so that its content is the content photo's and its style the other's."""

    content: str = "china"
    """The content photograph p (one of "china", "flower")."""
    style: str = "flower"
    """The style photograph a."""
    size: int = 128
    """Shorter side of both photos in pixels (aspect ratio kept)."""
    k: float = 10.0
    """The style factor k of the notes' loss."""
    optimiser: str = "adam"
    """"lbfgs" (the image as sin^2 of a free variable, L-BFGS with a strong-Wolfe line search)
    or "adam" (cosine-decayed step size, the image clipped to [0, 1])."""
    steps: int = FULL_STEPS
    """Adam steps, or L-BFGS steps of ``inner`` iterations each (one engine Loop step each)."""
    inner: int = 20
    """L-BFGS only: iterations per step (torch's ``max_iter``)."""
    lr: float = 0.05
    """Adam only: the initial step size (cosine-decayed to 0)."""
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    width: int = 16
    """Random features only: channels of the first block (the blocks have 1, 2, 4, 8, 8 x)."""
    weights: str | None = None
    """Path of a torchvision-format VGG-19 state dict; None: random features."""
    pool: str = "avg"
    """The feature blocks' 2x2 pooling: "avg" (Gatys et al.'s choice for synthesis) or "max"."""
    every: int = 100
    """Steps per logged record."""

    def __post_init__(self) -> None:
        for field in ("content", "style"):
            value = getattr(self, field)
            require(value in PHOTOS, f"{field} must be one of {PHOTOS}, got {value!r}")
        require(self.size >= 16, f"size must be >= 16, got {self.size}")
        require(self.k > 0 and self.lr > 0, "k and lr must be > 0")
        require(
            self.optimiser in OPTIMISERS,
            f"optimiser must be one of {OPTIMISERS}, got {self.optimiser!r}",
        )
        require(self.inner >= 1, f"inner must be >= 1, got {self.inner}")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")
        for field in ("content_layers", "style_layers"):
            layers = getattr(self, field)
            require(
                len(layers) >= 1 and all(name in LAYERS for name in layers),
                f"{field} must be names among {LAYERS}, got {layers}",
            )
        require(self.width >= 1, f"width must be >= 1, got {self.width}")
        require(self.pool in POOLS, f"pool must be one of {POOLS}, got {self.pool!r}")
        require(
            self.weights is None or Path(self.weights).is_file(),
            f"weights must be the path of an existing VGG-19 state dict file, got {self.weights!r}",
        )

    @classmethod
    def quick(cls) -> StyleTransferConfig:
        """Shorter side 80, random features of width 8, L-BFGS: 12 steps of 20 iterations."""
        return cls(size=80, width=8, optimiser="lbfgs", steps=12, inner=20, every=1)


@dataclass(frozen=True)
class StyleTransferMeasurements:
    content_image: np.ndarray
    """(H, W, 3) in [0, 1]; so are the next two."""
    style_image: np.ndarray
    result: np.ndarray
    style_before: float
    """||S(p) - S(a)||: the content image's style term."""
    style_after: float
    content_after: float
    content_of_style: float
    """||C(a) - C(p)||: the style image's content term."""
    curve: list[dict[str, float]]
    """Per logged record: step, loss-and-gradient evaluations so far, content and style terms
    (averaged over the record's steps, each at the image its step started from); last, the
    result's terms."""
    evaluations: int
    """Loss-and-gradient evaluations of the whole optimisation."""
    gram_error: float
    network: str

    @property
    def style_fall(self) -> float:
        return self.style_before / self.style_after

    def metrics(self) -> dict[str, Any]:
        return {
            "style_before": self.style_before,
            "style_after": self.style_after,
            "style_fall": self.style_fall,
            "content_after": self.content_after,
            "content_of_style": self.content_of_style,
            "gram_error": self.gram_error,
            "evaluations": self.evaluations,
            "network": self.network,
        }


def _gram_error(features: torch.Tensor, generator: torch.Generator) -> float:
    f = features.detach().double().cpu()  # (1, C, H, W)
    n, c, h, w = f.shape
    perm = torch.randperm(h * w, generator=generator)
    shuffled = f.reshape(n, c, h * w)[..., perm].reshape(n, c, h, w)
    g = gram_matrix(f)
    return float((gram_matrix(shuffled) - g).abs().max() / g.abs().max())


def _terms(content: float | torch.Tensor, style: float | torch.Tensor) -> dict[str, float]:
    return {"content": float(content), "style": float(style)}


def measure(cfg: StyleTransferConfig, ctx: RunContext) -> StyleTransferMeasurements:
    model, network = extractor(cfg, ctx)
    p = photo(cfg.content, cfg.size).to(ctx.device)
    a = photo(cfg.style, cfg.size).to(ctx.device)
    loss = StyleTransferLoss(
        model, p, a, k=cfg.k, content_layers=cfg.content_layers, style_layers=cfg.style_layers
    )
    with torch.no_grad():
        _, style_before = loss.terms(p)
        content_of_style, _ = loss.terms(a)
    log: list[dict[str, float]] = []
    x = transfer_style(
        loss,
        p,
        steps=cfg.steps,
        lr=cfg.lr,
        optimiser=cfg.optimiser,
        inner=cfg.inner,
        run=loop_runner(ctx, cfg.every, log),
    )
    with torch.no_grad():
        content_after, style_after = loss.terms(x)
        first = model.activations(a, [cfg.style_layers[0]])[cfg.style_layers[0]]
    curve, done, evaluations = [], 0, 0.0
    for r in log:  # a record averages its steps; placed at the evaluations before its first
        curve.append(
            {"step": done, "evaluations": evaluations} | _terms(r["content_term"], r["style_term"])
        )
        evaluations += r["evaluations"] * (r["step"] - done)
        done = r["step"]
    curve.append({"step": done, "evaluations": evaluations} | _terms(content_after, style_after))
    return StyleTransferMeasurements(
        content_image=p[0].permute(1, 2, 0).cpu().numpy(),
        style_image=a[0].permute(1, 2, 0).cpu().numpy(),
        result=x[0].permute(1, 2, 0).cpu().numpy(),
        style_before=float(style_before),
        style_after=float(style_after),
        content_after=float(content_after),
        content_of_style=float(content_of_style),
        curve=curve,
        evaluations=round(evaluations),
        gram_error=_gram_error(first, ctx.stream("permutation")),
        network=network,
    )


def draw(m: StyleTransferMeasurements, cfg: StyleTransferConfig, ctx: RunContext) -> list[Path]:
    h, w = m.content_image.shape[:2]
    fig, axes = figure(ncols=4, size=(3.0 * w / h, 3.3))
    panels = (
        (m.content_image, f"content p: {cfg.content}.jpg"),
        (m.style_image, f"style a: {cfg.style}.jpg"),
        (m.result, f"result x ({_method(cfg)}, k = {cfg.k:g})"),
    )
    for ax, (image, title) in zip(axes[:3], panels, strict=True):
        ax.imshow(np.clip(image, 0, 1))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    at = [r["evaluations"] for r in m.curve]
    ax = axes[3]
    ax.plot(at, [r["style"] for r in m.curve], color="C1", label="style ||S(x) - S(a)||")
    ax.plot(at, [r["content"] for r in m.curve], color="C0", label="content ||C(x) - C(p)||")
    ax.axhline(m.style_before / STYLE_FALL, color="C1", ls=":", lw=1, label="style bar (1/100)")
    ax.axhline(m.content_of_style, color="C0", ls="--", lw=1, label="content of the style image")
    ax.set_yscale("log")
    low = min([m.style_before / STYLE_FALL] + [r["style"] for r in m.curve])
    ax.set_ylim(bottom=0.3 * low)  # the content term starts at (about) 0: off the log axis
    ax.set_xlabel("loss-and-gradient evaluations")
    ax.set_title(m.network, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return [ctx.savefig(fig, "style_transfer")]


def _short(cfg: StyleTransferConfig) -> bool:
    """Random features and less than the full preset's 3,000 Adam steps: a measured shortfall."""
    return cfg.weights is None and (cfg.optimiser == "lbfgs" or cfg.steps < FULL_STEPS)


def _method(cfg: StyleTransferConfig) -> str:
    if cfg.optimiser == "adam":
        return f"{cfg.steps} Adam steps"
    return f"L-BFGS, {cfg.steps} x {cfg.inner} iterations"


def claims(m: StyleTransferMeasurements, cfg: StyleTransferConfig) -> list[Claim]:
    return [
        Claim.at_least(
            f"the optimised image's style loss falls >= {STYLE_FALL:g}x from the content image's",
            m.style_fall,
            STYLE_FALL,
            f"||S(x) - S(a)|| {m.style_before:.4g} at x = p, {m.style_after:.4g} after "
            f"{_method(cfg)} ({m.evaluations} evaluations; k = {cfg.k:g}, {m.network})",
            key="style_falls",
            known_failure=STYLE_SHORTFALL if _short(cfg) else "",
        ),
        Claim.compare(
            "the optimised image's content loss stays below the style image's content loss",
            m.content_after,
            "<",
            m.content_of_style,
            f"||C(x) - C(p)|| {m.content_after:.4g}; ||C(a) - C(p)|| {m.content_of_style:.4g} "
            f"at {', '.join(cfg.content_layers)}",
            key="content_kept",
            baseline="the style image's content loss, measured in the same run",
        ),
        Claim.at_most(
            "the Gram matrix is invariant to permuting spatial positions (max relative "
            "difference, float64)",
            m.gram_error,
            GRAM_TOL,
            f"the style image's {cfg.style_layers[0]} features under a random permutation",
            key="gram_permutation",
            kind="check",
        ),
    ]


@experiment(
    "vision.style_transfer",
    topic="vision",
    config=StyleTransferConfig,
    claims=("style_falls", "content_kept"),
    checks=("gram_permutation",),
)
def style_transfer(cfg: StyleTransferConfig, ctx: RunContext) -> Outcome:
    """Minimising the notes' loss ||C(x) - C(p)|| + k ||S(x) - S(a)|| over the image gives the
    style photo's Gram statistics while the content stays closer to the content photo than the
    style photo is."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
