r"""Bottleneck, overcomplete, denoising and sparse autoencoders on binarised digits. Notes:
discussion 10, section 3 "Autoencoders" (the four mechanisms that force a structured code:
dimensionality, sparsity :math:`\sum_j |h_j|`, denoising; "when the number of hidden dimensions
is larger than input/output, we call it overcomplete, and this may learn the identity
function"; the codes "as useful features" for downstream tasks); issue 14, experiment 2.

Four MLP autoencoders (:mod:`deepnotes.generative.autoencoders`) are trained on the 1078
binarised training digits (8x8, pixel = 1 when the scaled value is >= 0.5), each through the
engine's Loop (Adam, ``steps`` minibatches of ``batch``, Bernoulli reconstruction loss):

- **bottleneck**: 64 -> ``hidden`` -> ``code_size`` (linear code) -> ``hidden`` -> 64;
- **denoising**: the same network, inputs with each pixel flipped with probability ``noise``
  (salt-and-pepper noise of binary images), clean targets;
- **overcomplete**: one ReLU layer of ``overcomplete_code`` > 64 units, linear decoder, no
  regulariser;
- **sparse**: the overcomplete network plus ``l1`` times the notes' :math:`\sum_j |h_j|`.

Claims (thresholds fixed before the run):

- ``overcomplete_identity``: the overcomplete autoencoder is close to the identity: on *noise
  images* (every pixel independent with its training frequency, samples of
  :class:`~deepnotes.generative.likelihood.IndependentBernoulli`: not digits) it gets at most
  :data:`IDENTITY_ERROR` = 0.02 of the pixels wrong (about one pixel per image).
- ``bottleneck_not_identity``: the bottleneck autoencoder gets at least
  :data:`NOT_IDENTITY_ERROR` = 0.1 of the same noise images' pixels wrong (five times the
  identity bar: its code holds digits, not arbitrary images).
- ``denoising_beats_bottleneck``: on test digits with the same flip noise, the denoising
  autoencoder's reconstructions are closer to the clean digits (pixel error) than the bottleneck
  autoencoder's: paired test over the test images (house policy, :mod:`deepnotes.core.stats`).
- ``sparse_codes``: at least :data:`SPARSE_FRACTION` = 0.8 of the sparse autoencoder's code
  entries on test digits are near zero (:math:`|h_j| <` :data:`NEAR_ZERO` = 0.01); the
  unregularised overcomplete code's share is reported next to it.
- ``codes_as_features``: a linear (softmax) classifier trained on ``labels_per_class`` labelled
  digits per class reaches a higher test accuracy on the bottleneck codes than on the raw
  pixels: paired test over ``probe_subsets`` random labelled subsets (features standardised with
  the unlabelled training set's statistics; each classifier is full-batch Adam with weight decay
  ``probe_decay``, all subsets trained at once through one Loop).

Deviation: the identity test uses independent-Bernoulli noise at the digits' pixel frequencies,
not uniform noise: 17 of the 64 pixels are on in fewer than 1% of the training digits, so no
autoencoder trained on digits can learn to copy them, overcomplete or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.binary import binary_images
from deepnotes.generative.autoencoders import (
    AESettings,
    Autoencoder,
    fit_autoencoder,
    flip_noise,
    near_zero_fraction,
    pixel_error,
)
from deepnotes.generative.likelihood import IndependentBernoulli

MODELS = ("bottleneck", "denoising", "overcomplete", "sparse")
IDENTITY_ERROR = 0.02
"""The overcomplete autoencoder's pixel error on noise images must be at most this."""
NOT_IDENTITY_ERROR = 0.1
"""The bottleneck autoencoder's pixel error on noise images must be at least this."""
NEAR_ZERO = 0.01
"""A code entry with |h_j| below this counts as zero."""
SPARSE_FRACTION = 0.8
"""The sparse code's share of near-zero entries must be at least this."""
CODES_NOT_BETTER = (
    "measured not to hold: with 10 labels per class the softmax classifier on the 8-unit "
    "bottleneck codes reached 0.80 test accuracy against 0.84 on the 64 raw pixels (quick preset, "
    "seed 0, 10 subsets); the code keeps less class information than the pixels"
)


