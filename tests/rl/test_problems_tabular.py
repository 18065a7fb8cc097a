"""The trajectory-probability problem (discussion 8, problem 1), answered by the library and
checked against enumeration and sampling."""

from __future__ import annotations

import numpy as np
import pytest

import deepnotes.rl.problems_tabular as pt
from deepnotes.core.catalog import problems, run_problems

NAME = "Probability of a trajectory under a Markovian policy"


def answers() -> dict:
    (row,) = run_problems(["rl"], [NAME])
    assert not row.error, row.error
    return dict(row.quantities)


def test_registered_under_rl_with_its_source() -> None:
    ours = [p for p in problems(["rl"]) if p.fn.__module__ == pt.__name__]
    assert [p.name for p in ours] == [NAME]
    assert ours[0].source == "discussion 8, section 2.1, problem 1"


def test_answer_agrees_with_enumeration_and_sampling() -> None:
    got = answers()
    assert got["T, |S|, |A|"] == [3, 3, 2]
    assert abs(got["sum of the terms - log p(tau)"]) < 1e-12
    assert got["p(tau)"] == pytest.approx(np.exp(got["log p(tau)"]))
    assert got["sum of p over all (S A)^(T+1) trajectories"] == pytest.approx(1.0, abs=1e-12)
    assert got["max |marginal of s_T by enumeration - p_0 (P^pi)^T|"] < 1e-12
    assert abs(got["z = (frequency - p(tau)) / SE"]) < 4.0


def test_notes_log_prob_by_hand() -> None:
    mdp, pi = pt.small_mdp()
    s, a = np.array([0, 2, 1]), np.array([1, 0, 1])
    by_hand = np.log(
        mdp.initial[0] * pi[0, 1] * mdp.P[0, 1, 2] * pi[2, 0] * mdp.P[2, 0, 1] * pi[1, 1]
    )
    assert pt.notes_log_prob(mdp, pi, s, a) == pytest.approx(by_hand, abs=1e-12)
    states, actions, probs = pt.enumerate_trajectories(mdp, pi, 1)
    assert states.shape == actions.shape == (36, 2) and probs.sum() == pytest.approx(1.0)
