r"""A DCGAN-style generator on the digits, judged by the project's own digits classifier.
Notes: discussion 11, part 1 (GANs: the non-saturating loss and the Lipschitz discriminator by
spectral normalisation); issue 15, item 5. Anchors: Radford et al. (2016, DCGAN) for the
architecture, Miyato et al. (2018, spectral normalisation) for the stabilised loss, Heusel et
al. (2017, FID) and Salimans et al. (2016) for judging samples with a classifier.

A :class:`~deepnotes.gans.models.ConvGenerator` (``z ~ N(0, I_latent)``, a linear projection to
``(2 g_width, 2, 2)``, two stride-2 transposed convolutions, a sigmoid: 8x8 images in [0, 1])
plays against a :class:`~deepnotes.gans.models.ConvCritic` (two stride-2 convolutions and a
linear read-out, every layer spectrally normalised when ``spectral``) with the loss ``loss``
(default the non-saturating one) for ``steps`` generator steps of ``batch`` images drawn with
replacement from the training split of the digits (:func:`deepnotes.data.images.image_splits`,
pixels / 16), Adam (``lr``, betas (0.5, 0.999)), through
:func:`deepnotes.gans.training.train_gan` (the engine's Loop: resumable). Its samples are taken in
eval mode (the batch-norm running statistics).

The judge (:mod:`deepnotes.gans.judge`) is a small CNN trained on the same training split; it
scores ``samples`` generated digits (fixed codes, their own stream) against the real test
digits: class coverage (a class is found when at least ``min_share`` of the samples are
assigned to it), mean confidence (mean largest class probability), and the Frechet distance
(FD) on its penultimate features.

Comparing like with like. The VAE of the generative room
(:func:`deepnotes.generative.vae.fit_vae`) models BINARISED digits (pixels >= 0.5 -> 1,
:func:`deepnotes.data.binary.binarize`); its samples are Bernoulli draws of 0/1 pixels. So the
VAE comparison is made on the binary representation: the GAN's samples binarised by the same
rule, the VAE's Bernoulli samples, both against the binarised test digits, all through the same
judge. The comparison with the generator at initialisation (same codes) is made on the grey
[0, 1] representation the GAN was trained on, against the grey test digits. The FD of the
validation digits against the test digits (grey and binary) is reported as the floor a perfect
generator would reach with this many images.

Claims (thresholds fixed before the run; "far below" is fixed as at most half):

- ``all_classes``: the judge finds all 10 classes among the GAN's samples (each receives at
  least ``min_share`` = 1% of them) (issue).
- ``confident``: the judge's mean confidence on the GAN's samples is >= :data:`CONFIDENCE`
  = 0.9 (issue).
- ``fd_vs_init``: FD(GAN) / FD(generator at initialisation) <= :data:`FAR_BELOW` = 0.5 (grey).
- ``fd_vs_vae``: FD(GAN, binarised) / FD(VAE samples) <= :data:`FAR_BELOW` = 0.5 (binary).

Checks: ``judge_accuracy``: the judge classifies the real test digits with accuracy >=
:data:`JUDGE_ACCURACY` = 0.95 (an instrument below it cannot judge). The Frechet distance itself is
tested against closed forms and FID's ``scipy.linalg.sqrtm`` formula on well-conditioned
covariances (tests/gans/test_judge.py), not here: the judge's features have dead ReLU units, so
their covariances are singular and ``sqrtm(S1 S2)`` is itself inaccurate (the two formulas
differed by 1.6e-6 relative in the full preset at seed 0, 1.9e-7 in the quick one).

A diverged GAN fit (the engine's DivergenceError, naming the loss) leaves NaN measurements: no
claim holds.

Measured (quick preset, seed 0, one thread): the judge (test accuracy 0.975) finds all 10
classes and the FD falls from 485 at initialisation to 56 (0.12x), but the mean confidence is
0.81 and the VAE's binary samples are much closer to the test digits (FD 10.9 against 57):
``confident`` and ``fd_vs_vae`` are known failures at this budget (see their reasons).

Deviations: the "Inception" network of FID is the judge (Inception never saw 8x8 digits); FD
values are therefore on the judge's scale, comparable within a run only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.checkpoint import load_checkpoint, save_checkpoint
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure, show_images
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.binary import binarize, binary_images
from deepnotes.data.images import image_splits
from deepnotes.gans.judge import JudgeSettings, feature_statistics, fit_judge, frechet_distance
from deepnotes.gans.losses import LOSSES
from deepnotes.gans.models import ConvCritic, ConvGenerator
from deepnotes.gans.training import GANSettings, train_gan
from deepnotes.generative.vae import VAESettings, fit_vae

CLASSES = 10
CONFIDENCE = 0.9
"""The judge's mean confidence on the GAN's samples must reach this (the issue)."""
FAR_BELOW = 0.5
"""'Far below': the GAN's FD is at most this fraction of the baseline's (fixed in advance)."""
JUDGE_ACCURACY = 0.95
"""The judge's test accuracy must reach this for its verdicts to count (check)."""
FULL_STEPS = 8000
"""GAN steps of the full preset, where ``confident`` was measured to hold."""
KNOWN_LOW_CONFIDENCE = (
    "measured at the quick preset (1,500 steps, seed 0): mean confidence 0.81 (0.82 after "
    "2,000 steps at lr 5e-4), against 0.97 on the real test digits; FD was still falling "
    "(260 -> 97 -> 56): the GAN is far from converged in the quick budget; the full preset "
    "(8,000 steps) reaches 0.920 and holds"
)
KNOWN_VAE_BETTER = (
    "measured at the quick preset (1,500 steps, seed 0): FD of the binarised GAN samples 57 "
    "against 10.9 for the VAE's (5.3x, not <= 0.5x; 35 vs 10.9 after 2,000 steps at lr 5e-4): "
    "the VAE (2,000 steps) converges far faster than the GAN on the 1,078 training digits; the "
    "full preset (8,000 GAN steps, 8,000 VAE steps) gives 16.0 against 10.8 (1.48x): the VAE's "
    "samples stay closer to the binarised digits"
)


