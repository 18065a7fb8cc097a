"""sequence.positional_encoding: the position-free bound, verdicts on synthetic records, a smoke
run."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.registry import get_experiment
from deepnotes.data.parallel import make_batch
from deepnotes.sequence.experiments.positional_encoding import (
    ENCODINGS,
    PositionalEncodingConfig,
    PositionalEncodingMeasurements,
    claims,
    equivariance_gap,
    position_free_bound,
)
from deepnotes.sequence.transformer import Transformer

CFG = PositionalEncodingConfig()
KEYS = ("reverse_near_chance", "reverse_solved_with_encoding", "permutation_equivariant")


def record(
    excess: float = -0.01, solved: float = 1.0, gap: float = 1e-15
) -> PositionalEncodingMeasurements:
    rng = np.random.default_rng(0)
    bound = 0.4 + 0.5 * rng.random(500)
    return PositionalEncodingMeasurements(
        seq_accuracy={"none": 0.02, "sinusoidal": solved},
        token_accuracy={
            "none": bound + excess + 0.05 * rng.standard_normal(500),
            "sinusoidal": np.ones(500),
        },
        per_position={e: np.ones(9) for e in ENCODINGS},
        bound=bound,
        bound_per_position=np.linspace(0.3, 1.0, 9),
        equivariance_gap={"none": gap, "sinusoidal": 3.0},
        dropped=0.4,
        diverged=dict.fromkeys(ENCODINGS, ""),
    )


def verdicts(m: PositionalEncodingMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, CFG)}


def test_the_bound_by_hand() -> None:
    # source 4 4 5, target 5 4 4 <eos>: left {4: 2, 5: 1} -> 2/3, then {4: 2} -> 1, {4: 1} -> 1
    batch = make_batch([[4, 4, 5], [6]], [[5, 4, 4], [6]])
    got = position_free_bound(batch)
    np.testing.assert_allclose(got[0], [2 / 3, 1, 1, 1])
    np.testing.assert_allclose(got[1, :2], [1, 1])
    assert np.isnan(got[1, 2:]).all()
    # all-distinct symbols: 1/L, 1/(L-1), ..., 1, and <eos>
    got = position_free_bound(make_batch([[4, 5, 6, 7]], [[7, 6, 5, 4]]))
    np.testing.assert_allclose(got[0], [1 / 4, 1 / 3, 1 / 2, 1, 1])


def test_every_declared_key_is_returned_with_its_kind() -> None:
    exp = get_experiment("sequence.positional_encoding")
    assert exp.claims + exp.checks == KEYS
    returned = claims(record(), CFG)
    assert [c.key for c in returned] == list(KEYS)
    assert [c.kind for c in returned] == ["claim", "claim", "check"]
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_a_model_that_uses_order_is_not_near_chance() -> None:
    assert not verdicts(record(excess=0.2))["reverse_near_chance"]
    # right at the margin: not significantly below it
    assert not verdicts(record(excess=0.05))["reverse_near_chance"]


def test_failures_and_nan_do_not_hold() -> None:
    assert not verdicts(record(solved=0.98))["reverse_solved_with_encoding"]
    assert not verdicts(record(gap=1e-6))["permutation_equivariant"]
    m = record()
    nan = replace(
        m,
        token_accuracy=dict(m.token_accuracy, none=np.full(500, math.nan)),
        seq_accuracy=dict(m.seq_accuracy, sinusoidal=math.nan),
        equivariance_gap={"none": math.nan, "sinusoidal": math.nan},
    )
    assert verdicts(nan) == dict.fromkeys(KEYS, False)


def test_the_encoder_without_encoding_is_permutation_equivariant_at_init() -> None:
    src = torch.randint(4, 14, (8, 6), generator=torch.Generator().manual_seed(0))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.manual_seed(0)
    kwargs = {"d_model": 16, "num_heads": 2, "num_encoder_layers": 2, "num_decoder_layers": 1}
    plain = Transformer(14, 14, positional="none", **kwargs).eval()
    encoded = Transformer(14, 14, positional="sinusoidal", **kwargs).eval()
    assert equivariance_gap(plain, src, perm) <= 1e-12
    assert equivariance_gap(encoded, src, perm) > 1e-3


def test_smoke_only_the_encoded_model_learns_order(tmp_path: Path) -> None:
    result = run_experiment(
        "sequence.positional_encoding",
        preset="quick",
        overrides=("steps=40", "max_length=5", "d_model=16", "dim_feedforward=32", "test_size=120"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["sinusoidal_token_accuracy"] > m["none_token_accuracy"]
    assert m["none_equivariance_gap"] <= 1e-12 < m["sinusoidal_equivariance_gap"]
    assert result.record["figures"] == ["per_position_accuracy.png"]
    verdict = {c["key"]: c["holds"] for c in result.record["claims"]}
    assert verdict["permutation_equivariant"] and verdict["reverse_near_chance"]
