r"""The notes' numeric attention problems, answered by :mod:`deepnotes.mechanics.attention`.

Discussion 7, section 1.2: the score table of figure 4 ("Computing Attention Scores from K, Q,
V": the dot products 112 and 96, divided by :math:`\sqrt{d_k} = 8`, then a softmax), the problem
"Generalized Attention in Matrix Form", and the problem "Justifying Scaled Self-Attention" (mean
and variance of :math:`q^\top k` for Gaussian ``q, k``, closed form next to Monte Carlo). Only the
notes' given data are literals, plus the dimensions, sample sizes and seeds chosen here for the
Monte Carlo side; every number shown is computed by the library.
"""

from __future__ import annotations

import math

import numpy as np

from deepnotes.core.catalog import Answer, problem
from deepnotes.mechanics.attention import (
    dot_product_monte_carlo,
    dot_product_scores,
    dot_product_stats,
    scaled_dot_product_attention,
)

# discussion 7, figure 4: q1 . k1 = 112 ("Thinking"), q1 . k2 = 96 ("Machines"); the table
# divides by 8 = sqrt(d_k), so d_k = 64
TABLE_DOTS = (112.0, 96.0)
TABLE_D_K = 64
TABLE_WORDS = ("Thinking", "Machines")
# chosen here: dimensions, sample size, seed, and a non-centred case for the general formula
STATS_DIMS = (4, 16, 64, 256)
STATS_SAMPLES = 20_000
STATS_SEED = 0
GENERAL_MU, GENERAL_SIGMA, GENERAL_D = 0.5, 2.0, 16
SATURATION_KEYS = 16


def _table_vectors() -> tuple[np.ndarray, np.ndarray]:
    """A query and two keys in R^{d_k} realising the table's dot products.

    The table gives only the dot products; any vectors with them give the same row. We take the
    keys ``e_1, e_2`` and the query ``112 e_1 + 96 e_2``.
    """
    keys = np.eye(len(TABLE_DOTS), TABLE_D_K)  # (2, d_k): k_1 = e_1, k_2 = e_2
    query = np.asarray(TABLE_DOTS) @ keys  # (d_k,): q_1 . k_j = TABLE_DOTS[j]
    return query[None, None], keys[None]  # (1, 1, d_k) and (1, 2, d_k)


@problem(
    "Attention scores: scale and softmax",
    topic="mechanics",
    source="discussion 7, section 1.2 (self-attention), figure 4 score table",
)
def _scores() -> Answer:
    q, k = _table_vectors()
    raw = dot_product_scores(q, k, scale=1.0)[0, 0]  # (2,): q_1 . k_j
    scaled = dot_product_scores(q, k)[0, 0]  # (2,): divided by sqrt(d_k)
    values = np.eye(len(TABLE_DOTS))[None]  # (1, 2, 2): v_j = e_j, so out = the weights
    out, cache = scaled_dot_product_attention(q, k, values)
    weights = cache.weights[0, 0]  # (2,)
    return Answer(
        [
            ("words", list(TABLE_WORDS)),
            ("d_k", TABLE_D_K),
            ("Score q1.k1, q1.k2", raw),
            (f"Divide by {math.sqrt(TABLE_D_K):g} (sqrt(d_k))", scaled),
            ("Softmax", weights),
            ("Softmax, 2 d.p. (as the notes print it)", np.round(weights, 2)),
            ("z_1 = sum_j softmax_j v_j, as weights on (v1, v2)", out[0, 0]),
        ],
        note="dot_product_scores with scale 1 and 1/sqrt(d_k), then scaled_dot_product_attention "
        "on a query and keys in R^64 realising the table's dot products (q = 112 e1 + 96 e2, "
        "k_j = e_j); the softmax of (14, 12) is (e^2, 1) / (e^2 + 1).",
    )