@dataclass(frozen=True)
class DigitsGANConfig:
    """Train a DCGAN-style GAN on the digits, a judge CNN and a VAE; judge their samples."""

    latent: int = 16
    g_width: int = 32
    """Channels of the generator's 4x4 stage (its 2x2 stage has twice as many)."""
    d_width: int = 16
    """Channels of the critic's first convolution (its second has twice as many)."""
    loss: str = "nonsaturating"
    """One of deepnotes.gans.losses.LOSSES."""
    spectral: bool = True
    """Spectral normalisation of every layer of the critic."""
    gp_weight: float = 0.0
    """Gradient-penalty weight lambda (10 with loss=wgan_gp); 0 turns it off."""
    n_critic: int = 1
    steps: int = FULL_STEPS
    batch: int = 64
    lr: float = 2e-4
    """Adam's step for both players (DCGAN's 2e-4)."""
    every: int = 500
    """Generator steps between records (FD over training, a snapshot, a checkpoint)."""
    samples: int = 1000
    """Generated images the judge scores (the test split has 359 real ones)."""
    snapshot: int = 12
    """Fixed codes drawn in the samples-over-training figure."""
    min_share: float = 0.01
    """A class is found when at least this share of the samples is assigned to it."""
    judge_width: int = 32
    judge_epochs: int = 30
    judge_lr: float = 3e-3
    vae_latent: int = 8
    vae_hidden: int = 256
    vae_steps: int = 8000

    def __post_init__(self) -> None:
        require(self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}")
        require(self.latent >= 1, f"latent must be >= 1, got {self.latent}")
        require(self.g_width >= 1 and self.d_width >= 1, "g_width and d_width must be >= 1")
        require(self.samples >= 100, f"samples must be >= 100, got {self.samples}")
        require(1 <= self.snapshot <= self.samples, "need 1 <= snapshot <= samples")
        require(
            0 <= self.min_share < 1 / CLASSES,
            f"min_share must be in [0, 0.1), got {self.min_share}",
        )
        require(self.vae_steps >= 1, f"vae_steps must be >= 1, got {self.vae_steps}")
        self.gan_settings  # noqa: B018 (validates steps, n_critic, gp_weight, lr, every)
        self.judge_settings  # noqa: B018
        VAESettings(self.vae_latent, self.vae_hidden, steps=self.vae_steps, every=self.vae_steps)

    @property
    def gan_settings(self) -> GANSettings:
        return GANSettings(
            loss=self.loss,
            steps=self.steps,
            n_critic=self.n_critic,
            batch=self.batch,
            lr_g=self.lr,
            lr_d=self.lr,
            betas=(0.5, 0.9) if self.loss == "wgan_gp" else (0.5, 0.999),
            gp_weight=self.gp_weight,
            every=self.every,
        )

    @property
    def judge_settings(self) -> JudgeSettings:
        return JudgeSettings(width=self.judge_width, epochs=self.judge_epochs, lr=self.judge_lr)

    @property
    def vae_settings(self) -> VAESettings:
        # the test NLL is not used here: one importance sample keeps fit_vae's scoring cheap
        return VAESettings(
            self.vae_latent, self.vae_hidden, steps=self.vae_steps, every=self.vae_steps, nll_k=1
        )

    @classmethod
    def quick(cls) -> DigitsGANConfig:
        """1,500 GAN steps, a 15-epoch judge, a 2,000-step VAE."""
        return cls(steps=1500, every=500, judge_epochs=15, vae_steps=2000)


