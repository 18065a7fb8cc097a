"""meta.sinusoid: the library pieces, claim verdicts on synthetic measurements, a smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import FAILS, HOLDS, KNOWN
from deepnotes.meta.experiments.sinusoid import (
    FOMAML_FAILS,
    FULL_ITERATIONS,
    QUICK_ITERATIONS,
    SinusoidConfig,
    SinusoidMeasurements,
    claims,
)
from deepnotes.meta.regression import METHODS, evaluate_curves, fit_sinusoid, mlp

KEYS = ["maml_mse", "fomaml_close", "pretrained_worse"]
TINY = (
    "iterations=4",
    "every=2",
    "meta_batch=2",
    "test_tasks=4",
    "test_points=5",
    "eval_steps=2",
    "shown_tasks=1",
    "hidden=8",
)


def _m(maml: float, fo: float, pre: float, iterations: int, n: int = 50) -> SinusoidMeasurements:
    noise = np.random.default_rng(0).normal(0, 0.01, size=(n, 3))
    mse = {
        k: np.column_stack([np.full(n, 3.0), v + noise])
        for k, v in zip(METHODS, (maml, fo, pre), strict=True)
    }
    return SinusoidMeasurements(
        mse=mse,
        train_loss={k: np.ones(2) for k in METHODS},
        grid=np.zeros(3),
        truth=np.zeros((1, 3)),
        support=np.zeros((1, 2, 2)),
        curves={k: np.zeros((1, 3, 3)) for k in METHODS},
        iterations=iterations,
    )


def test_verdicts_on_synthetic_measurements() -> None:
    full = SinusoidConfig()
    good = claims(_m(0.5, 0.55, 2.0, FULL_ITERATIONS), full)
    assert [c.key for c in good] == KEYS and [c.verdict for c in good] == [HOLDS] * 3
    # the pretrained net only 1.5x worse: not "much" worse
    assert claims(_m(0.5, 0.55, 0.75, FULL_ITERATIONS), full)[2].verdict == FAILS
    # FOMAML 20% better is not "within 15%" either (a failure known from the full preset)
    fo = claims(_m(0.5, 0.4, 2.0, FULL_ITERATIONS), full)[1]
    assert not fo.holds and fo.verdict == KNOWN and fo.known_failure == FOMAML_FAILS


def test_quick_preset_failures_are_known_and_the_full_preset_decides_maml() -> None:
    quick = preset(SinusoidConfig, "quick")
    assert quick.iterations == QUICK_ITERATIONS < FULL_ITERATIONS
    short = claims(_m(1.1, 1.4, 3.0, quick.iterations), quick)
    assert [c.verdict for c in short[:2]] == [KNOWN, KNOWN]
    assert "quick preset only" in short[0].known_failure and "MSE 1.09" in short[0].known_failure
    full = claims(_m(1.1, 1.4, 3.0, FULL_ITERATIONS), SinusoidConfig())
    assert [c.verdict for c in full[:2]] == [FAILS, KNOWN]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="every <= iterations"):
        SinusoidConfig(iterations=10, every=20)
    with pytest.raises(ValueError, match="shown_tasks"):
        SinusoidConfig(test_tasks=2, shown_tasks=3)


def test_library_pieces() -> None:
    assert [m.out_features for m in mlp((3, 4)) if isinstance(m, torch.nn.Linear)] == [3, 4, 1]
    with pytest.raises(ConfigError, match="hidden"):
        mlp(())
    net = mlp((4,))
    with pytest.raises(ConfigError, match="method"):
        fit_sinusoid(
            net,
            None,
            method="sgd",
            tag="x",
            iterations=1,
            meta_batch=1,
            shots=1,  # type: ignore[arg-type]
            inner_lr=0.1,
            inner_steps=1,
            meta_lr=0.1,
            every=1,
            data=torch.Generator(),
        )
    x = torch.zeros(2, 3, 1)
    curves = evaluate_curves(net, (x, x + 1, x, x + 1), inner_lr=0.1, steps=2)  # query = support
    assert curves.shape == (2, 3) and bool((curves[:, 1] <= curves[:, 0] + 1e-6).all())


def test_smoke_run(tmp_path: Path) -> None:
    result = run_experiment(
        "meta.sinusoid", overrides=TINY, out=tmp_path, show_progress=False, threads=1
    )
    record = result.record
    assert [c["key"] for c in record["claims"]] == KEYS
    assert [Path(f).name for f in record["figures"]] == ["mse_over_steps.png", "adapted_curves.png"]
    assert len(record["metrics"]["mse_maml"]) == 3
    assert len(sorted((result.run_dir / "cache").glob("fit-*.pt"))) == 3
