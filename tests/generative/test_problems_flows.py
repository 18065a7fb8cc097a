"""The notes' flow problems 7 and 8, answered by the library (importing the module directly)."""

from __future__ import annotations

import deepnotes.generative.problems_flows as pf
from deepnotes.core.catalog import problems

MODULE = "deepnotes.generative.problems_flows"


def test_problems_are_registered_with_their_source() -> None:
    ours = {p.name: p.source for p in problems(["generative"]) if p.fn.__module__ == MODULE}
    assert ours == {
        "Flow objective by change of variables": "discussion 10, section 4.3, problem 7",
        "RealNVP determinant |det df/dz| = exp(sum h)": "discussion 10, section 4.3, problem 8",
    }


def test_problem_7_objective_is_the_change_of_variables_and_normalised() -> None:
    got = dict(pf._flow_objective().quantities)
    assert "log |det d f_theta^{-1}(x_i) / dx|" in got["objective"]
    for key in (
        "max |Flow.log_prob - (log N(f^{-1}(x)) + slogdet of autograd d f^{-1}/dx)|",
        "max |Flow.log_prob - (log N(z) - slogdet of autograd df/dz)|",
        "max |f(f^{-1}(x)) - x| (invertible)",
    ):
        assert got[key] < 1e-12, key
    mass = got[f"integral of p(x) over [-{pf.BOX:g}, {pf.BOX:g}]^2 (Riemann, {pf.GRID}^2 points)"]
    share, se = got[f"share of {pf.SAMPLES} samples f(z) in the box +- SE"]
    assert 0.5 < mass <= 1.0
    assert abs(mass - share) < 4 * se  # the density integrates like its samples fall
    assert "invertible" in got["properties of f"] and "triangular" in got["properties of f"]


def test_problem_8_determinant_is_exp_sum_h() -> None:
    got = dict(pf._realnvp_determinant().quantities)
    assert got["max relative |exp(sum h) - |det(autograd J)|| / |det J|"] < 1e-12
    assert got["max |sum h - log|det J| (torch.linalg.slogdet)|"] < 1e-12
    assert got["max |d x_{1:d} / d z_{d+1:n}| (upper block, zero)"] == 0.0
    assert got["max |diag of d x_{d+1:n} / d z_{d+1:n} - exp(h)|"] < 1e-12
    assert got["max |library coupling - notes' formula| (x and log det)"] < 1e-14
