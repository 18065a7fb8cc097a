r"""The notes' latent-variable problems, answered by :mod:`deepnotes.generative.vae` and
:mod:`deepnotes.generative.spectra` (discussion 10, section 4, problems 2 to 6).

- Problem 2 (blurry images), cheaply: a decoder trained by maximum likelihood with a factorised
  output, unsure which of several images a code stands for, outputs their average
  :math:`\mathbb E[x|z]`; the average of a digit's nearest training digits has less
  high-frequency energy than the digit (:func:`~deepnotes.generative.spectra.blur_ratio`).
- Problems 3 and 4 on a small :class:`~deepnotes.generative.vae.MixtureOfBernoullis`
  (``K`` = 3 latent values, ``D`` = 6 binary pixels): its exact log-likelihood objective, checked
  by enumerating all :math:`2^D` images; the Jensen bound ELBO :math:`\le \log p(x)` for random
  ``q``, the gap equal to :math:`KL(q \| p(z|x))`, zero at the posterior.
- Problem 5: the bound is an expectation over :math:`z \sim q(z|x)`: sampling ``z`` from ``q``
  estimates it without bias, sampling from the prior does not.
- Problem 6: the reparameterisation example, both estimators of
  :math:`\frac{d}{d\theta}\mathbb E_{x \sim \mathcal N(\theta, 1)}[x^2] = 2\theta` unbiased,
  their variances measured next to the closed forms.

Only sizes, seeds and sample counts are chosen here; every number is computed by the library.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from deepnotes.core import stats
from deepnotes.core.catalog import Answer, problem
from deepnotes.data.binary import binary_images
from deepnotes.generative.spectra import blur_ratio
from deepnotes.generative.vae import MixtureOfBernoullis, toy_gradient_samples, toy_variances

SEED = 0
K, D, N = 3, 6, 5
"""Latent values, pixels and data points of the small discrete model."""
RANDOM_QS = 1000
NEIGHBOURS = 10
"""Training digits averaged per test digit (problem 2)."""
MC_SAMPLES = 1_000_000
THETAS = (0.0, 1.0, 2.0)


def small_model() -> tuple[MixtureOfBernoullis, torch.Tensor]:
    """The seeded mixture (float64) and ``N`` binary data points ``(N, D)``."""
    g = torch.Generator().manual_seed(SEED)
    model = MixtureOfBernoullis(
        torch.randn(K, generator=g, dtype=torch.float64),
        2 * torch.randn(K, D, generator=g, dtype=torch.float64),
    )
    x = torch.randint(0, 2, (N, D), generator=g).to(torch.float64)
    return model, x


def all_images() -> torch.Tensor:
    """Every binary vector of length ``D``, ``(2^D, D)``, float64."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=D)), dtype=torch.float64)


@problem(
    "Blurry images: the mean of plausible digits is blurry",
    topic="generative",
    source="discussion 10, section 4.1, problem 2",
)
def _blurry() -> Answer:
    splits = binary_images(seed=SEED)
    train = splits.train.tensors[0].flatten(1)  # (N_train, 64)
    test = splits.test.tensors[0]
    distance = torch.cdist(test.flatten(1), train, p=1)  # Hamming distances (N_test, N_train)
    near = distance.topk(NEIGHBOURS, largest=False).indices  # (N_test, NEIGHBOURS)
    averages = train[near].mean(1).view_as(test)  # E[x | "one of these"]
    labels = splits.train.tensors[1]
    class_means = torch.stack([train[labels == c].mean(0) for c in range(10)]).view(
        10, *test.shape[1:]
    )
    return Answer(
        [
            (
                f"high-frequency ratio: mean of each test digit's {NEIGHBOURS} nearest training "
                "digits / the digits",
                blur_ratio(averages, test),
            ),
            ("high-frequency ratio: class-mean images / the digits", blur_ratio(class_means, test)),
            ("high-frequency ratio: the digits themselves (reference)", blur_ratio(test, test)),
        ],
        note="A factorised decoder maximising E_q[log p(x|z)] outputs, for a code that could "
        "stand for several images, their per-pixel mean E[x|z]: gray where they disagree. The "
        "mean of similar digits (Hamming nearest neighbours) has less energy above 0.25 "
        "cycles/pixel than a digit, as the VAE's reconstructions do (generative.vae).",
    )


@problem(
    "Log-likelihood of a discrete latent-variable model",
    topic="generative",
    source="discussion 10, section 4.2, problem 3",
)
def _discrete_likelihood() -> Answer:
    model, x = small_model()
    log_px = model.log_likelihood(x)
    # independent method: probabilities multiplied out directly, no logs
    theta = torch.sigmoid(model.logits)  # (K, D)
    p_x_given_z = torch.prod(torch.where(x[:, None, :] == 1, theta, 1 - theta), dim=-1)  # (N, K)
    direct = (p_x_given_z * model.log_prior.exp()).sum(1).log()
    total = model.log_likelihood(all_images()).exp().sum()
    return Answer(
        [
            ("objective (1/N) sum_i log sum_z p(z) p(x_i|z)", float(log_px.mean())),
            ("log p(x_i)", log_px.tolist()),
            ("max |logsumexp form - direct product form|", float((log_px - direct).abs().max())),
            ("sum over all 2^D images of p(x) (must be 1)", float(total)),
        ],
        note=f"MixtureOfBernoullis with K={K} latent values and D={D} binary pixels (seeded), "
        f"N={N} data points: log p(x) = logsumexp_z [log pi_z + sum_d log Bernoulli(x_d; "
        "theta_zd)], the sum over z done exactly.",
    )


