"""The tabular RL derivations registered for ``deepnotes derivations`` all hold."""

from __future__ import annotations

import pytest

import deepnotes.rl.derivations_tabular  # noqa: F401  (registers the entries)
from deepnotes.core.catalog import Derivation, derivations, run_derivations

MODULE = "deepnotes.rl.derivations_tabular"
EXPECTED = {
    "Bellman expectation equations for V^pi and Q^pi",
    "Bellman optimality equation for Q*",
    "gradient of log p_theta(tau): the dynamics drop out",
}


def _ours() -> list[Derivation]:
    return [d for d in derivations(["rl"]) if d.fn.__module__ == MODULE]


def test_every_tabular_derivation_is_registered_under_rl() -> None:
    assert {d.name for d in _ours()} == EXPECTED
    assert all(d.closed_form for d in _ours())


@pytest.mark.parametrize("entry", _ours(), ids=lambda d: d.name)
def test_closed_form_agrees_with_its_reference(entry: Derivation) -> None:
    check = entry.fn()
    assert check.passed, (entry.name, check.max_abs_error, check.tolerance)
    assert check.max_abs_error < 1e-9 and check.detail


def test_rows_of_the_derivations_table_pass() -> None:
    rows = [r for r in run_derivations(["rl"]) if r.name in EXPECTED]
    assert len(rows) == len(EXPECTED)
    assert all(r.passed and not r.error for r in rows), [(r.name, r.error) for r in rows]
