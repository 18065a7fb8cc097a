r"""One table of test likelihoods on the same binarised digits, and whose samples are blurry.
Notes: discussion 10 (autoregressive models, the VAE, and problem 2, "Blurry Images").

Every model is scored on the same test split of :func:`~deepnotes.data.binary.binary_images`
(seed = the run's seed), in nats per image and bits per dimension:

- the independent-Bernoulli baseline
  (:class:`~deepnotes.generative.likelihood.IndependentBernoulli`);
- the VAE of ``generative.vae`` (:func:`~deepnotes.generative.vae.fit_vae`, ``vae_steps`` steps),
  scored by its importance-weighted bound with ``nll_k`` samples, an upper bound on its NLL;
- the PixelCNN, the PixelRNN (Row LSTM) and the pixel transformer of
  ``generative.autoregressive`` (:func:`~deepnotes.generative.experiments.autoregressive.fit_model`,
  ``epochs`` epochs, the best-validation weights), whose NLL is exact.

With the same seed and settings the fits are those of the two other experiments (same seed
streams). RealNVP is left out: it models continuous data, and a dequantised flow on 64 binary
pixels would measure the dequantisation noise as much as the model.

Claims (fixed before the run):

- ``autoregressive_below_vae``: each autoregressive model's test NLL is below the VAE's
  importance-weighted NLL (paired over test images: one-sided test of the per-image
  differences, Bonferroni over the three models; the weakest is measured). The anchor is the
  literature's ordering on binarised MNIST: PixelCNN 81.3 nats (van den Oord et al. 2016),
  Diagonal BiLSTM 79.2, against about 86.8 for a VAE's importance-weighted bound (Burda et al.
  2016). It does not hold on the digits (:data:`ORDER_FAILS`): a known failure.
- ``pixelcnn_not_blurry`` (problem 2, the other half of ``generative.vae``'s blur claims): the
  PixelCNN's samples carry at least :data:`SHARP_FRACTION` = 0.9 of the test digits'
  high-frequency energy (:func:`~deepnotes.generative.spectra.blur_ratio`), where the VAE's
  mean samples, measured beside them, carry about half: an autoregressive model draws every
  pixel, so its samples are as sharp as binary data; the VAE's decoder means average over the
  pixels it is unsure of. 0.9 leaves room for the sampling noise of ``samples`` images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure, show_images
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.binary import binary_images
from deepnotes.generative.experiments.autoregressive import (
    LABELS,
    MODELS,
    AutoregressiveConfig,
    fit_model,
    restore,
)
from deepnotes.generative.likelihood import IndependentBernoulli, bits_per_dim
from deepnotes.generative.spectra import blur_ratio
from deepnotes.generative.vae import VAESettings, fit_vae

ORDER_FAILS = (
    "measured at seed 0: on the 8x8 binarised digits the VAE's importance-weighted NLL is the "
    "lowest, quick (12 epochs, 2,000 VAE steps): VAE 17.64 nats, PixelCNN 19.64, PixelRNN "
    "18.70, transformer 19.06; full (30 epochs, 8,000 steps): VAE 17.09, PixelCNN 19.11, "
    "PixelRNN 17.78, transformer 17.91 (the gap narrows with training but keeps its sign). "
    "The literature's ordering was measured on 28x28 MNIST with 60,000 training images; these "
    "are 1,078 training images of 64 pixels, and why the ordering flips here is not measured"
)
"""Why ``autoregressive_below_vae`` does not hold here (measured, quick and full)."""
SHARP_FRACTION = 0.9
"""The PixelCNN's samples must keep at least this fraction of the data's high-frequency energy."""
ROWS = ("baseline", "vae", *MODELS)
ROW_LABELS = {"baseline": "independent Bernoulli", "vae": "VAE (IWAE bound)", **LABELS}


@dataclass(frozen=True)
class LikelihoodsConfig:
    """Train the VAE and the three autoregressive models; score them on one test split."""

    epochs: int = 30
    """Training epochs of each autoregressive model (``generative.autoregressive``'s)."""
    vae_steps: int = 8000
    """Training steps of the VAE (``generative.vae``'s)."""
    nll_k: int = 500
    """Importance samples per test image for the VAE's NLL."""
    samples: int = 256
    """Images drawn from the PixelCNN and the VAE for the blur comparison."""

    def __post_init__(self) -> None:
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.vae_steps >= 1, f"vae_steps must be >= 1, got {self.vae_steps}")
        require(self.nll_k >= 1, f"nll_k must be >= 1, got {self.nll_k}")
        require(self.samples >= 2, f"samples must be >= 2, got {self.samples}")

    @classmethod
    def quick(cls) -> LikelihoodsConfig:
        """The quick presets of ``generative.autoregressive`` (12 epochs) and ``generative.vae``
        (2,000 steps)."""
        return cls(epochs=12, vae_steps=2000)

    def autoregressive(self) -> AutoregressiveConfig:
        return AutoregressiveConfig(epochs=self.epochs)

    def vae(self) -> VAESettings:
        return VAESettings(steps=self.vae_steps, every=min(500, self.vae_steps), nll_k=self.nll_k)