@dataclass(frozen=True)
class AutoencodersConfig:
    """Four autoencoders of binarised digits, their reconstructions and codes."""

    code_size: int = 8
    """Bottleneck width (the digits have 64 pixels)."""
    hidden: int = 128
    """Hidden width of the bottleneck and denoising networks."""
    overcomplete_code: int = 256
    """Code width of the overcomplete and sparse networks."""
    noise: float = 0.1
    """Flip probability of a pixel (denoising training and the noisy test inputs)."""
    l1: float = 0.1
    """lambda of the sparse autoencoder's penalty lambda * sum_j |h_j| (0.05 left 22% of the
    quick run's code entries above the bar; the method's knob, the claim's bar unchanged)."""
    lr: float = 1e-3
    batch: int = 64
    steps: int = 6000
    every: int = 500
    noise_images: int = 1000
    """Noise images for the identity test."""
    labels_per_class: int = 10
    probe_subsets: int = 20
    probe_steps: int = 500
    probe_lr: float = 0.05
    probe_decay: float = 1e-3

    def __post_init__(self) -> None:
        require(1 <= self.code_size < 64, f"code_size must be in [1, 64), got {self.code_size}")
        require(self.overcomplete_code > 64, "overcomplete_code must exceed the 64 pixels")
        require(self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}")
        require(0 < self.noise < 0.5, f"noise must be in (0, 0.5), got {self.noise}")
        require(self.l1 > 0 and self.lr > 0, "l1 and lr must be > 0")
        require(
            self.batch >= 1 and 1 <= self.every <= self.steps,
            "need batch >= 1, 1 <= every <= steps",
        )
        require(self.noise_images >= 2, f"noise_images must be >= 2, got {self.noise_images}")
        require(
            1 <= self.labels_per_class <= 50,
            f"labels_per_class must be in [1, 50], got {self.labels_per_class}",
        )
        require(self.probe_subsets >= 2, f"probe_subsets must be >= 2, got {self.probe_subsets}")
        require(self.probe_steps >= 1 and self.probe_lr > 0 and self.probe_decay >= 0, "bad probe")

    @classmethod
    def quick(cls) -> AutoencodersConfig:
        """1500 steps per autoencoder, 10 labelled subsets."""
        return cls(steps=1500, probe_subsets=10, probe_steps=300)

    def settings(self, model: str) -> AESettings:
        """The fit of one of :data:`MODELS`."""
        common = {"lr": self.lr, "batch": self.batch, "steps": self.steps, "every": self.every}
        if model in ("bottleneck", "denoising"):
            small = {"code_size": self.code_size, "hidden": (self.hidden,)}
            if model == "denoising":
                return AESettings(**small, kind="denoising", noise=self.noise, **common)
            return AESettings(**small, **common)
        wide = {"code_size": self.overcomplete_code, "hidden": (), "code_activation": "relu"}
        if model == "sparse":
            return AESettings(**wide, kind="sparse", l1=self.l1, **common)
        return AESettings(**wide, **common)


@dataclass(frozen=True)
class AutoencodersMeasurements:
    """Per-image errors, code statistics and probe accuracies."""

    noise_error: dict[str, np.ndarray]
    """Pixel error on the noise images, per model (noise_images,)."""
    clean_error: dict[str, np.ndarray]
    """Pixel error on clean test digits, per model (N_test,)."""
    denoise_error: dict[str, np.ndarray]
    """Pixel error against the clean digit, from flipped inputs, per model (N_test,)."""
    near_zero: dict[str, float]
    """Share of near-zero code entries on test digits, overcomplete and sparse."""
    code_histograms: dict[str, np.ndarray]
    """|h_j| of the test codes (flattened), overcomplete and sparse, for the figure."""
    probe_accuracy: dict[str, np.ndarray]
    """Test accuracy per labelled subset, "codes" and "pixels" (probe_subsets,)."""
    examples: dict[str, np.ndarray]
    """Images for the figure (8 each): clean, noisy, and each model's reconstructions
    (probabilities)."""

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for model in MODELS:
            out[f"noise_pixel_error_{model}"] = float(self.noise_error[model].mean())
            out[f"test_pixel_error_{model}"] = float(self.clean_error[model].mean())
            out[f"denoise_pixel_error_{model}"] = float(self.denoise_error[model].mean())
        for model, share in self.near_zero.items():
            out[f"near_zero_fraction_{model}"] = share
        for features, acc in self.probe_accuracy.items():
            out[f"probe_accuracy_{features}"] = float(acc.mean())
        return out


