"""The notes' optimisers against torch.optim, closed forms by hand, resumption and validation."""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from deepnotes.optim.optimizers import GD, SGD, Adagrad, Adam, Momentum, RMSProp

STEPS = 150
TOL = 1e-12  # float64, same arithmetic up to the order of operations


def _problem(seed: int = 0) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A small float64 MLP and a fixed sequence of minibatches (gradients differ every step)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    batches = [
        (
            torch.randn(16, 5, generator=gen, dtype=torch.float64),
            torch.randint(3, (16,), generator=gen),
        )
        for _ in range(STEPS)
    ]
    return model, batches


def _train(
    model: nn.Module,
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
) -> list[torch.Tensor]:
    opt = make(list(model.parameters()))
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def _max_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a, b, strict=True))


def _compare(
    ours: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    theirs: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    tol: float = TOL,
) -> float:
    model, batches = _problem()
    twin = copy.deepcopy(model)
    gap = _max_gap(_train(model, ours, batches), _train(twin, theirs, batches))
    assert gap <= tol, f"{STEPS} steps differ by {gap:.3g} > {tol:g}"
    return gap


# ------------------------------------------------------------------ where torch.optim coincides
def test_sgd_matches_torch_sgd() -> None:
    _compare(lambda p: SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1))
    assert GD is SGD  # full-batch GD is SGD fed the full gradient


def test_momentum_matches_torch_sgd_with_momentum_and_no_dampening() -> None:
    _compare(
        lambda p: Momentum(p, lr=0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0),
    )


def test_adagrad_with_eps_zero_matches_torch_adagrad() -> None:
    _compare(
        lambda p: Adagrad(p, lr=0.1, beta=1.0, eps=0.0),
        lambda p: torch.optim.Adagrad(p, lr=0.1, eps=0.0),
    )


def test_adagrad_beta_is_a_rescaled_step() -> None:
    """s = beta sum g^2, so alpha / sqrt(s) = (alpha / sqrt(beta)) / sqrt(sum g^2) when eps = 0."""
    beta = 0.25
    _compare(
        lambda p: Adagrad(p, lr=0.1, beta=beta, eps=0.0),
        lambda p: torch.optim.Adagrad(p, lr=0.1 / math.sqrt(beta), eps=0.0),
    )


def test_rmsprop_with_eps_zero_matches_torch_rmsprop() -> None:
    _compare(
        lambda p: RMSProp(p, lr=0.01, beta=0.9, eps=0.0),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0),
    )


def test_adam_matches_torch_adam() -> None:
    _compare(
        lambda p: Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8),
        tol=1e-10,  # torch folds the bias corrections into the step size: rounding differs
    )


# ------------------------------------------------------------------ where it differs: eps placement
def _one_step(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], g: float) -> float:
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = make([theta])
    theta.grad = torch.tensor([g], dtype=torch.float64)
    opt.step()
    return float(theta.detach())


@pytest.mark.parametrize("g", [0.5, 1.0, -2.0])
def test_adagrad_eps_inside_the_root_differs_from_torch_by_the_predicted_amount(g: float) -> None:
    alpha, eps = 0.1, 1.0  # a large eps makes the placement visible
    ours = _one_step(lambda p: Adagrad(p, lr=alpha, eps=eps), g)
    theirs = _one_step(lambda p: torch.optim.Adagrad(p, lr=alpha, eps=eps), g)
    # s^1 = g^2: the notes divide by sqrt(g^2 + eps), torch by |g| + eps
    assert ours == pytest.approx(-alpha * g / math.sqrt(g * g + eps), abs=1e-15)
    assert theirs == pytest.approx(-alpha * g / (abs(g) + eps), abs=1e-15)
    predicted_gap = alpha * abs(g) * abs(1 / math.sqrt(g * g + eps) - 1 / (abs(g) + eps))
    assert abs(ours - theirs) == pytest.approx(predicted_gap, rel=1e-12)
    assert predicted_gap > 0.01  # they really disagree


@pytest.mark.parametrize("g", [0.5, 3.0])
def test_rmsprop_eps_inside_the_root_differs_from_torch_by_the_predicted_amount(g: float) -> None:
    alpha, beta, eps = 0.1, 0.9, 0.5
    ours = _one_step(lambda p: RMSProp(p, lr=alpha, beta=beta, eps=eps), g)
    theirs = _one_step(lambda p: torch.optim.RMSprop(p, lr=alpha, alpha=beta, eps=eps), g)
    s = (1 - beta) * g * g  # s^1
    assert ours == pytest.approx(-alpha * g / math.sqrt(s + eps), abs=1e-15)
    assert theirs == pytest.approx(-alpha * g / (math.sqrt(s) + eps), abs=1e-15)
    predicted_gap = alpha * abs(g) * abs(1 / math.sqrt(s + eps) - 1 / (math.sqrt(s) + eps))
    assert abs(ours - theirs) == pytest.approx(predicted_gap, rel=1e-12)
    assert predicted_gap > 1e-3


