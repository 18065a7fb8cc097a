r"""Contextual embeddings separate a polysemous word's senses; a static vector cannot, and a
forward-only LM cannot where only the right context decides. Notes: discussion 8, part 1,
section 1.2 "Pretrained Language Models" (ELMo: "if we simply ran an LSTM forward through a
sentence ... the embedding of each word would only depend on those that came before it"; the
word2vec representations "do not depend on its context"); issue 17, experiment 3. Anchor: Peters
et al. (2018), section 5.3 (biLM states disambiguate word senses; a linear probe on them).

The planted corpus (:func:`deepnotes.data.language.planted_corpus`) marks every occurrence of a
polysemous word with its sense; for the words in ``right_only`` the left context carries no
information about the sense, only the words to the right do. A corpus of ``documents``
documents trains the biLM (:func:`deepnotes.language.elmo.train_bilm`, the engine's Loop; it
never sees a sense label); a second corpus of ``probe_documents`` documents from the same
grammar (own seed, every document built around a polysemous word: ``polysemous_fraction=1``)
gives the probes' occurrences, in sentences the biLM never read, encoded with the biLM's
vocabulary. For each polysemous word, its occurrences (at most ``max_occurrences``) are split in
half at random (own stream): a logistic regression (scikit-learn, ``C = probe_c``, on features
standardised by the training half) is fitted on one half and scored on the other, once per
feature set:

- ``static``: the biLM's layer-0 token embedding (one vector per word, as word2vec's: it does not
  depend on the context; :mod:`deepnotes.language.word2vec` is not used);
- ``forward`` / ``backward``: the forward / backward half of the scalar mix of all layers;
- ``both``: the scalar mix of the concatenated states (ELMo's representation).

The scalar mix is the biLM's :class:`~deepnotes.language.elmo.ScalarMix` at its initial weights
(uniform, ``gamma = 1``: the mean of the layers); the probe does not learn it. Accuracies are
pooled over the test occurrences of the words of a group (all polysemous words, the right-only
ones) with the standard error of a mean of 0/1 outcomes (:func:`deepnotes.core.stats.mean_se`).

Check (an identity, kind ``"check"``):

- ``static_at_chance``: the static vector is the same for both senses, so its probe predicts one
  sense for every occurrence and cannot beat guessing the test half's majority sense: the largest
  excess over that majority share, across words, is <= 1e-12.

Claims (thresholds from the issue, fixed before the run):

- ``contextual_separates``: the probe on the biLM's ``both`` features reaches pooled accuracy
  >= :data:`SEPARATES` = 0.95 over all polysemous words.
- ``forward_near_chance``: on the right-only words the probe on the forward states stays near
  chance: pooled accuracy <= :data:`NEAR_CHANCE` = 0.65 (the senses are about equally frequent,
  chance about 0.5; 0.65 leaves about four standard errors at 200 test occurrences).
- ``bidirectional_separates``: on the same right-only words the ``both`` features reach pooled
  accuracy >= :data:`SEPARATES` = 0.95: the notes' reason for ELMo's backward LM.

In this grammar a right-only word always follows ``<sos> a``, so the forward states of its
occurrences are one vector per word, as uninformative as the static one (the figure shows a
single point): ``forward_near_chance`` fails only on a bug (a forward state that reads the
right context) or a corpus whose left context leaks the sense. The forward states are those of
the biLM's forward stack: a forward-only LM, since the two directions share only the token
embedding and the softmax (Deviation: that shared embedding is also trained by the backward
LM's gradients; the forward states stay causal, which tests/language/test_elmo.py pins).

Presets: the full one is ELMo's shape at small width (2 layers, cell 128 projected to 64, 2,000
steps of 128 sentences); the quick one has width 32 without projection and 600 steps (at seeds
0 and 1 ``both`` reached 0.98 over all words and 0.96-1.0 on the right-only ones).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import mean_se
from deepnotes.data.language import PlantedCorpus, planted_corpus
from deepnotes.data.parallel import Vocabulary
from deepnotes.language.elmo import BiLM, BiLMSettings, pad_ids, train_bilm

FEATURES = ("static", "forward", "backward", "both")
"""The probes' feature sets (module docstring)."""
GROUPS = ("all", "right_only")
SEPARATES = 0.95
"""Probe accuracy the bidirectional features must reach (the issue)."""
NEAR_CHANCE = 0.65
"""Probe accuracy the forward states must stay at or below on right-only words (fixed before
the run: chance is about 0.5)."""
STATIC_TOLERANCE = 1e-12
HELD_OUT_DOCUMENTS = 100
"""Documents of the corpus whose sentences measure the biLM's held-out loss."""
FRAME = {"add_sos": True, "add_eos": True}
"""Every sentence is read framed by <sos> and <eos>."""


