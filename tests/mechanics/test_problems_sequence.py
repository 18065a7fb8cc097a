"""The notes' attention problems, answered by the library, checked against torch and the notes."""

from __future__ import annotations

import math

import numpy as np
import torch

import deepnotes.mechanics.problems_sequence  # noqa: F401  (registers the problems)
from deepnotes.core.catalog import problems, run_problems

MODULE = "deepnotes.mechanics.problems_sequence"


def answers(name: str) -> dict:
    (row,) = run_problems(["mechanics"], [name])
    assert not row.error, row.error
    return dict(row.quantities)


def test_problems_are_registered_with_a_source() -> None:
    ours = [p for p in problems(["mechanics"]) if p.fn.__module__ == MODULE]
    assert {p.name for p in ours} == {
        "Attention scores: scale and softmax",
        "Generalized attention in matrix form",
        "Scaled dot products: E[q.k] and Var(q.k) for Gaussian q, k",
    }
    assert all(p.source.startswith("discussion 7") for p in ours)


def test_score_table_reproduces_every_row_of_the_notes() -> None:
    got = answers("Attention scores: scale and softmax")
    assert got["words"] == ["Thinking", "Machines"]
    assert got["d_k"] == 64
    assert got["Score q1.k1, q1.k2"] == [112.0, 96.0]  # the notes' "Score" row
    assert got["Divide by 8 (sqrt(d_k))"] == [14.0, 12.0]  # "Divide by 8"
    assert got["Softmax, 2 d.p. (as the notes print it)"] == [0.88, 0.12]  # "Softmax"
    scores = torch.tensor([112.0, 96.0], dtype=torch.float64)
    ref = torch.softmax(scores / math.sqrt(64), dim=0).numpy()
    np.testing.assert_allclose(got["Softmax"], ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got["z_1 = sum_j softmax_j v_j, as weights on (v1, v2)"], ref)


def test_matrix_form_equals_one_query_at_a_time() -> None:
    got = answers("Generalized attention in matrix form")
    assert got["max |matrix form - one query at a time| (l=4, t=6, d=8)"] < 1e-12
    assert "softmax(Q K^T / sqrt(d)) V" in got["matrix form"]


def test_dot_product_statistics_formula_beside_monte_carlo() -> None:
    got = answers("Scaled dot products: E[q.k] and Var(q.k) for Gaussian q, k")
    rows = got["standard normal: [d, E formula, E Monte Carlo, Var formula, Var Monte Carlo]"]
    assert [r[0] for r in rows] == [4, 16, 64, 256]
    n = 20_000
    for d, mean, mc_mean, var, mc_var in rows:
        assert mean == 0.0 and var == d
        assert abs(mc_mean) < 5 * math.sqrt(d / n)  # within 5 standard errors
        assert abs(mc_var / var - 1) < 0.1
    general = next(v for k, v in got.items() if k.startswith("mu = 0.5, sigma = 2.0, d = 16"))
    e, e_mc, var, var_mc = general
    assert e == 16 * 0.25 and var == 16 * 2.0**4 + 2 * 2.0**2 * 16 * 0.25
    assert abs(e_mc - e) < 5 * math.sqrt(var / n) and abs(var_mc / var - 1) < 0.1
    assert got["3. Var(q.k / sqrt(d)) for d in [4, 16, 64, 256]"] == [1.0] * 4
    unscaled = next(v for k, v in got.items() if k.startswith("4. s = 1"))
    scaled = got["4. s = sqrt(d): the same"]
    assert np.all(np.diff(unscaled) > 0)  # the softmax saturates as d grows
    assert unscaled[-1] > 0.85 and max(scaled) < 0.35 and min(scaled) > 1 / 16
