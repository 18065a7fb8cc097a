"""The quadratic of notes 3.3: gradient, GD's closed-form contraction, iterations, step search."""

from __future__ import annotations

import math

import pytest
import torch

from deepnotes.optim.optimizers import SGD, Momentum, RMSProp
from deepnotes.optim.quadratic import (
    Quadratic,
    Setting,
    best_setting,
    best_step,
    iterations_to_tolerance,
    trajectory,
)


def test_value_and_gradient_match_autograd() -> None:
    f = Quadratic(0.3, 7.0)
    theta = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    theta.requires_grad_(True)
    value = f.value(theta)
    (auto,) = torch.autograd.grad(value.sum(), theta)
    expected = 0.3 * theta[:, 0] ** 2 + 7.0 * theta[:, 1] ** 2
    assert torch.allclose(value, expected, atol=1e-14)
    assert torch.allclose(f.grad(theta.detach()), auto, atol=1e-14)


def test_condition_number_and_optimal_step() -> None:
    f = Quadratic(0.025, 2.5)
    assert f.condition_number == pytest.approx(100.0)
    assert Quadratic(3.0, 1.5).condition_number == pytest.approx(2.0)
    assert f.optimal_gd_step == pytest.approx(1 / 2.525)
    # at alpha = 1/(a1 + a2) both coordinates contract by (kappa - 1) / (kappa + 1)
    c1, c2 = f.gd_contraction(f.optimal_gd_step)
    assert c1 == pytest.approx(c2) == pytest.approx(99 / 101)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.7, 0.95])
def test_gd_contracts_each_coordinate_by_one_minus_two_alpha_a_exactly(alpha: float) -> None:
    f = Quadratic(0.5, 1.0)
    path = trajectory(lambda p: SGD(p, lr=alpha), f, (3.0, -1.0), steps=40)
    t = torch.arange(41, dtype=torch.float64)
    assert torch.allclose(path[:, 0], 3.0 * (1 - 2 * alpha * 0.5) ** t, rtol=1e-12, atol=1e-300)
    assert torch.allclose(path[:, 1], -1.0 * (1 - 2 * alpha * 1.0) ** t, rtol=1e-12, atol=1e-300)


def test_gd_diverges_when_the_step_exceeds_one_over_a() -> None:
    f = Quadratic(1.0, 2.0)
    alpha = 0.6  # > 1/a2 = 0.5: |1 - 2 alpha a2| = 1.4
    path = trajectory(lambda p: SGD(p, lr=alpha), f, (1.0, 1.0), steps=30)
    assert path[30, 1].abs().item() == pytest.approx(1.4**30, rel=1e-12)
    assert path[30, 0].abs().item() < 1e-6  # x1 still converges (|1 - 1.2| = 0.2)
    assert iterations_to_tolerance(lambda p: SGD(p, lr=alpha), f, (1.0, 1.0), tol=1e-3) is None
    # just below the threshold it converges
    assert iterations_to_tolerance(lambda p: SGD(p, lr=0.49), f, (1.0, 1.0), tol=1e-3) is not None


def test_well_conditioned_gd_with_alpha_one_over_two_a_converges_in_one_step() -> None:
    f = Quadratic(2.0, 2.0)
    assert iterations_to_tolerance(lambda p: SGD(p, lr=0.25), f, (5.0, -3.0), tol=1e-12) == 1


@pytest.mark.parametrize(
    ("a1", "alpha", "tol"), [(1.0, 0.1, 1e-3), (0.05, 0.9, 1e-4), (3.0, 0.3, 0.02)]
)
def test_iterations_to_tolerance_matches_the_closed_form(
    a1: float, alpha: float, tol: float
) -> None:
    """On the x1 axis |x_t| = |1 - 2 alpha a1|^t |x_0|: the first t with rho^t <= tol."""
    f = Quadratic(a1, 10.0)
    rho = abs(1 - 2 * alpha * a1)
    expected = math.ceil(math.log(tol) / math.log(rho))
    assert abs(math.log(tol) / math.log(rho) - round(math.log(tol) / math.log(rho))) > 1e-6
    for stay in (0, 25):  # GD's distance is monotone here, so staying changes nothing
        got = iterations_to_tolerance(lambda p: SGD(p, lr=alpha), f, (4.0, 0.0), tol=tol, stay=stay)
        assert got == expected


def test_stay_rejects_a_run_that_only_passes_near_the_optimum() -> None:
    """RMSProp's first move is alpha / sqrt(1 - beta) sign(g): aimed to land on the optimum."""
    f = Quadratic(1.0, 1.0)
    beta = 0.75
    alpha = 1.0 * math.sqrt(1 - beta)  # first move exactly 1 along each axis

    def make(p: list[torch.Tensor]) -> RMSProp:
        return RMSProp(p, lr=alpha, beta=beta, eps=0.0)

    assert iterations_to_tolerance(make, f, (1.0, 1.0), tol=1e-6) == 1
    path = trajectory(make, f, (1.0, 1.0), steps=3)
    assert path[1].abs().max() < 1e-12
    # landing exactly on the optimum it stays there (g = 0), so it also passes with stay
    # (eps = 0 gives 0/0 there; use a tiny eps instead)
    assert (
        iterations_to_tolerance(
            lambda p: RMSProp(p, lr=alpha, beta=beta, eps=1e-30), f, (1.0, 1.0), tol=1e-6, stay=5
        )
        == 1
    )

    # sign descent (beta = 0) circles the optimum between 0.1 and -0.2: it passes within 0.15
    # at t = 3 but never stays there
    def sign_descent(p: list[torch.Tensor]) -> RMSProp:
        return RMSProp(p, lr=0.3, beta=0.0)

    assert iterations_to_tolerance(sign_descent, f, (1.0, 0.0), tol=0.15) == 3
    assert (
        iterations_to_tolerance(sign_descent, f, (1.0, 0.0), tol=0.15, stay=20, max_steps=200)
        is None
    )