@dataclass(frozen=True)
class ContextualConfig:
    """Train a biLM on the planted corpus, then probe a polysemous word's sense."""

    documents: int = 3000
    words_per_category: int = 8
    probe_documents: int = 1500
    """Documents of the probes' corpus (each built around a polysemous word)."""
    dim: int = 64
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.1
    lr: float = 5e-3
    batch: int = 128
    steps: int = 2000
    every: int = 250
    probe_c: float = 1.0
    """Inverse L2 strength of the logistic-regression probes."""
    max_occurrences: int = 800
    """At most this many occurrences of a word go to its probe (half train, half test)."""

    def __post_init__(self) -> None:
        require(self.documents >= 10, f"documents must be >= 10, got {self.documents}")
        require(self.words_per_category >= 2, "words_per_category must be >= 2")
        require(self.probe_documents >= 10, "probe_documents must be >= 10")
        require(self.probe_c > 0, f"probe_c must be > 0, got {self.probe_c}")
        require(self.max_occurrences >= 8, "max_occurrences must be >= 8")
        self.settings  # noqa: B018  (validates the biLM's fields)

    @property
    def settings(self) -> BiLMSettings:
        """The biLM's settings."""
        return BiLMSettings(
            dim=self.dim,
            hidden=self.hidden,
            layers=self.layers,
            dropout=self.dropout,
            lr=self.lr,
            batch=self.batch,
            steps=self.steps,
            every=self.every,
        )

    @classmethod
    def quick(cls) -> ContextualConfig:
        """A smaller corpus and biLM (width 32, no projection), 600 steps at lr 1e-2 (about 27 s
        on one thread; at 800 steps of 32 sentences the biLM had not yet learnt the topic's
        long-range agreement and ``both`` reached 0.94)."""
        return cls(
            documents=1500, probe_documents=800, dim=32, hidden=32, lr=1e-2, steps=600, every=200
        )


@dataclass(frozen=True)
class ContextualMeasurements:
    """Per-feature, per-word probe outcomes, and a 2-D projection of one word's vectors."""

    words: list[str]
    right_only: list[str]
    correct: dict[str, dict[str, np.ndarray]]
    """Per feature set, per word: 1.0 where the probe got a test occurrence's sense right."""
    majority: dict[str, float]
    """Per word: the share of its test occurrences with the more frequent sense."""
    pca_word: str
    pca: dict[str, np.ndarray]
    """"forward" and "both": that word's probe occurrences projected on 2 components, (n, 2)."""
    pca_senses: np.ndarray
    """Sense (0/1) of each projected occurrence, (n,)."""
    sense_names: tuple[str, str]
    held_out_loss: float
    """The biLM's loss (forward + backward cross-entropy, nats) on held-out sentences."""

    def group(self, name: str) -> list[str]:
        return self.words if name == "all" else self.right_only

    def outcomes(self, feature: str, group: str) -> np.ndarray:
        """The pooled 0/1 outcomes of ``feature`` over the words of ``group``."""
        words = self.group(group)
        if not words:
            return np.array([], dtype=float)
        return np.concatenate([self.correct[feature][w] for w in words])

    def accuracy(self, feature: str, group: str) -> tuple[float, float]:
        """Pooled accuracy and its standard error (NaN when the group has < 2 outcomes)."""
        values = self.outcomes(feature, group)
        if values.size < 2:
            return float("nan"), float("nan")
        return mean_se(values)

    def chance(self, group: str) -> float:
        """The majority-sense share pooled over the test occurrences of the group's words."""
        words = self.group(group)
        n = [len(self.correct["static"][w]) for w in words]
        return float(np.average([self.majority[w] for w in words], weights=n)) if n else np.nan

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"held_out_loss": self.held_out_loss, "words": self.words}
        out["right_only"] = self.right_only
        for group in GROUPS:
            out[f"chance_{group}"] = self.chance(group)
            for feature in FEATURES:
                acc, se = self.accuracy(feature, group)
                out[f"accuracy_{feature}_{group}"] = acc
                out[f"se_{feature}_{group}"] = se
        return out