@dataclass(frozen=True)
class DigitsGANMeasurements:
    """The judge's verdicts and Frechet distances, the training curves and sample images."""

    judge_accuracy: float
    fd: dict[str, float]
    """By name: ``gan``, ``init``, ``real`` (validation digits) against the grey test digits;
    ``gan_binary``, ``vae``, ``real_binary`` against the binarised test digits."""
    counts: dict[str, np.ndarray]
    """Judge labels per class, ``(10,)``, for ``gan``, ``init``, ``vae`` and ``real`` (test)."""
    confidence: dict[str, float]
    """Mean largest class probability for the same sets."""
    steps: np.ndarray
    """Steps of the records, (R,)."""
    fd_curve: np.ndarray
    """FD(GAN) against the grey test digits at each record, (R,)."""
    confidence_curve: np.ndarray
    """Mean confidence at each record, (R,)."""
    snapshots: np.ndarray
    """Samples at the ``snapshot`` fixed codes after each record, (R, S, 1, 8, 8)."""
    images: dict[str, np.ndarray]
    """100 images each of ``gan``, ``vae``, ``real`` (test), (100, 1, 8, 8)."""
    samples: int
    min_share: float
    diverged: str

    def covered(self, name: str) -> int:
        counts = self.counts[name]
        need = max(1, math.ceil(self.min_share * counts.sum() - 1e-9))
        return int((counts >= need).sum())

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "judge_test_accuracy": self.judge_accuracy,
            "diverged": self.diverged,
        }
        out.update({f"fd_{k}": v for k, v in self.fd.items()})
        for name in self.counts:
            out[f"classes_{name}"] = self.covered(name)
            out[f"confidence_{name}"] = self.confidence[name]
            out[f"counts_{name}"] = self.counts[name].tolist()
        return out


def _gan_key(cfg: DigitsGANConfig) -> dict[str, Any]:
    names = (
        "latent",
        "g_width",
        "d_width",
        "loss",
        "spectral",
        "gp_weight",
        "n_critic",
        "steps",
        "batch",
        "lr",
        "every",
        "samples",
        "snapshot",
    )
    return {name: getattr(cfg, name) for name in names}


def _build(cfg: DigitsGANConfig, ctx: RunContext) -> tuple[ConvGenerator, ConvCritic]:
    with ctx.seeded("gan", "init"):
        generator = ConvGenerator(cfg.latent, cfg.g_width, (1, 8, 8)).to(ctx.device)
        critic = ConvCritic(cfg.d_width, (1, 8, 8), spectral=cfg.spectral).to(ctx.device)
    return generator, critic