# ------------------------------------------------------------------ closed forms by hand
A1, A2 = 0.5, 4.0  # f = a1 x1^2 + a2 x2^2


def _quadratic_steps(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], steps: int
) -> list[tuple[float, float]]:
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = make([theta])
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss = A1 * theta[0] ** 2 + A2 * theta[1] ** 2
        loss.backward()
        opt.step()
        out.append(tuple(theta.detach().tolist()))
    return out


def _grad(x: tuple[float, float]) -> tuple[float, float]:
    return 2 * A1 * x[0], 2 * A2 * x[1]


def test_sgd_one_step_by_hand() -> None:
    alpha = 0.1
    ((x1, x2),) = _quadratic_steps(lambda p: SGD(p, lr=alpha), 1)
    assert (x1, x2) == pytest.approx((1 - alpha * 2 * A1 * 1, -2 - alpha * 2 * A2 * -2), abs=1e-15)


def test_momentum_two_steps_by_hand() -> None:
    alpha, m = 0.05, 0.9
    got = _quadratic_steps(lambda p: Momentum(p, lr=alpha, momentum=m), 2)
    x0 = (1.0, -2.0)
    g0 = _grad(x0)
    v1 = g0  # v^1 = m * 0 + g^0
    x1 = tuple(x - alpha * v for x, v in zip(x0, v1, strict=True))
    v2 = tuple(m * v + g for v, g in zip(v1, _grad(x1), strict=True))
    x2 = tuple(x - alpha * v for x, v in zip(x1, v2, strict=True))
    assert got[0] == pytest.approx(x1, abs=1e-15)
    assert got[1] == pytest.approx(x2, abs=1e-15)


def test_rmsprop_two_steps_by_hand() -> None:
    alpha, beta, eps = 0.1, 0.9, 1e-8
    got = _quadratic_steps(lambda p: RMSProp(p, lr=alpha, beta=beta, eps=eps), 2)
    x, s = (1.0, -2.0), (0.0, 0.0)
    for t in range(2):
        g = _grad(x)
        s = tuple(beta * sk + (1 - beta) * gk**2 for sk, gk in zip(s, g, strict=True))
        x = tuple(xk - alpha * gk / math.sqrt(sk + eps) for xk, gk, sk in zip(x, g, s, strict=True))
        assert got[t] == pytest.approx(x, abs=1e-14)
    # the first step is alpha / sqrt(1 - beta) in the direction -sign(g), whatever |g| is
    assert got[0][0] - 1.0 == pytest.approx(-alpha / math.sqrt(1 - beta), rel=1e-6)


def test_adagrad_two_steps_by_hand() -> None:
    alpha, beta, eps = 0.3, 2.0, 1e-8
    got = _quadratic_steps(lambda p: Adagrad(p, lr=alpha, beta=beta, eps=eps), 2)
    x, s = (1.0, -2.0), (0.0, 0.0)
    for t in range(2):
        g = _grad(x)
        s = tuple(sk + beta * gk**2 for sk, gk in zip(s, g, strict=True))
        x = tuple(xk - alpha * gk / math.sqrt(sk + eps) for xk, gk, sk in zip(x, g, s, strict=True))
        assert got[t] == pytest.approx(x, abs=1e-14)


def test_adam_two_steps_by_hand() -> None:
    alpha, (b1, b2), eps = 0.1, (0.9, 0.999), 1e-8
    got = _quadratic_steps(lambda p: Adam(p, lr=alpha, betas=(b1, b2), eps=eps), 2)
    x, m, v = (1.0, -2.0), (0.0, 0.0), (0.0, 0.0)
    for t in (1, 2):
        g = _grad(x)
        m = tuple(b1 * mk + (1 - b1) * gk for mk, gk in zip(m, g, strict=True))
        v = tuple(b2 * vk + (1 - b2) * gk**2 for vk, gk in zip(v, g, strict=True))
        x = tuple(
            xk - alpha * (mk / (1 - b1**t)) / (math.sqrt(vk / (1 - b2**t)) + eps)
            for xk, mk, vk in zip(x, m, v, strict=True)
        )
        assert got[t - 1] == pytest.approx(x, abs=1e-14)
    # bias correction: the first step is alpha sign(g) (up to eps), not (1 - b1) alpha
    assert got[0][1] - (-2.0) == pytest.approx(alpha, rel=1e-6)


