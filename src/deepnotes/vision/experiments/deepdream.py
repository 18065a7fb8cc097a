r"""DeepDream on a real photograph: the notes' four steps raise a layer's activation norm. Notes:
discussion 5, section 4 "DeepDream" (pick a layer, forward propagate to it, set the gradient at
that layer to the activation, backpropagate to update the image); the method of Mordvintsev,
Olah & Tyka (2015, "Inceptionism: going deeper into neural networks"), the anchor, with its
octaves and jitter.

Input: scikit-learn's ``photo`` (``china`` by default; :func:`deepnotes.data.photos.photo`),
shorter side ``size``. Network: by default a VGG-19 of random He-normal filters with block
widths ``(width, 2, 4, 8, 8 x width)`` (:func:`deepnotes.vision.vgg.random_vgg19`), drawn from
the run's stream; with ``weights=PATH`` the real VGG-19 from a torchvision-format state dict
(:func:`deepnotes.vision.vgg.load_vgg19`). Why random features by default: nothing may
download, a trained VGG-19 does not fit the quick budget, and a small CNN trained on 8x8 digits
has no features for a colour photograph; the claim below is about the optimisation (it holds for
any fixed network), while the pictures of "objects" DeepDream is known for need the real weights
(random filters amplify textures and edges only).

Procedure (:func:`deepnotes.vision.visualisation.deep_dream`): ``octaves`` scales (side divided
by ``octave_scale`` per octave), ``steps`` normalised ascent steps per octave, ``x <- clip(x +
lr g / mean|g|, 0, 1)`` with ``g`` from the four steps on the image rolled by a random shift
of up to ``jitter`` pixels; each octave runs through the engine's
:class:`~deepnotes.core.engine.Loop` (checkpointed, resumable).

Claim (threshold fixed before the run, by us: the notes give no number):

- ``activation_rises``: the chosen layer's activation norm on the dreamt image is at least
  :data:`GAIN` = 2 times its norm on the photo (both at full size, no jitter).

Checks (identities of the implementation):

- ``gradient_is_activation``: setting the gradient at the layer to its activation gives the
  gradient of :math:`\tfrac12\|a\|^2` (autograd), max relative difference <=
  :data:`GRADIENT_TOL` = 1e-10 in float64 on a ``check_size`` crop of the photo;
- ``image_in_range``: the dreamt image stays in [0, 1] (largest excursion outside it <= 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.photos import PHOTOS, photo
from deepnotes.vision.vgg import LAYERS, POOLS, VGG19, load_vgg19, random_vgg19
from deepnotes.vision.visualisation import (
    Runner,
    StepFn,
    activation_norm,
    deep_dream,
    dream_gradient,
    half_squared_norm_gradient,
)

GAIN = 2.0
"""The dreamt image's activation norm must be at least this many times the photo's."""
GRADIENT_TOL = 1e-10
"""Max relative difference of the two gradients (float64)."""


@dataclass(frozen=True)
class DeepDreamConfig:
    """DeepDream on one of scikit-learn's photographs."""

    photo: str = "china"
    """One of "china", "flower"."""
    size: int = 160
    """Shorter side of the photo in pixels (the aspect ratio is kept)."""
    layer: str = "relu3_1"
    """The layer whose activation is amplified (a name of deepnotes.vision.vgg.LAYERS)."""
    steps: int = 40
    """Ascent steps per octave."""
    lr: float = 0.01
    """Step size of the normalised step (in image units per mean |g|)."""
    octaves: int = 3
    octave_scale: float = 1.4
    jitter: int = 8
    """Largest random shift in pixels before each gradient (0: none)."""
    width: int = 16
    """Random features only: channels of the first block (the blocks have 1, 2, 4, 8, 8 x)."""
    weights: str | None = None
    """Path of a torchvision-format VGG-19 state dict; None: random features."""
    pool: str = "max"
    """The feature blocks' 2x2 pooling, "max" (VGG-19) or "avg" (Gatys et al.'s substitute)."""
    every: int = 10
    """Steps per logged record."""
    check_size: int = 32
    """Side of the photo crop on which the gradient identity is checked."""

    def __post_init__(self) -> None:
        require(self.photo in PHOTOS, f"photo must be one of {PHOTOS}, got {self.photo!r}")
        require(self.layer in LAYERS, f"layer must be one of {LAYERS}, got {self.layer!r}")
        require(self.size >= 16, f"size must be >= 16, got {self.size}")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.octaves >= 1, f"octaves must be >= 1, got {self.octaves}")
        require(self.octave_scale >= 1.0, f"octave_scale must be >= 1, got {self.octave_scale}")
        require(self.jitter >= 0, f"jitter must be >= 0, got {self.jitter}")
        require(self.width >= 1, f"width must be >= 1, got {self.width}")
        require(self.check_size >= 8, f"check_size must be >= 8, got {self.check_size}")
        require(self.pool in POOLS, f"pool must be one of {POOLS}, got {self.pool!r}")
        require(
            self.weights is None or Path(self.weights).is_file(),
            f"weights must be the path of an existing VGG-19 state dict file, got {self.weights!r}",
        )

    @classmethod
    def quick(cls) -> DeepDreamConfig:
        """Shorter side 96, two octaves of 20 steps."""
        return cls(size=96, steps=20, octaves=2, every=5)


