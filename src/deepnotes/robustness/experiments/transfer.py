r"""Transfer attacks: adversarial digits crafted on a surrogate the attacker trained itself, shown
to the target. Notes: discussion 11, part 2, section 2.2 ("learn our own model, perform a white
box attack on our own model, and reuse the generated adversarial image to attack the target
model. It turns out this strategy often works quite well, and relies on the two models having
similar gradients with respect to the input"); issue 16, item 4; Papernot, McDaniel & Goodfellow
(2016, "Transferability in machine learning", https://arxiv.org/abs/1605.07277).

The target is the standard digits MLP (the full preset adds the CNN as a second target) of
:mod:`deepnotes.robustness.models` (tags ``"standard-mlp"`` / ``"standard-cnn"``, default
settings: the fits other robustness experiments share). For each target the attacker trains two
surrogates on the same training split:

- ``same``: the same architecture with its own initialisation and minibatch order (tag
  ``"surrogate-<kind>"``: :func:`~deepnotes.robustness.models.fit_classifier` seeds both from
  the tag);
- ``other``: the other architecture (CNN for the MLP, MLP for the CNN: the other standard fit).

PGD (L-inf, ``pgd_steps`` steps of ``2.5 eps / steps``, a uniform random start) is run on each
surrogate and, for comparison, on the target itself (white-box), over the grid ``eps`` that
holds the anchor eps 0.3 of robustness.fgsm_pgd (the PyTorch FGSM tutorial's MNIST eps); the
target's accuracy on each set of adversarial test digits is measured, with its binomial standard
error. Beside each pair: the mean over the test digits of the cosine similarity of the two
models' input gradients (float64 copies, autograd), the notes' explanation.

Claims (thresholds fixed before the confirming run at seed 0; each over every target):

- ``drop_same`` / ``drop_other``: at the anchor eps 0.3 the transferred examples lower the
  target's accuracy by at least 30 points from clean (the issue; the smallest drop over targets
  is measured).
- ``white_box_stronger_same`` / ``white_box_stronger_other``: at the same eps the white-box
  attack lowers it more: the target's accuracy on the transferred examples is higher than on
  its own PGD examples (paired test over the test digits, one-sided, Bonferroni over targets;
  the weakest target's statistic is measured). Expected to fail for the same-architecture
  surrogate: eps 0.3 is 4.8 grey levels of the 8x8 digits, where a pilot (seed 1) left the MLP
  0 of 359 digits under both its own PGD and the same-architecture transfer (a tie, so neither
  is stronger); the curves show the white-box advantage at smaller eps. A failure with the
  white-box attack at 0% accuracy and the transfer within one digit of it carries that reason
  as a known failure.

Deviation: the attacker's surrogates see the target's own training split (the usual transfer
protocol on MNIST; Papernot et al. also study disjoint data). MNIST runs with ``--set
data=mnist --set data_root=DIR``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import mean_se, paired
from deepnotes.data import image_splits
from deepnotes.robustness.attacks import input_gradient, pgd
from deepnotes.robustness.blackbox import cosine_rows, float_copy
from deepnotes.robustness.models import MODELS, ClassifierSettings, fit_classifier

ANCHOR_EPS = 0.3
"""robustness.fgsm_pgd's anchor eps (the PyTorch FGSM tutorial's, MNIST, [0, 1] pixels)."""
DROP_BAR = 0.30
"""The transferred examples must lower the target's accuracy by at least this (the issue)."""
SURROGATES = ("same", "other")
"""Same architecture (own init and data order), the other architecture."""
SATURATED = (
    "saturation: at eps 0.3 the white-box PGD and the same-architecture transfer both leave the "
    "target at (or within one digit of) 0% accuracy, a tie in which neither attack is stronger "
    "(pilot, seed 1: 0 of 359 digits under both; the curves show the gap at smaller eps)"
)


