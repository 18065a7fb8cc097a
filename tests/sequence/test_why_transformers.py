"""sequence.why_transformers: verdicts on synthetic records, the two adding-problem models, and
one smoke run through the real entry point."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.sequence.complexity import attention_matmul_flops, projection_flops
from deepnotes.sequence.experiments import why_transformers as wt
from deepnotes.vision.models import count_parameters

CFG = wt.WhyTransformersConfig.quick()
CLAIMS = (
    "encoder_self_quadratic",
    "decoder_self_quadratic",
    "cross_bilinear",
    "transformer_solves",
)
CHECKS = ("flop_formula", "encoder_independent", "reuse_saving", "params_matched")
TINY = (
    "lengths=8,16", "fixed_length=8", "widths=8,16", "d_model=8", "num_heads=2", "flop_batch=1",
    "reuse_batch=4", "reuse_layers=1", "timing_repeats=1", "length=12", "steps=6", "every=3",
    "batch=8", "test_size=16", "lstm_hidden=8", "tf_d_model=8", "tf_heads=2", "tf_layers=1",
    "tf_feedforward=8",
)  # fmt: skip


def record(
    power: float = 1.0, tf_mse: float = 2e-4, params: int = 4545, memory_gap: float = 0.0
) -> wt.WhyTransformersMeasurements:
    """Counts from the closed forms (B = 1, fixed length 64, k = 64 while lengths are swept),
    the encoder's attention products raised to ``power``; curves ending at ``tf_mse``."""
    lengths, widths, fixed = [16, 32, 64, 128], [16, 32, 64], 64
    sweep = {"M": lengths, "N": lengths, "k": widths}
    attention: wt.FlopTable = {kind: {a: [] for a in wt.AXES} for kind in wt.KINDS}
    sublayer: wt.FlopTable = {kind: {a: [] for a in wt.AXES} for kind in wt.KINDS}
    for axis in wt.AXES:
        for value in sweep[axis]:
            m = value if axis == "M" else fixed
            n = value if axis == "N" else fixed
            k = value if axis == "k" else 64
            for kind, (lq, lk) in {
                "encoder_self": (m, m), "decoder_self": (n, n), "decoder_cross": (n, m)
            }.items():  # fmt: skip
                products = attention_matmul_flops(1, lq, lk, k)
                if kind == "encoder_self":
                    products = round(products**power)
                attention[kind][axis].append(products)
                sublayer[kind][axis].append(products + projection_flops(1, lq, lk, k))
    reuse = {
        "M": 28, "B": 64, "encode_flops": 100, "encode_seconds": 0.01, "memory_gap": memory_gap,
        "formats": {
            fmt: {"N": 11, "decode_flops": 60, "full_flops": 160, "decode_seconds": 0.01,
                  "full_seconds": 0.02}
            for fmt in ("iso", "dmy")
        },
    }  # fmt: skip
    return wt.WhyTransformersMeasurements(
        sweep=sweep,
        attention_flops=attention,
        sublayer_flops=sublayer,
        formula_gap=0.0,
        reuse=reuse,
        steps=np.array([100, 200]),
        test_mse={
            "transformer": np.array([[0.01, tf_mse]]),
            "lstm": np.array([[0.17, 0.16]]),
        },
        step_seconds={"transformer": [0.05], "lstm": [0.015]},
        params={"transformer": params, "lstm": 4641},
        diverged={"transformer": [""], "lstm": [""]},
        mean_predictor_mse=0.167,
        length=100,
    )


def verdicts(m: wt.WhyTransformersMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in wt.claims(m, CFG)}


def test_every_declared_key_is_returned_with_its_kind() -> None:
    exp = get_experiment("sequence.why_transformers")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    got = {c.key: c.kind for c in wt.claims(record(), CFG)}
    assert got == dict.fromkeys(CLAIMS, "claim") | dict.fromkeys(CHECKS, "check")


