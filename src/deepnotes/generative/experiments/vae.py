r"""The VAE on binarised digits: the importance-weighted bound, the closed-form KL, the variance of
the two gradient estimators, and why its images are blurry. Notes: discussion 10, section 4.1
"Varational Autoencoders (VAE)" (ELBO), 4.2 "Variational Inference" (the reparameterisation
trick "has low variance"; problem 6), problem 2 "Blurry Images"; issue 14, experiment 3. Anchors:
Kingma & Welling (2014); Burda et al. (2016), whose IWAE bound rises with k (their table 1).

A :class:`~deepnotes.generative.vae.VAE` (MLP encoder and decoder, one hidden layer of
``hidden`` units, ``latent``-dimensional z) is trained on the 1078 binarised training digits by
:func:`~deepnotes.generative.vae.fit_vae` (Adam on minus the one-sample ELBO, through the
engine's Loop, cached). On the test digits:

Claims (thresholds fixed before the run):

- ``iwae_monotone``: the importance-weighted bound rises with k over ``ks`` = 1, 5, 50, 500:
  each step up is a paired test over the test images (per-image bounds, independent draws),
  Bonferroni over the steps; means and standard errors are drawn.
- ``iwae_above_elbo``: the bound at every k > 1 is above the ELBO (closed-form KL, the
  reconstruction term averaged over ``elbo_samples`` draws): paired tests, Bonferroni.
- ``reparam_variance``: for the gradient of :math:`\mathbb E_q[\log p_\theta(x|z)]` with respect
  to the encoder's parameters (the ELBO's only sampled term), the score-function estimator's
  total variance (trace of the covariance, summed over ``grad_images`` test images) is at least
  :data:`VARIANCE_RATIO` = 10 times the reparameterisation estimator's (the issue's bar).
- ``blurry_reconstructions`` / ``blurry_samples`` (problem 2): the VAE's mean reconstructions
  :math:`\mathbb E[x|z=\mu_\phi(x)]` and its samples :math:`\mathbb E[x|z]`, :math:`z \sim p(z)`
  (pixel probabilities, the usual display) carry less high-frequency energy than the test
  digits: ratio < 1 (:func:`~deepnotes.generative.spectra.blur_ratio`, frequencies from 0.25
  cycles per pixel).

The other half of problem 2, that an autoregressive model's samples are not blurry, is claimed
by ``generative.likelihoods``, which trains the PixelCNN and this VAE side by side.

Checks (identities of the implementation):

- ``kl_closed_form``: the closed-form KL equals its Monte Carlo estimate (``kl_samples`` draws
  of :math:`\log q - \log p` per test image): every image's standardised deviation within the
  agreement bound (two-sided 1%, Bonferroni over the images).
- ``iwae1_is_elbo``: at k = 1 the importance-weighted bound is an unbiased estimate of the
  ELBO: mean difference within the agreement bound.
- ``toy_estimators`` (problem 6): for :math:`x \sim \mathcal N(\theta, 1)`, both estimators of
  :math:`\frac{d}{d\theta}\mathbb E[x^2]` average to :math:`2\theta` and their variances equal the
  closed forms 4 and :math:`\theta^4 + 14\theta^2 + 15`, at every θ of ``toy_thetas``
  (``toy_samples`` draws; standard errors from the estimators' exact moments by Gauss-Hermite
  quadrature; agreement bound over the 4 x len(toy_thetas) deviations).

Deviation: "samples" in the blurriness claim are the decoder's means, as VAE figures show them;
sampling every pixel from them adds salt-and-pepper noise, whose high-frequency energy is reported
in the detail and drawn, not claimed.
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
from deepnotes.generative.likelihood import IndependentBernoulli, bits_per_dim
from deepnotes.generative.spectra import (
    DEFAULT_CUTOFF,
    high_frequency_energy,
    radial_spectrum,
)
from deepnotes.generative.vae import (
    VAESettings,
    fit_vae,
    gaussian_kl,
    gradient_total_variance,
    monte_carlo_kl,
    toy_gradient_samples,
    toy_moments,
    toy_variances,
)

VARIANCE_RATIO = 10.0
"""The score-function estimator's variance must be at least this many times the
reparameterisation estimator's (issue 14)."""
ESTIMATORS = ("reparameterisation", "score_function")


