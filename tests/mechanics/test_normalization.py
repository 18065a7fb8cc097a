"""BatchNorm against nn.BatchNorm1d/2d (train, eval, running statistics) and inverted dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.mechanics.gradcheck import gradcheck, relative_error
from deepnotes.mechanics.normalization import (
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
)

TOL = 1e-7
seeds = st.integers(0, 2**16)


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 4, 5)])
@pytest.mark.parametrize("momentum", [0.1, 0.35])
def test_batchnorm_matches_torch_module_over_several_steps(
    shape: tuple[int, ...], momentum: float
) -> None:
    rng = np.random.default_rng(0)
    c = shape[1]
    module_cls = torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d
    module = module_cls(c, eps=1e-3, momentum=momentum).double()
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(gamma))
        module.bias.copy_(torch.from_numpy(beta))
    mean, var = np.zeros(c), np.ones(c)  # torch's initial running statistics
    for step in range(4):
        x = rng.normal(loc=step, scale=1.0 + step, size=shape)
        out, mean, var, _ = batchnorm_forward(
            x, gamma, beta, mean, var, momentum=momentum, eps=1e-3
        )
        t_out = module.train()(torch.from_numpy(x))
        assert relative_error(out, t_out.detach().numpy()) < TOL
        np.testing.assert_allclose(mean, module.running_mean.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(var, module.running_var.numpy(), rtol=1e-12)  # unbiased
    x = rng.normal(size=shape)
    out, mean2, var2, _ = batchnorm_forward(
        x, gamma, beta, mean, var, momentum=momentum, eps=1e-3, train=False
    )
    t_out = module.eval()(torch.from_numpy(x))
    assert relative_error(out, t_out.detach().numpy()) < TOL
    np.testing.assert_array_equal(mean2, mean)  # eval mode leaves the running stats alone
    np.testing.assert_array_equal(var2, var)


@pytest.mark.parametrize("train", [True, False])
@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    shape=st.one_of(
        st.tuples(st.integers(3, 7), st.integers(1, 4)),
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(3, 4)),
    ),  # m >= 3: with m = 2, x_hat = +-1 and dx ~ 0, which finite differences cannot resolve
    seed=seeds,
)
def test_batchnorm_backward_matches_autograd_and_finite_differences(
    train: bool, shape: tuple[int, ...], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.normal(loc=0.5, scale=2.0, size=shape)
    gamma, beta, g = rng.normal(size=c), rng.normal(size=c), rng.normal(size=shape)
    mean, var = rng.normal(size=c), rng.uniform(0.5, 2.0, size=c)
    out, _, _, cache = batchnorm_forward(x, gamma, beta, mean, var, train=train)
    dx, dgamma, dbeta = batchnorm_backward(g, cache)
    assert (dx.shape, dgamma.shape, dbeta.shape) == (x.shape, (c,), (c,))

    leaves = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    tx, tg, tb = leaves
    t_mean, t_var = torch.from_numpy(mean), torch.from_numpy(var)
    t_out = F.batch_norm(tx, t_mean, t_var, tg, tb, training=train, momentum=0.1, eps=1e-5)
    auto = torch.autograd.grad(t_out, leaves, torch.from_numpy(g))
    assert relative_error(out, t_out.detach().numpy()) < TOL
    for ours, theirs in zip((dx, dgamma, dbeta), auto, strict=True):
        assert relative_error(ours, theirs.numpy()) < TOL

    def loss(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> float:
        return float(np.sum(batchnorm_forward(x, gamma, beta, mean, var, train=train)[0] * g))

    errors = gradcheck(
        loss, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta}
    )
    assert max(errors.values()) < TOL


def test_batchnorm_train_output_is_standardised_and_inputs_untouched() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(loc=5.0, scale=3.0, size=(64, 3))
    mean, var = np.zeros(3), np.ones(3)
    out, new_mean, _, _ = batchnorm_forward(x, np.ones(3), np.zeros(3), mean, var, eps=1e-12)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(mean, 0.0)  # the caller's arrays are not modified
    np.testing.assert_allclose(new_mean, 0.1 * x.mean(axis=0))


def test_batchnorm_bad_inputs_raise() -> None:
    c3 = (np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"x must be 2-D or 4-D .* received shape \(2, 3, 4\)"):
        batchnorm_forward(np.zeros((2, 3, 4)), *c3)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\) for x .* \(4,\)"):
        batchnorm_forward(np.zeros((2, 3)), np.ones(4), *c3[1:])
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]; received 1.5"):
        batchnorm_forward(np.zeros((2, 3)), *c3, momentum=1.5)
    with pytest.raises(ValueError, match=r"eps must be in \(0, inf\]; received 0.0"):
        batchnorm_forward(np.zeros((2, 3)), *c3, eps=0.0)
    with pytest.raises(ValueError, match=r"more than one value per channel .* m = 1"):
        batchnorm_forward(np.zeros((1, 3)), *c3)
    with pytest.raises(ValueError, match="running_var must be >= 0"):
        batchnorm_forward(np.zeros((2, 3)), *c3[:3], -np.ones(3))
    _, _, _, cache = batchnorm_forward(np.zeros((1, 3)), *c3, train=False)  # eval: m = 1 is fine
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(1, 3\)"):
        batchnorm_backward(np.zeros((3, 1)), cache)


# --------------------------------------------------------------------------------------------
# dropout


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9, 1.0])
def test_dropout_mask_keep_rate_and_unbiasedness(p: float) -> None:
    x = np.linspace(-2.0, 3.0, 10)
    n = 100_000
    out, cache = dropout_forward(np.tile(x, (n, 1)), p, np.random.default_rng(0))  # (n, 10)
    mask = cache.mask
    assert mask is not None
    assert set(np.unique(mask)) <= {0.0, 1.0 / p}
    # keep rate: binomial with n*10 draws; 5 standard deviations
    keep = np.mean(mask > 0)
    assert abs(keep - p) <= 5 * np.sqrt(p * (1 - p) / mask.size) + 1e-12
    # E[out] = x: each column's mean has standard deviation |x| sqrt((1 - p) / p) / sqrt(n)
    tolerance = 5 * np.abs(x) * np.sqrt((1 - p) / p / n) + 1e-9  # + summation round-off
    assert np.all(np.abs(out.mean(axis=0) - x) <= tolerance)


def test_dropout_eval_mode_is_the_identity_and_seeds_repeat() -> None:
    x = np.random.default_rng(0).normal(size=(4, 5))
    out, cache = dropout_forward(x, 0.3, np.random.default_rng(1), train=False)
    np.testing.assert_array_equal(out, x)
    assert cache.mask is None
    g = np.ones((4, 5))
    np.testing.assert_array_equal(dropout_backward(g, cache), g)
    a, _ = dropout_forward(x, 0.3, np.random.default_rng(7))
    b, _ = dropout_forward(x, 0.3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
    p=st.floats(0.05, 1.0),
    seed=seeds,
)
def test_dropout_backward_matches_autograd_and_finite_differences(
    shape: tuple[int, ...], p: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x, g = rng.normal(size=shape), rng.normal(size=shape)
    _, cache = dropout_forward(x, p, np.random.default_rng(seed + 1))
    dx = dropout_backward(g, cache)
    tx = torch.tensor(x, requires_grad=True)
    t_out = tx * torch.from_numpy(cache.mask)
    (tdx,) = torch.autograd.grad(t_out, tx, torch.from_numpy(g))
    assert relative_error(dx, tdx.numpy()) < TOL

    def loss(x: np.ndarray) -> float:  # a fresh generator with the same seed: the same mask
        return float(np.sum(dropout_forward(x, p, np.random.default_rng(seed + 1))[0] * g))

    assert gradcheck(loss, {"x": x}, {"x": dx})["x"] < TOL


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, float("nan")])
def test_dropout_rejects_p_outside_0_1(p: float) -> None:
    with pytest.raises(ValueError, match=r"p \(the keep probability\) must be in \(0, 1\]"):
        dropout_forward(np.zeros(3), p, np.random.default_rng(0))


def test_dropout_other_bad_inputs() -> None:
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator; received int"):
        dropout_forward(np.zeros(3), 0.5, 0)  # type: ignore[arg-type]
    _, cache = dropout_forward(np.zeros(3), 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(3,\)"):
        dropout_backward(np.zeros(4), cache)