@dataclass(frozen=True)
class DeepDreamMeasurements:
    before: np.ndarray
    """The photo, (H, W, 3) in [0, 1]."""
    after: np.ndarray
    """The dreamt image, (H, W, 3)."""
    norm_before: float
    norm_after: float
    curve: list[dict[str, float]]
    """Per logged record: octave, step, mean activation norm (jittered images)."""
    gradient_error: float
    """Max |dream_gradient - grad 1/2||a||^2| / max |grad 1/2||a||^2| (float64)."""
    excursion: float
    """Largest distance of a pixel of the dreamt image outside [0, 1] (0 inside)."""
    network: str

    @property
    def gain(self) -> float:
        return self.norm_after / self.norm_before

    def metrics(self) -> dict[str, Any]:
        return {
            "norm_before": self.norm_before,
            "norm_after": self.norm_after,
            "gain": self.gain,
            "gradient_error": self.gradient_error,
            "excursion": self.excursion,
            "network": self.network,
        }


def extractor(cfg: Any, ctx: RunContext) -> tuple[VGG19, str]:
    """The fixed network: the user's VGG-19 (``cfg.weights``) or random features from the run's
    stream, with ``cfg.pool`` pooling; and a description of it. Shared with the style-transfer
    experiment."""
    if cfg.weights is not None:
        model = load_vgg19(cfg.weights, classifier=False, pool=cfg.pool)
        return model.to(ctx.device), f"VGG-19 (given weights), {cfg.pool} pooling"
    w = cfg.width
    widths = (w, 2 * w, 4 * w, 8 * w, 8 * w)
    model = random_vgg19(widths, generator=ctx.stream("features"), pool=cfg.pool)
    return model.to(ctx.device), f"random VGG-19, widths {widths}, {cfg.pool} pooling"


def loop_runner(ctx: RunContext, every: int, log: list[dict[str, float]]) -> Runner:
    """A runner for :mod:`deepnotes.vision.visualisation` that runs the engine's Loop and
    appends each record (with its tag) to ``log``."""

    def run(tag: str, steps: int, step: StepFn, track: Any) -> None:
        result = Loop(ctx, tag=tag, track=track).run(step, steps=steps, every=min(every, steps))
        log.extend({"tag": tag, **r} for r in result.history)

    return run


def _gradient_error(model: VGG19, image: torch.Tensor, layer: str, side: int, pool: str) -> float:
    model64 = VGG19(model.widths, classifier=False, pool=pool)
    model64.load_state_dict(model.state_dict())
    model64 = model64.double().eval().requires_grad_(False)
    crop = image[..., :side, :side].double().cpu()
    ours, _ = dream_gradient(model64, crop, layer)
    reference = half_squared_norm_gradient(model64, crop, layer)
    return float((ours - reference).abs().max() / reference.abs().max())