@dataclass(frozen=True)
class VAEConfig:
    """Train a VAE on binarised digits, then measure its bounds, gradients and blur."""

    latent: int = 8
    hidden: int = 256
    lr: float = 1e-3
    batch: int = 64
    steps: int = 10000
    every: int = 500
    ks: tuple[int, ...] = (1, 5, 50, 500)
    """Importance samples of the bounds (ascending); the largest is the test NLL's."""
    elbo_samples: int = 100
    kl_samples: int = 1000
    grad_images: int = 8
    grad_samples: int = 2000
    toy_thetas: tuple[float, ...] = (0.0, 1.0, 2.0)
    toy_samples: int = 1_000_000

    def __post_init__(self) -> None:
        require(
            len(self.ks) >= 2 and all(a < b for a, b in zip(self.ks, self.ks[1:], strict=False)),
            f"ks must be at least two ascending sample counts, got {self.ks}",
        )
        require(self.ks[0] == 1, f"ks must start at 1 (the ELBO's estimate), got {self.ks}")
        require(self.elbo_samples >= 1, "elbo_samples must be >= 1")
        require(self.kl_samples >= 2 and self.grad_samples >= 2, "need >= 2 samples for an SE")
        require(self.grad_images >= 1, f"grad_images must be >= 1, got {self.grad_images}")
        require(len(self.toy_thetas) >= 1 and self.toy_samples >= 2, "need toy thetas and samples")
        self.settings()  # validates the VAE's fields

    @classmethod
    def quick(cls) -> VAEConfig:
        """2000 training steps."""
        return cls(steps=2000)

    def settings(self) -> VAESettings:
        return VAESettings(
            latent=self.latent,
            hidden=self.hidden,
            lr=self.lr,
            batch=self.batch,
            steps=self.steps,
            every=self.every,
            nll_k=self.ks[-1],
        )


@dataclass(frozen=True)
class VAEMeasurements:
    """Per-image bounds, KL deviations, gradient variances and high-frequency energies."""

    ks: tuple[int, ...]
    bounds: np.ndarray
    """Importance-weighted bound per k and test image (K, N), nats."""
    elbo: np.ndarray
    """ELBO per test image (N,)."""
    kl_z: np.ndarray
    """Standardised deviation of the Monte Carlo KL from the closed form, per test image (N,)."""
    kl_mean: float
    """Mean closed-form KL over the test images (nats)."""
    grad_variance: dict[str, np.ndarray]
    """Total variance of the single-sample gradient per estimator and image (grad_images,)."""
    toy: dict[str, np.ndarray]
    """Per theta: "mean_<est>", "var_<est>" (sample) and their exact SEs "mean_se_<est>",
    "var_se_<est>" (T,)."""
    high_frequency: dict[str, np.ndarray]
    """High-frequency energy per image: "data", "reconstructions", "samples", "binary_samples"."""
    spectra: dict[str, np.ndarray]
    """Band frequencies ("bands") and mean power per band for each set of images."""
    grids: dict[str, np.ndarray]
    """64 images each for the figure: "data", "reconstructions", "samples", "binary_samples"."""
    baseline_nll: float
    """Independent-Bernoulli baseline's test NLL (nats per image)."""
    history: list[dict[str, Any]]
    pixels: int

    def ratio(self, which: str) -> float:
        return float(self.high_frequency[which].mean() / self.high_frequency["data"].mean())

    @property
    def variance_ratio(self) -> float:
        g = self.grad_variance
        return float(g["score_function"].sum() / g["reparameterisation"].sum())

    def metrics(self) -> dict[str, Any]:
        nll = float(-self.bounds[-1].mean())
        out: dict[str, Any] = {
            "test_nll_nats": nll,
            "test_nll_bits_per_dim": float(bits_per_dim(nll, self.pixels)),
            "baseline_nll_nats": self.baseline_nll,
            "test_elbo_nats": float(self.elbo.mean()),
            "mean_kl_nats": self.kl_mean,
            "gradient_variance_ratio": self.variance_ratio,
        }
        for k, row in zip(self.ks, self.bounds, strict=True):
            out[f"iwae_k{k}"] = float(row.mean())
        for which in ("reconstructions", "samples", "binary_samples"):
            out[f"high_frequency_ratio_{which}"] = self.ratio(which)
        return out


