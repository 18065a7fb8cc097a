"""robustness.blackbox: the query oracle, finite-difference gradients against closed forms and
autograd, and black-box FGSM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.errors import ConfigError
from deepnotes.robustness import attacks
from deepnotes.robustness import blackbox as bb


def _mlp(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4)).to(dtype)


def _data(n: int = 5, seed: int = 1, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 3, 4, generator=g, dtype=dtype) * 0.8 + 0.1
    return x, torch.randint(0, 4, (n,), generator=g)


def _linear_loss(w: Tensor):  # type: ignore[no-untyped-def]
    """loss(outputs, y) = w . x for the identity model (ignores y): gradient w everywhere."""

    def loss_fn(out: Tensor, y: Tensor, reduction: str = "none") -> Tensor:
        return out.flatten(1) @ w.flatten()

    return loss_fn


def test_oracle_counts_one_query_per_example_and_matches_the_loss() -> None:
    model, (x, y) = _mlp(), _data(7)
    oracle = bb.QueryOracle(model)
    got = oracle.loss(x, y)
    torch.testing.assert_close(got, F.cross_entropy(model(x), y, reduction="none"))
    assert oracle.queries == 7
    oracle.loss(x[:3], y[:3])
    assert oracle.queries == 10
    assert not got.requires_grad


def test_oracle_leaves_the_model_as_it_found_it() -> None:
    model, (x, y) = _mlp(), _data()
    model.train()
    model[1].weight.grad = torch.ones_like(model[1].weight)
    grads = {
        n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()
    }
    oracle = bb.QueryOracle(model)
    bb.coordinate_gradient(oracle, x, y, 1e-3)
    assert model.training and all(p.requires_grad for p in model.parameters())
    for name, p in model.named_parameters():
        before = grads[name]
        assert (p.grad is None) if before is None else torch.equal(p.grad, before)


def test_float64_oracle_copies_the_model() -> None:
    model, (x, y) = _mlp(), _data()
    oracle = bb.QueryOracle(model, dtype=torch.float64)
    assert oracle.dtype == torch.float64 and oracle.loss(x, y).dtype == torch.float64
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(
        oracle.loss(x, y).float(), F.cross_entropy(model(x), y, reduction="none")
    )


def test_oracle_rejects_a_reduced_loss() -> None:
    oracle = bb.QueryOracle(_mlp(), lambda out, y, reduction="none": F.cross_entropy(out, y))
    with pytest.raises(ConfigError, match="one loss per example"):
        oracle.loss(*_data())


def test_coordinate_differences_are_exact_for_a_quadratic_loss() -> None:
    # L(x) = sum_i a_i x_i^2 + b_i x_i: the central difference has no truncation error
    a, b = torch.randn(12, dtype=torch.float64), torch.randn(12, dtype=torch.float64)

    def loss_fn(out: Tensor, y: Tensor, reduction: str = "none") -> Tensor:
        flat = out.flatten(1)
        return (a * flat**2 + b * flat).sum(dim=1)

    x, y = _data(4, dtype=torch.float64)
    oracle = bb.QueryOracle(nn.Identity(), loss_fn, dtype=torch.float64)
    estimate, queries = bb.coordinate_gradient(oracle, x, y, h=0.1, chunk=5)
    torch.testing.assert_close(estimate.flatten(1), 2 * a * x.flatten(1) + b, rtol=0, atol=1e-12)
    assert queries == oracle.queries == 2 * 12 * 4


def test_coordinate_estimate_agrees_with_autograd_in_float64() -> None:
    model, (x, y) = _mlp(dtype=torch.float64), _data(6, dtype=torch.float64)
    oracle = bb.QueryOracle(model)
    estimate, _ = bb.coordinate_gradient(oracle, x, y, h=1e-5)
    truth = attacks.input_gradient(model, x, y)
    torch.testing.assert_close(estimate, truth, rtol=1e-6, atol=1e-9)
    assert bb.cosine_rows(estimate, truth).min() > 1 - 1e-10


def test_chunking_does_not_change_the_estimate() -> None:
    model, (x, y) = _mlp(), _data()
    oracle = bb.QueryOracle(model)
    one, _ = bb.coordinate_gradient(oracle, x, y, 1e-2, chunk=1)
    all_, _ = bb.coordinate_gradient(oracle, x, y, 1e-2, chunk=64)
    torch.testing.assert_close(one, all_, rtol=1e-5, atol=1e-7)


def test_random_directions_are_antithetic_and_exact_for_a_linear_plus_even_loss() -> None:
    # L(x) = w . x + c ||x - x0||^2 at x0: the antithetic pair cancels the even part, so the
    # estimate is exactly (1/q) sum_k (u_k . w) u_k with the same directions
    w = torch.randn(12, dtype=torch.float64)
    x, y = _data(3, dtype=torch.float64)

    def loss_fn(out: Tensor, y: Tensor, reduction: str = "none") -> Tensor:
        flat = out.flatten(1)
        x0 = x.flatten(1).repeat(len(flat) // len(x), 1)  # the probes come as (2q, N) blocks
        return flat @ w + 5.0 * (flat - x0).pow(2).sum(dim=1)

    oracle = bb.QueryOracle(nn.Identity(), loss_fn, dtype=torch.float64)
    for distribution in bb.DISTRIBUTIONS:
        estimate, queries = bb.random_direction_gradient(
            oracle,
            x,
            y,
            0.3,
            5,
            distribution=distribution,
            generator=torch.Generator().manual_seed(4),
        )
        u = bb.random_directions(
            5,
            tuple(x.shape),
            distribution=distribution,
            generator=torch.Generator().manual_seed(4),
            dtype=torch.float64,
        ).flatten(2)  # (q, N, d)
        expected = ((u @ w).unsqueeze(-1) * u).mean(dim=0)
        torch.testing.assert_close(estimate.flatten(1), expected, rtol=1e-9, atol=1e-9)
        assert queries == 2 * 5 * 3


def test_random_direction_estimate_is_unbiased() -> None:
    w = torch.linspace(-1, 1, 12, dtype=torch.float64)
    x = torch.full((1, 1, 3, 4), 0.5, dtype=torch.float64)
    oracle = bb.QueryOracle(nn.Identity(), _linear_loss(w), dtype=torch.float64)
    for distribution in bb.DISTRIBUTIONS:
        estimate, _ = bb.random_direction_gradient(
            oracle,
            x,
            torch.zeros(1, dtype=torch.long),
            1e-3,
            20_000,
            distribution=distribution,
            generator=torch.Generator().manual_seed(0),
        )
        # per-coordinate SE of the mean is about ||w|| / sqrt(q) ~ 0.015
        assert (estimate.flatten() - w).abs().max() < 0.08


def test_rademacher_directions_are_signs() -> None:
    u = bb.random_directions(50, (3, 4), distribution="rademacher", generator=torch.Generator())
    assert set(u.unique().tolist()) == {-1.0, 1.0} and u.shape == (50, 3, 4)


def test_black_box_fgsm_equals_white_box_fgsm_on_a_linear_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).double()
    x, y = _data(8, dtype=torch.float64)
    for norm in attacks.NORMS:
        oracle = bb.QueryOracle(model)
        got = bb.black_box_fgsm(oracle, x, y, 0.1, norm=norm, h=1e-4)
        torch.testing.assert_close(
            got, attacks.fgsm(model, x, y, 0.1, norm=norm), atol=1e-7, rtol=0
        )
        assert oracle.queries == 2 * 12 * 8


@pytest.mark.parametrize("estimator", bb.ESTIMATORS)
@pytest.mark.parametrize("norm", attacks.NORMS)
def test_black_box_fgsm_stays_in_the_ball_and_box(estimator: str, norm: str) -> None:
    model, (x, y) = _mlp(), _data(6)
    x_copy = x.clone()
    oracle = bb.QueryOracle(model)
    adv = bb.black_box_fgsm(
        oracle, x, y, 0.3, norm=norm, estimator=estimator, q=3, generator=torch.Generator()
    )
    assert torch.equal(x, x_copy) and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - x).flatten(1)
    size = delta.abs().max(dim=1).values if norm == "linf" else delta.norm(dim=1)
    assert (size <= 0.3 + 1e-6).all()
    assert oracle.queries == 6 * (2 * 12 if estimator == "coordinate" else 2 * 3)


def test_eps_zero_returns_the_input_and_spends_nothing() -> None:
    model, (x, y) = _mlp(), _data()
    oracle = bb.QueryOracle(model)
    adv = bb.black_box_fgsm(oracle, x, y, 0.0)
    assert torch.equal(adv, x) and adv is not x and oracle.queries == 0


def test_bad_arguments_name_what_was_expected() -> None:
    model, (x, y) = _mlp(), _data()
    oracle = bb.QueryOracle(model)
    with pytest.raises(ConfigError, match="eps"):
        bb.black_box_fgsm(oracle, x, y, -0.1)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        bb.black_box_fgsm(oracle, x + 1, y, 0.1)
    with pytest.raises(ConfigError, match="norm"):
        bb.black_box_fgsm(oracle, x, y, 0.1, norm="l3")
    with pytest.raises(ConfigError, match="estimator"):
        bb.black_box_fgsm(oracle, x, y, 0.1, estimator="spsa")
    with pytest.raises(ConfigError, match="step h"):
        bb.coordinate_gradient(oracle, x, y, 0.0)
    with pytest.raises(ConfigError, match="q must be"):
        bb.random_direction_gradient(oracle, x, y, 1e-3, 0)
    with pytest.raises(ConfigError, match="distribution"):
        bb.random_directions(2, (3,), distribution="uniform")
    with pytest.raises(ConfigError, match="dtype"):
        bb.QueryOracle(model, dtype=torch.float16)


def test_default_step_is_the_cube_root_of_machine_epsilon() -> None:
    assert bb.default_step(torch.float32) == pytest.approx((2.0**-23) ** (1 / 3))
    assert bb.default_step(torch.float64) == pytest.approx((2.0**-52) ** (1 / 3))


def test_cosine_rows_is_zero_for_a_zero_row() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])
    torch.testing.assert_close(
        bb.cosine_rows(a, b), torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    )


def test_chunking_the_directions_does_not_change_the_estimate() -> None:
    model, (x, y) = _mlp(dtype=torch.float64), _data(dtype=torch.float64)
    oracle = bb.QueryOracle(model)
    got = [
        bb.random_direction_gradient(
            oracle, x, y, 1e-4, 10, generator=torch.Generator().manual_seed(2), chunk=chunk
        )[0]
        for chunk in (3, 10)
    ]
    torch.testing.assert_close(got[0], got[1], rtol=1e-12, atol=1e-14)
