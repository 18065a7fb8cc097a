r"""The variational autoencoder and the latent-variable models around it (notes, discussion 10,
section 4 "Latent Variable Models", 4.1 "Varational Autoencoders (VAE)", 4.2 "Variational
Inference").

Kingma & Welling (2014), "Auto-Encoding Variational Bayes", https://arxiv.org/abs/1312.6114;
Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders",
https://arxiv.org/abs/1509.00519.

- :class:`VAE`: a Gaussian encoder :math:`q_\phi(z|x) = \mathcal N(\mu_\phi(x),
  \operatorname{diag} \sigma^2_\phi(x))` (it outputs :math:`\mu` and :math:`\log \sigma^2`), a
  Bernoulli decoder :math:`p_\theta(x|z)` (one logit per pixel), the prior
  :math:`p(z) = \mathcal N(0, I)`, the reparameterisation :math:`z = \mu + \sigma \odot
  \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`, and the ELBO

  .. math:: \mathcal L(x) = \mathbb E_{z \sim q_\phi(z|x)}[\log p_\theta(x|z)]
            - D_{KL}(q_\phi(z|x) \| p(z)),

  its KL term in closed form (:func:`gaussian_kl`:
  :math:`\tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2)`).
- :meth:`VAE.iwae`: the importance-weighted bound with ``k`` samples
  :math:`\log \frac1k \sum_{i=1}^k \frac{p_\theta(x|z_i) p(z_i)}{q_\phi(z_i|x)}`, ``z_i ~ q``,
  computed with ``logsumexp`` (stable), batched over ``k``. It is the ELBO in expectation at
  ``k = 1``, rises with ``k`` and tends to :math:`\log p_\theta(x)`: the VAE's test NLL.
- :func:`encoder_gradient_samples`: one-sample estimates of :math:`\nabla_\phi
  \mathbb E_q[\log p_\theta(x|z)]` (the ELBO's only sampled term) by the reparameterisation
  trick and by the score function (REINFORCE) :math:`f(z) \nabla_\phi \log q_\phi(z|x)`, for
  the variance comparison; :func:`toy_gradient_samples` does the same for the notes' problem 6
  (:math:`\frac{d}{d\theta} \mathbb E_{x \sim \mathcal N(\theta, 1)}[x^2] = 2\theta`) and
  :func:`toy_variances` gives the two estimators' exact variances.
- :class:`MixtureOfBernoullis`: a discrete latent-variable model small enough to sum over
  :math:`z` (problems 3 and 4: its exact log-likelihood, the ELBO of any :math:`q` below it,
  equal at the posterior).
- :func:`fit_vae`: train a VAE on binarised images through the engine's Loop (cached), and
  score its test NLL by the importance-weighted bound.

Likelihoods are in nats per image (:mod:`deepnotes.generative.likelihood` converts to bits per
dimension).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.data.binary import check_binary
from deepnotes.data.digits import Splits
from deepnotes.generative.likelihood import bernoulli_nll, bits_per_dim

LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- Gaussian pieces


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`D_{KL}(\mathcal N(\mu, \operatorname{diag} e^{\log\sigma^2}) \| \mathcal N(0, I))
    = \tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2)`, ``(N,)`` for ``(N, d)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \mathcal N(z; \mu, \operatorname{diag} e^{\log\sigma^2})`, summed over the
    last axis (broadcasting the others)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def monte_carlo_kl(
    mu: torch.Tensor, logvar: torch.Tensor, samples: int, generator: torch.Generator
) -> torch.Tensor:
    r"""``samples`` draws of :math:`\log q(z) - \log p(z)`, ``z ~ q``: ``(samples, N)``; their mean
    estimates :func:`gaussian_kl`."""
    eps = torch.randn((samples, *mu.shape), generator=generator, dtype=mu.dtype).to(mu.device)
    z = mu + (0.5 * logvar).exp() * eps  # (S, N, d)
    zeros = torch.zeros_like(mu)
    return log_normal(z, mu, logvar) - log_normal(z, zeros, zeros)


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- the VAE


class VAE(nn.Module):
    """Gaussian encoder, Bernoulli decoder, standard normal prior (module docstring).

    Arguments:
        image_shape: ``(C, H, W)`` of the binary images.
        latent: dimension ``d`` of ``z``.
        hidden: widths of the hidden layers of the encoder (the decoder mirrors them).

    Example:
        >>> vae = VAE((1, 8, 8), latent=8, hidden=(128,))
        >>> g = torch.Generator().manual_seed(0)
        >>> loss = -vae.elbo(x, g).mean()          # x: (N, 1, 8, 8) of 0/1
        >>> nll = -vae.iwae(x, k=500, generator=g)  # (N,) nats per image
    """

    def __init__(
        self,
        image_shape: tuple[int, ...] = (1, 8, 8),
        latent: int = 8,
        hidden: tuple[int, ...] = (128,),
    ) -> None:
        super().__init__()
        if latent < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"latent and hidden widths must be >= 1, got {latent}, {hidden}")
        self.image_shape = tuple(image_shape)
        self.latent = latent
        pixels = math.prod(self.image_shape)
        self.encoder = _mlp([pixels, *hidden, 2 * latent])
        self.decoder = _mlp([latent, *reversed(hidden), pixels])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``(N, d)``, of :math:`q_\\phi(z|x)` for binary images
        ``x (N, C, H, W)``."""
        check_binary(x, self.image_shape, "VAE")
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of :math:`p_\\theta(x|z)`: ``z (*B, d)`` -> ``(*B, C, H, W)``."""
        return self.decoder(z).unflatten(-1, self.image_shape)

    def _draw(self, shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor):
        return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)

    def rsample(
        self, mu: torch.Tensor, logvar: torch.Tensor, samples: int, generator: torch.Generator
    ) -> torch.Tensor:
        """``z = mu + sigma * eps`` (reparameterised), ``(samples, N, d)``."""
        eps = self._draw((samples, *mu.shape), generator, mu)
        return mu + (0.5 * logvar).exp() * eps

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p_\\theta(x|z)` for ``z (S, N, d)`` and ``x (N, C, H, W)``: ``(S, N)``."""
        logits = self.decode(z)  # (S, N, C, H, W)
        s = z.shape[0]
        target = x.unsqueeze(0).expand_as(logits)
        return -bernoulli_nll(logits.flatten(0, 1), target.flatten(0, 1)).view(s, -1)

    def elbo(self, x: torch.Tensor, generator: torch.Generator, samples: int = 1) -> torch.Tensor:
        """The ELBO per image ``(N,)``: reconstruction term averaged over ``samples``
        reparameterised draws, KL in closed form."""
        mu, logvar = self.encode(x)
        z = self.rsample(mu, logvar, samples, generator)  # (S, N, d)
        return self.log_likelihood(x, z).mean(0) - gaussian_kl(mu, logvar)

    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """:math:`\\log p_\\theta(x|z_i) + \\log p(z_i) - \\log q_\\phi(z_i|x)`, ``z_i ~ q``:
        ``(k, N)``."""
        mu, logvar = self.encode(x)
        z = self.rsample(mu, logvar, k, generator)  # (k, N, d)
        zeros = torch.zeros_like(mu)
        log_prior = log_normal(z, zeros, zeros)  # (k, N)
        return self.log_likelihood(x, z) + log_prior - log_normal(z, mu, logvar)

    def iwae(
        self, x: torch.Tensor, k: int, generator: torch.Generator, chunk: int = 100
    ) -> torch.Tensor:
        """The importance-weighted bound with ``k`` samples per image, ``(N,)`` nats:
        ``logsumexp_i(log w_i) - log k``; the weights are drawn ``chunk`` samples at a time."""
        if k < 1 or chunk < 1:
            raise ValueError(f"k and chunk must be >= 1, got {k}, {chunk}")
        parts = [self.log_weights(x, min(chunk, k - i), generator) for i in range(0, k, chunk)]
        return torch.logsumexp(torch.cat(parts), dim=0) - math.log(k)  # (N,)

    def reconstruct_mean(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathbb E[x | z = \\mu_\\phi(x)]`: pixel probabilities at the code's mean."""
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode(mu))

    def sample_means(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Pixel probabilities :math:`\\mathbb E[x|z]` for ``n`` draws ``z ~ p(z)``: the usual
        display of a VAE's samples, ``(n, C, H, W)``."""
        ref = next(self.parameters())
        return torch.sigmoid(self.decode(self._draw((n, self.latent), generator, ref)))

    def iwae_curve(
        self, x: torch.Tensor, ks: tuple[int, ...], generator: torch.Generator, chunk: int = 100
    ) -> torch.Tensor:
        """The importance-weighted bound at every ``k`` of ``ks`` from one set of ``max(ks)``
        log-weights per image: for each ``k``, the mean over the ``max(ks) / k`` disjoint groups
        of ``k`` weights of ``logsumexp - log k``, ``(len(ks), N)``. Each row is an unbiased
        estimate of the bound at its ``k`` (as :meth:`iwae`), and the rows share their draws, so
        their differences are far less noisy than those of independent estimates. Every ``k``
        must divide ``max(ks)``."""
        top = max(ks)
        if min(ks) < 1 or any(top % k for k in ks):
            raise ValueError(f"every k must be >= 1 and divide max(ks) = {top}, got {ks}")
        parts = [self.log_weights(x, min(chunk, top - i), generator) for i in range(0, top, chunk)]
        log_w = torch.cat(parts)  # (top, N)
        rows = [
            (torch.logsumexp(log_w.view(top // k, k, -1), dim=1) - math.log(k)).mean(0) for k in ks
        ]  # groups (top/k, k, N) -> (N,)
        return torch.stack(rows)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Binary images from the model: ``z ~ p(z)``, then every pixel ``~ p_theta(x|z)``."""
        means = self.sample_means(n, generator)
        return torch.bernoulli(means.cpu(), generator=generator).to(means.device)


# ----------------------------------------------------------------------------- gradient estimators


def _encoder_jacobian(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """d(mu, logvar)/d(encoder parameters) for one image: ``(2d, P)``."""
    params = list(model.encoder.parameters())
    out = torch.cat(model.encode(x)[0:2], dim=-1)[0]  # (2d,)
    rows = []
    for j in range(out.numel()):
        grads = torch.autograd.grad(out[j], params, retain_graph=True)
        rows.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(rows)


def encoder_gradient_samples(
    model: VAE, x: torch.Tensor, samples: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    r"""Single-sample estimates of :math:`\nabla_\phi \mathbb E_{q_\phi(z|x)}[\log p_\theta(x|z)]`
    for one image ``x (1, C, H, W)``, ``samples`` of each: ``{"reparameterisation": (M, P),
    "score_function": (M, P)}`` over the ``P`` encoder parameters.

    - reparameterisation: :math:`\nabla_\phi f(\mu_\phi + \sigma_\phi \epsilon)`;
    - score function (REINFORCE): :math:`f(z)\, \nabla_\phi \log q_\phi(z|x)`, ``z`` held fixed.

    Both are unbiased. Each is the chain rule through :math:`(\mu, \log\sigma^2)`: autograd gives
    the per-sample gradient with respect to them (``M`` rows at once), times the encoder's
    Jacobian (:math:`2d \times P`, one backward pass per row).
    """
    jac, per_sample = _encoder_jacobian(model, x), _output_gradients(model, x, samples, generator)
    return {est: g @ jac for est, g in per_sample.items()}  # (M, 2d) @ (2d, P)


def gradient_total_variance(
    model: VAE, x: torch.Tensor, samples: int, generator: torch.Generator
) -> dict[str, float]:
    r"""The total variance (trace of the covariance over the ``P`` encoder parameters) of each
    single-sample estimator of :func:`encoder_gradient_samples`, from ``samples`` draws, without
    forming the ``(M, P)`` gradients: with ``G = g J`` (``g`` the ``(M, 2d)`` gradients with
    respect to :math:`(\mu, \log\sigma^2)`, ``J`` the Jacobian),
    :math:`\operatorname{tr} \operatorname{Cov}(G) = \sum_{ab} \operatorname{Cov}(g)_{ab}
    (J J^\top)_{ab}`."""
    jac = _encoder_jacobian(model, x).double()
    gram = jac @ jac.T  # (2d, 2d)
    out = {}
    for est, g in _output_gradients(model, x, samples, generator).items():
        cov = torch.cov(g.double().T)  # (2d, 2d), unbiased
        out[est] = float((cov * gram).sum())
    return out


def _output_gradients(
    model: VAE, x: torch.Tensor, samples: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Per-sample gradients of both estimators with respect to (mu, logvar): (M, 2d) each."""
    if x.shape[0] != 1:
        raise ValueError(f"one image at a time, got a batch of {x.shape[0]}")
    with torch.no_grad():
        mu, logvar = (t[0] for t in model.encode(x))  # (d,)
    mu_m = mu.expand(samples, -1).clone().requires_grad_(True)  # (M, d): one leaf row per sample
    logvar_m = logvar.expand(samples, -1).clone().requires_grad_(True)
    eps = model._draw((samples, mu.numel()), generator, mu)
    z = mu_m + (0.5 * logvar_m).exp() * eps  # (M, d), reparameterised
    f = model.log_likelihood(x, z.unsqueeze(1))[:, 0]  # (M,): log p(x|z_m)
    reparam = torch.cat(torch.autograd.grad(f.sum(), [mu_m, logvar_m]), dim=-1)  # (M, 2d)
    log_q = log_normal(z.detach(), mu_m, logvar_m)  # (M,), z fixed
    score = torch.cat(
        torch.autograd.grad((f.detach() * log_q).sum(), [mu_m, logvar_m]), dim=-1
    )  # (M, 2d): f(z) grad log q(z)
    return {"reparameterisation": reparam, "score_function": score}


def toy_gradient_samples(
    theta: float, samples: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    r"""The notes' problem 6: estimates of :math:`\frac{d}{d\theta} \mathbb E_{x \sim
    \mathcal N(\theta, 1)}[x^2]`, ``samples`` of each, float64 ``(M,)``, by autograd:
    reparameterisation :math:`x = \theta + \epsilon` gives :math:`2x`; the score function gives
    :math:`x^2 (x - \theta)`. Both have mean :math:`2\theta`."""
    eps = torch.randn(samples, generator=generator, dtype=torch.float64)
    th = torch.full((samples,), float(theta), dtype=torch.float64, requires_grad=True)
    x = th + eps
    (reparam,) = torch.autograd.grad(x.pow(2).sum(), th)
    log_q = -0.5 * (x.detach() - th).pow(2) - 0.5 * LOG_2PI
    (score,) = torch.autograd.grad((x.detach().pow(2) * log_q).sum(), th)
    return {"reparameterisation": reparam, "score_function": score}


def toy_moments(theta: float, estimator: str, nodes: int = 16) -> tuple[float, float, float]:
    r"""Mean, variance and fourth central moment of one estimator of problem 6, exactly, by
    Gauss-Hermite quadrature over :math:`\epsilon \sim \mathcal N(0, 1)` (exact for
    polynomials of degree < 2 ``nodes``; the score function's fourth moment has degree 12).

    ``estimator`` is ``"reparameterisation"`` (:math:`2(\theta + \epsilon)`) or
    ``"score_function"`` (:math:`(\theta + \epsilon)^2 \epsilon`)."""
    eps, weights = np.polynomial.hermite_e.hermegauss(nodes)
    weights = weights / weights.sum()  # the N(0, 1) expectation
    x = theta + eps
    if estimator == "reparameterisation":
        g = 2 * x
    elif estimator == "score_function":
        g = x**2 * eps
    else:
        raise ValueError(
            f"estimator must be 'reparameterisation' or 'score_function', got {estimator!r}"
        )
    mean = float(weights @ g)
    return mean, float(weights @ (g - mean) ** 2), float(weights @ (g - mean) ** 4)


def toy_variances(theta: float) -> dict[str, float]:
    r"""Exact variances of the two estimators of problem 6 (:math:`\epsilon \sim \mathcal N(0,1)`):
    :math:`\operatorname{Var}[2(\theta + \epsilon)] = 4` and
    :math:`\operatorname{Var}[(\theta+\epsilon)^2 \epsilon] = \theta^4 + 14\theta^2 + 15`
    (from :math:`\mathbb E[\epsilon^2] = 1, \mathbb E[\epsilon^4] = 3, \mathbb E[\epsilon^6] =
    15`)."""
    return {"reparameterisation": 4.0, "score_function": theta**4 + 14 * theta**2 + 15}


# ----------------------------------------------------------------------------- discrete latents


class MixtureOfBernoullis:
    r"""A discrete latent-variable model: :math:`z \in \{0..K-1\}` with prior :math:`\pi`,
    pixels independent Bernoulli given :math:`z`. Small enough to sum over :math:`z` exactly:

    .. math:: \log p(x) = \log \sum_z \pi_z \prod_d \theta_{zd}^{x_d} (1 - \theta_{zd})^{1-x_d}.

    Arguments:
        log_prior: :math:`\log \pi`, ``(K,)`` (normalised here).
        logits: :math:`\operatorname{logit} \theta`, ``(K, D)``.
    """

    def __init__(self, log_prior: torch.Tensor, logits: torch.Tensor) -> None:
        if log_prior.ndim != 1 or logits.ndim != 2 or logits.shape[0] != log_prior.shape[0]:
            raise ValueError(
                f"need log_prior (K,) and logits (K, D), got {tuple(log_prior.shape)} and "
                f"{tuple(logits.shape)}"
            )
        self.log_prior = torch.log_softmax(log_prior, 0)
        self.logits = logits

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(x, z) = \\log \\pi_z + \\log p(x|z)` for binary ``x (N, D)``:
        ``(N, K)``."""
        check_binary(x, (self.logits.shape[1],), "MixtureOfBernoullis")
        k = self.logits.shape[0]
        logits = self.logits.unsqueeze(0).expand(x.shape[0], -1, -1)  # (N, K, D)
        target = x.unsqueeze(1).expand(-1, k, -1)
        log_px_z = -bernoulli_nll(logits.flatten(0, 1), target.flatten(0, 1)).view(-1, k)
        return self.log_prior + log_px_z

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Exact :math:`\\log p(x) = \\operatorname{logsumexp}_z \\log p(x, z)`, ``(N,)``."""
        return torch.logsumexp(self.log_joint(x), dim=1)

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`p(z|x)`, ``(N, K)``."""
        return torch.softmax(self.log_joint(x), dim=1)

    def elbo(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbb E_{q(z|x)}[\log p(z) + \log p(x|z) - \log q(z|x)]` exactly (a sum over
        ``z``; terms with :math:`q = 0` count 0), ``(N,)`` for ``q (N, K)``."""
        if q.shape != (x.shape[0], self.logits.shape[0]):
            raise ValueError(
                f"q must be (N, K) = {(x.shape[0], self.logits.shape[0])}, got {tuple(q.shape)}"
            )
        log_q = torch.where(q > 0, q.log(), torch.zeros_like(q))
        return (q * (self.log_joint(x) - log_q)).sum(1)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class VAESettings:
    """What determines a fitted VAE (a part of an experiment's config)."""

    latent: int = 8
    """Dimension of z."""
    hidden: int = 256
    """Width of the one hidden layer of the encoder and of the decoder."""
    lr: float = 1e-3
    batch: int = 64
    steps: int = 8000
    every: int = 500
    """Steps between records (validation ELBO, checkpoint)."""
    nll_k: int = 500
    """Importance samples per test image for the test NLL."""

    def __post_init__(self) -> None:
        require(self.latent >= 1 and self.hidden >= 1, "latent and hidden must be >= 1")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(1 <= self.every <= self.steps, "need 1 <= every <= steps")
        require(self.nll_k >= 1, f"nll_k must be >= 1, got {self.nll_k}")


@dataclass
class VAEFit:
    """A trained VAE and its scores on the test split."""

    model: VAE
    history: list[dict[str, Any]]
    test_nll: np.ndarray
    """Per test image: minus the importance-weighted bound with ``nll_k`` samples (nats)."""

    @property
    def test_nll_nats(self) -> float:
        return float(self.test_nll.mean())

    @property
    def test_nll_bits_per_dim(self) -> float:
        return float(bits_per_dim(self.test_nll_nats, math.prod(self.model.image_shape)))


def _images(part: TensorDataset, device: torch.device) -> torch.Tensor:
    return part.tensors[0].to(device)


def fit_vae(settings: VAESettings, ctx: RunContext, splits: Splits, tag: str = "vae") -> VAEFit:
    """Train a :class:`VAE` on ``splits.train`` (Adam on minus the one-sample ELBO, minibatches
    of ``batch`` drawn with replacement) through the engine's Loop, recording the validation
    ELBO every ``every`` steps; then score every test image by the importance-weighted bound
    with ``nll_k`` samples. Cached in the run folder (``ctx.cached``) under ``tag`` and the
    settings; the model is returned on ``ctx.device``, in eval mode.

    Example:
        >>> fit = fit_vae(VAESettings(steps=2000), ctx, binary_images(seed=ctx.seed))
        >>> fit.test_nll_nats, fit.test_nll_bits_per_dim
    """
    shape = tuple(splits.input_shape)

    def build() -> VAE:
        with ctx.seeded(tag, "init"):
            return VAE(shape, settings.latent, (settings.hidden,)).to(ctx.device)

    def compute() -> dict[str, Any]:
        model = build()
        train, val = _images(splits.train, ctx.device), _images(splits.val, ctx.device)
        test = _images(splits.test, ctx.device)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        data, noise = ctx.stream(tag, "batches"), ctx.stream(tag, "noise")

        def step(_: int) -> dict[str, float]:
            idx = torch.randint(train.shape[0], (settings.batch,), generator=data)
            loss = -model.elbo(train[idx.to(ctx.device)], noise).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": float(loss.detach())}

        def evaluate(_: int) -> dict[str, float]:
            with torch.no_grad():
                elbo = model.elbo(val, ctx.stream(tag, "val"), samples=10)
            return {"val_elbo": float(elbo.mean())}

        loop = Loop(
            ctx,
            tag=tag,
            track={"model": model, "opt": opt, "data": data, "noise": noise},
            progress=False,
        )
        result = loop.run(step, steps=settings.steps, every=settings.every, evaluate=evaluate)
        model.eval()
        with torch.no_grad():
            nll = -model.iwae(test, settings.nll_k, ctx.stream(tag, "test-nll"))
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return {"state": state, "history": result.history, "test_nll": nll.cpu().numpy()}

    key = {
        "tag": tag,
        "shape": list(shape),
        "train": [len(splits.train), float(splits.train.tensors[0].sum())],
        **vars(settings),
    }
    stored = ctx.cached("vae", key, compute)
    model = build()
    model.load_state_dict(stored["state"])
    model.eval()
    return VAEFit(model, list(stored["history"]), np.asarray(stored["test_nll"], dtype=float))