def _generate(generator: ConvGenerator, z: torch.Tensor) -> torch.Tensor:
    """Samples ``(N, 1, 8, 8)`` on the CPU, in eval mode (the mode is restored)."""
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        x = generator(z.to(next(generator.parameters()).device)).cpu()
    generator.train(was_training)
    return x


def _fit_gan(
    cfg: DigitsGANConfig, ctx: RunContext, train: torch.Tensor, judge_fd: Any
) -> dict[str, Any]:
    """Train the GAN; after every round record FD(GAN) and the confidence on the fixed codes,
    and keep a snapshot file per round (so a resumed fit keeps the earlier ones)."""
    generator, critic = _build(cfg, ctx)
    z = torch.randn(cfg.samples, cfg.latent, generator=ctx.stream("gan", "codes"))

    def data(n: int, g: torch.Generator) -> torch.Tensor:
        return train[torch.randint(len(train), (n,), generator=g)]  # (n, 1, 8, 8)

    def snapshot_path(r: int) -> Path:
        return ctx.path(f"snapshots/gan-round-{r}.pt")

    def evaluate(r: int) -> dict[str, float]:
        x = _generate(generator, z)
        save_checkpoint(snapshot_path(r), {"images": x[: cfg.snapshot].clone()})
        fd, confidence = judge_fd(x)
        return {"fd": fd, "confidence": confidence}

    try:
        result = train_gan(
            generator,
            critic,
            data,
            cfg.gan_settings,
            ctx,
            latent_dim=cfg.latent,
            tag="gan",
            evaluate=evaluate,
        )
    except DivergenceError as err:
        return {"diverged": str(err)}
    history = result.history
    snapshots = torch.stack(
        [load_checkpoint(snapshot_path(r + 1))["images"] for r in range(len(history))]
    )
    return {
        "diverged": "",
        "state": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "steps": [int(h["step"]) for h in history],
        "fd": [float(h["fd"]) for h in history],
        "confidence": [float(h["confidence"]) for h in history],
        "snapshots": snapshots,
    }


def measure(cfg: DigitsGANConfig, ctx: RunContext) -> DigitsGANMeasurements:
    """Judge, GAN and VAE fits (each cached), then every verdict and distance."""
    splits = image_splits("digits", seed=ctx.seed)
    real_test, real_val = splits.test.tensors[0], splits.val.tensors[0]
    judge = fit_judge(cfg.judge_settings, ctx, splits)
    test_stats = feature_statistics(judge.features(real_test))

    def judge_fd(x: torch.Tensor) -> tuple[float, float]:
        fd = frechet_distance(*feature_statistics(judge.features(x)), *test_stats)
        return fd, judge.verdict(x, cfg.min_share).mean_confidence

    fit = ctx.cached(
        "gan",
        _gan_key(cfg) | {"judge": vars(cfg.judge_settings)},
        lambda: _fit_gan(cfg, ctx, splits.train.tensors[0], judge_fd),
    )
    generator, _ = _build(cfg, ctx)
    z = torch.randn(cfg.samples, cfg.latent, generator=ctx.stream("gan", "codes"))
    initial = _generate(generator, z)
    vae = fit_vae(cfg.vae_settings, ctx, binary_images(seed=ctx.seed))
    with torch.no_grad():
        vae_samples = vae.model.sample(cfg.samples, ctx.stream("vae", "samples")).cpu()

    binary_test = binarize(real_test)
    binary_stats = feature_statistics(judge.features(binary_test))
    sets: dict[str, torch.Tensor] = {"init": initial, "vae": vae_samples, "real": real_test}
    fd = {
        "init": frechet_distance(*feature_statistics(judge.features(initial)), *test_stats),
        "real": judge.frechet(real_val, real_test),
        "vae": frechet_distance(*feature_statistics(judge.features(vae_samples)), *binary_stats),
        "real_binary": judge.frechet(binarize(real_val), binary_test),
    }
    nan = math.nan
    if fit["diverged"]:
        fd.update(gan=nan, gan_binary=nan)
        rounds = 0
        gan = torch.full_like(initial, nan)
    else:
        generator.load_state_dict(fit["state"])
        gan = _generate(generator, z)
        sets["gan"] = gan
        fd["gan"] = frechet_distance(*feature_statistics(judge.features(gan)), *test_stats)
        fd["gan_binary"] = frechet_distance(
            *feature_statistics(judge.features(binarize(gan))), *binary_stats
        )
        rounds = len(fit["steps"])
    verdicts = {name: judge.verdict(x, cfg.min_share) for name, x in sets.items()}
    counts = {name: v.counts for name, v in verdicts.items()}
    confidence = {name: v.mean_confidence for name, v in verdicts.items()}
    if "gan" not in sets:
        counts["gan"], confidence["gan"] = np.zeros(CLASSES, dtype=np.int64), nan
    return DigitsGANMeasurements(
        judge_accuracy=judge.test_accuracy,
        fd=fd,
        counts=counts,
        confidence=confidence,
        steps=np.asarray(fit.get("steps", []), dtype=int),
        fd_curve=np.asarray(fit.get("fd", []), dtype=float),
        confidence_curve=np.asarray(fit.get("confidence", []), dtype=float),
        snapshots=(fit["snapshots"].numpy() if rounds else np.zeros((0, cfg.snapshot, 1, 8, 8))),
        images={
            "gan": gan[:100].numpy(),
            "vae": vae_samples[:100].numpy(),
            "real": real_test[:100].numpy(),
        },
        samples=cfg.samples,
        min_share=cfg.min_share,
        diverged=fit["diverged"],
    )


