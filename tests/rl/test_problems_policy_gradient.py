"""The notes' baseline problems (discussion 9, 1.2.2), answered by the library."""

from __future__ import annotations

import deepnotes.rl.problems_policy_gradient as ppg
from deepnotes.core.catalog import problems, run_problems

MODULE = "deepnotes.rl.problems_policy_gradient"
CONSTANT = (
    "Constant baseline: unbiased, and b = E[R] minimises the second moment under independence"
)
STATE = "State-dependent baselines add no bias"


def answers(name: str) -> dict:
    (row,) = run_problems(["rl"], [name])
    assert not row.error, row.error
    return dict(row.quantities)


def test_problems_are_registered_with_a_source() -> None:
    ours = [p for p in problems(["rl"]) if p.fn.__module__ == MODULE]
    assert {p.name for p in ours} == {CONSTANT, STATE}
    assert all(p.source.startswith("discussion 9, section 1.2.2") for p in ours)


def test_constant_baseline_is_unbiased_and_the_mean_return_minimises_under_independence() -> None:
    got = answers(CONSTANT)
    bound = got["agreement bound on |z| (Bonferroni over coordinates)"]
    assert got["max |z| of E[grad log pi(tau)] = 0 (any constant b times it)"] < bound
    assert got["max |z| of E[(R - J) grad log pi(tau)] = grad J"] < bound
    J = got["E[R] = J (exact, Bellman solve)"]
    mean, se = got["mean return (Monte Carlo) +- SE"]
    assert abs(mean - J) < 4 * se
    # the independence form is minimised at the sample mean return, to the grid's resolution
    b_indep = got["argmin_b E||grad log pi||^2 E[(R - b)^2] (independence)"]
    assert abs(b_indep - mean) <= got["grid step of b"] / 2 + 1e-12
    # the assumption is untrue here: the true minimiser is elsewhere, yet E[R] still helps
    assert got["corr(||grad log pi(tau)||^2, R): the assumption is untrue"] > 0.1
    b_star = got["argmin_b E[||grad log pi||^2 (R - b)^2] (true second moment)"]
    assert abs(b_star - J) > 10 * se
    at_zero, at_mean = got["E[||grad log pi||^2 (R - b)^2] at b = 0"], got["... at b = E[R]"]
    assert got["... at the true minimiser"] <= at_mean < at_zero


def test_state_dependent_baseline_adds_no_bias() -> None:
    got = answers(STATE)
    assert got["max_s |E_a~pi[grad log pi(a|s)]| (exact, each timestep)"] < 1e-15
    bound = got["agreement bound on |z| (Bonferroni over coordinates)"]
    for name in ("arbitrary b(s)", "b(s) = V^pi(s)"):
        assert got[f"max |z| of E[sum_t (G_t - b(s_t)) grad log pi] = grad J, {name}"] < bound
    assert got["episodes"] == ppg.EPISODES