@dataclass(frozen=True)
class TransferConfig:
    """PGD examples crafted on surrogates, scored on the target, over an L-inf eps grid."""

    data: Literal["digits", "mnist"] = "digits"
    """The bundled 8x8 digits, or MNIST IDX files in ``data_root``."""
    data_root: str = ""
    """Folder of the MNIST files (not used for the digits)."""
    train_limit: int = 0
    """Use about this many training images (0 = all)."""
    test_limit: int = 0
    """Use the first this many test images (0 = all)."""
    targets: tuple[str, ...] = MODELS
    """The attacked standard classifiers."""
    epochs: int = 30
    """Training epochs of every classifier (30: the shared standard fits)."""
    eps: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3)
    """L-inf radii (must include the anchor's 0.3, where the claims are made)."""
    pgd_steps: int = 40
    """PGD steps (step size 2.5 eps / steps, one random start)."""

    def __post_init__(self) -> None:
        require(
            (self.data == "digits") == (self.data_root == ""),
            f"data_root names the folder of the {self.data} files"
            if self.data != "digits"
            else f"data_root is only for mnist, got data_root={self.data_root!r}",
        )
        require(self.train_limit >= 0, f"train_limit must be >= 0, got {self.train_limit}")
        require(
            self.test_limit == 0 or self.test_limit >= 2,
            f"test_limit must be 0 (all) or >= 2, got {self.test_limit}",
        )
        require(
            len(self.targets) >= 1 and all(m in MODELS for m in self.targets),
            f"targets must be a non-empty tuple of {MODELS}, got {self.targets}",
        )
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(
            all(math.isfinite(e) and e > 0 for e in self.eps)
            and list(self.eps) == sorted(set(self.eps)),
            f"eps must hold increasing finite radii > 0, got {self.eps}",
        )
        require(ANCHOR_EPS in self.eps, f"eps must include {ANCHOR_EPS} (the anchor)")
        require(self.pgd_steps >= 1, f"pgd_steps must be >= 1, got {self.pgd_steps}")

    @classmethod
    def quick(cls) -> TransferConfig:
        """The MLP target only (about 15 s on one thread, most of it training)."""
        return cls(targets=("mlp",))


@dataclass(frozen=True)
class TransferMeasurements:
    """Per target: the per-example correctness under each attack at each eps, and the cosines."""

    eps: np.ndarray
    """The L-inf grid (E,)."""
    clean: dict[str, np.ndarray]
    """Per target, (N,) booleans: clean test digit classified correctly."""
    correct: dict[str, np.ndarray]
    """Per ``"target/source"`` (source "white", "same" or "other"), (E, N) booleans."""
    cosine: dict[str, np.ndarray]
    """Per ``"target/surrogate"``, (N,): cosine of the two models' input gradients."""
    surrogate_kind: dict[str, str]
    """Per ``"target/surrogate"``, the surrogate's architecture."""
    surrogate_acc: dict[str, float]
    """Per ``"target/surrogate"``, the surrogate's own clean test accuracy."""

    @property
    def targets(self) -> list[str]:
        return list(self.clean)

    @property
    def anchor(self) -> int:
        """Index of the anchor eps in the grid."""
        return int(np.flatnonzero(np.isclose(self.eps, ANCHOR_EPS))[0])

    def acc(self, target: str, source: str) -> np.ndarray:
        """The target's accuracy per eps under the attack from ``source`` (E,)."""
        return self.correct[f"{target}/{source}"].mean(axis=1)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "eps": self.eps.tolist(),
            "n_test": int(self.clean[self.targets[0]].size),
        }
        for t in self.targets:
            out[f"clean_acc_{t}"] = float(self.clean[t].mean())
            out[f"acc_{t}_white"] = self.acc(t, "white").tolist()
            for s in SURROGATES:
                out[f"acc_{t}_from_{s}"] = self.acc(t, s).tolist()
                out[f"cosine_{t}_{s}"] = float(self.cosine[f"{t}/{s}"].mean())
                out[f"surrogate_{t}_{s}"] = self.surrogate_kind[f"{t}/{s}"]
                out[f"surrogate_acc_{t}_{s}"] = self.surrogate_acc[f"{t}/{s}"]
        return out


