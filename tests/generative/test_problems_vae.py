"""The notes' latent-variable problems (discussion 10, problems 2-6), answered by the library."""

from __future__ import annotations

import numpy as np

import deepnotes.generative.problems_vae as pv
from deepnotes.core.catalog import Problem, problems


def entries() -> dict[str, Problem]:
    return {p.name: p for p in problems(["generative"]) if p.fn.__module__ == pv.__name__}


def answer(fragment: str) -> dict:
    (entry,) = [p for name, p in entries().items() if fragment in name]
    return dict(entry.fn().quantities)


def test_registered_with_their_sources() -> None:
    sources = sorted(p.source for p in entries().values())
    assert [s.rsplit("problem ", 1)[1] for s in sources] == ["2", "3", "4", "5", "6"]


def test_problem_2_averages_of_plausible_digits_are_blurry() -> None:
    got = answer("Blurry")
    ratios = list(got.values())
    assert ratios[0] < 1 and ratios[1] < ratios[0] and abs(ratios[2] - 1) < 1e-12


def test_problem_3_exact_log_likelihood() -> None:
    got = answer("discrete latent")
    assert got["max |logsumexp form - direct product form|"] < 1e-12
    assert abs(got["sum over all 2^D images of p(x) (must be 1)"] - 1) < 1e-12
    assert (
        abs(got["objective (1/N) sum_i log sum_z p(z) p(x_i|z)"] - np.mean(got["log p(x_i)"]))
        < 1e-12
    )


def test_problem_4_jensen_gap_is_the_kl_and_closes_at_the_posterior() -> None:
    got = answer("Jensen")
    values = list(got.values())
    assert values[1] > 0 and values[2] < 1e-12 and values[3] < 1e-12


def test_problem_5_sample_from_q_not_the_prior() -> None:
    got = answer("sampled from")
    (_, z_q), (_, z_prior) = [v for k, v in got.items() if k.startswith("z ~")]
    assert z_q < 3.3 and z_prior > 10


def test_problem_6_both_unbiased_and_variances_match() -> None:
    (table,) = answer("Reparameterisation").values()
    _, two_theta, m_re, m_sf, v_re, e_re, v_sf, e_sf = table.T
    assert np.all(np.abs(m_re - two_theta) < 0.02) and np.all(np.abs(m_sf - two_theta) < 0.15)
    assert np.all(np.abs(v_re / e_re - 1) < 0.02) and np.all(np.abs(v_sf / e_sf - 1) < 0.15)
    assert np.all(v_sf > v_re)
