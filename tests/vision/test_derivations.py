"""The Xavier derivation: closed-form variance of a linear layer against Monte Carlo."""

from __future__ import annotations

from deepnotes.core.catalog import derivations
from deepnotes.vision.derivations import SE_TOLERANCE, linear_variance_check


def test_xavier_derivation_is_registered_and_passes() -> None:
    entries = {d.name: d for d in derivations(["vision"])}
    entry = entries["Xavier initialisation (variance of a linear layer)"]
    assert "D_a Var(W) Var(a)" in entry.closed_form
    check = entry.fn()
    assert check.passed, check.detail
    assert check.tolerance == SE_TOLERANCE == 4.0
    assert "standard errors" in check.detail and check.unit == "SE"


def test_wrong_closed_forms_fail() -> None:
    forgot_width = linear_variance_check(lambda d_a, var_w, var_a: var_w * var_a, samples=20_000)
    he_factor = linear_variance_check(lambda d_a, var_w, var_a: 2 * d_a * var_w * var_a, 20_000)
    ten_percent = linear_variance_check(lambda d, w, a: 1.1 * d * w * a, samples=20_000)
    ignores_w = linear_variance_check(lambda d_a, var_w, var_a: var_a, samples=20_000)
    for check in (forgot_width, he_factor, ten_percent, ignores_w):
        assert not check.passed
        assert check.max_abs_error > SE_TOLERANCE
