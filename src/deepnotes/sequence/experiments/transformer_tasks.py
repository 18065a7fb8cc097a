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

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import WEIGHT, Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.parallel import EOS_ID, PAD_ID, SOS_ID, TokenBatch
from deepnotes.data.sequences import SYMBOL_TASKS, symbol_task
from deepnotes.sequence.transformer import DecoderCache, Transformer

CACHE_TOL = 1e-12
"""Largest |cached - full| logit (float64) the kv_cache check accepts."""
CHECK_SEQUENCES = 200
"""Test sequences per task in the float64 cache comparison."""
QUICK_STEPS = 250
"""Training steps per task of the quick preset."""
QUICK_SHORTFALL = {
    "reverse": "in the quick budget (250 steps of 128, D = 32, 1 layer) a few held-out "
    "sequences stay wrong: 99.5% measured at seed 0 (a pilot at D = 64 reached 99.9% in 300 steps)",
    "sort": "in the quick budget (250 steps of 128, D = 32, 1 layer) a few held-out sequences "
    "stay wrong: 99.6% measured at seed 0 (99.8% with 350 steps)",
}
"""Known shortfalls of the quick preset (measured); the full preset must reach 100%."""
"""Test sequences used for the float64 cache comparison."""


@dataclass(frozen=True)
class SymbolModelConfig:
    """The model and training knobs shared by the symbol-task experiments."""

    num_symbols: int = 10
    """Distinct symbols (vocabulary = 4 special tokens + symbols)."""
    min_length: int = 1
    max_length: int = 8
    """Source length L, uniform in [min_length, max_length]."""
    d_model: int = 64
    num_heads: int = 4
    layers: int = 2
    """Encoder layers = decoder layers."""
    dim_feedforward: int = 128
    norm_first: bool = True
    """Pre-LN (Xiong et al., 2020): trains at a high learning rate without warm-up trouble."""
    batch_size: int = 128
    steps: int = 2000
    lr: float = 5e-3
    """Peak learning rate of the one-cycle schedule (10% warm-up, cosine decay)."""
    test_size: int = 2000
    """Test sequences drawn (before the ones seen in training are dropped)."""

    def __post_init__(self) -> None:
        require(self.num_symbols >= 2, f"num_symbols must be >= 2, got {self.num_symbols}")
        require(
            1 <= self.min_length <= self.max_length,
            f"expected 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}",
        )
        require(
            self.d_model >= 1 and self.num_heads >= 1 and self.d_model % self.num_heads == 0,
            f"d_model must be a positive multiple of num_heads, got {self.d_model}, "
            f"{self.num_heads}",
        )
        require(self.layers >= 1, f"layers must be >= 1, got {self.layers}")
        require(
            self.dim_feedforward >= 1, f"dim_feedforward must be >= 1, got {self.dim_feedforward}"
        )
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.steps >= 10, f"steps must be >= 10, got {self.steps}")
        require(0 < self.lr < 1, f"lr must be in (0, 1), got {self.lr}")
        require(self.test_size >= 10, f"test_size must be >= 10, got {self.test_size}")

    @property
    def vocab_size(self) -> int:
        return 4 + self.num_symbols


def build_model(cfg: SymbolModelConfig, positional: str) -> Transformer:
    """The task's Transformer (no dropout: the data are unlimited), embeddings re-initialised
    N(0, 1/D) (see the module docstring). Call inside ``ctx.seeded``."""
    model = Transformer(
        cfg.vocab_size,
        cfg.vocab_size,
        d_model=cfg.d_model,
        num_heads=cfg.num_heads,
        num_encoder_layers=cfg.layers,
        num_decoder_layers=cfg.layers,
        dim_feedforward=cfg.dim_feedforward,
        dropout=0.0,
        max_len=cfg.max_length + 2,
        positional=positional,
        norm_first=cfg.norm_first,
        pad_id=PAD_ID,
    )
    for embed in (model.src_embed, model.tgt_embed):
        torch.nn.init.normal_(embed.weight, std=cfg.d_model**-0.5)
    return model


def _draw(cfg: SymbolModelConfig, task: str, n: int, generator: torch.Generator) -> TokenBatch:
    return symbol_task(
        task,
        n,
        num_symbols=cfg.num_symbols,
        min_length=cfg.min_length,
        max_length=cfg.max_length,
        seed=generator,
    )


