r"""The language topic's numeric problem: what one word2vec step costs, full softmax vs negative
sampling, in closed form and counted. Notes: discussion 8, part 1, section 1.1.2 ("summing the
logits for every word in the entire vocabulary ... is very slow"); issue 17, "Problems".

For a minibatch of ``B`` (centre, context) pairs, width ``D``, vocabulary ``|V|`` and ``k``
negatives, one gradient step does, in matrix products (a multiply-add counted as 2 FLOPs, as
``torch.utils.flop_counter.FlopCounterMode`` does):

- full softmax: the logits :math:`V_c U^\top` (``2 B |V| D``), then their gradient with respect
  to ``U`` and to ``V_c`` (``2 B |V| D`` each): :math:`6 B |V| D`;
- negative sampling: the ``1 + k`` dot products per pair (``2 B (k + 1) D``) and their two
  gradients: :math:`6 B (k + 1) D`, whatever :math:`|V|`;

so the ratio is :math:`|V| / (k + 1)`. The counts are those of ``FlopCounterMode`` around the
forward and backward pass (autograd) of :func:`~deepnotes.language.word2vec.softmax_loss` and
:func:`~deepnotes.language.word2vec.negative_sampling_loss`, on tensors on the ``meta``
device (nothing is computed). The softmax, the sigmoids and the gathers are not matrix
products and are not counted; the closed-form step of
:class:`~deepnotes.language.word2vec.SkipGram` does the same products as elementwise sums.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from deepnotes.core.catalog import Answer, problem
from deepnotes.language.word2vec import negative_sampling_loss, softmax_loss

BATCH, DIM, NEGATIVES = 1024, 32, 5
VOCABS = (100, 1_000, 10_000, 100_000)


def softmax_step_flops(batch: int, vocab: int, dim: int) -> int:
    """Closed form: ``6 B |V| D`` (logits, then dL/dU and dL/dV_c)."""
    return 6 * batch * vocab * dim


def negative_sampling_step_flops(batch: int, negatives: int, dim: int) -> int:
    """Closed form: ``6 B (k + 1) D`` (``1 + k`` dot products per pair and their gradients)."""
    return 6 * batch * (negatives + 1) * dim


def counted_step_flops(objective: str, batch: int, vocab: int, dim: int, negatives: int) -> int:
    """FLOPs of the loss's forward and backward pass, counted by ``FlopCounterMode`` on meta
    tensors; ``objective`` is "softmax" or "negative"."""
    with torch.device("meta"):
        u = torch.empty(vocab, dim, requires_grad=True)
        v = torch.empty(vocab, dim, requires_grad=True)
        centres = torch.zeros(batch, dtype=torch.long)
        contexts = torch.zeros(batch, dtype=torch.long)
        noise = torch.zeros(batch, negatives, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        if objective == "softmax":
            loss = softmax_loss(u, v, centres, contexts)
        else:
            loss = negative_sampling_loss(u, v, centres, contexts, noise)
        loss.backward()
    return int(counter.get_total_flops())


@problem(
    "word2vec step cost: full softmax vs negative sampling",
    topic="language",
    source="discussion 8, part 1, section 1.1.2 'Making Word2Vec Tractable'",
)
def _step_cost() -> Answer:
    rows = []
    for vocab in VOCABS:
        soft = counted_step_flops("softmax", BATCH, vocab, DIM, NEGATIVES)
        neg = counted_step_flops("negative", BATCH, vocab, DIM, NEGATIVES)
        rows.append(
            [
                vocab,
                softmax_step_flops(BATCH, vocab, DIM),
                soft,
                negative_sampling_step_flops(BATCH, NEGATIVES, DIM),
                neg,
                soft / neg,
            ]
        )
    return Answer(
        [
            ("closed forms", "softmax 6 B |V| D; negative sampling 6 B (k + 1) D"),
            ("B, D, k", [BATCH, DIM, NEGATIVES]),
            (
                "per |V|: [|V|, softmax closed form, softmax counted, negative sampling closed "
                "form, negative sampling counted, counted ratio]",
                rows,
            ),
            ("ratio = |V| / (k + 1) at the largest |V|", VOCABS[-1] / (NEGATIVES + 1)),
        ],
        note="FlopCounterMode around softmax_loss / negative_sampling_loss forward + backward "
        "on meta tensors; closed forms softmax_step_flops / negative_sampling_step_flops.",
    )
