"""deepnotes.language.problems: the FLOP counts of one word2vec step equal the closed forms."""

from __future__ import annotations

import pytest

from deepnotes.core.catalog import run_problems
from deepnotes.language import problems as p


@pytest.mark.parametrize("vocab", [50, 3000])
def test_counted_flops_equal_the_closed_forms(vocab: int) -> None:
    batch, dim, k = 64, 16, 3
    assert p.counted_step_flops("softmax", batch, vocab, dim, k) == p.softmax_step_flops(
        batch, vocab, dim
    )
    assert p.counted_step_flops("negative", batch, vocab, dim, k) == (
        p.negative_sampling_step_flops(batch, k, dim)
    )


def test_the_problem_answers_with_a_ratio_of_v_over_k_plus_one() -> None:
    (row,) = [r for r in run_problems(["language"]) if "word2vec" in r.name]
    assert not row.error
    table = dict(row.quantities)[next(q for q, _ in row.quantities if q.startswith("per |V|"))]
    for vocab, soft_closed, soft, neg_closed, neg, ratio in table:
        assert soft == soft_closed and neg == neg_closed
        assert ratio == pytest.approx(vocab / (p.NEGATIVES + 1))