@dataclass(frozen=True)
class LikelihoodsMeasurements:
    """Per-image test NLLs of every model and the samples of the blur comparison."""

    test_nll: dict[str, np.ndarray]
    """Per row of :data:`ROWS`, nats per test image, ``(N_test,)``."""
    pixels: int
    blur: dict[str, float]
    """High-frequency energy over the test digits': ``"pixelcnn"`` (drawn samples) and
    ``"vae"`` (decoder means, z ~ p(z))."""
    samples: dict[str, np.ndarray]
    """``(n, H, W)`` images for the figure: ``"data"``, ``"pixelcnn"``, ``"vae"``."""

    def nats(self, row: str) -> tuple[float, float]:
        """Mean test NLL in nats per image and its standard error."""
        mean, se = stats.mean_and_se(self.test_nll[row])
        return float(mean), float(se)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"blur_ratio": dict(self.blur)}
        for row in ROWS:
            mean, se = self.nats(row)
            out[f"nll_nats_{row}"] = mean
            out[f"nll_se_{row}"] = se
            out[f"nll_bits_per_dim_{row}"] = float(bits_per_dim(mean, self.pixels))
        return out


def measure(cfg: LikelihoodsConfig, ctx: RunContext) -> LikelihoodsMeasurements:
    """Fit (cached) and score every model; draw the PixelCNN's and the VAE's samples."""
    splits = binary_images(seed=ctx.seed)
    train, test = splits.train.tensors[0], splits.test.tensors[0]
    ar_cfg = cfg.autoregressive()
    test_nll = {"baseline": IndependentBernoulli(train).nll(test).numpy()}
    with ctx.progress(1 + len(MODELS), "fits") as bar:
        vae = fit_vae(cfg.vae(), ctx, splits)
        test_nll["vae"] = np.asarray(vae.test_nll)
        bar.advance()
        fits = {}
        for kind in MODELS:
            fits[kind] = fit_model(kind, ar_cfg, ctx, splits)
            test_nll[kind] = fits[kind]["test_nll"].numpy()
            bar.advance()
    pixelcnn = restore("pixelcnn", ar_cfg, fits["pixelcnn"], ctx.device)
    with torch.no_grad():
        drawn = pixelcnn.sample(cfg.samples, ctx.stream("sample", "pixelcnn")).cpu()
        means = vae.model.sample_means(cfg.samples, ctx.stream("sample", "vae")).cpu()
    return LikelihoodsMeasurements(
        test_nll=test_nll,
        pixels=math.prod(splits.input_shape),
        blur={"pixelcnn": blur_ratio(drawn, test), "vae": blur_ratio(means, test)},
        samples={
            "data": test[:64, 0].numpy(),
            "pixelcnn": drawn[:64, 0].numpy(),
            "vae": means[:64, 0].numpy(),
        },
    )


def draw(m: LikelihoodsMeasurements, cfg: LikelihoodsConfig, ctx: RunContext) -> list[Path]:
    fig, ax = figure(ncols=1, size=(6.5, 3.6))
    means = [m.nats(row) for row in ROWS]
    y = np.arange(len(ROWS))
    ax.barh(y, [v for v, _ in means], xerr=[2 * se for _, se in means], color="C0", alpha=0.8)
    for i, (v, _) in enumerate(means):
        ax.text(v, i, f"  {v:.2f} nats, {bits_per_dim(v, m.pixels):.3f} bits/dim", va="center")
    ax.set_yticks(y, [ROW_LABELS[row] for row in ROWS])
    ax.invert_yaxis()
    ax.set_xlim(0, max(v for v, _ in means) * 1.6)
    ax.set_xlabel("test NLL, nats per image (bars: 2 SE)")
    ax.set_title(f"binarised digits, {m.pixels} pixels: test negative log-likelihood")
    ax.grid(alpha=0.3, axis="x")
    table = ctx.savefig(fig, "likelihoods")

    fig, axes = figure(ncols=3, size=(3.3, 3.6))
    titles = {
        "data": "test digits",
        "pixelcnn": f"PixelCNN samples (HF ratio {m.blur['pixelcnn']:.2f})",
        "vae": f"VAE decoder means (HF ratio {m.blur['vae']:.2f})",
    }
    for ax, (name, title) in zip(axes, titles.items(), strict=True):
        show_images(ax, m.samples[name], title)
    return [table, ctx.savefig(fig, "samples")]


def claims(m: LikelihoodsMeasurements, cfg: LikelihoodsConfig) -> list[Claim]:
    vae = m.test_nll["vae"]
    tests = {kind: stats.paired(vae, m.test_nll[kind], family=len(MODELS)) for kind in MODELS}
    weakest = min(MODELS, key=lambda kind: tests[kind].statistic)
    table = "; ".join(f"{ROW_LABELS[row]} {m.nats(row)[0]:.2f}" for row in ROWS)
    return [
        Claim.from_test(
            "each autoregressive model (PixelCNN, PixelRNN, pixel transformer) has a lower test "
            "NLL than the VAE's importance-weighted bound (paired over test images; the "
            f"weakest, {ROW_LABELS[weakest]}, is measured)",
            tests[weakest],
            f"nats per image: {table} ({len(vae)} test digits; Bonferroni over {len(MODELS)})",
            key="autoregressive_below_vae",
            known_failure=ORDER_FAILS,
        ),
        Claim.at_least(
            f"the PixelCNN's samples keep >= {SHARP_FRACTION:g} of the test digits' "
            "high-frequency energy (not blurry)",
            m.blur["pixelcnn"],
            SHARP_FRACTION,
            f"{cfg.samples} samples; the VAE's decoder means keep {m.blur['vae']:.3f}",
            key="pixelcnn_not_blurry",
        ),
    ]


@experiment(
    "generative.likelihoods",
    topic="generative",
    config=LikelihoodsConfig,
    claims=("autoregressive_below_vae", "pixelcnn_not_blurry"),
)
def likelihoods(cfg: LikelihoodsConfig, ctx: RunContext) -> Outcome:
    """One table of test likelihoods on the same binarised digits: autoregressive models against
    the VAE and the independent-Bernoulli baseline, and sharp PixelCNN samples beside blurry
    VAE means."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
