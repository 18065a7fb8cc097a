r"""The judge of generated digits: the project's own digits classifier, its verdicts (class
coverage, mean confidence) and the Frechet distance on its penultimate features.

A GAN has no likelihood to report (notes, discussion 11, part 1), so its digits are judged the
way Salimans et al. (2016, the Inception score, https://arxiv.org/abs/1606.03498) and Heusel et
al. (2017, the Frechet Inception distance, https://arxiv.org/abs/1706.08500) judge images, with
a classifier trained on the real data in place of Inception (which never saw 8x8 digits):

- **class coverage**: the classes the judge assigns (arg-max) to at least a share
  ``min_share`` of the samples; a generator that collapsed onto a few digits covers few;
- **mean confidence**: the mean over samples of the judge's largest class probability
  :math:`\max_k p(k | x)`; a sample that looks like no digit in particular scores low;
- **Frechet distance** between Gaussians fitted to the judge's penultimate features of the
  samples and of the real test digits:

  .. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert_2^2
            + \operatorname{tr}\bigl(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\bigr),

  the squared 2-Wasserstein distance between :math:`\mathcal N(\mu_1, \Sigma_1)` and
  :math:`\mathcal N(\mu_2, \Sigma_2)` (Dowson & Landau 1982). The trace of the square root is
  computed from a symmetric eigen-problem: :math:`\Sigma_1 \Sigma_2` is similar to
  :math:`\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}` (symmetric positive semi-definite), so
  :math:`\operatorname{tr}(\Sigma_1 \Sigma_2)^{1/2} = \sum_i \sqrt{\lambda_i(\Sigma_1^{1/2}
  \Sigma_2 \Sigma_1^{1/2})}` (eigenvalues clipped at 0). Tested against ``scipy.linalg.sqrtm``
  (FID's reference code) and closed forms.

Deviation from FID: the features are the judge's own (:attr:`JudgeCNN.feature_size` units
after a ReLU), and the covariances are the unbiased sample covariances (``np.cov``), as FID's
code computes them.

The judge (:class:`JudgeCNN`) is a small CNN for ``(1, 8, 8)`` images in [0, 1] trained by the
core :class:`~deepnotes.core.trainer.Trainer` (Adam, model selected on validation accuracy) on
the training split, scored once on the test split, and cached in the run folder
(:func:`fit_judge`).

Example:
    >>> judge = fit_judge(JudgeSettings(), ctx, image_splits("digits", seed=ctx.seed))
    >>> v = judge.verdict(samples)              # samples (N, 1, 8, 8) in [0, 1]
    >>> v.covered, v.mean_confidence            # e.g. 10, 0.95
    >>> judge.frechet(samples, real_test_images)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DataFormatError
from deepnotes.core.trainer import Trainer
from deepnotes.data.digits import Splits

# ----------------------------------------------------------------------------- Frechet distance


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(F,)`` and unbiased covariance ``(F, F)`` of features ``(N, F)``, float64."""
    f = np.asarray(
        features.detach().cpu() if isinstance(features, torch.Tensor) else features,
        dtype=np.float64,
    )
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N, F) with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    r""":math:`\lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}(\Sigma_1 + \Sigma_2
    - 2 (\Sigma_1 \Sigma_2)^{1/2})` for means ``(F,)`` and PSD covariances ``(F, F)``
    (module docstring); >= 0 up to rounding, 0 for equal Gaussians."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = (
        np.atleast_2d(sigma1).astype(np.float64),
        np.atleast_2d(sigma2).astype(np.float64),
    )
    f = mu1.shape[0]
    if mu1.shape != (f,) or mu2.shape != (f,) or sigma1.shape != (f, f) or sigma2.shape != (f, f):
        raise ValueError(
            f"need means (F,) and covariances (F, F) of one F, got {mu1.shape}, {sigma1.shape}, "
            f"{mu2.shape}, {sigma2.shape}"
        )
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1  # similar to sigma1 @ sigma2, symmetric PSD
    eigen = np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)
    diff = mu1 - mu2
    trace = np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.sqrt(eigen).sum()
    return float(diff @ diff + trace)


def frechet_between(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """The Frechet distance between Gaussians fitted to two feature sets ``(N, F)``, ``(M, F)``."""
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


# ----------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class JudgeVerdict:
    """What the judge says about a set of images."""

    counts: np.ndarray
    """Images assigned (arg-max) to each class, ``(K,)`` int."""
    mean_confidence: float
    """Mean over images of the largest class probability."""
    min_share: float
    """A class is covered when it receives at least this share of the images."""

    @property
    def covered(self) -> int:
        """Classes that receive at least ``min_share`` of the images."""
        return covered_classes(self.counts, self.min_share)


def covered_classes(counts: np.ndarray, min_share: float) -> int:
    """How many classes have at least ``min_share`` of the ``counts.sum()`` images (and at
    least one image: ``min_share = 0`` counts the classes seen at all)."""
    counts = np.asarray(counts)
    need = max(1, math.ceil(min_share * counts.sum() - 1e-9))
    return int((counts >= need).sum())


def verdict_from_probabilities(probabilities: torch.Tensor, min_share: float) -> JudgeVerdict:
    """:class:`JudgeVerdict` from class probabilities ``(N, K)``."""
    if probabilities.ndim != 2 or probabilities.shape[0] < 1:
        raise ValueError(f"probabilities must be (N, K) with N >= 1, got {probabilities.shape}")
    top, label = probabilities.max(dim=1)
    counts = torch.bincount(label, minlength=probabilities.shape[1])
    return JudgeVerdict(counts.cpu().numpy(), float(top.mean()), float(min_share))


# ----------------------------------------------------------------------------- the classifier


class JudgeCNN(nn.Module):
    """A small CNN for ``(C, 8, 8)`` digits: two 3x3 conv stages (each conv, ReLU, 2x2 max pool)
    ``(C, 8, 8) -> (width, 4, 4) -> (2 width, 2, 2)``, a ReLU feature layer of
    ``feature_size`` units (the Frechet features) and a linear read-out to ``num_classes``
    logits."""

    def __init__(
        self,
        width: int = 16,
        feature_size: int = 64,
        num_classes: int = 10,
        image_shape: tuple[int, ...] = (1, 8, 8),
    ) -> None:
        super().__init__()
        if min(width, feature_size, num_classes) < 1:
            raise ValueError(
                f"width, feature_size and num_classes must be >= 1, got {width}, "
                f"{feature_size}, {num_classes}"
            )
        c, h, w = image_shape
        self.image_shape = (c, h, w)
        self.feature_size = feature_size
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 2w, H/4, W/4)
            nn.Flatten(),
            nn.Linear(2 * width * (h // 4) * (w // 4), feature_size),
            nn.ReLU(),  # (N, F): the penultimate features
        )
        self.head = nn.Linear(feature_size, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, feature_size)`` of images ``(N, C, H, W)``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.body(x))


@dataclass(frozen=True)
class JudgeSettings:
    """What determines a trained judge (a part of an experiment's config)."""

    width: int = 16
    """Channels of the first conv stage (the second has twice as many)."""
    feature_size: int = 64
    """Units of the penultimate layer: the dimension of the Frechet features."""
    epochs: int = 30
    lr: float = 2e-3
    batch: int = 64

    def __post_init__(self) -> None:
        require(self.width >= 1, f"judge width must be >= 1, got {self.width}")
        require(self.feature_size >= 2, f"judge feature_size must be >= 2, got {self.feature_size}")
        require(self.epochs >= 1, f"judge epochs must be >= 1, got {self.epochs}")
        require(self.lr > 0, f"judge lr must be > 0, got {self.lr}")
        require(self.batch >= 1, f"judge batch must be >= 1, got {self.batch}")


class Judge:
    """A trained :class:`JudgeCNN` (eval mode) and its test accuracy; scores image sets.

    Every method takes images ``(N, C, H, W)`` in [0, 1] of the judge's ``image_shape`` (else a
    :class:`~deepnotes.core.errors.DataFormatError`) and evaluates them in chunks, without
    gradients.
    """

    def __init__(
        self, model: JudgeCNN, test_accuracy: float, history: list[dict[str, Any]] | None = None
    ) -> None:
        self.model = model.eval()
        self.test_accuracy = float(test_accuracy)
        self.history = list(history or [])

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        shape = self.model.image_shape
        if (
            not isinstance(images, torch.Tensor)
            or images.ndim != 4
            or (tuple(images.shape[1:]) != shape)
        ):
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise DataFormatError(
                f"the judge expects images (N, {', '.join(map(str, shape))}) in [0, 1], got {got}"
            )
        if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise DataFormatError("the judge expects finite pixel values in [0, 1]")
        return images

    def _apply(self, fn: Any, images: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        images = self._check(images)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            parts = [fn(images[i : i + chunk].to(device)) for i in range(0, len(images), chunk)]
        return torch.cat(parts).cpu()

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, K)``."""
        return self._apply(lambda x: torch.softmax(self.model(x), dim=1), images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, F)``."""
        return self._apply(self.model.features, images)

    def verdict(self, images: torch.Tensor, min_share: float = 0.01) -> JudgeVerdict:
        """Class counts, coverage at ``min_share`` and mean confidence of ``images``."""
        return verdict_from_probabilities(self.probabilities(images), min_share)

    def frechet(self, images: torch.Tensor, reference: torch.Tensor) -> float:
        """Frechet distance between the judge's features of ``images`` and of ``reference``."""
        return frechet_between(self.features(images), self.features(reference))


def fit_judge(
    settings: JudgeSettings, ctx: RunContext, splits: Splits, tag: str = "judge"
) -> Judge:
    """Train a :class:`JudgeCNN` on ``splits.train`` with the core Trainer (Adam, cross-entropy,
    the epoch of best validation accuracy kept), score it once on ``splits.test``; cached in the
    run folder under ``tag`` and the settings. Returned on ``ctx.device``, in eval mode."""
    shape = tuple(splits.input_shape)

    def build() -> JudgeCNN:
        with ctx.seeded(tag, "init"):
            return JudgeCNN(settings.width, settings.feature_size, splits.num_classes, shape).to(
                ctx.device
            )

    def compute() -> dict[str, Any]:
        model = build()
        trainer = Trainer(
            model,
            torch.optim.Adam(model.parameters(), lr=settings.lr),
            ctx.child(tag, "order"),
            epochs=settings.epochs,
            batch_size=settings.batch,
            select="acc",
            tag=tag,
            checkpoint=False,
            progress=False,
            log=False,
        )
        result = trainer.fit(splits.train, splits.val, splits.test)
        assert result.test is not None
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        history = [
            {k: float(v) for k, v in r.items() if isinstance(v, int | float)}
            for r in result.history
        ]
        return {"state": state, "test_acc": float(result.test["acc"]), "history": history}

    x_train: torch.Tensor = splits.train.tensors[0]
    key = {
        "tag": tag,
        "shape": list(shape),
        "train": [len(splits.train), float(x_train.sum())],
        **vars(settings),
    }
    stored = ctx.cached("judge", key, compute)
    model = build()
    model.load_state_dict(stored["state"])
    return Judge(model, stored["test_acc"], stored["history"])