def measure(cfg: TransferConfig, ctx: RunContext) -> TransferMeasurements:
    """Fit (or read back) targets and surrogates, attack each at every eps, score the target."""
    splits = image_splits(
        cfg.data, cfg.data_root or None, seed=ctx.seed, train_limit=cfg.train_limit or None
    )
    x, y = splits.test.tensors
    if cfg.test_limit:
        x, y = x[: cfg.test_limit], y[: cfg.test_limit]
    x, y = x.to(ctx.device), y.to(ctx.device)

    def fit(kind: str, tag: str) -> torch.nn.Module:
        return fit_classifier(
            ClassifierSettings(kind, epochs=cfg.epochs), ctx, splits, tag=tag
        ).model

    def predict_correct(model: torch.nn.Module, inputs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return (model(inputs).argmax(1) == y).cpu().numpy()

    clean, correct, cosine, kinds, accs = {}, {}, {}, {}, {}
    with ctx.progress(len(cfg.targets) * len(cfg.eps) * 3, "attacks") as bar:
        for t in cfg.targets:
            other = next(k for k in MODELS if k != t)
            target = fit(t, f"standard-{t}")
            sources = {
                "white": target,
                "same": fit(t, f"surrogate-{t}"),
                "other": fit(other, f"standard-{other}"),
            }
            clean[t] = predict_correct(target, x)
            grad_t = input_gradient(float_copy(target), x.double(), y)
            for s in SURROGATES:
                model = sources[s]
                grad_s = input_gradient(float_copy(model), x.double(), y)
                cosine[f"{t}/{s}"] = cosine_rows(grad_t, grad_s).cpu().numpy()
                kinds[f"{t}/{s}"] = t if s == "same" else other
                accs[f"{t}/{s}"] = float(predict_correct(model, x).mean())
            for source, model in sources.items():
                rows = []
                for i, eps in enumerate(cfg.eps):
                    gen = ctx.stream("pgd", t, source, i)
                    x_adv = pgd(model, x, y, float(eps), steps=cfg.pgd_steps, generator=gen)
                    rows.append(predict_correct(target, x_adv))
                    bar.advance()
                correct[f"{t}/{source}"] = np.stack(rows)
    return TransferMeasurements(
        eps=np.array(cfg.eps),
        clean=clean,
        correct=correct,
        cosine=cosine,
        surrogate_kind=kinds,
        surrogate_acc=accs,
    )


def _label(m: TransferMeasurements, target: str, source: str) -> str:
    if source == "white":
        return "white-box PGD"
    kind = m.surrogate_kind[f"{target}/{source}"]
    what = "same arch., own init" if source == "same" else "other arch."
    return f"transfer from {kind} ({what})"


def draw(m: TransferMeasurements, cfg: TransferConfig, ctx: RunContext) -> list[Path]:
    n_t = len(m.targets)
    fig, axes = figure(ncols=2, nrows=n_t, size=(5.2, 3.8))
    axes = np.atleast_1d(axes).reshape(n_t, 2)
    colours = {"clean": "C7", "white": "C3", "same": "C0", "other": "C2"}
    for row, t in enumerate(m.targets):
        ax = axes[row, 0]
        bars = [("clean", m.clean[t].astype(float))] + [
            (s, m.correct[f"{t}/{s}"][m.anchor].astype(float)) for s in ("white", *SURROGATES)
        ]
        for i, (source, values) in enumerate(bars):
            mean, se = mean_se(values)
            ax.bar(i, mean, yerr=se, capsize=4, color=colours[source])
            ax.text(i, mean + se + 0.02, f"{mean:.3f}", ha="center", fontsize=8)
        labels = ["clean", "white-box"] + [
            f"{m.surrogate_kind[f'{t}/{s}']} ({s})\ncos {m.cosine[f'{t}/{s}'].mean():.2f}"
            for s in SURROGATES
        ]
        ax.set_xticks(range(len(bars)), labels, fontsize=8)
        ax.axhline(m.clean[t].mean() - DROP_BAR, color="grey", ls=":", lw=1, label="clean - 0.30")
        ax.set_ylim(0, 1.1)
        ax.set_ylabel(f"{t} target accuracy (+- SE)")
        ax.set_title(f"target {t}, L-inf eps {ANCHOR_EPS:g} (PGD-{cfg.pgd_steps})")
        ax.legend(fontsize=7, loc="upper right")
        ax = axes[row, 1]
        ax.axhline(m.clean[t].mean(), color=colours["clean"], ls="--", lw=1, label="clean")
        for source in ("white", *SURROGATES):
            correct = m.correct[f"{t}/{source}"].astype(float)
            mean = correct.mean(axis=1)
            se = np.array([mean_se(r)[1] for r in correct])
            ax.errorbar(
                m.eps,
                mean,
                yerr=se,
                marker="o",
                ms=3,
                capsize=2,
                color=colours[source],
                label=_label(m, t, source),
            )
        ax.axvline(ANCHOR_EPS, color="grey", ls=":", lw=1)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("L-inf eps")
        ax.set_ylabel(f"{t} target accuracy (+- SE)")
        ax.set_title(f"target {t}: accuracy against eps")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return [ctx.savefig(fig, "transfer")]


def _drop_claim(m: TransferMeasurements, surrogate: str) -> Claim:
    a = m.anchor
    drops = {t: float(m.clean[t].mean() - m.acc(t, surrogate)[a]) for t in m.targets}
    worst = min(drops, key=drops.__getitem__)
    return Claim.at_least(
        f"PGD examples crafted on the {_what(surrogate)} surrogate lower the target's accuracy "
        f"by >= {DROP_BAR:g} at L-inf eps {ANCHOR_EPS:g} (smallest drop over targets)",
        drops[worst],
        DROP_BAR,
        "; ".join(
            f"target {t}: clean {m.clean[t].mean():.3f} -> {m.acc(t, surrogate)[a]:.3f} from "
            f"{m.surrogate_kind[f'{t}/{surrogate}']} (surrogate's own accuracy "
            f"{m.surrogate_acc[f'{t}/{surrogate}']:.3f}), white-box {m.acc(t, 'white')[a]:.3f}; "
            f"gradient cosine {_cos_text(m, t, surrogate)}"
            for t in m.targets
        ),
        key=f"drop_{surrogate}",
    )


def _what(surrogate: str) -> str:
    return "same-architecture" if surrogate == "same" else "other-architecture"


def _cos_text(m: TransferMeasurements, target: str, surrogate: str) -> str:
    mean, se = mean_se(m.cosine[f"{target}/{surrogate}"])
    return f"{mean:.3f} +- {se:.3f}"


def _stronger_claim(m: TransferMeasurements, surrogate: str) -> Claim:
    a = m.anchor
    tests = {
        t: paired(
            m.correct[f"{t}/{surrogate}"][a].astype(float),
            m.correct[f"{t}/white"][a].astype(float),
            "greater",
            family=len(m.targets),
        )
        for t in m.targets
    }
    weakest = min(tests, key=lambda t: tests[t].statistic)
    holds = all(r.holds for r in tests.values())
    n = m.clean[weakest].size
    saturated = (
        not holds and m.acc(weakest, "white")[a] == 0.0 and m.acc(weakest, surrogate)[a] <= 1.0 / n
    )
    return Claim.from_test(
        f"the white-box attack lowers the target's accuracy more than the transfer from the "
        f"{_what(surrogate)} surrogate at L-inf eps {ANCHOR_EPS:g} (paired; weakest target: "
        f"{weakest})",
        tests[weakest],
        "; ".join(
            f"target {t}: transfer {m.acc(t, surrogate)[a]:.3f} vs white-box "
            f"{m.acc(t, 'white')[a]:.3f} ({'holds' if tests[t].holds else 'does not hold'})"
            for t in m.targets
        ),
        known_failure=SATURATED if saturated else "",
        key=f"white_box_stronger_{surrogate}",
    )


def claims(m: TransferMeasurements, cfg: TransferConfig) -> list[Claim]:
    return [
        _drop_claim(m, "same"),
        _drop_claim(m, "other"),
        _stronger_claim(m, "same"),
        _stronger_claim(m, "other"),
    ]


@experiment(
    "robustness.transfer",
    topic="robustness",
    config=TransferConfig,
    claims=("drop_same", "drop_other", "white_box_stronger_same", "white_box_stronger_other"),
)
def transfer(cfg: TransferConfig, ctx: RunContext) -> Outcome:
    """Adversarial digits crafted on a surrogate the attacker trained itself (same architecture
    or another) transfer to the target: its accuracy falls by more than 30 points, though less
    than under a white-box attack; the two models' input gradients point alike."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