def _fit(cfg: AutoencodersConfig, ctx: RunContext, model: str, train: torch.Tensor) -> Autoencoder:
    settings = cfg.settings(model)

    def compute() -> dict[str, Any]:
        ae, history = fit_autoencoder(settings, ctx, train, tag=model)
        return {
            "state": {k: v.detach().cpu() for k, v in ae.state_dict().items()},
            "history": history,
        }

    key = {"model": model, "n_train": train.shape[0], **vars(settings)}
    stored = ctx.cached("ae", key, compute)
    ae = Autoencoder(
        tuple(train.shape[1:]), settings.code_size, settings.hidden, settings.code_activation
    )
    ae.load_state_dict(stored["state"])
    return ae.to(ctx.device).eval()


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Features scaled with the mean and standard deviation of ``train`` (constant ones kept)."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def _probe(
    cfg: AutoencodersConfig,
    ctx: RunContext,
    name: str,
    features: torch.Tensor,
    labels: torch.Tensor,
    subsets: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
) -> np.ndarray:
    """Softmax regressions, one per labelled subset (S, L) of the rows of ``features`` (N, D),
    trained at once (weights (S, D, C)); their test accuracies (S,)."""
    s, d = subsets.shape[0], features.shape[1]
    classes = int(labels.max()) + 1
    x, y = features[subsets], labels[subsets]  # (S, L, D), (S, L)
    params = torch.nn.ParameterDict(
        {"weight": torch.zeros(s, d, classes), "bias": torch.zeros(s, 1, classes)}
    )  # loaded in place on resume
    weight, bias = params["weight"], params["bias"]
    opt = torch.optim.Adam(params.parameters(), lr=cfg.probe_lr, weight_decay=cfg.probe_decay)

    def step(_: int) -> dict[str, float]:
        logits = torch.einsum("sld,sdc->slc", x, weight) + bias  # (S, L, C)
        # the sum over subsets of each subset's mean loss: independent fits
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / y.shape[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()) / s}

    loop = Loop(ctx, tag=f"probe-{name}", track={"params": params, "opt": opt}, progress=False)
    loop.run(step, steps=cfg.probe_steps, every=cfg.probe_steps)
    with torch.no_grad():
        logits = torch.einsum("nd,sdc->snc", test_features, weight) + bias  # (S, N, C)
        return (logits.argmax(-1) == test_labels).double().mean(1).numpy()


def _labelled_subsets(
    cfg: AutoencodersConfig, ctx: RunContext, labels: torch.Tensor
) -> torch.Tensor:
    """(probe_subsets, 10 * labels_per_class) row indices, labels_per_class of each class."""
    rng = ctx.numpy_rng("labelled-subsets")
    y = labels.numpy()
    rows = []
    for _ in range(cfg.probe_subsets):
        picks = [
            rng.choice(np.flatnonzero(y == c), cfg.labels_per_class, replace=False)
            for c in np.unique(y)
        ]
        rows.append(np.concatenate(picks))
    return torch.as_tensor(np.stack(rows))