def _toy(cfg: VAEConfig, ctx: RunContext) -> dict[str, np.ndarray]:
    """Sample mean and variance of both estimators per theta, with their exact standard errors
    (from the estimators' exact moments, :func:`~deepnotes.generative.vae.toy_moments`: the
    score function's heavy tails make plug-in SEs of its variance unreliable)."""
    n = cfg.toy_samples
    out: dict[str, list[float]] = {}
    for i, theta in enumerate(cfg.toy_thetas):
        draws = toy_gradient_samples(theta, n, ctx.stream("toy", i))
        for est in ESTIMATORS:
            values = draws[est].numpy()
            _, var, mu4 = toy_moments(theta, est)
            se_var = math.sqrt(mu4 / n - (n - 3) * var**2 / (n * (n - 1)))
            for name, v in (
                ("mean", values.mean()),
                ("mean_se", math.sqrt(var / n)),
                ("var", values.var(ddof=1)),
                ("var_se", se_var),
            ):
                out.setdefault(f"{name}_{est}", []).append(float(v))
    return {k: np.array(v) for k, v in out.items()}


def measure(cfg: VAEConfig, ctx: RunContext) -> VAEMeasurements:
    """Fit the VAE (cached), then compute every bound, check and spectrum on the test digits."""
    splits = binary_images(seed=ctx.seed)
    train, test = splits.train.tensors[0], splits.test.tensors[0]
    fit = fit_vae(cfg.settings(), ctx, splits)
    model, dev = fit.model, ctx.device
    x = test.to(dev)
    with torch.no_grad():
        bounds = model.iwae_curve(x, tuple(cfg.ks), ctx.stream("iwae")).cpu().numpy()
        elbo = model.elbo(x, ctx.stream("elbo"), samples=cfg.elbo_samples).cpu().numpy()
        mu, logvar = model.encode(x)
        closed = gaussian_kl(mu, logvar).cpu().numpy()
        mc_mean, mc_se = stats.mean_and_se(
            monte_carlo_kl(mu, logvar, cfg.kl_samples, ctx.stream("kl")).cpu().numpy()
        )
        images = {
            "data": test,
            "reconstructions": model.reconstruct_mean(x).cpu(),
            "samples": model.sample_means(test.shape[0], ctx.stream("samples")).cpu(),
            "binary_samples": model.sample(test.shape[0], ctx.stream("binary-samples")).cpu(),
        }
    variances: dict[str, list[float]] = {est: [] for est in ESTIMATORS}
    for i in range(cfg.grad_images):
        total = gradient_total_variance(
            model, x[i : i + 1], cfg.grad_samples, ctx.stream("grad", i)
        )
        for est in ESTIMATORS:
            variances[est].append(total[est])
    spectra = {}
    for name, imgs in images.items():
        bands, power = radial_spectrum(imgs)
        spectra["bands"], spectra[name] = bands.numpy(), power.numpy()
    return VAEMeasurements(
        ks=tuple(cfg.ks),
        bounds=bounds,
        elbo=elbo,
        kl_z=stats.standardized_deviation(mc_mean, mc_se, closed),
        kl_mean=float(closed.mean()),
        grad_variance={est: np.array(v) for est, v in variances.items()},
        toy=_toy(cfg, ctx),
        high_frequency={name: high_frequency_energy(imgs).numpy() for name, imgs in images.items()},
        spectra=spectra,
        grids={name: imgs[:64].numpy() for name, imgs in images.items()},
        baseline_nll=float(IndependentBernoulli(train).nll(test).mean()),
        history=fit.history,
        pixels=math.prod(test.shape[1:]),
    )


