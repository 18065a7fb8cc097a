"""gans.judge: the Frechet distance against closed forms for Gaussians and FID's scipy formula,
the verdicts (coverage, confidence) on hand-made probabilities, and the judge's input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.utils.data import TensorDataset

from deepnotes.core.context import RunContext
from deepnotes.core.errors import DataFormatError
from deepnotes.data.digits import Splits
from deepnotes.gans.judge import (
    Judge,
    JudgeCNN,
    JudgeSettings,
    covered_classes,
    feature_statistics,
    fit_judge,
    frechet_between,
    frechet_distance,
    verdict_from_probabilities,
)


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_one_dimensional_closed_form() -> None:
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) = (m1 - m2)^2 + (s1 - s2)^2
    got = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-0.5]), np.array([[9.0]]))
    assert got == pytest.approx(1.5**2 + (2.0 - 3.0) ** 2, abs=1e-12)


def test_frechet_diagonal_and_scaled_covariances() -> None:
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu = np.zeros(3)
    expected = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu, np.diag(a), mu, np.diag(b)) == pytest.approx(expected, abs=1e-12)
    # Sigma2 = c^2 Sigma1: tr(S + c^2 S - 2 c S) = (1 - c)^2 tr(S), for any SPD S
    s = _random_spd(np.random.default_rng(0), 5)
    got = frechet_distance(mu[:1].repeat(5), s, mu[:1].repeat(5), 9.0 * s)
    assert got == pytest.approx(4.0 * np.trace(s), rel=1e-10)


def test_frechet_equals_fid_reference_formula_and_is_zero_for_equal_gaussians() -> None:
    rng = np.random.default_rng(1)
    for d in (2, 6, 16):
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        root = np.real(scipy.linalg.sqrtm(s1 @ s2))
        ref = float((m1 - m2) @ (m1 - m2) + np.trace(s1 + s2 - 2 * root))
        assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-8)
        assert abs(frechet_distance(m1, s1, m1, s1)) < 1e-9
    # singular (rank-deficient) covariances, as from fewer samples than features: the square
    # roots of the zero eigenvalues (rounded to ~1e-16) cost about sqrt(eps) of the trace
    low = rng.normal(size=(3, 8))
    s = low.T @ low
    assert abs(frechet_distance(np.zeros(8), s, np.zeros(8), s)) < 1e-6 * np.trace(s)


def test_frechet_between_samples_matches_the_population_value() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal(1.0, 2.0, size=(20000, 2))
    # (1^2 + 1^2) + 2 (1 - 2)^2 = 4
    assert frechet_between(a, b) == pytest.approx(4.0, abs=0.1)
    mu, sigma = feature_statistics(torch.from_numpy(a))
    assert mu.shape == (2,) and sigma.shape == (2, 2)
    with pytest.raises(ValueError, match=r"\(N, F\) with N >= 2"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


def test_verdicts_on_known_probabilities() -> None:
    # 20 images: class 0 gets 10 (conf 0.9), class 1 gets 9 (conf 0.6), class 2 gets 1 (conf 0.5)
    p = torch.zeros(20, 3)
    p[:10] = torch.tensor([0.9, 0.05, 0.05])
    p[10:19] = torch.tensor([0.2, 0.6, 0.2])
    p[19] = torch.tensor([0.25, 0.25, 0.5])
    v = verdict_from_probabilities(p, min_share=0.1)
    assert v.counts.tolist() == [10, 9, 1]
    assert v.mean_confidence == pytest.approx((10 * 0.9 + 9 * 0.6 + 0.5) / 20)
    assert v.covered == 2  # one image of 20 is below 10%
    assert covered_classes(np.array([10, 9, 1]), 0.0) == 3
    assert covered_classes(np.array([10, 9, 1]), 0.05) == 3  # 1 >= 0.05 * 20
    assert covered_classes(np.array([10, 9, 0]), 0.0) == 2


def test_judge_checks_its_input_and_scores_in_chunks() -> None:
    torch.manual_seed(0)
    judge = Judge(JudgeCNN(width=2, feature_size=4), test_accuracy=0.5)
    x = torch.rand(5, 1, 8, 8)
    whole = judge.probabilities(x)
    chunked = judge._apply(lambda t: torch.softmax(judge.model(t), dim=1), x, chunk=2)
    torch.testing.assert_close(whole, chunked)
    assert judge.features(x).shape == (5, 4)
    assert torch.allclose(whole.sum(1), torch.ones(5))
    with pytest.raises(DataFormatError, match=r"\(N, 1, 8, 8\)"):
        judge.probabilities(torch.rand(5, 64))
    with pytest.raises(DataFormatError, match=r"\[0, 1\]"):
        judge.probabilities(x * 16)


def test_fit_judge_learns_two_separable_classes_and_is_cached(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)

    def part(n: int) -> TensorDataset:
        y = torch.arange(n) % 2
        x = torch.rand(n, 1, 8, 8, generator=g) * 0.2
        x[y == 1, :, :4] += 0.7  # class 1: bright top half
        return TensorDataset(x, y)

    splits = Splits(part(64), part(32), part(32), 2, (1, 8, 8), torch.zeros(1), torch.ones(1))
    ctx = RunContext(
        name="t", seed=0, device=torch.device("cpu"), out_dir=tmp_path, show_progress=False
    )
    settings = JudgeSettings(width=2, feature_size=4, epochs=4, lr=1e-2, batch=16)
    judge = fit_judge(settings, ctx, splits)
    assert judge.test_accuracy >= 0.9
    assert len(list((tmp_path / "cache").glob("judge-*.pt"))) == 1
    again = fit_judge(settings, ctx, splits)  # read back, not retrained
    assert again.test_accuracy == judge.test_accuracy
    torch.testing.assert_close(
        again.probabilities(splits.test.tensors[0]), judge.probabilities(splits.test.tensors[0])
    )