def measure(cfg: AutoencodersConfig, ctx: RunContext) -> AutoencodersMeasurements:
    """Train the four autoencoders (each cached), then score reconstructions, codes and probes."""
    splits = binary_images(seed=ctx.seed)
    train, train_y = splits.train.tensors
    test, test_y = splits.test.tensors
    models = {}
    with ctx.progress(len(MODELS), "autoencoders") as bar:
        for model in MODELS:
            models[model] = _fit(cfg, ctx, model, train)
            bar.advance()
    noise_images = IndependentBernoulli(train).sample(cfg.noise_images, ctx.stream("noise-images"))
    noisy_test = flip_noise(test, cfg.noise, ctx.stream("noisy-test"))
    dev = ctx.device
    noise_error, clean_error, denoise_error, recon = {}, {}, {}, {}
    with torch.no_grad():
        for name, ae in models.items():
            noise_error[name] = pixel_error(ae(noise_images.to(dev)).cpu(), noise_images).numpy()
            clean_error[name] = pixel_error(ae(test.to(dev)).cpu(), test).numpy()
            denoised = ae(noisy_test.to(dev)).cpu()
            denoise_error[name] = pixel_error(denoised, test).numpy()
            recon[name] = torch.sigmoid(
                denoised[:8] if name in ("bottleneck", "denoising") else ae(test[:8].to(dev)).cpu()
            )
        codes = {
            name: models[name].encode(test.to(dev)).cpu() for name in ("overcomplete", "sparse")
        }
        train_codes = models["bottleneck"].encode(train.to(dev)).cpu()
        test_codes = models["bottleneck"].encode(test.to(dev)).cpu()

    def probes() -> dict[str, np.ndarray]:
        subsets = _labelled_subsets(cfg, ctx, train_y)
        out = {}
        for name, (tr, te) in {
            "codes": _standardise(train_codes, test_codes),
            "pixels": _standardise(train.flatten(1), test.flatten(1)),
        }.items():
            out[name] = _probe(cfg, ctx, name, tr, train_y, subsets, te, test_y)
        return out

    probe_key = {
        "labels_per_class": cfg.labels_per_class,
        "subsets": cfg.probe_subsets,
        "steps": cfg.probe_steps,
        "lr": cfg.probe_lr,
        "decay": cfg.probe_decay,
        "codes": float(test_codes.abs().sum()),
    }
    examples = {"clean": test[:8].numpy(), "noisy": noisy_test[:8].numpy()}
    examples |= {name: r.numpy() for name, r in recon.items()}
    return AutoencodersMeasurements(
        noise_error=noise_error,
        clean_error=clean_error,
        denoise_error=denoise_error,
        near_zero={name: near_zero_fraction(c, NEAR_ZERO) for name, c in codes.items()},
        code_histograms={name: c.abs().flatten().numpy() for name, c in codes.items()},
        probe_accuracy=ctx.cached("probe", probe_key, probes),
        examples=examples,
    )