def _sources(batch: TokenBatch) -> list[tuple[int, ...]]:
    return [
        tuple(row[: int(n)]) for row, n in zip(batch.src.tolist(), batch.src_lengths, strict=True)
    ]


def training_batches(cfg: SymbolModelConfig, task: str, ctx: RunContext) -> list[TokenBatch]:
    """The ``cfg.steps`` training batches of ``task``, drawn up front from the stream
    ``("train", task)`` (so the held-out filter sees exactly what training sees)."""
    stream = ctx.stream("train", task)
    return [_draw(cfg, task, cfg.batch_size, stream) for _ in range(cfg.steps)]


def held_out_batch(
    cfg: SymbolModelConfig, task: str, ctx: RunContext, batches: list[TokenBatch]
) -> tuple[TokenBatch, float]:
    """The test set of ``task``: ``cfg.test_size`` draws from the stream ``("test", task)`` less
    every source that appears in the training ``batches``, and the fraction dropped."""
    seen: set[tuple[int, ...]] = set()
    for batch in batches:
        seen.update(_sources(batch))
    test = _draw(cfg, task, cfg.test_size, ctx.stream("test", task))
    keep = [i for i, s in enumerate(_sources(test)) if s not in seen]
    if not keep:
        raise ValueError(
            f"every one of the {cfg.test_size} test sources of {task!r} appears in training; "
            "use longer sequences or more symbols"
        )
    idx = torch.tensor(keep)
    width = int(test.src_lengths[idx].max())
    kept = TokenBatch(
        src=test.src[idx, :width],  # (B', S')
        src_lengths=test.src_lengths[idx],
        tgt_in=test.tgt_in[idx, : width + 1],  # (B', S' + 1)
        tgt_out=test.tgt_out[idx, : width + 1],
        tgt_lengths=test.tgt_lengths[idx],
    )
    return kept, 1.0 - len(keep) / cfg.test_size