def measure(cfg: DeepDreamConfig, ctx: RunContext) -> DeepDreamMeasurements:
    model, network = extractor(cfg, ctx)
    image = photo(cfg.photo, cfg.size).to(ctx.device)
    log: list[dict[str, float]] = []
    dreamt = deep_dream(
        model,
        image,
        cfg.layer,
        steps=cfg.steps,
        lr=cfg.lr,
        octaves=cfg.octaves,
        octave_scale=cfg.octave_scale,
        jitter=cfg.jitter,
        generator=ctx.stream("jitter"),
        run=loop_runner(ctx, cfg.every, log),
    )
    excursion = max(0.0, float(-dreamt.min()), float(dreamt.max() - 1.0))
    return DeepDreamMeasurements(
        before=image[0].permute(1, 2, 0).cpu().numpy(),
        after=dreamt[0].permute(1, 2, 0).cpu().numpy(),
        norm_before=activation_norm(model, image, cfg.layer),
        norm_after=activation_norm(model, dreamt, cfg.layer),
        curve=[
            {"octave": float(r["tag"][6:]), "step": float(r["step"]), "norm": r["activation_norm"]}
            for r in log
        ],
        gradient_error=_gradient_error(model, image, cfg.layer, cfg.check_size, cfg.pool),
        excursion=excursion,
        network=network,
    )


def draw(m: DeepDreamMeasurements, cfg: DeepDreamConfig, ctx: RunContext) -> list[Path]:
    h, w = m.before.shape[:2]
    fig, axes = figure(ncols=3, size=(3.2 * w / h, 3.4))
    axes[0].imshow(np.clip(m.before, 0, 1))
    axes[0].set_title(f"{cfg.photo}.jpg ({h}x{w})\n{cfg.layer} norm {m.norm_before:.3g}")
    axes[1].imshow(np.clip(m.after, 0, 1))
    axes[1].set_title(
        f"after DeepDream ({cfg.octaves} octave(s) x {cfg.steps} steps)\n"
        f"{cfg.layer} norm {m.norm_after:.3g} ({m.gain:.2f}x)"
    )
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    octaves = sorted({int(r["octave"]) for r in m.curve})
    for o in octaves:
        rows = [r for r in m.curve if int(r["octave"]) == o]
        axes[2].plot(
            [r["step"] for r in rows], [r["norm"] for r in rows], marker=".", label=f"octave {o}"
        )
    axes[2].set_xlabel("step within the octave")
    axes[2].set_ylabel(f"||a|| at {cfg.layer} (jittered, per record)")
    axes[2].set_title(m.network, fontsize=8)
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=7)
    return [ctx.savefig(fig, "dream")]


def claims(m: DeepDreamMeasurements, cfg: DeepDreamConfig) -> list[Claim]:
    return [
        Claim.at_least(
            f"the four DeepDream steps raise the activation norm at {cfg.layer} by a factor "
            f">= {GAIN:g}",
            m.gain,
            GAIN,
            f"||a|| {m.norm_before:.4g} on the photo, {m.norm_after:.4g} on the dreamt image; "
            f"{m.network}; {cfg.octaves} octave(s) x {cfg.steps} steps, lr {cfg.lr:g}",
            key="activation_rises",
        ),
        Claim.at_most(
            "setting the gradient at the layer to its activation equals the gradient of "
            "1/2 ||a||^2 (max relative difference, float64)",
            m.gradient_error,
            GRADIENT_TOL,
            f"autograd on a {cfg.check_size}x{cfg.check_size} crop at {cfg.layer}",
            key="gradient_is_activation",
            kind="check",
        ),
        Claim.at_most(
            "the dreamt image stays in [0, 1] (largest excursion outside it)",
            m.excursion,
            0.0,
            "the image is clipped after every step",
            key="image_in_range",
            kind="check",
        ),
    ]


@experiment(
    "vision.deepdream",
    topic="vision",
    config=DeepDreamConfig,
    claims=("activation_rises",),
    checks=("gradient_is_activation", "image_in_range"),
)
def deepdream(cfg: DeepDreamConfig, ctx: RunContext) -> Outcome:
    """DeepDream's four steps (forward to a layer, set the gradient there to the activation,
    backpropagate to the image) raise the layer's activation norm while the image stays a
    valid image."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