@problem(
    "Jensen's lower bound: ELBO <= log p(x), equal at the posterior",
    topic="generative",
    source="discussion 10, section 4.2, problem 4",
)
def _jensen() -> Answer:
    model, x = small_model()
    log_px = model.log_likelihood(x)  # (N,)
    posterior = model.posterior(x)  # (N, K)
    g = torch.Generator().manual_seed(SEED + 1)
    qs = torch.softmax(3 * torch.randn(RANDOM_QS, N, K, generator=g, dtype=torch.float64), -1)
    gaps = torch.stack([log_px - model.elbo(x, q) for q in qs])  # (Q, N)
    kl = (qs * (qs.log() - posterior.log())).sum(-1)  # KL(q || p(z|x)), (Q, N)
    return Answer(
        [
            ("sum_i log p(x_i)", float(log_px.sum())),
            (
                f"min over {RANDOM_QS} random q of sum_i log p(x_i) - ELBO (>= 0)",
                float(gaps.sum(1).min()),
            ),
            ("max |gap - KL(q || p(z|x))|", float((gaps - kl).abs().max())),
            (
                "|sum_i log p(x_i) - ELBO(q = posterior)|",
                float((log_px - model.elbo(x, posterior)).sum().abs()),
            ),
        ],
        note="log p(x) = log E_q[p(x, z) / q(z|x)] >= E_q[log p(z) - log q(z|x) + log p(x|z)] "
        "(Jensen, log concave); the gap is KL(q(z|x) || p(z|x)) >= 0, zero when q is the "
        "posterior. Every expectation is an exact sum over the K latent values.",
    )


@problem(
    "Which distribution is z sampled from? q(z|x)",
    topic="generative",
    source="discussion 10, section 4.2, problem 5",
)
def _sample_from_q() -> Answer:
    model, x = small_model()
    x1 = x[:1]
    q = torch.softmax(torch.tensor([[0.3, -1.0, 1.2]], dtype=torch.float64), -1)  # a fixed q(z|x)
    exact = float(model.elbo(x1, q)[0])
    integrand = (model.log_joint(x1) - q.log())[0]  # log p(x, z) - log q(z|x), (K,)
    g = torch.Generator().manual_seed(SEED + 2)
    rows = []
    for name, dist in (("q(z|x)", q[0]), ("p(z) (the prior)", model.log_prior.exp())):
        z = torch.multinomial(dist, MC_SAMPLES, replacement=True, generator=g)
        mean, se = stats.mean_se(integrand[z].numpy())
        rows.append(
            (
                f"z ~ {name}: MC estimate, |z-score| against the ELBO",
                [mean, abs(stats.standardized(mean - exact, se))],
            )
        )
    return Answer(
        [("exact ELBO for the fixed q", exact), *rows],
        note=f"{MC_SAMPLES} draws each. The bound is E_{{z ~ q(z|x)}}[log p(x, z) - log q(z|x)]: "
        "z is sampled from the approximate posterior q (the encoder), not the prior. Drawing from "
        "the prior estimates a different number.",
    )


@problem(
    "Reparameterisation example: d/dtheta E[x^2] for x ~ N(theta, 1)",
    topic="generative",
    source="discussion 10, section 4.2, problem 6",
)
def _reparameterisation() -> Answer:
    rows = []
    for i, theta in enumerate(THETAS):
        draws = toy_gradient_samples(
            theta, MC_SAMPLES, torch.Generator().manual_seed(SEED + 10 + i)
        )
        exact = toy_variances(theta)
        rows.append(
            [
                theta,
                2 * theta,
                float(draws["reparameterisation"].mean()),
                float(draws["score_function"].mean()),
                float(draws["reparameterisation"].var()),
                exact["reparameterisation"],
                float(draws["score_function"].var()),
                exact["score_function"],
            ]
        )
    return Answer(
        [
            (
                "[theta, 2 theta, mean reparam, mean score, var reparam, exact, var score, exact]",
                np.array(rows),
            )
        ],
        note="x = theta + eps, eps ~ N(0, 1): d/dtheta E[(theta + eps)^2] = E[2(theta + eps)] = "
        "2 theta (reparameterisation, variance 4); the score function x^2 d/dtheta log q(x) = "
        "x^2 (x - theta) has the same mean and variance theta^4 + 14 theta^2 + 15. Gradients by "
        f"autograd on {MC_SAMPLES} draws per theta.",
    )