# ------------------------------------------------------------------ resumption and hygiene
MAKERS: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    "SGD": lambda p: SGD(p, lr=0.1),
    "Momentum": lambda p: Momentum(p, lr=0.05, momentum=0.9),
    "RMSProp": lambda p: RMSProp(p, lr=0.01, beta=0.9),
    "Adagrad": lambda p: Adagrad(p, lr=0.1),
    "Adam": lambda p: Adam(p, lr=0.01),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    make = MAKERS[name]
    model, batches = _problem(seed=1)
    first, rest = batches[:20], batches[20:40]
    opt = make(list(model.parameters()))
    for x, y in first:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    uninterrupted = _continue(model, opt, rest)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed_model, _ = _problem(seed=1)
    resumed_model.load_state_dict(saved["model"])
    resumed_opt = make(list(resumed_model.parameters()))
    resumed_opt.load_state_dict(saved["opt"])
    resumed = _continue(resumed_model, resumed_opt, rest)
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, resumed, strict=True))


def _continue(
    model: nn.Module, opt: torch.optim.Optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> list[torch.Tensor]:
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", list(MAKERS))
def test_buffers_carry_no_autograd_history_and_skip_params_without_grad(name: str) -> None:
    used = torch.randn(4, dtype=torch.float64, requires_grad=True)
    unused = torch.randn(3, dtype=torch.float64, requires_grad=True)
    before = unused.detach().clone()
    opt = MAKERS[name]([used, unused])
    for _ in range(3):
        opt.zero_grad()
        (used**2).sum().backward()
        opt.step()
    for value in opt.state[used].values():
        if isinstance(value, torch.Tensor):
            assert value.grad_fn is None and not value.requires_grad
    assert not opt.state[unused] and torch.equal(unused.detach(), before)
    assert used.grad_fn is None  # the update itself is not recorded


def test_param_groups_use_their_own_step_sizes() -> None:
    a = torch.ones(2, dtype=torch.float64, requires_grad=True)
    b = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = Momentum([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.0)
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    opt.step()
    assert a.detach().tolist() == pytest.approx([0.9, 0.9])
    assert b.detach().tolist() == pytest.approx([0.5, 0.5])


def test_closure_is_evaluated_and_its_loss_returned() -> None:
    theta = torch.tensor([3.0], requires_grad=True)
    opt = SGD([theta], lr=0.25)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (theta**2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 9.0
    assert float(theta.detach()) == pytest.approx(3.0 - 0.25 * 6.0)


def test_sparse_gradients_are_rejected() -> None:
    theta = torch.zeros(3, requires_grad=True)
    theta.grad = torch.zeros(3).to_sparse()
    with pytest.raises(ValueError, match="sparse"):
        Adam([theta]).step()


def test_adagrad_effective_step_never_grows_and_rmsprop_can() -> None:
    gen = torch.Generator().manual_seed(0)
    theta = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    twin = theta.detach().clone().requires_grad_(True)
    ada, rms = Adagrad([theta], lr=0.1), RMSProp([twin], lr=0.1, beta=0.9)
    assert torch.allclose(
        ada.effective_step(theta), torch.full((50,), 0.1 / math.sqrt(1e-8), dtype=torch.float64)
    )
    prev_ada = prev_rms = None
    grew = torch.zeros(50, dtype=torch.bool)
    for t in range(60):
        scale = 10.0 if t < 5 else 0.1  # large gradients first, then small ones
        g = scale * torch.randn(50, generator=gen, dtype=torch.float64)
        theta.grad, twin.grad = g.clone(), g.clone()
        ada.step()
        rms.step()
        step_ada, step_rms = ada.effective_step(theta), rms.effective_step(twin)
        s = ada.state[theta]["s"]
        assert torch.equal(step_ada, 0.1 / (s + 1e-8).sqrt())
        if prev_ada is not None:
            assert bool((step_ada <= prev_ada).all())
            grew |= step_rms > prev_rms
        prev_ada, prev_rms = step_ada, step_rms
    assert bool(grew.all())  # once the large gradients are forgotten, every step grows
    with pytest.raises(ValueError, match="not a parameter"):
        ada.effective_step(torch.zeros(2))


# ------------------------------------------------------------------ hyperparameter validation
@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda p: SGD(p, lr=0.0), "0.0"),
        (lambda p: SGD(p, lr=-1.0), "-1.0"),
        (lambda p: SGD(p, lr=math.nan), "nan"),
        (lambda p: Momentum(p, lr=0.1, momentum=1.0), "1.0"),
        (lambda p: Momentum(p, lr=0.1, momentum=-0.1), "-0.1"),
        (lambda p: RMSProp(p, beta=1.5), "1.5"),
        (lambda p: RMSProp(p, eps=-1e-8), "-1e-08"),
        (lambda p: Adagrad(p, beta=0.0), "0.0"),
        (lambda p: Adagrad(p, lr=math.inf), "inf"),
        (lambda p: Adam(p, betas=(0.9, 1.0)), "1.0"),
        (lambda p: Adam(p, betas=(0.9,)), r"\(0.9,\)"),
        (lambda p: Adam(p, eps=-1.0), "-1.0"),
    ],
)
def test_bad_hyperparameters_raise_value_error_naming_the_value(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], text: str
) -> None:
    with pytest.raises(ValueError, match=text):
        make([torch.zeros(2, requires_grad=True)])