def draw(m: AutoencodersMeasurements, cfg: AutoencodersConfig, ctx: RunContext) -> list[Path]:
    rows = [
        ("clean test digits", "clean"),
        (f"flipped inputs (p = {cfg.noise:g})", "noisy"),
        ("bottleneck, from flipped", "bottleneck"),
        ("denoising, from flipped", "denoising"),
        ("overcomplete, from clean", "overcomplete"),
        ("sparse, from clean", "sparse"),
    ]
    fig, axes = figure(ncols=8, nrows=len(rows), size=(0.9, 0.95))
    axes = axes.reshape(len(rows), 8)
    for r, (label, key) in enumerate(rows):
        for c in range(8):
            ax = axes[r, c]
            ax.imshow(m.examples[key][c, 0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("reconstructions (pixel probabilities; black = 1)", fontsize=9)
    recon = ctx.savefig(fig, "reconstructions")

    fig, (ax_h, ax_e) = figure(ncols=2, size=(4.8, 3.6))
    bins = np.linspace(0, max(float(v.max()) for v in m.code_histograms.values()) + 1e-9, 50)
    for name, color in (("overcomplete", "C1"), ("sparse", "C2")):
        ax_h.hist(
            m.code_histograms[name],
            bins=bins,
            color=color,
            alpha=0.6,
            label=f"{name}: {m.near_zero[name]:.0%} below {NEAR_ZERO:g}",
        )
    ax_h.set_yscale("log")
    ax_h.set_xlabel("|h_j| on test digits")
    ax_h.set_ylabel("code entries")
    ax_h.set_title(f"codes of {cfg.overcomplete_code} ReLU units")
    ax_h.legend(fontsize=7)
    x = np.arange(len(MODELS))
    for i, (key, label) in enumerate(
        (
            ("clean_error", "test digits"),
            ("denoise_error", "flipped test digits"),
            ("noise_error", "noise images"),
        )
    ):
        means = [getattr(m, key)[model].mean() for model in MODELS]
        ses = [stats.mean_se(getattr(m, key)[model])[1] for model in MODELS]
        ax_e.bar(x + (i - 1) * 0.27, means, 0.27, yerr=ses, label=label, color=f"C{i}")
    ax_e.axhline(
        IDENTITY_ERROR, color="grey", ls=":", lw=1, label=f"identity bar {IDENTITY_ERROR:g}"
    )
    ax_e.set_xticks(x, MODELS, fontsize=8)
    ax_e.set_ylabel("pixel error vs clean target")
    probe = ", ".join(f"{k} {v.mean():.3f}" for k, v in m.probe_accuracy.items())
    ax_e.set_title(f"probe accuracy ({cfg.labels_per_class}/class): {probe}", fontsize=8)
    ax_e.legend(fontsize=7)
    return [recon, ctx.savefig(fig, "codes_and_errors")]


def claims(m: AutoencodersMeasurements, cfg: AutoencodersConfig) -> list[Claim]:
    over, bott = m.noise_error["overcomplete"], m.noise_error["bottleneck"]
    denoise = stats.paired(m.denoise_error["bottleneck"], m.denoise_error["denoising"])
    probe = stats.paired(m.probe_accuracy["codes"], m.probe_accuracy["pixels"])
    return [
        Claim.at_most(
            f"the overcomplete autoencoder ({cfg.overcomplete_code} units, no regulariser) is "
            f"close to the identity: pixel error <= {IDENTITY_ERROR:g} on noise images",
            float(over.mean()),
            IDENTITY_ERROR,
            f"mean +- SE {stats.mean_se(over)[0]:.4f} +- {stats.mean_se(over)[1]:.4f} over "
            f"{over.size} independent-Bernoulli noise images; on test digits "
            f"{m.clean_error['overcomplete'].mean():.4f}",
            key="overcomplete_identity",
        ),
        Claim.at_least(
            f"the bottleneck autoencoder (code {cfg.code_size}) is not: pixel error >= "
            f"{NOT_IDENTITY_ERROR:g} on the same noise images",
            float(bott.mean()),
            NOT_IDENTITY_ERROR,
            f"mean +- SE {stats.mean_se(bott)[0]:.4f} +- {stats.mean_se(bott)[1]:.4f}; on test "
            f"digits {m.clean_error['bottleneck'].mean():.4f}",
            key="bottleneck_not_identity",
        ),
        Claim.from_test(
            f"from digits with {cfg.noise:g} of the pixels flipped, the denoising autoencoder "
            "reconstructs the clean digit better than the bottleneck one of the same size",
            denoise,
            f"pixel error bottleneck {m.denoise_error['bottleneck'].mean():.4f}, denoising "
            f"{m.denoise_error['denoising'].mean():.4f} (the flipped input itself: {cfg.noise:g})",
            key="denoising_beats_bottleneck",
        ),
        Claim.at_least(
            f"the sparse autoencoder's codes are sparse: >= {SPARSE_FRACTION:g} of the entries "
            f"|h_j| < {NEAR_ZERO:g} on test digits",
            m.near_zero["sparse"],
            SPARSE_FRACTION,
            f"unregularised overcomplete code: {m.near_zero['overcomplete']:.3f}; lambda = "
            f"{cfg.l1:g}; test pixel error sparse {m.clean_error['sparse'].mean():.4f}",
            key="sparse_codes",
        ),
        Claim.from_test(
            f"with {cfg.labels_per_class} labels per class, a linear classifier on the bottleneck "
            "codes beats one on the raw pixels",
            probe,
            f"test accuracy codes {m.probe_accuracy['codes'].mean():.3f}, pixels "
            f"{m.probe_accuracy['pixels'].mean():.3f} over {cfg.probe_subsets} labelled subsets",
            known_failure=CODES_NOT_BETTER,
            key="codes_as_features",
        ),
    ]


@experiment(
    "generative.autoencoders",
    topic="generative",
    config=AutoencodersConfig,
    claims=(
        "overcomplete_identity",
        "bottleneck_not_identity",
        "denoising_beats_bottleneck",
        "sparse_codes",
        "codes_as_features",
    ),
)
def autoencoders(cfg: AutoencodersConfig, ctx: RunContext) -> Outcome:
    """An overcomplete autoencoder learns close to the identity and a bottleneck one does not;
    denoising beats the bottleneck on noisy digits, the L1 code is sparse, and the codes serve
    as features."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