def draw(m: VAEMeasurements, cfg: VAEConfig, ctx: RunContext) -> list[Path]:
    paths = []
    fig, ax = figure(size=(5.6, 4.0))
    mean, se = stats.mean_and_se(-m.bounds, axis=1)
    ax.errorbar(m.ks, mean, yerr=se, marker="o", capsize=3, label="-IWAE bound (mean +- SE)")
    e_mean, e_se = stats.mean_se(-m.elbo)
    ax.axhspan(e_mean - e_se, e_mean + e_se, color="C1", alpha=0.3)
    ax.axhline(e_mean, color="C1", lw=1, label=f"-ELBO ({cfg.elbo_samples} samples) {e_mean:.2f}")
    ax.axhline(
        m.baseline_nll,
        color="grey",
        ls="--",
        lw=1,
        label=f"independent Bernoulli {m.baseline_nll:.2f}",
    )
    ax.set_xscale("log")
    ax.set_xlabel("importance samples k")
    ax.set_ylabel("test NLL bound (nats per image)")
    ax.set_title(
        f"VAE on binarised digits (z in R^{cfg.latent}): the bound tightens with k", fontsize=9
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    paths.append(ctx.savefig(fig, "iwae_bound"))

    fig, axes = figure(ncols=4, size=(3.0, 3.2))
    titles = {
        "data": "test digits",
        "reconstructions": "mean reconstructions",
        "samples": "samples (decoder means)",
        "binary_samples": "samples (pixels drawn)",
    }
    for ax, (key, title) in zip(axes, titles.items(), strict=True):
        show_images(ax, m.grids[key], title)
    paths.append(ctx.savefig(fig, "samples"))

    fig, (ax_v, ax_t) = figure(ncols=2, size=(4.4, 3.6))
    idx = np.arange(m.grad_variance["reparameterisation"].size)
    for j, est in enumerate(ESTIMATORS):
        ax_v.bar(idx + (j - 0.5) * 0.4, m.grad_variance[est], 0.4, label=est.replace("_", " "))
    ax_v.set_yscale("log")
    ax_v.set_xlabel("test image")
    ax_v.set_ylabel("total variance of one-sample gradient")
    ax_v.set_title(f"VAE encoder gradient: ratio {m.variance_ratio:.3g}", fontsize=9)
    ax_v.legend(fontsize=7)
    t = np.arange(len(cfg.toy_thetas))
    for j, est in enumerate(ESTIMATORS):
        ax_t.bar(
            t + (j - 0.5) * 0.4,
            m.toy[f"var_{est}"],
            0.4,
            yerr=2 * m.toy[f"var_se_{est}"],
            label=f"{est.replace('_', ' ')} (measured +- 2 SE)",
            color=f"C{j}",
        )
        exact = [toy_variances(th)[est] for th in cfg.toy_thetas]
        ax_t.scatter(t + (j - 0.5) * 0.4, exact, color="k", marker="_", s=300, zorder=3)
    ax_t.set_xticks(t, [f"theta = {th:g}" for th in cfg.toy_thetas])
    ax_t.set_ylabel("variance (black: closed form)")
    ax_t.set_title("problem 6: d/dtheta E[x^2], x ~ N(theta, 1)", fontsize=9)
    ax_t.legend(fontsize=7)
    paths.append(ctx.savefig(fig, "gradient_variance"))

    fig, (ax_s, ax_b) = figure(ncols=2, size=(4.4, 3.6))
    for key, title in titles.items():
        ax_s.plot(m.spectra["bands"], m.spectra[key], marker="o", label=title)
    ax_s.axvline(DEFAULT_CUTOFF, color="grey", ls=":", lw=1)
    ax_s.set_yscale("log")
    ax_s.set_xlabel("frequency band max(|f_y|, |f_x|) (cycles/pixel)")
    ax_s.set_ylabel("mean power per band")
    ax_s.legend(fontsize=7)
    names = list(titles)
    ax_b.bar(
        range(len(names)), [m.ratio(k) for k in names], color=[f"C{i}" for i in range(len(names))]
    )
    ax_b.axhline(1.0, color="k", lw=1)
    ax_b.set_xticks(range(len(names)), [titles[k].replace(" (", "\n(") for k in names], fontsize=7)
    ax_b.set_ylabel(f"high-frequency energy / data's (>= {DEFAULT_CUTOFF:g} cyc/px)")
    ax_b.set_title("problem 2: VAE means are blurry", fontsize=9)
    paths.append(ctx.savefig(fig, "spectrum"))
    return paths


def claims(m: VAEMeasurements, cfg: VAEConfig) -> list[Claim]:
    steps = len(m.ks) - 1
    rises = [stats.paired(m.bounds[i + 1], m.bounds[i], family=steps) for i in range(steps)]
    weakest = min(range(steps), key=lambda i: rises[i].statistic)
    above = [stats.paired(m.bounds[i], m.elbo, family=steps) for i in range(1, len(m.ks))]
    lowest = min(range(steps), key=lambda i: above[i].statistic)
    means = ", ".join(
        f"k={k}: {row.mean():.3f} +- {stats.mean_se(row)[1]:.3f}"
        for k, row in zip(m.ks, m.bounds, strict=True)
    )
    elbo_mean, elbo_se = stats.mean_se(m.elbo)
    kl_bound = stats.agreement_bound(m.kl_z.size)
    iw1 = stats.mean_se(m.bounds[0] - m.elbo)
    iw1_z = abs(stats.standardized(*iw1))
    toy_z = []
    for est in ESTIMATORS:
        exact_var = np.array([toy_variances(th)[est] for th in cfg.toy_thetas])
        toy_z.append(
            stats.standardized_deviation(
                m.toy[f"mean_{est}"], m.toy[f"mean_se_{est}"], 2 * np.array(cfg.toy_thetas)
            )
        )
        toy_z.append(
            stats.standardized_deviation(m.toy[f"var_{est}"], m.toy[f"var_se_{est}"], exact_var)
        )
    toy_z_all = np.abs(np.concatenate(toy_z))
    toy_bound = stats.agreement_bound(toy_z_all.size)
    toy_text = "; ".join(
        f"theta={th:g}: means {m.toy['mean_reparameterisation'][i]:.3f} / "
        f"{m.toy['mean_score_function'][i]:.3f} (2 theta = {2 * th:g}), variances "
        f"{m.toy['var_reparameterisation'][i]:.3f} / {m.toy['var_score_function'][i]:.2f} "
        f"(exact 4 / {toy_variances(th)['score_function']:g})"
        for i, th in enumerate(cfg.toy_thetas)
    )
    gv = m.grad_variance
    per_image = gv["score_function"] / gv["reparameterisation"]
    return [
        Claim.from_test(
            f"the importance-weighted bound rises with k over k = {', '.join(map(str, m.ks))}",
            rises[weakest],
            f"weakest step k={m.ks[weakest]} -> {m.ks[weakest + 1]}; bounds (nats, mean +- SE) "
            + means,
            key="iwae_monotone",
        ),
        Claim.from_test(
            "the importance-weighted bound stays above the ELBO at every k > 1",
            above[lowest],
            f"lowest at k={m.ks[lowest + 1]}; ELBO {elbo_mean:.3f} +- {elbo_se:.3f} "
            f"({cfg.elbo_samples} samples, closed-form KL)",
            key="iwae_above_elbo",
        ),
        Claim.at_least(
            f"the reparameterisation gradient of E_q[log p(x|z)] wrt the encoder has >= "
            f"{VARIANCE_RATIO:g}x lower variance than the score-function estimator",
            m.variance_ratio,
            VARIANCE_RATIO,
            f"total variance summed over {gv['reparameterisation'].size} test images, "
            f"{cfg.grad_samples} draws each; per-image ratios from {per_image.min():.3g} to "
            f"{per_image.max():.3g}",
            key="reparam_variance",
        ),
        Claim.compare(
            "the VAE's mean reconstructions carry less high-frequency energy than the data",
            m.ratio("reconstructions"),
            "<",
            1.0,
            f"ratio of mean high-frequency energy (>= {DEFAULT_CUTOFF:g} cycles/pixel) over the "
            f"{m.elbo.size} test digits",
            key="blurry_reconstructions",
        ),
        Claim.compare(
            "the VAE's samples (decoder means, z ~ p(z)) carry less high-frequency energy than "
            "the data",
            m.ratio("samples"),
            "<",
            1.0,
            f"{m.high_frequency['samples'].size} samples; with every pixel drawn from them the "
            f"ratio is {m.ratio('binary_samples'):.3f} (salt-and-pepper noise, not sharpness)",
            key="blurry_samples",
        ),
        Claim.at_most(
            "the closed-form Gaussian KL equals its Monte Carlo estimate (max |z| over test "
            "images)",
            float(np.max(np.abs(m.kl_z))),
            kl_bound,
            f"{cfg.kl_samples} draws per image; mean KL {m.kl_mean:.3f} nats; agreement bound "
            f"two-sided 1%, Bonferroni over {m.kl_z.size} images",
            key="kl_closed_form",
            kind="check",
        ),
        Claim.at_most(
            "at k = 1 the importance-weighted bound is an unbiased estimate of the ELBO (|z|)",
            iw1_z,
            stats.agreement_bound(1),
            f"mean difference {iw1[0]:.4f} +- {iw1[1]:.4f} nats over {m.elbo.size} images",
            key="iwae1_is_elbo",
            kind="check",
        ),
        Claim.at_most(
            "problem 6: both estimators of d/dtheta E[x^2] average 2 theta and their variances "
            "equal 4 and theta^4 + 14 theta^2 + 15 (max |z|)",
            float(toy_z_all.max()),
            toy_bound,
            f"{cfg.toy_samples} draws per theta; {toy_text}",
            key="toy_estimators",
            kind="check",
        ),
    ]


@experiment(
    "generative.vae",
    topic="generative",
    config=VAEConfig,
    claims=(
        "iwae_monotone",
        "iwae_above_elbo",
        "reparam_variance",
        "blurry_reconstructions",
        "blurry_samples",
    ),
    checks=("kl_closed_form", "iwae1_is_elbo", "toy_estimators"),
)
def vae(cfg: VAEConfig, ctx: RunContext) -> Outcome:
    """The VAE's importance-weighted bound rises with k above the ELBO, the reparameterisation
    gradient has far lower variance than the score function's, and its images are blurry."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
