r"""Date translation with and without Luong attention. Notes: discussion 7, section 1.1 "Luong
Attention" (Luong, Pham & Manning, 2015, "Effective Approaches to Attention-based Neural Machine
Translation"), and the motivation before it: a plain encoder-decoder (Sutskever et al., 2014;
Cho et al., 2014) squeezes the whole source into the encoder's final state, while attention
keeps every encoder state as a memory the decoder reads at each step.

Task: :func:`deepnotes.data.sequences.date_splits` (every source form of
:data:`~deepnotes.data.sequences.DATE_FORMATS`, one form per date, disjoint train / validation /
test dates) translated character by character into ISO ``yyyy-mm-dd``. Two
:class:`~deepnotes.sequence.luong.LuongSeq2Seq` models with the same embeddings, LSTMs and
training (``attention=True``, general score; ``attention=False``), each trained by teacher
forcing (cross-entropy on ``tgt_out``, padding ignored) through :class:`deepnotes.core.engine.Loop`
with Adam, a cosine-decayed learning rate and gradient clipping; each fit in ``ctx.cached`` with
its init from ``ctx.seeded("init", model)`` and its minibatches from ``ctx.stream("order",
model)``. Evaluation by greedy decoding (at most the longest target + ``<eos>``) on the held-out
test dates.

Claims (statistics and thresholds fixed before the confirming run):

- ``attention_accuracy``: with attention, the exact-match accuracy (every character and the
  ``<eos>``) on the test dates is at least :data:`ACCURACY_BAR` = 0.99 (the issue's bar; point
  estimate over ``num_dates[2]`` dates).
- ``attention_resists_length``: accuracy falls with source length less with attention than
  without. Statistic: the least-squares slope, over test examples, of the per-example
  difference ``d_i = correct_att_i - correct_plain_i`` (both models on the same date, so paired)
  against the source length ``L_i`` in characters; the slope of ``d`` is the attention model's
  slope minus the plain model's. It is tested > 0 by :func:`deepnotes.core.stats.one_sample`
  (z, one-sided, house level) on the per-example influence values
  ``n (L_i - mean L)(d_i - mean d) / sum_j (L_j - mean L)^2``, whose mean is the slope (the
  heteroscedasticity-robust, HC0, standard error of a regression slope). Two models equally
  good at every length (for example both perfect) give zero spread and do not hold it. The
  per-bucket accuracies (:data:`LENGTH_EDGES`) are plotted and reported, not tested.
- ``attention_aligns``: the attention map aligns each output field (year, month, day) with its
  source characters: the teacher-forced attention mass on the field's source span
  (:func:`~deepnotes.data.sequences.alignment_mask`), averaged per test date over its target
  characters that belong to a field, has a mean above :data:`ALIGNMENT_BAR` = 0.5 (the issue's
  bar; one-sided one-sample test of the per-date values).

Known failures (measured, see :data:`QUICK_SHORTFALL` and :data:`LENGTH_FAILS`): the quick
preset does not reliably reach the 0.99 bar; and on this corpus accuracy *rises* with source
length for both models, because the long forms are the redundant ones (spelled-out month and
weekday) while every source carries the same date, so ``attention_resists_length`` does not
hold (full preset, seed 0: attention 0.9985, plain 0.9785, z = -5.9). The statistic was
fixed before the first run and is kept.

A fit that diverges (DivergenceError from the engine) records NaN correctness and masses, so its
claims do not hold and say so.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.parallel import TokenBatch, Vocabulary
from deepnotes.data.sequences import DateExample, alignment_mask, date_batch, date_splits
from deepnotes.sequence.luong import LuongSeq2Seq

MODELS = ("attention", "plain")
"""LuongSeq2Seq(attention=True) and LuongSeq2Seq(attention=False)."""
TARGET = "iso"
"""Target format: yyyy-mm-dd."""
ACCURACY_BAR = 0.99
"""Exact-match test accuracy the attention model must reach (the issue's bar)."""
ALIGNMENT_BAR = 0.5
"""Mean attention mass on the aligned source span must exceed this (the issue's bar)."""
LENGTH_EDGES = (10, 15, 20, 25)
"""Source-length bucket edges (characters) of the figure: <10, 10-14, 15-19, 20-24, >=25."""
QUICK_STEPS = 500
"""Training steps per model of the quick preset."""
QUICK_SHORTFALL = (
    "measured: in the quick budget (500 steps of 64, hidden 64, 3,000 training dates) the "
    "attention model reaches 0.910 at seed 0, worst on 'yyyymmdd' (0.63); pilots at 700 steps "
    "gave 0.997 (seed 0) and 0.960 (seed 1), at 800 steps 0.950 and 0.948, with 8,000 dates "
    "0.918 and 0.990: the bar needs the full preset's longer training"
)
"""Why the quick preset does not reliably reach :data:`ACCURACY_BAR` (measured)."""
LENGTH_FAILS = (
    "measured: on dates accuracy does not fall with source length, it rises for both models "
    "(quick, seed 0: plain 0.21 on sources < 10 characters, 0.35 on >= 25, slope +0.013 per "
    "character; attention 0.85 -> 0.97, +0.009), so the statistic is negative (z = -1.3; -2.9 "
    "to -7.0 in 8 pilot runs over seeds, steps and sizes; full, seed 0: plain 0.944 -> 1.000, "
    "z = -5.9). Every source holds one date: length "
    "measures redundancy (weekday, spelled-out month), not information, and both models fail "
    "most on the compact numeric forms (plain: yyyymmdd 0.04, yyyy/m/d 0.07, against 0.42 for "
    "'weekday d month yyyy'); the notes' long-sentence bottleneck does not arise at <= 30 "
    "characters"
)
"""Why ``attention_resists_length`` does not hold on dates (measured)."""
_EVAL_CHUNK = 1024
"""Examples decoded at once."""


@dataclass(frozen=True)
class LuongTranslationConfig:
    """Dates to ISO with an attentional and a plain LSTM encoder-decoder."""

    num_dates: tuple[int, int, int] = (8000, 500, 2000)
    """Distinct (train, validation, test) dates, one source form each."""
    embed_dim: int = 32
    hidden_size: int = 64
    steps: int = 3000
    batch_size: int = 128
    lr: float = 0.005
    """Adam's initial learning rate, decayed to 0 by a cosine over ``steps``."""
    clip: float = 1.0
    """Gradient-norm clipping."""
    rounds: int = 6
    """Validation records (greedy exact match) during training."""
    heatmaps: int = 4
    """Test dates shown as attention maps (distinct source forms)."""

    def __post_init__(self) -> None:
        require(
            len(self.num_dates) == 3 and all(n >= 2 for n in self.num_dates),
            f"num_dates must be 3 counts >= 2, got {self.num_dates}",
        )
        for name in ("embed_dim", "hidden_size", "steps", "batch_size", "rounds", "heatmaps"):
            value = getattr(self, name)
            require(value >= 1, f"{name} must be >= 1, got {value}")
        require(self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr}")
        require(self.clip > 0, f"clip must be > 0, got {self.clip}")

    @classmethod
    def quick(cls) -> LuongTranslationConfig:
        """3,000 training dates, 500 steps of 64 per model."""
        return cls(num_dates=(3000, 200, 1000), steps=QUICK_STEPS, batch_size=64, lr=0.01, rounds=4)


@dataclass(frozen=True)
class LuongTranslationMeasurements:
    """Per test date: source length, exact match per model, aligned attention mass."""

    source_lengths: np.ndarray
    """(N,) characters of each test source."""
    formats: np.ndarray
    """(N,) name of each test source's form (a key of DATE_FORMATS)."""
    correct: dict[str, np.ndarray]
    """Per model in :data:`MODELS`, (N,) 1.0 for an exact match, 0.0 otherwise (NaN: diverged)."""
    aligned_mass: np.ndarray
    """(N,) attention model's mean mass on the aligned span over field characters (NaN:
    diverged)."""
    diverged: dict[str, bool]
    history: dict[str, list[dict[str, float]]]
    """Per model, the Loop's records (step, loss, val_acc)."""
    heatmaps: list[dict[str, Any]]
    """A few test dates: ``source``, ``prediction`` (str) and greedy ``weights`` (T, S)."""

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in MODELS:
            out[f"accuracy_{name}"] = float(np.mean(self.correct[name]))
            out[f"length_slope_{name}"] = _slope(self.source_lengths, self.correct[name])
            out[f"bucket_accuracy_{name}"] = [a for a, _, _ in self.buckets(name)]
        out["bucket_counts"] = [n for _, _, n in self.buckets(MODELS[0])]
        out["aligned_mass"] = float(np.mean(self.aligned_mass))
        out["format_accuracy"] = {name: self.format_accuracy(name) for name in MODELS}
        return out

    def format_accuracy(self, name: str) -> dict[str, float]:
        """Exact-match accuracy per source form (with its source length in the name)."""
        out = {}
        for form in sorted(set(self.formats.tolist())):
            rows = self.formats == form
            out[form] = float(np.mean(self.correct[name][rows]))
        return out

    def buckets(self, name: str) -> list[tuple[float, float, int]]:
        """(accuracy, SE, count) per source-length bucket of :data:`LENGTH_EDGES`."""
        index = np.digitize(self.source_lengths, LENGTH_EDGES)
        out = []
        for k in range(len(LENGTH_EDGES) + 1):
            values = self.correct[name][index == k]
            if values.size >= 2:
                mean, se = stats.mean_se(values)
                out.append((float(mean), float(se), int(values.size)))
            else:
                mean = float(values.mean()) if values.size else math.nan
                out.append((mean, math.nan, int(values.size)))
        return out


def bucket_labels() -> list[str]:
    """Names of the source-length buckets of :data:`LENGTH_EDGES`."""
    edges = LENGTH_EDGES
    middle = [f"{a}-{b - 1}" for a, b in itertools.pairwise(edges)]
    return [f"<{edges[0]}", *middle, f">={edges[-1]}"]


def _slope(lengths: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ``values`` on ``lengths`` (NaN if the lengths do not vary)."""
    x = np.asarray(lengths, dtype=float)
    sxx = float(((x - x.mean()) ** 2).sum())
    if sxx == 0:
        return math.nan
    return float(((x - x.mean()) * (np.asarray(values, float) - np.mean(values))).sum() / sxx)


def slope_influence(lengths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``n (L_i - mean L)(v_i - mean v) / Sxx``: per-example terms whose mean is the slope of
    ``values`` on ``lengths`` (their SE is the HC0 robust SE of the slope)."""
    x = np.asarray(lengths, dtype=float)
    v = np.asarray(values, dtype=float)
    sxx = float(((x - x.mean()) ** 2).sum())
    if sxx == 0:
        return np.full(x.shape, math.nan)
    return x.size * (x - x.mean()) * (v - v.mean()) / sxx


# --------------------------------------------------------------------------------------------
# measurement


def _model(cfg: LuongTranslationConfig, vocab: Vocabulary, attention: bool) -> LuongSeq2Seq:
    return LuongSeq2Seq(
        len(vocab),
        len(vocab),
        embed_dim=cfg.embed_dim,
        hidden_size=cfg.hidden_size,
        attention=attention,
        pad_id=vocab.id_of("<pad>"),
        bos_id=vocab.id_of("<sos>"),
        eos_id=vocab.id_of("<eos>"),
    )


def _greedy(model: LuongSeq2Seq, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Greedy tokens padded to ``tgt_out``'s width ``(B, T)`` and their weights ``(B, T, S)``."""
    T = batch.tgt_out.shape[1]
    out = model.greedy(batch.src, max_len=T)
    tokens = torch.full_like(batch.tgt_out, model.pad_id)  # (B, T)
    tokens[:, : out.tokens.shape[1]] = out.tokens
    weights = None
    if out.weights is not None:
        weights = out.weights.new_zeros(len(batch), T, batch.src.shape[1])  # (B, T, S)
        weights[:, : out.weights.shape[1]] = out.weights
    return tokens, weights


def _exact_match(model: LuongSeq2Seq, batch: TokenBatch) -> np.ndarray:
    """(B,) 1.0 where greedy decoding reproduces ``tgt_out`` (``<eos>`` included)."""
    model.eval()
    rows = []
    for start in range(0, len(batch), _EVAL_CHUNK):
        part = batch.select(slice(start, start + _EVAL_CHUNK))
        tokens, _ = _greedy(model, part)
        rows.append((tokens == part.tgt_out).all(dim=1).double().cpu())
    model.train()
    return torch.cat(rows).numpy()


@torch.no_grad()
def _aligned_mass(
    model: LuongSeq2Seq, batch: TokenBatch, examples: tuple[DateExample, ...]
) -> np.ndarray:
    """(B,) per date: teacher-forced attention mass on the aligned source span, averaged over
    the target characters that belong to a field."""
    model.eval()
    out = []
    for start in range(0, len(batch), _EVAL_CHUNK):
        part = batch.select(slice(start, start + _EVAL_CHUNK))
        _, weights = model(part.src, part.tgt_in)  # (B, T, S)
        mask = alignment_mask(
            examples[start : start + _EVAL_CHUNK], TARGET, shape=tuple(weights.shape[1:])
        ).to(weights.device)  # (B, T, S)
        mass = (weights * mask).sum(-1)  # (B, T)
        rows = mask.any(-1)  # (B, T): target characters of a field
        out.append(((mass * rows).sum(-1) / rows.sum(-1)).double().cpu())
    model.train()
    return torch.cat(out).numpy()


def _heatmap_indices(examples: tuple[DateExample, ...], count: int) -> list[int]:
    """The first test dates of ``count`` distinct source forms (longest form first)."""
    seen: dict[str, int] = {}
    for i, ex in enumerate(examples):
        seen.setdefault(ex.format, i)
    firsts = sorted(seen.values(), key=lambda i: -len(examples[i].source))
    step = max(1, len(firsts) // count)
    return sorted(firsts[::step][:count])


def _fit(
    cfg: LuongTranslationConfig, ctx: RunContext, name: str, data: dict[str, Any]
) -> dict[str, Any]:
    """Train one model through the Loop; evaluate it on the test dates."""
    vocab: Vocabulary = data["vocab"]
    train, val, test = (data[k].to(ctx.device) for k in ("train", "val", "test"))
    with ctx.seeded("init", name):
        model = _model(cfg, vocab, attention=name == "attention").to(ctx.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    order = ctx.stream("order", name)

    def step(i: int) -> dict[str, float]:
        index = torch.randint(len(train), (cfg.batch_size,), generator=order)
        batch = train.select(index.to(ctx.device))
        logits, _ = model(batch.src, batch.tgt_in)  # (B, T, V)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),  # (B*T, V)
            batch.tgt_out.reshape(-1),
            ignore_index=model.pad_id,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        sched.step()
        return {"loss": loss.item()}

    loop = Loop(ctx, tag=name, track={"model": model, "opt": opt, "sched": sched, "order": order})
    n = len(test)
    try:
        result = loop.run(
            step,
            steps=cfg.steps,
            every=max(1, cfg.steps // cfg.rounds),
            evaluate=lambda r: {"val_acc": float(_exact_match(model, val).mean())},
        )
    except DivergenceError:
        return {
            "correct": np.full(n, math.nan),
            "aligned_mass": np.full(n, math.nan),
            "history": loop.history,
            "diverged": True,
            "heatmaps": [],
        }
    correct = _exact_match(model, test)
    heatmaps, mass = [], np.full(n, math.nan)
    if name == "attention":
        mass = _aligned_mass(model, test, data["test_examples"])
        model.eval()
        for i in _heatmap_indices(data["test_examples"], cfg.heatmaps):
            one = test.select([i])
            with torch.no_grad():
                tokens, weights = _greedy(model, one)
            ids = [t for t in tokens[0].tolist() if t != model.pad_id]
            heatmaps.append(
                {
                    "source": data["test_examples"][i].source,
                    "prediction": [vocab.token_of(t) for t in ids],
                    "weights": weights[0, : len(ids)].cpu().numpy(),  # (T', S)
                }
            )
    return {
        "correct": correct,
        "aligned_mass": mass,
        "history": result.history,
        "diverged": False,
        "heatmaps": heatmaps,
    }


def measure(cfg: LuongTranslationConfig, ctx: RunContext) -> LuongTranslationMeasurements:
    """Draw the dates, train both models (cached fits), evaluate on the test dates."""
    splits = date_splits(cfg.num_dates, seed=ctx.stream("dates"))
    vocab = splits.vocabulary
    data = {
        "vocab": vocab,
        "train": date_batch(splits.train, vocab, TARGET),
        "val": date_batch(splits.validation, vocab, TARGET),
        "test": date_batch(splits.test, vocab, TARGET),
        "test_examples": splits.test,
    }
    fits = {}
    for name in MODELS:
        key = {
            "model": name,
            "num_dates": cfg.num_dates,
            "embed_dim": cfg.embed_dim,
            "hidden_size": cfg.hidden_size,
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "clip": cfg.clip,
            "rounds": cfg.rounds,
            "heatmaps": cfg.heatmaps,
        }
        fits[name] = ctx.cached("fit", key, lambda name=name: _fit(cfg, ctx, name, data))
        ctx.log({"model": name, "test_accuracy": float(np.mean(fits[name]["correct"]))})
    return LuongTranslationMeasurements(
        source_lengths=np.array([len(ex.source) for ex in splits.test]),
        formats=np.array([ex.format for ex in splits.test]),
        correct={name: np.asarray(fits[name]["correct"], dtype=float) for name in MODELS},
        aligned_mass=np.asarray(fits["attention"]["aligned_mass"], dtype=float),
        diverged={name: bool(fits[name]["diverged"]) for name in MODELS},
        history={name: list(fits[name]["history"]) for name in MODELS},
        heatmaps=list(fits["attention"]["heatmaps"]),
    )


# --------------------------------------------------------------------------------------------
# figures and verdicts


def draw(
    m: LuongTranslationMeasurements, cfg: LuongTranslationConfig, ctx: RunContext
) -> list[Path]:
    paths = []
    if m.heatmaps:
        fig, axes = figure(ncols=len(m.heatmaps), size=(4.2, 3.0))
        axes = np.atleast_1d(axes)
        for ax, h in zip(axes, m.heatmaps, strict=False):
            w = np.asarray(h["weights"])  # (T', S)
            ax.imshow(w, cmap="viridis", vmin=0, vmax=1, aspect="auto")
            ax.set_xticks(range(len(h["source"])), list(h["source"]), fontsize=7)
            ax.set_yticks(range(len(h["prediction"])), h["prediction"], fontsize=7)
            ax.set_xlabel("source character")
            ax.set_ylabel("decoded character (greedy)")
            ax.set_title(repr(h["source"]), fontsize=9)
        fig.suptitle("Luong attention (general score) on test dates")
        paths.append(ctx.savefig(fig, "attention_maps"))
    fig, (ax_len, ax_val) = figure(ncols=2, size=(4.8, 3.6))
    x = np.arange(len(LENGTH_EDGES) + 1)
    styles = {"attention": ("C0", "o", "with attention"), "plain": ("C3", "s", "no attention")}
    for name in MODELS:
        color, marker, label = styles[name]
        rows = m.buckets(name)
        ax_len.errorbar(
            x,
            [r[0] for r in rows],
            yerr=[2 * r[1] for r in rows],
            fmt=f"{marker}-",
            color=color,
            capsize=3,
            label=f"{label} ({np.mean(m.correct[name]):.3f} overall)",
        )
        hist = m.history[name]
        if hist:
            ax_val.plot(
                [r["step"] for r in hist], [r.get("val_acc", math.nan) for r in hist],
                f"{marker}-", color=color, label=label,
            )  # fmt: skip
    counts = [r[2] for r in m.buckets(MODELS[0])]
    ax_len.set_xticks(x, [f"{b}\n(n={n})" for b, n in zip(bucket_labels(), counts, strict=True)])
    ax_len.axhline(ACCURACY_BAR, color="grey", ls=":", lw=1, label=f"{ACCURACY_BAR:g} bar")
    ax_len.set_xlabel("source length (characters)")
    ax_len.set_ylabel("exact-match accuracy (± 2 SE)")
    ax_len.set_title("greedy decoding on held-out dates")
    ax_val.set_xlabel("training step")
    ax_val.set_ylabel("validation exact match")
    ax_val.set_title(f"hidden {cfg.hidden_size}, batch {cfg.batch_size}, lr {cfg.lr:g}")
    for ax in (ax_len, ax_val):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    paths.append(ctx.savefig(fig, "accuracy_by_length"))
    return paths


def claims(m: LuongTranslationMeasurements, cfg: LuongTranslationConfig) -> list[Claim]:
    setting = (
        f"{len(m.source_lengths)} test dates, {cfg.num_dates[0]} training dates, hidden "
        f"{cfg.hidden_size}, {cfg.steps} steps of {cfg.batch_size}"
    )
    diverged = [name for name in MODELS if m.diverged[name]]
    note = f"; diverged: {', '.join(diverged)}" if diverged else ""
    acc = {name: float(np.mean(m.correct[name])) for name in MODELS}
    d = m.correct["attention"] - m.correct["plain"]
    slope_test = stats.one_sample(slope_influence(m.source_lengths, d), "greater")
    slopes = {name: _slope(m.source_lengths, m.correct[name]) for name in MODELS}
    edges = {name: m.buckets(name) for name in MODELS}
    short_long = ", ".join(
        f"{name} {edges[name][0][0]:.3f} (<{LENGTH_EDGES[0]}) -> {edges[name][-1][0]:.3f} "
        f"(>={LENGTH_EDGES[-1]})"
        for name in MODELS
    )
    mass_test = stats.one_sample(m.aligned_mass, "greater", null=ALIGNMENT_BAR)
    return [
        Claim.at_least(
            f"with attention, exact-match accuracy on held-out dates >= {ACCURACY_BAR:g}",
            acc["attention"],
            ACCURACY_BAR,
            detail=f"greedy decoding; without attention {acc['plain']:.4f}; {setting}{note}",
            key="attention_accuracy",
            known_failure=QUICK_SHORTFALL if cfg.steps <= QUICK_STEPS else "",
        ),
        Claim.from_test(
            "accuracy falls with source length less with attention than without (slope of "
            "the per-date accuracy difference, attention - plain, on source length > 0)",
            slope_test,
            detail=(
                f"slopes per character: attention {slopes['attention']:.3g}, plain "
                f"{slopes['plain']:.3g}; bucket accuracy {short_long}; HC0 robust SE; "
                f"{setting}{note}"
            ),
            key="attention_resists_length",
            known_failure=LENGTH_FAILS,
        ),
        Claim.from_test(
            f"the attention map aligns each output field with its source span: mean mass on "
            f"the aligned span > {ALIGNMENT_BAR:g}",
            mass_test,
            detail=(
                f"mean mass {float(np.mean(m.aligned_mass)):.3f}, teacher-forced, averaged per "
                f"date over its year/month/day target characters; {setting}{note}"
            ),
            key="attention_aligns",
        ),
    ]


@experiment(
    "sequence.luong_translation",
    topic="sequence",
    config=LuongTranslationConfig,
    claims=("attention_accuracy", "attention_resists_length", "attention_aligns"),
)
def luong_translation(cfg: LuongTranslationConfig, ctx: RunContext) -> Outcome:
    """An LSTM encoder-decoder with Luong attention translates written dates to ISO almost
    without error, loses less accuracy on long sources than the same model without attention,
    and attends to each output field's source characters."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