def draw(m: DigitsGANMeasurements, cfg: DigitsGANConfig, ctx: RunContext) -> list[Path]:
    fig, axes = figure(ncols=5, size=(3.0, 3.3))
    panels = [
        ("real test digits", m.images["real"]),
        (f"GAN samples (FD {m.fd['gan']:.1f})", m.images["gan"]),
        (
            f"GAN binarised (FD {m.fd['gan_binary']:.1f})",
            binarize(torch.from_numpy(m.images["gan"])).numpy(),
        ),
        (f"VAE samples, binary (FD {m.fd['vae']:.1f})", m.images["vae"]),
    ]
    for ax, (title, images) in zip(axes[:4], panels, strict=True):
        show_images(ax, images, title, columns=10)
    ax = axes[4]
    width = 0.27
    for k, (name, label) in enumerate((("real", "real test"), ("gan", "GAN"), ("vae", "VAE"))):
        counts = m.counts[name]
        share = counts / max(1, counts.sum())
        ax.bar(
            np.arange(CLASSES) + (k - 1) * width,
            share,
            width,
            label=f"{label} (conf. {m.confidence[name]:.2f})",
        )
    ax.axhline(m.min_share, color="grey", ls=":", lw=1, label=f"found: >= {m.min_share:g}")
    ax.set_xticks(range(CLASSES))
    ax.set_xlabel("judge's class")
    ax.set_ylabel("share of images")
    ax.set_title("judge's labels", fontsize=9)
    ax.legend(fontsize=6)
    samples_png = ctx.savefig(fig, "samples")

    fig, (left, right) = figure(ncols=2, size=(4.6, 3.8))
    if len(m.snapshots):
        show_images(left, m.snapshots.reshape(-1, 8, 8), columns=m.snapshots.shape[1])
        left.set_axis_on()
        left.set_yticks([1 + 9 * r + 4 for r in range(len(m.steps))], [str(s) for s in m.steps])
        left.set_xticks([])
        left.set_ylabel("generator step")
    left.set_title("samples at fixed codes over training", fontsize=9)
    right.plot(m.steps, m.fd_curve, "o-", color="C0", label="FD(GAN), grey")
    right.axhline(
        m.fd["init"], color="C3", ls="--", lw=1, label=f"generator at init ({m.fd['init']:.1f})"
    )
    right.axhline(
        m.fd["real"], color="grey", ls=":", lw=1, label=f"validation digits ({m.fd['real']:.1f})"
    )
    right.set_yscale("log")
    right.set_xlabel("generator step")
    right.set_ylabel("Frechet distance to the test digits")
    twin = right.twinx()
    twin.plot(m.steps, m.confidence_curve, "s-", color="C2", ms=3, label="mean confidence")
    twin.axhline(CONFIDENCE, color="C2", ls=":", lw=1)
    twin.set_ylim(0, 1)
    twin.set_ylabel("judge's mean confidence", color="C2")
    right.legend(fontsize=7, loc="center right")
    right.set_title(f"{cfg.loss}{' + spectral norm' if cfg.spectral else ''}", fontsize=9)
    return [samples_png, ctx.savefig(fig, "training")]


