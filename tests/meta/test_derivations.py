"""The meta derivation (notes' problem 1): registered, passing, and failing with wrong forms."""

from __future__ import annotations

from deepnotes.core.catalog import derivations, run_derivations
from deepnotes.meta.derivations import maml_meta_gradient_check
from deepnotes.meta.meta_gradient import first_order_meta_gradient, hessian_factors

NAME = "MAML meta-gradient: g = prod_j (I - a H_j) grad L1(theta_k)"


def test_registered_and_passing() -> None:
    assert NAME in {d.name for d in derivations(["meta"])}
    (row,) = [r for r in run_derivations(["meta"]) if r.name == NAME]
    assert row.passed and not row.error and row.max_abs_error < 1e-12 and row.tolerance == 1e-10


def test_wrong_closed_forms_fail() -> None:
    def reversed_order(loss0, loss1, theta, lr, k):  # (I - a H_{k-1}) ... (I - a H_0) g
        g = first_order_meta_gradient(loss0, loss1, theta, lr, k)
        for factor in hessian_factors(loss0, theta, lr, k):
            g = factor @ g
        return g

    for wrong in (first_order_meta_gradient, reversed_order):
        check = maml_meta_gradient_check(wrong)
        assert not check.passed and check.max_abs_error > 1e-8