def _train(
    cfg: ContextualConfig, ctx: RunContext, corpus: PlantedCorpus, vocab: Vocabulary
) -> tuple[BiLM, float]:
    """The biLM trained on ``corpus`` (cached), and its loss on 256 held-out sentences."""
    held = planted_corpus(
        HELD_OUT_DOCUMENTS, words_per_category=cfg.words_per_category, seed=ctx.seed_for("held")
    )
    corpus_ids = [vocab.encode(s, **FRAME) for s in corpus.sentences()]
    held_ids = [vocab.encode(s, **FRAME) for s in held.sentences()[:256]]

    def fit() -> dict[str, Any]:
        model = train_bilm(corpus_ids, vocab, cfg.settings, ctx, tag="bilm", held_out=held_ids)
        ids, mask = pad_ids(held_ids)
        with torch.no_grad():
            loss = float(model.lm_loss(ids.to(ctx.device), mask.to(ctx.device))["loss"])
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return {"state": state, "held_out_loss": loss}

    key = {
        "documents": cfg.documents,
        "words_per_category": cfg.words_per_category,
        "settings": asdict(cfg.settings),
    }
    stored = ctx.cached("bilm", key, fit)
    model = BiLM(len(vocab), cfg.settings)
    model.load_state_dict(stored["state"])
    return model.to(ctx.device).eval(), float(stored["held_out_loss"])


def _occurrence_features(
    model: BiLM, vocab: Vocabulary, corpus: PlantedCorpus
) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Per polysemous word: every feature set's vectors of its occurrences and their senses."""
    device = model.softmax.weight.device
    sentences = corpus.sentences()
    senses = [labels for document in corpus.senses for labels in document]
    found: dict[str, list[tuple[int, int, int]]] = {w: [] for w in corpus.polysemous}
    for i, (sentence, labels) in enumerate(zip(sentences, senses, strict=True)):
        for t, (token, sense) in enumerate(zip(sentence, labels, strict=True)):
            if sense >= 0 and token in found:
                found[token].append((i, t + 1, sense))  # +1: the <sos> in front
    wanted = sorted({i for hits in found.values() for i, _, _ in hits})
    row_of = {i: r for r, i in enumerate(wanted)}
    vectors: dict[str, np.ndarray] = {}
    for feature in FEATURES:
        chunks = []
        for start in range(0, len(wanted), 256):
            chunk = wanted[start : start + 256]
            ids, mask = pad_ids([vocab.encode(sentences[i], **FRAME) for i in chunk])
            ids, mask = ids.to(device), mask.to(device)
            if feature == "static":
                h = model.contextual(ids, mask, "forward", layer=0)  # the token embedding
            else:
                h = model.contextual(ids, mask, feature)  # type: ignore[arg-type]
            chunks.append(h.cpu())
        width = max(c.shape[1] for c in chunks)
        padded = [torch.nn.functional.pad(c, (0, 0, 0, width - c.shape[1])) for c in chunks]
        vectors[feature] = torch.cat(padded).double().numpy()  # (S, T, D)
    out = {}
    for word, hits in found.items():
        rows = np.array([row_of[i] for i, _, _ in hits], dtype=int)
        pos = np.array([t for _, t, _ in hits], dtype=int)
        labels = np.array([s for _, _, s in hits], dtype=int)
        out[word] = ({f: vectors[f][rows, pos] for f in FEATURES}, labels)
    return out