def claims(m: DigitsGANMeasurements, cfg: DigitsGANConfig) -> list[Claim]:
    note = f"; the GAN diverged: {m.diverged}" if m.diverged else ""
    fd = m.fd
    return [
        Claim.at_least(
            f"the judge finds all {CLASSES} classes among the GAN's samples (each gets at "
            f"least {m.min_share:.0%} of them)",
            m.covered("gan") if not m.diverged else math.nan,
            CLASSES,
            f"judge labels of {m.samples} samples per class {m.counts['gan'].tolist()}" + note,
            key="all_classes",
        ),
        Claim.at_least(
            f"the judge's mean confidence on the GAN's samples is >= {CONFIDENCE:g}",
            m.confidence["gan"],
            CONFIDENCE,
            f"on the real test digits {m.confidence['real']:.3f}, on the generator at init "
            f"{m.confidence['init']:.3f}, on the VAE's samples {m.confidence['vae']:.3f}" + note,
            key="confident",
            known_failure=KNOWN_LOW_CONFIDENCE if cfg.steps < FULL_STEPS else "",
        ),
        Claim.at_most(
            f"the GAN's Frechet distance is at most {FAR_BELOW:g}x that of the generator at "
            "initialisation (grey digits)",
            fd["gan"] / fd["init"],
            FAR_BELOW,
            f"FD(GAN) {fd['gan']:.2f}, FD(init) {fd['init']:.2f}, validation digits "
            f"{fd['real']:.2f}, against the grey test digits" + note,
            key="fd_vs_init",
            baseline="the generator at initialisation, same codes, this run",
        ),
        Claim.at_most(
            f"the GAN's Frechet distance is at most {FAR_BELOW:g}x that of the VAE's samples "
            "(both binary)",
            fd["gan_binary"] / fd["vae"],
            FAR_BELOW,
            f"FD(GAN binarised at 0.5) {fd['gan_binary']:.2f}, FD(VAE Bernoulli samples) "
            f"{fd['vae']:.2f}, validation digits {fd['real_binary']:.2f}, against the "
            "binarised test digits" + note,
            key="fd_vs_vae",
            baseline="the VAE's samples (binarised digits), this run",
            known_failure=KNOWN_VAE_BETTER,
        ),
        Claim.at_least(
            f"the judge classifies the real test digits with accuracy >= {JUDGE_ACCURACY:g}",
            m.judge_accuracy,
            JUDGE_ACCURACY,
            f"{cfg.judge_epochs} epochs, width {cfg.judge_width}",
            key="judge_accuracy",
            kind="check",
        ),
    ]


@experiment(
    "gans.digits",
    topic="gans",
    config=DigitsGANConfig,
    claims=("all_classes", "confident", "fd_vs_init", "fd_vs_vae"),
    checks=("judge_accuracy",),
)
def digits(cfg: DigitsGANConfig, ctx: RunContext) -> Outcome:
    """A DCGAN-style generator trained with a stabilised loss makes digits of every class that
    the project's own classifier recognises with confidence, far closer in its features to the
    real digits than a generator at initialisation or the VAE's samples."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
