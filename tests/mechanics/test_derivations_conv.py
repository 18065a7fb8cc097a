"""The convolution derivations registered for ``deepnotes derivations`` all hold."""

from __future__ import annotations

import pytest

import deepnotes.mechanics.derivations_conv  # noqa: F401  (registers the entries)
from deepnotes.core.catalog import Derivation, derivations

MODULE = "deepnotes.mechanics.derivations_conv"
EXPECTED = {
    "conv1d backward as convolutions",
    "conv2d backward as convolutions",
    "convolution as a matrix: W @ x_pad equals the convolution (forward identity)",
    "transposed conv2d is the transpose of the conv matrix (and conv2d's input gradient)",
    "conv_transpose2d backward",
    "max-pool backward routes the gradient to the arg-max",
    "average-pool backward spreads the gradient evenly",
}


def _ours() -> list[Derivation]:
    return [d for d in derivations(["mechanics"]) if d.fn.__module__ == MODULE]


def test_every_convolution_derivation_is_registered_under_mechanics() -> None:
    assert {d.name for d in _ours()} == EXPECTED
    assert all(d.closed_form for d in _ours())


@pytest.mark.parametrize("entry", _ours(), ids=lambda d: d.name)
def test_closed_form_agrees_with_autograd(entry: Derivation) -> None:
    check = entry.fn()
    assert check.passed, (entry.name, check.max_abs_error, check.tolerance)
    assert check.max_abs_error < 1e-12  # float64 round-off, far below the 1e-8 tolerance
    assert check.detail