@problem(
    "Generalized attention in matrix form",
    topic="mechanics",
    source="discussion 7, section 1.2, 'Generalized Attention in Matrix Form'",
)
def _matrix_form() -> Answer:
    rng = np.random.default_rng(STATS_SEED)
    q, k, v = rng.normal(size=(1, 4, 8)), rng.normal(size=(1, 6, 8)), rng.normal(size=(1, 6, 3))
    stacked, _ = scaled_dot_product_attention(q, k, v)  # all queries at once: (1, 4, 3)
    one_by_one = np.concatenate(
        [scaled_dot_product_attention(q[:, [j]], k, v)[0] for j in range(q.shape[1])], axis=1
    )  # (1, 4, 3): each query q_l attends on its own
    return Answer(
        [
            ("matrix form", "Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V, softmax over keys"),
            ("shapes", "Q (l, d), K (t, d), V (t, dv) -> scores (l, t) -> output (l, dv)"),
            (
                "max |matrix form - one query at a time| (l=4, t=6, d=8)",
                float(np.max(np.abs(stacked - one_by_one))),
            ),
        ],
        note="stacking the queries q_1..q_l as the rows of Q turns l vector attentions into one "
        "matrix product; checked with scaled_dot_product_attention on random data.",
    )


def _mean_max_weight(d: int, scale: float | None, rng: np.random.Generator) -> float:
    """Mean (over queries) of the largest attention weight for Gaussian q, k in R^d."""
    q = rng.standard_normal((1, 256, d))
    k = rng.standard_normal((1, SATURATION_KEYS, d))
    v = np.zeros((1, SATURATION_KEYS, 1))
    _, cache = scaled_dot_product_attention(q, k, v, scale=scale)
    return float(cache.weights.max(axis=-1).mean())


@problem(
    "Scaled dot products: E[q.k] and Var(q.k) for Gaussian q, k",
    topic="mechanics",
    source="discussion 7, section 1.2, 'Justifying Scaled Self-Attention'",
)
def _dot_product_variance() -> Answer:
    rng = np.random.default_rng(STATS_SEED)
    rows = []
    for d in STATS_DIMS:
        mean, var = dot_product_stats(d)
        mc_mean, mc_var = dot_product_monte_carlo(d, STATS_SAMPLES, rng)
        rows.append([d, mean, mc_mean, var, mc_var])
    g_mean, g_var = dot_product_stats(GENERAL_D, GENERAL_MU, GENERAL_SIGMA)
    g_mc = dot_product_monte_carlo(GENERAL_D, STATS_SAMPLES, rng, GENERAL_MU, GENERAL_SIGMA)
    scaled_var = [dot_product_stats(d)[1] / math.sqrt(d) ** 2 for d in STATS_DIMS]
    unscaled = [_mean_max_weight(d, 1.0, rng) for d in STATS_DIMS]
    scaled = [_mean_max_weight(d, None, rng) for d in STATS_DIMS]
    return Answer(
        [
            (
                "1. E[q.k]",
                "||mu||^2 (d mu^2 when every coordinate has mean mu; 0 for standard normal)",
            ),
            ("2. Var(q.k)", "d sigma^4 + 2 sigma^2 ||mu||^2 (= d for standard-normal entries)"),
            ("standard normal: [d, E formula, E Monte Carlo, Var formula, Var Monte Carlo]", rows),
            (
                f"mu = {GENERAL_MU}, sigma = {GENERAL_SIGMA}, d = {GENERAL_D}: "
                "[E formula, E Monte Carlo, Var formula, Var Monte Carlo]",
                [g_mean, g_mc[0], g_var, g_mc[1]],
            ),
            ("3. scaling s (mu = 0)", "s = sigma^2 sqrt(d): Var(q.k / s) = 1 for every d"),
            ("3. Var(q.k / sqrt(d)) for d in " + str(list(STATS_DIMS)), scaled_var),
            (
                f"4. s = 1: mean largest softmax weight over {SATURATION_KEYS} keys, d in "
                + str(list(STATS_DIMS)),
                unscaled,
            ),
            ("4. s = sqrt(d): the same", scaled),
        ],
        note="dot_product_stats (closed form) next to dot_product_monte_carlo "
        f"({STATS_SAMPLES} pairs, seed {STATS_SEED}). Without scaling the scores' variance grows "
        "like d, the softmax approaches a one-hot (largest weight -> 1) and its gradient "
        "vanishes; dividing by sqrt(d) keeps unit variance and the weights spread. (The notes' "
        "part 3 asks for E[q.k / s] to scale linearly with d; the usual aim, stated here, is a "
        "variance that does not grow with d.)",
    )
