"""Transformers on the symbol tasks (copy, reverse, sort): the model, its training through the
engine, held-out sets and the measurements shared by ``sequence.transformer_tasks`` and
``sequence.positional_encoding`` (notes, discussion 7; the annotated transformer's copy task,
minGPT's sort).

Held out means drawn from a stream of its own, with every source that training saw removed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import WEIGHT, Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.data.parallel import EOS_ID, PAD_ID, SOS_ID, TokenBatch
from deepnotes.data.sequences import symbol_task
from deepnotes.sequence.transformer import DecoderCache, Transformer

CHECK_SEQUENCES = 200
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


def draw_task(cfg: SymbolModelConfig, task: str, n: int, generator: torch.Generator) -> TokenBatch:
    return symbol_task(
        task,
        n,
        num_symbols=cfg.num_symbols,
        min_length=cfg.min_length,
        max_length=cfg.max_length,
        seed=generator,
    )


def sources_of(batch: TokenBatch) -> list[tuple[int, ...]]:
    return [
        tuple(row[: int(n)]) for row, n in zip(batch.src.tolist(), batch.src_lengths, strict=True)
    ]


def training_batches(cfg: SymbolModelConfig, task: str, ctx: RunContext) -> list[TokenBatch]:
    """The ``cfg.steps`` training batches of ``task``, drawn up front from the stream
    ``("train", task)`` (so the held-out filter sees exactly what training sees)."""
    stream = ctx.stream("train", task)
    return [draw_task(cfg, task, cfg.batch_size, stream) for _ in range(cfg.steps)]


def held_out_batch(
    cfg: SymbolModelConfig, task: str, ctx: RunContext, batches: list[TokenBatch]
) -> tuple[TokenBatch, float]:
    """The test set of ``task``: ``cfg.test_size`` draws from the stream ``("test", task)`` less
    every source that appears in the training ``batches``, and the fraction dropped."""
    seen: set[tuple[int, ...]] = set()
    for batch in batches:
        seen.update(sources_of(batch))
    test = draw_task(cfg, task, cfg.test_size, ctx.stream("test", task))
    keep = [i for i, s in enumerate(sources_of(test)) if s not in seen]
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
    correct[~batch.tgt_mask.numpy()] = np.nan
    return correct


@torch.no_grad()
def causal_gaps(model: Transformer, batch: TokenBatch, gen: torch.Generator) -> tuple[float, float]:
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
def padding_gaps(
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
def cache_gap(model: Transformer, batch: TokenBatch) -> float:
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
