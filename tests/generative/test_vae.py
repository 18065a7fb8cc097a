"""The VAE's pieces against torch references, closed forms and direct autograd."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from deepnotes.core.context import RunContext
from deepnotes.core.errors import DataFormatError
from deepnotes.data.binary import binary_images
from deepnotes.generative import vae as V


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny(latent: int = 3) -> tuple[V.VAE, torch.Tensor]:
    torch.manual_seed(0)
    model = V.VAE((1, 2, 3), latent=latent, hidden=(5,)).double()
    x = torch.randint(0, 2, (4, 1, 2, 3), generator=gen(1)).double()
    return model, x


def test_gaussian_kl_and_log_normal_equal_torch_distributions() -> None:
    mu, logvar = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(
        V.gaussian_kl(mu, logvar), kl_divergence(q, p).sum(-1), rtol=0, atol=1e-12
    )
    z = torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(
        V.log_normal(z, mu, logvar), q.log_prob(z).sum(-1), rtol=0, atol=1e-12
    )


def test_monte_carlo_kl_agrees_with_closed_form() -> None:
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.3, -0.7]])
    draws = V.monte_carlo_kl(mu, logvar, 200_000, gen()).double().numpy()[:, 0]
    mean, se = draws.mean(), draws.std() / math.sqrt(draws.size)
    assert abs(mean - float(V.gaussian_kl(mu, logvar))) < 4 * se


def test_elbo_is_reconstruction_minus_kl_and_iwae_is_stable_log_mean_exp() -> None:
    model, x = tiny()
    with torch.no_grad():
        g = gen(3)
        log_w = torch.cat([model.log_weights(x, k, g) for k in (3, 3, 1)])  # (7, N), as chunked
        naive = (log_w.exp().mean(0)).log()
        torch.testing.assert_close(model.iwae(x, 7, gen(3), chunk=3), naive, rtol=0, atol=1e-12)
        # k = 1 is one draw of log p(x|z) + log p(z) - log q(z|x)
        torch.testing.assert_close(
            model.iwae(x, 1, gen(3)), model.log_weights(x, 1, gen(3))[0], rtol=0, atol=1e-12
        )
        torch.testing.assert_close(
            model.iwae(x, 7, gen(3), chunk=7),
            model.log_weights(x, 7, gen(3)).logsumexp(0) - math.log(7),
        )
        # ELBO: the same draw's reconstruction term minus the closed-form KL
        mu, logvar = model.encode(x)
        z = model.rsample(mu, logvar, 1, gen(5))
        want = model.log_likelihood(x, z)[0] - V.gaussian_kl(mu, logvar)
        torch.testing.assert_close(model.elbo(x, gen(5)), want, rtol=0, atol=1e-12)
        # huge log-weights do not overflow
        for p in model.decoder.parameters():
            p.mul_(300)
        assert torch.isfinite(model.iwae(x, 50, gen(4))).all()


def test_iwae_curve_rows_are_group_averages_of_one_draw() -> None:
    model, x = tiny()
    with torch.no_grad():
        curve = model.iwae_curve(x, (1, 2, 6), gen(7), chunk=4)
        log_w = model.log_weights(x, 6, gen(7))
        torch.testing.assert_close(curve[0], log_w.mean(0), rtol=0, atol=1e-12)
        pairs = torch.logsumexp(log_w.view(3, 2, -1), 1) - math.log(2)
        torch.testing.assert_close(curve[1], pairs.mean(0), rtol=0, atol=1e-12)
        torch.testing.assert_close(curve[2], model.iwae(x, 6, gen(7)), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="divide"):
        model.iwae_curve(x, (1, 4, 6), gen())


def test_encoder_gradients_equal_direct_autograd_per_sample() -> None:
    model, x = tiny()
    x1 = x[:1]
    got = V.encoder_gradient_samples(model, x1, 3, gen(9))
    params = list(model.encoder.parameters())
    eps = torch.randn((3, model.latent), generator=gen(9), dtype=torch.float64)
    for m in range(3):
        mu, logvar = (t[0] for t in model.encode(x1))
        z = mu + (0.5 * logvar).exp() * eps[m]
        f = model.log_likelihood(x1, z.view(1, 1, -1))[0, 0]
        want = torch.cat([g.flatten() for g in torch.autograd.grad(f, params, retain_graph=True)])
        torch.testing.assert_close(got["reparameterisation"][m], want, rtol=1e-10, atol=1e-12)
        log_q = V.log_normal(z.detach(), mu, logvar)
        score = torch.autograd.grad(f.detach() * log_q, params)
        want = torch.cat([g.flatten() for g in score])
        torch.testing.assert_close(got["score_function"][m], want, rtol=1e-10, atol=1e-12)


def test_total_variance_equals_trace_of_the_full_covariance() -> None:
    model, x = tiny()
    full = V.encoder_gradient_samples(model, x[:1], 50, gen(11))
    total = V.gradient_total_variance(model, x[:1], 50, gen(11))
    for est, g in full.items():
        assert total[est] == pytest.approx(float(g.var(0).sum()), rel=1e-9)


def test_toy_estimators_are_the_closed_forms_and_moments_match() -> None:
    draws = V.toy_gradient_samples(1.5, 5, gen(2))
    x = 1.5 + torch.randn(5, generator=gen(2), dtype=torch.float64)
    torch.testing.assert_close(draws["reparameterisation"], 2 * x, rtol=0, atol=1e-12)
    torch.testing.assert_close(draws["score_function"], x**2 * (x - 1.5), rtol=0, atol=1e-12)
    for theta in (0.0, 0.7, 2.0):
        for est, var in V.toy_variances(theta).items():
            mean, exact_var, _ = V.toy_moments(theta, est)
            assert mean == pytest.approx(2 * theta, abs=1e-10)
            assert exact_var == pytest.approx(var, rel=1e-10)
    with pytest.raises(ValueError, match="estimator"):
        V.toy_moments(0.0, "pathwise")


def test_mixture_of_bernoullis_is_normalised_and_tight_at_the_posterior() -> None:
    g = gen(4)
    model = V.MixtureOfBernoullis(
        torch.randn(3, generator=g, dtype=torch.float64),
        torch.randn(3, 4, generator=g, dtype=torch.float64),
    )
    everything = torch.tensor(np.indices((2,) * 4).reshape(4, -1).T, dtype=torch.float64)
    assert float(model.log_likelihood(everything).exp().sum()) == pytest.approx(1.0, abs=1e-12)
    post = model.posterior(everything)
    torch.testing.assert_close(post.sum(1), torch.ones(16, dtype=torch.float64))
    torch.testing.assert_close(
        model.elbo(everything, post), model.log_likelihood(everything), rtol=0, atol=1e-12
    )
    uniform = torch.full((16, 3), 1 / 3, dtype=torch.float64)
    assert (model.elbo(everything, uniform) <= model.log_likelihood(everything) + 1e-12).all()


def test_bad_input_is_rejected_with_a_clear_error() -> None:
    model, x = tiny()
    with pytest.raises(DataFormatError, match="0 or 1"):
        model.encode(x * 0.5)
    with pytest.raises(DataFormatError, match=r"\(N, 1, 2, 3\)"):
        model.encode(torch.zeros(2, 1, 3, 3, dtype=torch.float64))
    with pytest.raises(DataFormatError, match="NaN"):
        model.encode(torch.full((1, 1, 2, 3), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="latent"):
        V.VAE(latent=0)


def test_fit_vae_trains_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = RunContext(name="t", seed=0, device=torch.device("cpu"), out_dir=tmp_path)
    splits = binary_images(seed=0)
    settings = V.VAESettings(latent=2, hidden=16, steps=60, every=30, nll_k=5, lr=3e-3)
    fit = V.fit_vae(settings, ctx, splits)
    assert fit.test_nll.shape == (len(splits.test),) and np.isfinite(fit.test_nll).all()
    assert fit.test_nll_bits_per_dim == pytest.approx(fit.test_nll_nats / (64 * math.log(2)))
    assert len(fit.history) == 2 and fit.history[1]["val_elbo"] > fit.history[0]["val_elbo"]
    monkeypatch.setattr(V, "Loop", None)  # a second call reads the cache, trains nothing
    again = V.fit_vae(settings, ctx, splits)
    np.testing.assert_array_equal(again.test_nll, fit.test_nll)
    state = fit.model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in again.model.state_dict().items())
