"""deepnotes.language.derivations: the word2vec gradient checks pass, and fail on wrong forms."""

from __future__ import annotations

import torch

from deepnotes.core.catalog import run_derivations
from deepnotes.language import derivations as d
from deepnotes.language.word2vec import negative_sampling_gradients, softmax_gradients


def test_the_checks_pass_and_are_registered() -> None:
    assert d.softmax_gradient_check().passed
    assert d.negative_sampling_gradient_check().passed
    rows = [r for r in run_derivations(["language"]) if "word2vec" in r.name]
    assert len(rows) == 2 and all(r.passed for r in rows)


def test_a_wrong_closed_form_fails() -> None:
    def no_normaliser(u, v, c, o):  # forgets the sum over the vocabulary in dL/dv_c
        loss, du, _ = softmax_gradients(u, v, c, o)
        return loss, du, -u[o]

    def wrong_sign(u, v, c, o, n):  # sigma(x) instead of sigma(x) - 1 for the positive
        loss, ids, du, dv = negative_sampling_gradients(u, v, c, o, n)
        vc = v[c]
        x = (u[o] * vc).sum(-1)
        du = du.clone()
        du[:, 0] = torch.sigmoid(x)[:, None] * vc
        return loss, ids, du, dv

    assert not d.softmax_gradient_check(no_normaliser).passed
    assert not d.negative_sampling_gradient_check(wrong_sign).passed
