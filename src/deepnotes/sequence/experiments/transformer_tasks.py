r"""Copy, reverse and sort with the encoder-decoder Transformer. Notes: discussion 7, section 2
"Transformers" (2.2 the encoder with padding, 2.3 the decoder: masked self-attention and
encoder-decoder attention); Vaswani et al., 2017, "Attention Is All You Need".

The tasks are the annotated transformer's copy task (Rush, 2018, "The Annotated Transformer")
and minGPT's sort (Karpathy, 2020), with reverse between them: a source of ``L`` symbols, ``L``
uniform in ``[min_length, max_length]``, drawn from ``num_symbols`` symbols
(:func:`deepnotes.data.sequences.symbol_task`), and the target the same symbols copied, reversed
or sorted, then ``<eos>``. One :class:`~deepnotes.sequence.transformer.Transformer` per task is
trained with teacher forcing (cross-entropy over the real target positions, Adam with a
one-cycle schedule) through :class:`~deepnotes.core.engine.Loop`, on a fresh batch every step
from the stream ``("train", task)``.

**Held out.** The test set is drawn from its own stream ``("test", task)``. Short sequences
recur (there are only 10 sources of length 1), so every test source that also appears among the
training sources (the training stream is replayed to list them) is dropped; the fraction
dropped is reported. Sequence accuracy is exact match of the greedy decode (with the key/value
cache) with the target, ``<eos>`` included.

**Embedding initialisation.** The model scales its embeddings by :math:`\sqrt D` (the paper);
with ``nn.Embedding``'s N(0, 1) initialisation that gives entries of size :math:`\sqrt D`,
which drown the positional encoding (entries <= 1). The embeddings are re-initialised with
standard deviation :math:`D^{-1/2}` (the scaled embedding then has unit-size entries, as in the
paper's shared-embedding implementations). Measured before the claims were fixed: sort, D = 32,
400 steps, 81% sequence accuracy with N(0, 1) against 99.8% with the smaller initialisation.

Claims (fixed before the first run of this module):

- ``copy_solved``, ``reverse_solved``, ``sort_solved``: 100% sequence accuracy on the held-out
  test set (the bar of the annotated transformer and of minGPT: every sequence right). The
  quick preset (250 steps, chosen for the time budget) reaches it for copy only; reverse and
  sort carry a measured known failure there (:data:`QUICK_SHORTFALL`), the full preset must
  reach it for all three.

Checks (identities of the implementation, measured on each trained model):

- ``causal_mask``: changing the target tokens at positions ``>= j`` leaves the decoder's logits
  at every position ``< j`` bitwise unchanged, for every ``j`` (and does change the logits at
  positions ``>= j``: a check that the mutation was seen at all).
- ``padding_mask``: replacing the padding of every source by random symbols, with the original
  source mask passed explicitly, leaves every logit bitwise unchanged (and the same sources read
  as unpadded do change them).
- ``kv_cache``: greedy decoding with the key/value cache gives the same tokens as full
  recomputation on every test sequence, and in float64 the cached logits of every step equal
  the full decoder's to :data:`CACHE_TOL` (the library's pinned 1e-12, not bitwise: see
  :mod:`deepnotes.sequence.transformer`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.parallel import SOS_ID
from deepnotes.data.sequences import SYMBOL_TASKS
from deepnotes.sequence.symbol_tasks import (
    CHECK_SEQUENCES,
    SymbolModelConfig,
    cache_gap,
    causal_gaps,
    evaluate_task,
    padding_gaps,
)

CACHE_TOL = 1e-12
"""Largest |cached - full| logit (float64) the kv_cache check accepts."""
QUICK_STEPS = 250
"""Training steps per task of the quick preset."""
QUICK_SHORTFALL = {
    "reverse": "in the quick budget (250 steps of 128, D = 32, 1 layer) a few held-out "
    "sequences stay wrong: 99.5% measured at seed 0 (a pilot at D = 64 reached 99.9% in 300 steps)",
    "sort": "in the quick budget (250 steps of 128, D = 32, 1 layer) a few held-out sequences "
    "stay wrong: 99.6% measured at seed 0 (99.8% with 350 steps)",
}
"""Known shortfalls of the quick preset (measured); the full preset must reach 100%."""


@dataclass(frozen=True)
class TransformerTasksConfig(SymbolModelConfig):
    """Copy, reverse and sort, one Transformer each; full preset D = 64, 2 layers."""

    tasks: tuple[str, ...] = SYMBOL_TASKS

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            len(self.tasks) >= 1 and set(self.tasks) <= set(SYMBOL_TASKS),
            f"tasks must be among {SYMBOL_TASKS}, got {self.tasks}",
        )

    @classmethod
    def quick(cls) -> TransformerTasksConfig:
        """D = 32, 1 layer, 250 steps of 128 per task, 1,000 test draws."""
        return cls(
            d_model=32, layers=1, dim_feedforward=64, steps=QUICK_STEPS, lr=1e-2, test_size=1000
        )


@dataclass(frozen=True)
class TransformerTasksMeasurements:
    """Per task: held-out sequence accuracy, per-position accuracy, and the three checks."""

    seq_accuracy: dict[str, float]
    """Fraction of held-out sequences decoded exactly (NaN if training diverged)."""
    n_test: dict[str, int]
    dropped: dict[str, float]
    """Fraction of test draws dropped because their source appeared in training."""
    per_position: dict[str, np.ndarray]
    """Teacher-forced token accuracy per target position."""
    losses: dict[str, list[float]]
    diverged: dict[str, str]
    causal_before: float
    """Max |change| of earlier logits when later target tokens change (every task)."""
    causal_after: float
    """Min over tasks and j of the max |change| at positions >= j (> 0: the change is seen)."""
    padding_masked: float
    padding_unmasked: float
    cache_tokens_mismatch: int
    """Test sequences whose greedy tokens differ with and without the cache (every task)."""
    cache_logit_gap: float

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t in self.seq_accuracy:
            out[f"{t}_seq_accuracy"] = self.seq_accuracy[t]
            out[f"{t}_n_test"] = self.n_test[t]
            out[f"{t}_dropped"] = self.dropped[t]
            out[f"{t}_per_position"] = [float(v) for v in self.per_position[t]]
            out[f"{t}_final_loss"] = self.losses[t][-1] if self.losses[t] else math.nan
        out.update(
            causal_before=self.causal_before,
            causal_after=self.causal_after,
            padding_masked=self.padding_masked,
            padding_unmasked=self.padding_unmasked,
            cache_tokens_mismatch=self.cache_tokens_mismatch,
            cache_logit_gap=self.cache_logit_gap,
        )
        return out


def _fit(cfg: TransformerTasksConfig, ctx: RunContext, task: str) -> dict[str, Any]:
    r = evaluate_task(cfg, task, ctx, "sinusoidal", tag=task)
    out = {k: r[k] for k in ("losses", "diverged", "dropped", "n_test", "per_position")}
    out["seq_accuracy"] = float(np.mean(r["seq_correct"]))
    if r["diverged"]:
        nan = math.nan
        return (
            out
            | dict.fromkeys(
                (
                    "causal_before",
                    "causal_after",
                    "padding_masked",
                    "padding_unmasked",
                    "cache_gap",
                ),
                nan,
            )
            | {"cache_mismatch": -1}
        )
    model, test = r["model"], r["test"]
    gen = ctx.stream("checks", task)
    out["causal_before"], out["causal_after"] = causal_gaps(model, test, gen)
    out["padding_masked"], out["padding_unmasked"] = padding_gaps(model, test, gen)
    device = next(model.parameters()).device
    cached = model.greedy_decode(test.src.to(device), SOS_ID, test.tgt_out.shape[1], use_cache=True)
    full = model.greedy_decode(test.src.to(device), SOS_ID, test.tgt_out.shape[1], use_cache=False)
    out["cache_mismatch"] = int((cached != full).any(dim=1).sum())
    out["cache_gap"] = cache_gap(model, test)
    return out


def measure(cfg: TransformerTasksConfig, ctx: RunContext) -> TransformerTasksMeasurements:
    """Train one model per task (each a cached fit), then decode the held-out sets and run the
    mask and cache checks on each trained model."""
    fits = {}
    for task in cfg.tasks:
        key = {**dataclasses.asdict(cfg), "tasks": None, "task": task}
        fits[task] = ctx.cached("fit", key, lambda task=task: _fit(cfg, ctx, task))
        ctx.log({"task": task, "seq_accuracy": fits[task]["seq_accuracy"]})

    def worst(name: str, pick: Any) -> float:
        values = [float(f[name]) for f in fits.values()]
        return math.nan if any(math.isnan(v) for v in values) else float(pick(values))

    return TransformerTasksMeasurements(
        seq_accuracy={t: float(f["seq_accuracy"]) for t, f in fits.items()},
        n_test={t: int(f["n_test"]) for t, f in fits.items()},
        dropped={t: float(f["dropped"]) for t, f in fits.items()},
        per_position={t: np.asarray(f["per_position"], dtype=float) for t, f in fits.items()},
        losses={t: list(f["losses"]) for t, f in fits.items()},
        diverged={t: str(f["diverged"]) for t, f in fits.items()},
        causal_before=worst("causal_before", max),
        causal_after=worst("causal_after", min),
        padding_masked=worst("padding_masked", max),
        padding_unmasked=worst("padding_unmasked", min),
        cache_tokens_mismatch=sum(int(f["cache_mismatch"]) for f in fits.values())
        if all(int(f["cache_mismatch"]) >= 0 for f in fits.values())
        else -1,
        cache_logit_gap=worst("cache_gap", max),
    )


def draw(
    m: TransformerTasksMeasurements, cfg: TransformerTasksConfig, ctx: RunContext
) -> list[Path]:
    fig, (ax_pos, ax_loss) = figure(ncols=2, size=(4.6, 3.6))
    for i, task in enumerate(m.seq_accuracy):
        acc = m.per_position[task]
        ax_pos.plot(
            np.arange(1, len(acc) + 1),
            acc,
            "o-",
            color=f"C{i}",
            label=f"{task}: {100 * m.seq_accuracy[task]:.1f}% sequences",
        )
        losses = m.losses[task]
        ax_loss.semilogy(
            np.linspace(cfg.steps / len(losses), cfg.steps, len(losses)) if losses else [],
            losses,
            "o-",
            color=f"C{i}",
            label=task,
        )
    ax_pos.set(
        xlabel="target position (last = <eos> of the longest)",
        ylabel="teacher-forced token accuracy",
        title="held-out accuracy per position",
    )
    ax_pos.legend(fontsize=8)
    ax_loss.set(xlabel="step", ylabel="training cross-entropy (per round)", title="training")
    ax_loss.legend(fontsize=8)
    return [ctx.savefig(fig, "transformer_tasks.png")]


def claims(m: TransformerTasksMeasurements, cfg: TransformerTasksConfig) -> list[Claim]:
    out = []
    for task in SYMBOL_TASKS:
        if task not in m.seq_accuracy:
            continue  # a task left out of the config is reported "not measured" by the runner
        acc = m.seq_accuracy[task]
        why = f"; training diverged: {m.diverged[task]}" if m.diverged[task] else ""
        out.append(
            Claim.at_least(
                f"{task}: 100% sequence accuracy on held-out sequences (greedy decoding)",
                acc,
                1.0,
                detail=(
                    f"{round(acc * m.n_test[task]) if math.isfinite(acc) else 'NaN'} of "
                    f"{m.n_test[task]} exact; {100 * m.dropped[task]:.1f}% of the test draws "
                    f"dropped as seen in training; L in [{cfg.min_length}, {cfg.max_length}], "
                    f"{cfg.num_symbols} symbols, D = {cfg.d_model}, {cfg.layers} layer(s), "
                    f"{cfg.steps} steps of {cfg.batch_size}{why}"
                ),
                key=f"{task}_solved",
                known_failure=QUICK_SHORTFALL.get(task, "") if cfg.steps <= QUICK_STEPS else "",
            )
        )
    seen = m.causal_after if m.causal_after > 0 else math.nan
    out.append(
        Claim.at_most(
            "causal mask: changing later target tokens leaves earlier decoder logits bitwise "
            "unchanged (max |change|)",
            m.causal_before if math.isfinite(seen) else math.nan,
            0.0,
            detail=f"every cut j; the later logits did change (min max |change| {seen:.3g})",
            key="causal_mask",
            kind="check",
        )
    )
    seen = m.padding_unmasked if m.padding_unmasked > 0 else math.nan
    out.append(
        Claim.at_most(
            "padding mask: random symbols in the source padding leave every logit bitwise "
            "unchanged (max |change|)",
            m.padding_masked if math.isfinite(seen) else math.nan,
            0.0,
            detail=f"the same sources read as unpadded change the logits by up to {seen:.3g}",
            key="padding_mask",
            kind="check",
        )
    )
    gap = m.cache_logit_gap if m.cache_tokens_mismatch == 0 else math.nan
    out.append(
        Claim.at_most(
            "KV-cache greedy decoding equals full recomputation: same tokens on every test "
            f"sequence, float64 logits within {CACHE_TOL:g}",
            gap,
            CACHE_TOL,
            detail=(
                f"{m.cache_tokens_mismatch} sequences with different tokens; max |logit gap| "
                f"{m.cache_logit_gap:.3g} over {CHECK_SEQUENCES} sequences per task"
            ),
            key="kv_cache",
            kind="check",
        )
    )
    return out


@experiment(
    "sequence.transformer_tasks",
    topic="sequence",
    config=TransformerTasksConfig,
    claims=("copy_solved", "reverse_solved", "sort_solved"),
    checks=("causal_mask", "padding_mask", "kv_cache"),
)
def transformer_tasks(cfg: TransformerTasksConfig, ctx: RunContext) -> Outcome:
    """The encoder-decoder Transformer learns copy, reverse and sort to 100% sequence accuracy
    on held-out sequences, with its causal mask, padding mask and key/value cache checked on
    each trained model."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