def test_the_closed_forms_hold_every_claim_and_check() -> None:
    m = record()
    assert verdicts(m) == dict.fromkeys(CLAIMS + CHECKS, True)
    assert m.exponents("decoder_cross") == pytest.approx({"M": 1.0, "N": 1.0, "k": 1.0})
    assert m.exponents("encoder_self")["N"] == pytest.approx(0.0, abs=1e-12)
    # with the projections the encoder's slope in M is between 1 and 2 (k = 64 >= M / 2 here)
    assert 1.0 < m.exponents("encoder_self", "sublayer")["M"] < 2.0


def test_an_exponent_off_by_more_than_the_tolerance_fails_its_claim() -> None:
    # products^1.06: slope 2.12 in M, 1.06 in k
    got = verdicts(record(power=1.06))
    assert not got["encoder_self_quadratic"]
    assert got["decoder_self_quadratic"] and got["cross_bilinear"]
    assert record(power=1.04).exponent_gap("encoder_self") == pytest.approx(0.08, abs=1e-4)
    assert verdicts(record(power=1.04))["encoder_self_quadratic"]


def test_the_mse_bar_is_strict_and_nan_never_holds() -> None:
    assert not verdicts(record(tf_mse=0.01))["transformer_solves"]
    assert verdicts(record(tf_mse=0.0099))["transformer_solves"]
    assert not verdicts(record(tf_mse=math.nan))["transformer_solves"]


def test_the_checks_catch_a_broken_identity() -> None:
    assert not verdicts(record(memory_gap=1e-7))["encoder_independent"]
    assert not verdicts(record(params=5200))["params_matched"]  # 12% more than the LSTM
    m = record()
    m.reuse["formats"]["dmy"]["full_flops"] = 161  # re-encoding cost one FLOP more
    assert not verdicts(m)["reuse_saving"]
    assert not verdicts(dataclasses.replace(record(), formula_gap=1e-9))["flop_formula"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="multiples of num_heads"):
        wt.WhyTransformersConfig(widths=(16, 30))
    with pytest.raises(ConfigError, match="two distinct"):
        wt.WhyTransformersConfig(lengths=(64, 64))
    with pytest.raises(ConfigError, match="positional"):
        wt.WhyTransformersConfig(positional="learned")
    with pytest.raises(ConfigError, match="every"):
        wt.WhyTransformersConfig(steps=10, every=20)


@pytest.mark.parametrize("positional", wt.POSITIONAL)
def test_the_default_models_match_in_size_and_shape(positional: str) -> None:
    cfg = dataclasses.replace(CFG, positional=positional)
    models = {kind: wt.build_model(cfg, kind) for kind in wt.MODELS}
    counts = {kind: count_parameters(model) for kind, model in models.items()}
    assert abs(counts["transformer"] / counts["lstm"] - 1) <= wt.PARAMS_TOL
    x = torch.rand(3, cfg.length, 2)
    for model in models.values():
        assert model(x).shape == (3, 1)
    with pytest.raises(ValueError, match="kind must be one of"):
        wt.build_model(cfg, "gru")


def test_without_positions_the_transformer_ignores_the_order() -> None:
    # no positional encoding: a permutation-invariant function of the (value, marker) pairs
    model = wt.build_model(CFG, "transformer").eval()
    x = torch.rand(2, 20, 2)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x[:, perm]), model(x), rtol=0, atol=1e-6)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "sequence.why_transformers",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(CLAIMS + CHECKS)
    assert [Path(f).name for f in rec["figures"]] == [
        "flops.png", "encoder_reuse.png", "long_range.png"
    ]  # fmt: skip
    held = {c["key"]: c["holds"] for c in rec["claims"]}
    for key in (*CLAIMS[:3], *CHECKS[:3]):  # identities and exact counts hold at any size
        assert held[key], key
    metrics = rec["metrics"]
    assert metrics["exponents_encoder_self"]["M"] == pytest.approx(2.0)
    assert metrics["reuse"]["memory_gap"] == 0.0
    assert len(metrics["final_test_mse_lstm"]) == 1
