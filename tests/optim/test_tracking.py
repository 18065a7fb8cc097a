"""The effective-step tracker (notes 3.5): Adagrad's step never grows, RMSProp's can."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepnotes.optim.optimizers import Adagrad, RMSProp
from deepnotes.optim.tracking import EffectiveStepTracker


def _run(opt_cls: type, grads: list[list[float]], **kwargs: float) -> EffectiveStepTracker:
    theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = opt_cls([theta], **kwargs)
    tracker = EffectiveStepTracker(traced=torch.tensor([1]))
    opt.register_step_post_hook(tracker)
    for g in grads:
        theta.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return tracker


def test_records_alpha_over_sqrt_s_plus_eps_after_every_update() -> None:
    grads = [[1.0, 2.0], [3.0, 0.5], [0.0, 0.1]]
    tracker = _run(RMSProp, grads, lr=0.1, beta=0.5, eps=1e-8)
    s = np.zeros(2)
    expected = []
    for g in np.asarray(grads):
        s = 0.5 * s + 0.5 * g**2  # the notes' running average
        expected.append(0.1 / np.sqrt(s + 1e-8))
    expected = np.asarray(expected)
    summary = tracker.summary()
    assert summary["updates"] == 3
    np.testing.assert_allclose(summary["traces"][:, 0], expected[:, 1], rtol=1e-12)
    np.testing.assert_allclose(summary["quantiles"][:, 1], expected.mean(1), rtol=1e-12)
    # coordinate 0 grew at update 3, coordinate 1 at updates 2 and 3
    changes = np.diff(expected, axis=0)
    assert summary["increases"] == int((changes > 0).sum()) == 3
    assert summary["pairs"] == 4
    assert summary["max_increase"] == pytest.approx(changes.max(), rel=1e-12)
    assert summary["fraction_increased"] == 1.0


def test_adagrad_never_grows_even_with_shrinking_gradients() -> None:
    grads = [[5.0, 1.0], [0.0, 0.0], [1e-3, 2.0], [0.0, 1e-6]]
    summary = _run(Adagrad, grads, lr=0.5).summary()
    assert summary["max_increase"] <= 0
    assert summary["increases"] == 0 and summary["fraction_increased"] == 0.0


def test_before_two_updates_there_is_no_change_to_report() -> None:
    summary = _run(Adagrad, [[1.0, 1.0]], lr=0.5).summary()
    assert summary["updates"] == 1 and summary["pairs"] == 0
    assert math.isnan(summary["max_increase"]) and math.isnan(summary["fraction_increased"])
