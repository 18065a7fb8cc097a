"""sequence.gradient_flow: verdicts on synthetic records, and a smoke run."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.sequence.experiments.gradient_flow import (
    CASES,
    CLIP_MODES,
    GradientFlowConfig,
    GradientFlowMeasurements,
    claims,
)

CFG = GradientFlowConfig(length=121, replicates=4, clip_replicates=3)
KEYS = (
    "rnn_vanishing_slope",
    "rnn_vanishing_at_lag",
    "rnn_exploding",
    "lstm_keeps_gradient",
    "clipping_keeps_training_finite",
    "forget_gate_product",
)
LAGS = np.arange(CFG.length)


def record(
    slopes: dict[str, float] | None = None,
    mean_forget: float = 0.73,
    unclipped_diverged: tuple[bool, ...] = (True, True, True),
    clipped_loss: tuple[float, ...] = (0.2, 0.3, 0.25),
    gate_error: float = 0.0,
) -> GradientFlowMeasurements:
    """Straight log10 ratios with the given slopes per case, a little noise per replicate."""
    slopes = slopes or {
        "rnn_contractive": -0.09,
        "rnn_expansive": 0.12,
        "lstm": -0.005,
        "lstm_large_bias": 0.0,
    }
    rng = np.random.default_rng(0)
    logs = {
        case: slopes[case] * LAGS[None, :] * (1 + 0.05 * rng.standard_normal((4, 1)))
        for case in CASES
    }
    diverged = np.array(unclipped_diverged)
    return GradientFlowMeasurements(
        lags=LAGS,
        log10_ratio=logs,
        slope={case: logs[case][:, -1] / LAGS[-1] for case in CASES},
        mean_forget=mean_forget,
        gate_error=gate_error,
        clip_diverged={"clipped": np.isnan(np.array(clipped_loss)), "unclipped": diverged},
        clip_final_loss={
            "clipped": np.array(clipped_loss),
            "unclipped": np.where(diverged, math.nan, 0.2),
        },
        clip_detail={
            "clipped": ["" for _ in clipped_loss],
            "unclipped": ["loss is nan (step 6)" if d else "" for d in unclipped_diverged],
        },
        lag=CFG.lag,
    )


def verdicts(m: GradientFlowMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, CFG)}


def test_every_declared_key_is_returned_with_its_kind() -> None:
    exp = get_experiment("sequence.gradient_flow")
    assert exp.claims + exp.checks == KEYS
    returned = claims(record(), CFG)
    assert [c.key for c in returned] == list(KEYS)
    assert [c.kind for c in returned] == ["claim"] * 5 + ["check"]


def test_the_textbook_picture_holds_every_claim() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_a_decaying_lstm_fails_and_is_known_only_with_the_measured_reason() -> None:
    decaying = record(slopes={**dict.fromkeys(CASES, 0.0), "lstm": -0.08})
    lstm = {c.key: c for c in claims(decaying, CFG)}["lstm_keeps_gradient"]
    assert not lstm.holds and "0.730" in lstm.known_failure
    # a forget gate near 1 would not explain the decay: no known failure then
    unexplained = replace(decaying, mean_forget=0.999)
    lstm = {c.key: c for c in claims(unexplained, CFG)}["lstm_keeps_gradient"]
    assert not lstm.holds and not lstm.known_failure


def test_wrong_directions_fail() -> None:
    flat = record(slopes=dict.fromkeys(CASES, 0.0))
    got = verdicts(flat)
    # zero slopes with no spread: neither vanishing nor exploding
    assert not got["rnn_vanishing_slope"] and not got["rnn_exploding"]
    assert not got["rnn_vanishing_at_lag"]
    slow = record(slopes={**dict.fromkeys(CASES, 0.0), "rnn_contractive": -0.02})
    got = verdicts(slow)  # decays, but only to 10^-2 at lag 100
    assert got["rnn_vanishing_slope"] and not got["rnn_vanishing_at_lag"]


def test_clipping_claim_needs_every_replicate() -> None:
    assert not verdicts(record(unclipped_diverged=(True, False, True)))[
        "clipping_keeps_training_finite"
    ]
    assert not verdicts(record(clipped_loss=(0.2, math.nan, 0.3)))["clipping_keeps_training_finite"]


def test_nan_never_holds() -> None:
    m = record()
    nan_logs = {case: np.full_like(v, math.nan) for case, v in m.log10_ratio.items()}
    nan_slope = {case: np.full_like(v, math.nan) for case, v in m.slope.items()}
    got = verdicts(
        replace(m, log10_ratio=nan_logs, slope=nan_slope, gate_error=math.nan, mean_forget=math.nan)
    )
    assert got == {key: key == "clipping_keeps_training_finite" for key in KEYS}


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="lag"):
        GradientFlowConfig(length=50, lag=100)
    with pytest.raises(ConfigError, match="rho_small"):
        GradientFlowConfig(rho_small=1.2)
    with pytest.raises(ConfigError, match="rho_large"):
        GradientFlowConfig(rho_large=0.8)


def test_smoke_gradients_vanish_explode_and_clipping_saves_the_run(tmp_path: Path) -> None:
    result = run_experiment(
        "sequence.gradient_flow",
        preset="quick",
        overrides=(
            "hidden=16",
            "batch=4",
            "replicates=2",
            "clip_steps=20",
            "clip_replicates=1",
        ),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["slope_rnn_contractive"] < 0 < m["slope_rnn_expansive"]
    assert m["log10_ratio_at_lag_rnn_contractive"] < -3
    assert m["diverged_unclipped"] == 1 and m["diverged_clipped"] == 0
    assert 0.6 < m["mean_forget"] < 0.85  # sigma(1) = 0.73 at init
    verdict = {c["key"]: c for c in result.record["claims"]}
    assert [c["key"] for c in result.record["claims"]] == list(KEYS)
    assert verdict["forget_gate_product"]["holds"]
    assert verdict["clipping_keeps_training_finite"]["holds"]
    assert set(CLIP_MODES) == {"clipped", "unclipped"}
    assert [Path(f).name for f in result.record["figures"]] == ["gradient_vs_lag.png"]