def train(
    model: Transformer, cfg: SymbolModelConfig, batches: list[TokenBatch], ctx: RunContext, tag: str
) -> tuple[list[float], str]:
    """Teacher-forced training through the Loop, step ``i`` on ``batches[i - 1]``; returns (loss
    per round, divergence message or "")."""
    device = ctx.device
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1
    )
    loop = Loop(ctx, tag=tag, track={"model": model, "opt": opt, "sched": sched})

    def step(i: int) -> dict[str, float]:
        batch = batches[i - 1]
        logits = model(batch.src.to(device), batch.tgt_in.to(device))  # (B, T, V)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),  # (B T, V)
            batch.tgt_out.to(device).reshape(-1),  # (B T,)
            ignore_index=PAD_ID,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": loss.item(), WEIGHT: len(batch)}

    try:
        result = loop.run(step, steps=cfg.steps, every=max(1, cfg.steps // 5))
    except DivergenceError as err:
        return [float(r["loss"]) for r in loop.history], str(err)
    finally:
        model.eval()
    return [float(r["loss"]) for r in result.history], ""


@torch.no_grad()
def sequence_correct(model: Transformer, batch: TokenBatch, use_cache: bool = True) -> np.ndarray:
    """Per test sequence: does the greedy decode equal the target, ``<eos>`` included?"""
    device = next(model.parameters()).device
    width = batch.tgt_out.shape[1]
    out = model.greedy_decode(
        batch.src.to(device), SOS_ID, width, eos_id=EOS_ID, use_cache=use_cache
    )[:, 1:].cpu()  # (B, <= T)
    out = F.pad(out, (0, width - out.shape[1]), value=PAD_ID)  # (B, T): PAD after <eos>
    return (out == batch.tgt_out).all(dim=1).numpy()


@torch.no_grad()
def position_correct(model: Transformer, batch: TokenBatch) -> np.ndarray:
    """Teacher-forced argmax correct, (B, T) float with NaN at padding."""
    device = next(model.parameters()).device
    pred = model(batch.src.to(device), batch.tgt_in.to(device)).argmax(-1).cpu()  # (B, T)
    correct = (pred == batch.tgt_out).double().numpy()
    correct[batch.tgt_padding_mask.numpy()] = np.nan
    return correct


@torch.no_grad()
def _causal_gaps(
    model: Transformer, batch: TokenBatch, gen: torch.Generator
) -> tuple[float, float]:
    """(max |change| of logits before j, min over j of max |change| at or after j) when the
    target inputs at positions >= j are replaced by random symbols, over every j >= 1."""
    src, tgt = batch.src, batch.tgt_in
    base = model(src, tgt)  # (B, T, V)
    before, after = 0.0, math.inf
    for j in range(1, tgt.shape[1]):
        changed = tgt.clone()
        changed[:, j:] = 4 + torch.randint(
            0, model.tgt_embed.num_embeddings - 4, changed[:, j:].shape, generator=gen
        )
        out = model(src, changed)
        before = max(before, float((out[:, :j] - base[:, :j]).abs().max()))
        after = min(after, float((out[:, j:] - base[:, j:]).abs().max()))
    return before, after


@torch.no_grad()
def _padding_gaps(
    model: Transformer, batch: TokenBatch, gen: torch.Generator
) -> tuple[float, float]:
    """(max |change| of the logits when the source padding holds random symbols under the
    original mask, max |change| when the same sources are read as unpadded)."""
    src, tgt = batch.src, batch.tgt_in
    mask = model.source_mask(src)  # (B, S), True = real token
    noise = 4 + torch.randint(0, model.src_embed.num_embeddings - 4, src.shape, generator=gen)
    filled = torch.where(mask, src, noise)  # (B, S): padding replaced
    base = model(src, tgt)
    masked = model(filled, tgt, src_key_padding_mask=mask)
    unmasked = model(filled, tgt)
    return float((masked - base).abs().max()), float((unmasked - base).abs().max())


@torch.no_grad()
def _cache_gap(model: Transformer, batch: TokenBatch) -> float:
    """Float64: max |logits of cached one-token steps - logits of the full decoder| along the
    greedy decode of ``batch``."""
    m64 = copy.deepcopy(model).cpu().double()
    src = batch.src[:CHECK_SEQUENCES]
    tokens = m64.greedy_decode(src, SOS_ID, batch.tgt_out.shape[1], use_cache=False)  # (B, 1+T)
    mask = m64.source_mask(src)
    memory = m64.encode(src)
    full = m64.decode(tokens[:, :-1], memory, mask)  # (B, T, V)
    cache = DecoderCache()
    steps = [m64.decode(tokens[:, t : t + 1], memory, mask, cache) for t in range(full.shape[1])]
    return float((torch.cat(steps, dim=1) - full).abs().max())


def evaluate_task(
    cfg: SymbolModelConfig, task: str, ctx: RunContext, positional: str, tag: str
) -> dict[str, Any]:
    """Train one model on ``task`` and measure it on the held-out set (plain values)."""
    batches = training_batches(cfg, task, ctx)
    test, dropped = held_out_batch(cfg, task, ctx, batches)
    with ctx.seeded("init", task):
        model = build_model(cfg, positional)
    losses, diverged = train(model, cfg, batches, ctx, tag)
    out: dict[str, Any] = {
        "losses": losses,
        "diverged": diverged,
        "dropped": dropped,
        "n_test": len(test),
    }
    if diverged:
        nan_row = np.full(test.tgt_out.shape[1], math.nan)
        return out | {"seq_correct": np.full(len(test), math.nan), "per_position": nan_row}
    model = model.cpu()
    correct = position_correct(model, test)
    out["seq_correct"] = sequence_correct(model, test).astype(float)
    out["position_correct"] = correct
    out["per_position"] = np.nanmean(correct, axis=0)
    out["model"] = model
    out["test"] = test
    return out


# --------------------------------------------------------------------------------------------
# the experiment


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
    out["causal_before"], out["causal_after"] = _causal_gaps(model, test, gen)
    out["padding_masked"], out["padding_unmasked"] = _padding_gaps(model, test, gen)
    device = next(model.parameters()).device
    cached = model.greedy_decode(test.src.to(device), SOS_ID, test.tgt_out.shape[1], use_cache=True)
    full = model.greedy_decode(test.src.to(device), SOS_ID, test.tgt_out.shape[1], use_cache=False)
    out["cache_mismatch"] = int((cached != full).any(dim=1).sum())
    out["cache_gap"] = _cache_gap(model, test)
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