def test_best_step_agrees_with_brute_force_over_the_grid() -> None:
    f = Quadratic(0.05, 1.0)
    start = (-4.0, 1.0)
    lrs = [0.01 * 1.4**k for k in range(15)]  # 0.01 .. ~1.1, crossing 1/a2 = 1
    for make in (
        lambda p, lr: SGD(p, lr=lr),
        lambda p, lr: Momentum(p, lr=lr, momentum=0.6),
    ):
        counts = {
            lr: iterations_to_tolerance(
                lambda p, lr=lr, make=make: make(p, lr), f, start, tol=1e-4, max_steps=5000, stay=10
            )
            for lr in lrs
        }
        finite = {lr: n for lr, n in counts.items() if n is not None}
        fewest = min(finite.values())
        choice = best_step(make, f, start, lrs, tol=1e-4, max_steps=5000, stay=10)
        assert choice.iterations == fewest
        assert choice.lr == max(lr for lr, n in finite.items() if n == fewest)


def test_momentum_beats_gd_on_an_ill_conditioned_quadratic() -> None:
    f = Quadratic(0.01, 1.0)  # kappa = 100
    lrs = [10 ** (-2 + k / 8) for k in range(17)]  # 0.01 .. 1
    kwargs = {"tol": 1e-2, "max_steps": 2000}  # lr = 1 = 1/a2 neither converges nor diverges
    gd = best_step(lambda p, lr: SGD(p, lr=lr), f, (-9.0, 1.5), lrs, **kwargs)
    hb = best_step(lambda p, lr: Momentum(p, lr=lr, momentum=0.7), f, (-9.0, 1.5), lrs, **kwargs)
    assert gd.iterations is not None and hb.iterations is not None
    assert gd.iterations > 5 * hb.iterations


def test_best_setting_agrees_with_brute_force_over_both_grids() -> None:
    f = Quadratic(0.05, 1.0)  # kappa = 20
    start = (-4.0, 1.0)
    lrs = [10 ** (-1.5 + k / 4) for k in range(7)]  # 0.03 .. 1
    momenta = (0.0, 0.5, 0.8)

    def make(p: list[torch.Tensor], lr: float, m: float) -> Momentum:
        return Momentum(p, lr=lr, momentum=m)

    counts = {
        (m, lr): iterations_to_tolerance(
            lambda p, lr=lr, m=m: make(p, lr, m), f, start, tol=1e-2, max_steps=600, stay=5
        )
        for m in momenta
        for lr in lrs
    }
    fewest = min(n for n in counts.values() if n is not None)
    got = best_setting(make, momenta, f, start, lrs, tol=1e-2, max_steps=600, stay=5)
    assert got.reached and got.iterations == fewest
    assert counts[got.knob, got.lr] == fewest
    # ties go to the first knob, then to the larger step
    first = next(m for m in momenta if fewest in {counts[m, lr] for lr in lrs})
    assert got.knob == first
    assert got.lr == max(lr for lr in lrs if counts[first, lr] == fewest)


def test_best_setting_reports_a_grid_where_everything_diverges() -> None:
    f = Quadratic(1.0, 10.0)  # GD is stable only below 1/a2 = 0.1
    got = best_setting(
        lambda p, lr, _: SGD(p, lr=lr), (0.0,), f, (1.0, 1.0), [0.2, 0.5], tol=1e-3, max_steps=500
    )
    assert got == Setting(None, None, None) and not got.reached


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="a1 must be"):
        Quadratic(0.0, 1.0)
    with pytest.raises(ValueError, match="a2 must be"):
        Quadratic(1.0, math.nan)
    f = Quadratic(1.0, 1.0)
    with pytest.raises(ValueError, match="tol"):
        iterations_to_tolerance(lambda p: SGD(p, lr=0.1), f, (1.0, 1.0), tol=1.5)
    with pytest.raises(ValueError, match="optimum"):
        iterations_to_tolerance(lambda p: SGD(p, lr=0.1), f, (0.0, 0.0), tol=0.1)
    with pytest.raises(ValueError, match="steps"):
        trajectory(lambda p: SGD(p, lr=0.1), f, (1.0, 1.0), steps=-1)
    with pytest.raises(ValueError, match="at least one"):
        best_step(lambda p, lr: SGD(p, lr=lr), f, (1.0, 1.0), [], tol=0.1)
    with pytest.raises(ValueError, match="knobs"):
        best_setting(lambda p, lr, _: SGD(p, lr=lr), (), f, (1.0, 1.0), [0.1], tol=0.1)
