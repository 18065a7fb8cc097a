"""generative.autoregressive: verdicts on synthetic records, the cached fit the likelihood
comparison reuses, and one tiny smoke run."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import RunContext, run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.data.binary import binary_images
from deepnotes.generative.experiments import autoregressive as ar

CFG = ar.AutoregressiveConfig.quick()
CLAIMS = (
    "pixelcnn_below_baseline",
    "pixelrnn_below_baseline",
    "transformer_below_baseline",
    "cnn_trains_faster",
    "cnn_sampling_cost",
)
CHECKS = (
    "mask_a_causal",
    "mask_b_causal",
    "pixelcnn_causal",
    "pixelrnn_causal",
    "transformer_causal",
    "sample_passes",
)
TINY = (
    "epochs=1",
    "batch=512",
    "cnn_channels=4",
    "cnn_layers=1",
    "rnn_channels=4",
    "tf_d_model=8",
    "tf_heads=2",
    "tf_layers=1",
    "tf_feedforward=8",
    "samples=4",
    "timing_epochs=1",
    "timing_repeats=1",
    "timing_batch=2",
)


def record(**changes: object) -> ar.AutoregressiveMeasurements:
    """A run where every claim holds: NLLs 19-20 nats against a baseline of 25.5."""
    rng = np.random.default_rng(0)
    models = ar.MODELS
    base = dict(
        shape=(1, 8, 8),
        baseline_nll=25.5 + rng.normal(0, 1, 100),
        test_nll={k: 19.5 + rng.normal(0, 1, 100) for k in models},
        val_nll={k: np.array([24.0, 21.0, 19.6]) for k in models},
        best_epoch=dict.fromkeys(models, 3),
        params=dict.fromkeys(models, 40_000),
        train_epoch_seconds={k: np.array([0.3, 0.3, 0.3]) for k in models},
        timed_epoch_seconds={"pixelcnn": np.array([0.3, 0.35]), "pixelrnn": np.array([0.6, 0.7])},
        forward_seconds={k: np.array([0.001, 0.002, 0.001]) for k in models},
        sample_seconds={k: np.array([0.1, 0.2, 0.1]) for k in models},
        sample_passes=64,
        sequential_depth={"pixelcnn": 7, "pixelrnn": 12, "transformer": 6},
        flops_per_image=dict.fromkeys(models, 5e6),
        future_gradient=dict.fromkeys(ar.CAUSAL_KEYS, 0.0),
        past_coverage=dict.fromkeys(ar.CAUSAL_KEYS, 0.9),
        mask_b_centre=0.3,
        receptive={k: np.ones((8, 8)) for k in models},
        samples={k: np.zeros((4, 8, 8)) for k in (*models, "data")},
    )
    base.update(changes)
    return ar.AutoregressiveMeasurements(**base)  # type: ignore[arg-type]


def verdicts(m: ar.AutoregressiveMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ar.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("generative.autoregressive")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    got = ar.claims(record(), CFG)
    assert [c.key for c in got] == [*CLAIMS, *CHECKS]
    assert [c.kind for c in got] == ["claim"] * len(CLAIMS) + ["check"] * len(CHECKS)


def test_the_phenomena_hold_every_claim() -> None:
    assert all(verdicts(record()).values())


def test_the_baseline_margin_is_twenty_percent() -> None:
    m = record()
    base = float(np.mean(m.baseline_nll))
    changed = dict(m.test_nll)
    changed["pixelrnn"] = np.full(100, 0.81 * base)  # 19% below the baseline: not enough
    changed["transformer"] = np.full(100, 0.79 * base)  # 21% below: holds
    got = verdicts(dataclasses.replace(m, test_nll=changed))
    assert not got["pixelrnn_below_baseline"]
    assert got["transformer_below_baseline"] and got["pixelcnn_below_baseline"]
    nan = dict(m.test_nll, pixelcnn=np.full(100, math.nan))
    assert not verdicts(dataclasses.replace(m, test_nll=nan))["pixelcnn_below_baseline"]


def test_timing_claims_use_the_fixed_bars() -> None:
    slower = {"pixelcnn": np.array([0.5, 0.5]), "pixelrnn": np.array([0.55, 0.6])}  # ratio 1.15
    assert not verdicts(record(timed_epoch_seconds=slower))["cnn_trains_faster"]
    # the median of the per-repeat ratios counts: 100, 30, 30 -> 30 < D/2 = 32 passes
    fast = {k: np.array([0.1, 0.06, 0.03]) for k in ar.MODELS}
    assert not verdicts(record(sample_seconds=fast))["cnn_sampling_cost"]
    assert record().sampling_ratio("pixelcnn") == pytest.approx(100.0)
    assert record().epoch_ratio() == pytest.approx(0.65 / 0.325)


def test_any_gradient_from_the_future_fails_its_check() -> None:
    for key in ar.CAUSAL_KEYS:
        leak = dict.fromkeys(ar.CAUSAL_KEYS, 0.0) | {key: 1e-30}
        got = verdicts(record(future_gradient=leak))
        assert not got[f"{key}_causal"]
        assert sum(not v for v in got.values()) == 1
    assert not verdicts(record(sample_passes=63))["sample_passes"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="data_root is only for mnist"):
        ar.AutoregressiveConfig(data_root="/tmp")
    with pytest.raises(ConfigError, match="rnn_kernel must be odd"):
        ar.AutoregressiveConfig(rnn_kernel=4)
    with pytest.raises(ConfigError, match="multiple of tf_heads"):
        ar.AutoregressiveConfig(tf_d_model=30, tf_heads=4)
    with pytest.raises(ConfigError, match="timing_epochs"):
        ar.AutoregressiveConfig(timing_epochs=0)


def test_fit_model_is_cached_and_restorable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = RunContext(
        name="probe", seed=0, device=torch.device("cpu"), out_dir=tmp_path, show_progress=False
    )
    cfg = ar.AutoregressiveConfig(epochs=1, batch=512, cnn_channels=4, cnn_layers=1)
    splits = binary_images(seed=0)
    first = ar.fit_model("pixelcnn", cfg, ctx, splits)
    calls: list[str] = []
    monkeypatch.setattr(ar, "_fit", lambda *args: calls.append(args[0]))
    again = ar.fit_model("pixelcnn", cfg, ctx, splits)
    assert calls == [] and torch.equal(again["test_nll"], first["test_nll"])
    model = ar.restore("pixelcnn", cfg, again, torch.device("cpu"))
    with torch.no_grad():
        x_test = splits.test.tensors[0]
        assert torch.allclose(model.nll(x_test), first["test_nll"], atol=1e-5)
    assert len(first["val_nll"]) == len(first["epoch_seconds"]) == 1
    with pytest.raises(ValueError, match="kind must be one of"):
        ar.fit_model("gan", cfg, ctx, splits)


def test_smoke_run(tmp_path: Path) -> None:
    result = run_experiment(
        "generative.autoregressive",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    m = rec["metrics"]
    assert m["pixels"] == 64 and abs(m["baseline_nll"] - 25.5) < 0.1
    assert [c["key"] for c in rec["claims"]] == [*CLAIMS, *CHECKS]
    checks = [c for c in rec["claims"] if c["kind"] == "check"]
    assert all(c["holds"] for c in checks)  # causality holds for any weights
    names = [Path(f).name for f in rec["figures"]]
    assert names == ["samples.png", "nll_and_cost.png", "receptive_fields.png"]
    assert m["sequential_depth_pixelrnn"] == 1 + 1 * (1 + 8) + 2
