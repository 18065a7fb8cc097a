"""The dense-network derivations registered for ``deepnotes derivations`` hold, and would catch
a wrong closed form."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import deepnotes.mechanics.derivations_dense as dense
from deepnotes.core.catalog import Check, Derivation, derivations
from deepnotes.mechanics.normalization import BatchNormCache

MODULE = "deepnotes.mechanics.derivations_dense"
EXPECTED = {
    "sigmoid derivative",
    "softmax Jacobian",
    "softmax cross-entropy gradient wrt W",
    "softmax cross-entropy gradient wrt b",
    "softmax cross-entropy gradient wrt x",
    "skip-connection gradient",
    "gradient of ||x||^2",
    "Jacobian of A^T x",
    "gradient of ||A^T x||^2 wrt x",
    "gradient of ||A^T x||^2 wrt A",
    "BatchNorm backward (dx, dgamma, dbeta)",
    "inverted dropout backward",
}


def _ours() -> list[Derivation]:
    return [d for d in derivations(["mechanics"]) if d.fn.__module__ == MODULE]


def _by_name(name: str) -> Derivation:
    (entry,) = [d for d in _ours() if d.name == name]
    return entry


def test_every_dense_derivation_is_registered_under_mechanics() -> None:
    assert {d.name for d in _ours()} == EXPECTED
    assert all(d.closed_form and len(d.closed_form) < 120 for d in _ours())


@pytest.mark.parametrize("entry", _ours(), ids=lambda d: d.name)
def test_closed_form_agrees_with_autograd(entry: Derivation) -> None:
    first, second = entry.fn(), entry.fn()
    assert first.passed, (entry.name, first.max_abs_error, first.tolerance)
    assert first.max_abs_error < 1e-12  # float64 round-off, far below the 1e-8 tolerance
    assert first.detail
    assert first == second  # seeded: the same inputs and the same error every time


def test_a_perturbed_closed_form_fails_the_comparison() -> None:
    reference = np.random.default_rng(0).normal(size=(4, 3))
    assert Check.compare(reference.copy(), reference).passed
    perturbed = reference.copy()
    perturbed[2, 1] += 1e-6
    check = Check.compare(perturbed, reference)
    assert not check.passed
    assert check.max_abs_error == pytest.approx(1e-6)


def test_a_wrong_sigmoid_derivative_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(x: np.ndarray) -> np.ndarray:  # s (1 + s) instead of s (1 - s)
        s = 1 / (1 + np.exp(-x))
        return s * (1 + s)

    monkeypatch.setattr(dense, "sigmoid_derivative", wrong)
    assert not _by_name("sigmoid derivative").fn().passed


def test_a_wrong_batchnorm_backward_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classic mistake: treating mu_B and sigma_B as constants (dx = gamma dy / sigma)."""
    right = dense.batchnorm_backward

    def constant_statistics(dout: np.ndarray, cache: BatchNormCache) -> tuple[np.ndarray, ...]:
        return right(dout, dataclasses.replace(cache, train=False))

    monkeypatch.setattr(dense, "batchnorm_backward", constant_statistics)
    assert not _by_name("BatchNorm backward (dx, dgamma, dbeta)").fn().passed


def test_a_transposed_jacobian_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notes' convention matters: A^T (the row-gradient answer) does not pass for A."""
    monkeypatch.setattr(dense, "jacobian_AT_x", lambda A: np.asarray(A).T)
    with pytest.raises(ValueError, match="shape"):  # (3, 5) against (5, 3)
        _by_name("Jacobian of A^T x").fn()