def _probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, c: float) -> np.ndarray:
    """Predicted senses of ``x_test`` by a logistic regression fitted on the training half
    (features standardised with the training half's mean and standard deviation)."""
    if np.unique(y_train).size < 2:  # one sense only: the probe can only predict it
        return np.full(len(x_test), y_train[0])
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    return probe.fit(x_train, y_train).predict(x_test)


def _pca(x: np.ndarray) -> np.ndarray:
    """Projection of the rows of ``x`` (n, D) on their first two principal components."""
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def measure(cfg: ContextualConfig, ctx: RunContext) -> ContextualMeasurements:
    """Train (or read back) the biLM, extract every occurrence's features, fit the probes."""
    size = {"words_per_category": cfg.words_per_category}
    corpus = planted_corpus(cfg.documents, **size, seed=ctx.seed_for("corpus"))
    vocab = corpus.vocabulary()
    model, held_out_loss = _train(cfg, ctx, corpus, vocab)
    probe_corpus = planted_corpus(
        cfg.probe_documents, **size, seed=ctx.seed_for("probe-corpus"), polysemous_fraction=1.0
    )
    occurrences = _occurrence_features(model, vocab, probe_corpus)
    words = sorted(w for w, (_, y) in occurrences.items() if len(y) >= 4)
    right_only = sorted(w for w in words if w in probe_corpus.right_only)
    correct: dict[str, dict[str, np.ndarray]] = {f: {} for f in FEATURES}
    majority: dict[str, float] = {}
    for word in words:
        vectors, labels = occurrences[word]
        rng = ctx.numpy_rng("probe-split", word)
        order = rng.permutation(len(labels))[: cfg.max_occurrences]
        train, test = order[: len(order) // 2], order[len(order) // 2 :]
        majority[word] = float(max(np.mean(labels[test] == 0), np.mean(labels[test] == 1)))
        for feature in FEATURES:
            x = vectors[feature]
            guess = _probe(x[train], labels[train], x[test], cfg.probe_c)
            correct[feature][word] = (guess == labels[test]).astype(float)
    pca_word = right_only[0] if right_only else words[0]
    vectors, labels = occurrences[pca_word]
    keep = ctx.numpy_rng("pca").permutation(len(labels))[: cfg.max_occurrences]
    return ContextualMeasurements(
        words=words,
        right_only=right_only,
        correct=correct,
        majority=majority,
        pca_word=pca_word,
        pca={f: _pca(vectors[f][keep]) for f in ("forward", "both")},
        pca_senses=labels[keep],
        sense_names=tuple(probe_corpus.polysemous[pca_word]),  # type: ignore[arg-type]
        held_out_loss=held_out_loss,
    )


def draw(m: ContextualMeasurements, cfg: ContextualConfig, ctx: RunContext) -> list[Path]:
    fig, axes = figure(ncols=3, size=(4.4, 3.8))
    kind = "right-only " if m.pca_word in m.right_only else ""
    for ax, feature in zip(axes[:2], ("forward", "both"), strict=True):
        points = m.pca[feature]
        for sense, color in ((0, "C0"), (1, "C3")):
            sel = m.pca_senses == sense
            ax.scatter(*points[sel].T, s=8, alpha=0.6, color=color, label=m.sense_names[sense])
        if np.ptp(points, axis=0).max() < 1e-9:  # every occurrence has the same vector
            ax.text(
                0.5,
                0.35,
                f"all {len(points)} occurrences share one vector:\nthe same left context",
                transform=ax.transAxes,
                ha="center",
                fontsize=8,
            )
        ax.set_title(
            f"{kind}'{m.pca_word}': {feature} states (PCA, {len(points)} occurrences)", fontsize=9
        )
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(fontsize=7, title="sense", title_fontsize=7)
    ax = axes[2]
    width = 0.38
    x = np.arange(len(FEATURES))
    for g, (group, color) in enumerate((("all", "C2"), ("right_only", "C4"))):
        stats = [m.accuracy(f, group) for f in FEATURES]
        label = f"{'all polysemous' if group == 'all' else 'right-only'} words"
        ax.bar(
            x + (g - 0.5) * width,
            [s[0] for s in stats],
            width,
            yerr=[s[1] for s in stats],
            capsize=3,
            color=color,
            label=f"{label} (chance {m.chance(group):.2f})",
        )
    ax.axhline(SEPARATES, color="k", ls=":", lw=1, label=f"{SEPARATES:g} (separates)")
    ax.axhline(NEAR_CHANCE, color="grey", ls="--", lw=1, label=f"{NEAR_CHANCE:g} (near chance)")
    ax.set_xticks(x, FEATURES)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("probe accuracy (test occurrences, +- SE)")
    ax.set_title("linear probe of the sense", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    return [ctx.savefig(fig, "senses")]


def _detail(m: ContextualMeasurements, feature: str, group: str) -> str:
    acc, se = m.accuracy(feature, group)
    per_word = {w: round(float(m.correct[feature][w].mean()), 3) for w in m.group(group)}
    return (
        f"pooled accuracy {acc:.3f} +- {se:.3f} (SE) over {m.outcomes(feature, group).size} test "
        f"occurrences; chance (majority sense) {m.chance(group):.3f}; per word {per_word}"
    )


def claims(m: ContextualMeasurements, cfg: ContextualConfig) -> list[Claim]:
    excess = [float(m.correct["static"][w].mean()) - m.majority[w] for w in m.words]
    return [
        Claim.at_most(
            "a static vector is one vector for both senses: its probe does no better than "
            "always guessing the majority sense",
            max(excess) if excess else float("nan"),
            STATIC_TOLERANCE,
            "largest (static probe accuracy - majority share) over words; "
            + _detail(m, "static", "all"),
            key="static_at_chance",
            kind="check",
        ),
        Claim.at_least(
            f"a linear probe on the biLM's contextual embeddings separates the senses of the "
            f"polysemous words (accuracy >= {SEPARATES:g})",
            m.accuracy("both", "all")[0],
            SEPARATES,
            _detail(m, "both", "all"),
            key="contextual_separates",
        ),
        Claim.at_most(
            f"where only the right context decides the sense, the forward LM's states stay near "
            f"chance (accuracy <= {NEAR_CHANCE:g})",
            m.accuracy("forward", "right_only")[0],
            NEAR_CHANCE,
            _detail(m, "forward", "right_only"),
            key="forward_near_chance",
        ),
        Claim.at_least(
            f"... while the bidirectional states separate them (accuracy >= {SEPARATES:g})",
            m.accuracy("both", "right_only")[0],
            SEPARATES,
            _detail(m, "both", "right_only"),
            key="bidirectional_separates",
        ),
    ]


@experiment(
    "language.contextual_embeddings",
    topic="language",
    config=ContextualConfig,
    claims=("contextual_separates", "forward_near_chance", "bidirectional_separates"),
    checks=("static_at_chance",),
)
def contextual_embeddings(cfg: ContextualConfig, ctx: RunContext) -> Outcome:
    """The biLM's contextual embeddings separate a polysemous word's senses, which a static
    vector cannot; where only the right context decides, the forward LM alone cannot either."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
