"""Tests for deepnotes.core.schedules: learning-rate multipliers against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from deepnotes.core.schedules import SCHEDULES, make_scheduler, schedule_factor


def _closed_form(name: str, step: int, total: int, warmup: int) -> float:
    """Independent statement of the documented schedules (integer arithmetic where possible)."""
    if step < warmup:
        return (step + 1) / warmup
    decay = max(1, total - warmup)
    k = min(step - warmup, decay)  # steps into the decay phase, clamped at its end
    if name == "constant":
        return 1.0
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * k / decay))
    if name == "linear":
        return (decay - k) / decay
    if name == "step":
        return {0: 1.0, 1: 0.1, 2: 0.01, 3: 0.01}[(3 * k) // decay]
    raise AssertionError(name)


def test_schedule_names() -> None:
    assert SCHEDULES == ("constant", "cosine", "linear", "step")


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize(("total", "warmup"), [(1, 0), (7, 0), (30, 0), (30, 5), (12, 12)])
def test_factor_matches_closed_form_at_every_step(name: str, total: int, warmup: int) -> None:
    factor = schedule_factor(name, total, warmup)
    for step in range(total + 3):
        assert factor(step) == pytest.approx(_closed_form(name, step, total, warmup), abs=1e-12)


def test_cosine_known_values() -> None:
    factor = schedule_factor("cosine", 100)
    assert factor(0) == 1.0
    assert factor(25) == pytest.approx(0.5 * (1 + math.sqrt(0.5)))
    assert factor(50) == pytest.approx(0.5)
    assert factor(75) == pytest.approx(0.5 * (1 - math.sqrt(0.5)))
    assert factor(100) == pytest.approx(0.0, abs=1e-15)
    assert factor(1000) == pytest.approx(0.0, abs=1e-15)  # clamped after the end


def test_linear_known_values() -> None:
    factor = schedule_factor("linear", 10)
    assert [factor(s) for s in (0, 1, 5, 9, 10, 20)] == pytest.approx(
        [1.0, 0.9, 0.5, 0.1, 0.0, 0.0]
    )


def test_step_divides_by_ten_at_one_and_two_thirds() -> None:
    factor = schedule_factor("step", 90)
    values = [factor(s) for s in range(91)]
    assert values[:30] == [1.0] * 30
    assert values[30:60] == pytest.approx([0.1] * 30)
    assert values[60:] == pytest.approx([0.01] * 31)
    assert factor(10_000) == pytest.approx(0.01)


def test_constant_is_one() -> None:
    factor = schedule_factor("constant", 5)
    assert [factor(s) for s in range(8)] == [1.0] * 8


@pytest.mark.parametrize("name", SCHEDULES)
def test_warmup_is_linear_from_one_over_w_to_one(name: str) -> None:
    warmup, total = 4, 20
    factor = schedule_factor(name, total, warmup)
    assert [factor(s) for s in range(warmup)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # the decay phase starts at its full value right after warm-up
    assert factor(warmup) == pytest.approx(1.0)


def test_cosine_after_warmup_runs_over_remaining_steps() -> None:
    factor = schedule_factor("cosine", total_steps=30, warmup_steps=10)
    assert factor(20) == pytest.approx(0.5)  # halfway through the 20 decay steps
    assert factor(30) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("name", ["Cosine", "exp", "", "constant "])
def test_unknown_schedule_raises(name: str) -> None:
    with pytest.raises(ValueError) as info:
        schedule_factor(name, 10)
    assert f"unknown schedule {name!r}" in str(info.value)
    assert "constant, cosine, linear, step" in str(info.value)


@pytest.mark.parametrize(("total", "warmup"), [(0, 0), (-5, 0), (10, -1), (10, 11)])
def test_bad_step_counts_raise(total: int, warmup: int) -> None:
    with pytest.raises(ValueError) as info:
        schedule_factor("cosine", total, warmup)
    assert "need total_steps >= 1 and 0 <= warmup_steps <= total_steps" in str(info.value)
    assert f"got {total}, {warmup}" in str(info.value)


def _optimizer(lr: float = 0.4) -> torch.optim.Optimizer:
    param = torch.nn.Parameter(torch.zeros(3))
    return torch.optim.SGD([param], lr=lr)


def test_make_scheduler_constant_without_warmup_is_none() -> None:
    optimizer = _optimizer()
    assert make_scheduler("constant", optimizer, 10) is None
    assert optimizer.param_groups[0]["lr"] == 0.4


def test_make_scheduler_validates_even_for_constant() -> None:
    with pytest.raises(ValueError, match="unknown schedule"):
        make_scheduler("nope", _optimizer(), 10)
    with pytest.raises(ValueError, match="need total_steps"):
        make_scheduler("constant", _optimizer(), 0)


@pytest.mark.parametrize(
    ("name", "total", "warmup"),
    [("constant", 10, 3), ("cosine", 12, 0), ("linear", 9, 2), ("step", 15, 0), ("cosine", 8, 8)],
)
def test_make_scheduler_lr_follows_factor(name: str, total: int, warmup: int) -> None:
    base_lr = 0.4
    optimizer = _optimizer(base_lr)
    scheduler = make_scheduler(name, optimizer, total, warmup)
    assert isinstance(scheduler, LambdaLR)
    seen = []
    for step in range(total + 2):
        lr = optimizer.param_groups[0]["lr"]
        seen.append(lr)
        assert lr == pytest.approx(base_lr * _closed_form(name, step, total, warmup), abs=1e-12)
        optimizer.step()
        scheduler.step()
    if warmup:
        assert seen[0] == pytest.approx(base_lr / warmup)
