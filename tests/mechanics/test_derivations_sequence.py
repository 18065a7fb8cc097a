"""The recurrent and attention derivations registered for ``deepnotes derivations`` all hold."""

from __future__ import annotations

import pytest

import deepnotes.mechanics.derivations_sequence  # noqa: F401  (registers the entries)
from deepnotes.core.catalog import Derivation, derivations, run_derivations

MODULE = "deepnotes.mechanics.derivations_sequence"
EXPECTED = {
    "vanilla RNN gradients through time (BPTT)",
    "LSTM dJ/dW^g through time (all gates)",
    "LSTM cell path: dC_t/dC_{t-1} = diag(f_t)",
    "scaled dot-product attention backward (dq, dk, dv) with a causal mask",
    "multi-head attention backward (padding + causal masks)",
}


def _ours() -> list[Derivation]:
    return [d for d in derivations(["mechanics"]) if d.fn.__module__ == MODULE]


def test_every_sequence_derivation_is_registered_under_mechanics() -> None:
    assert {d.name for d in _ours()} == EXPECTED
    assert all(d.closed_form for d in _ours())


@pytest.mark.parametrize("entry", _ours(), ids=lambda d: d.name)
def test_closed_form_agrees_with_autograd(entry: Derivation) -> None:
    check = entry.fn()
    assert check.passed, (entry.name, check.max_abs_error, check.tolerance)
    assert check.max_abs_error < 1e-12  # float64 round-off, far below the 1e-8 tolerance
    assert check.detail


def test_rows_of_the_derivations_table_pass() -> None:
    rows = [r for r in run_derivations(["mechanics"]) if r.name in EXPECTED]
    assert len(rows) == len(EXPECTED)
    assert all(r.passed and not r.error for r in rows), [(r.name, r.error) for r in rows]
