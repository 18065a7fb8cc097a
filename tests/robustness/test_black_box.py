"""robustness.black_box: claim verdicts on synthetic records, the direction grid, and a smoke
run through the real entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.robustness.experiments import black_box as bx

CFG = bx.BlackBoxConfig(models=("mlp",))
KEYS = ("fd_cosine_float64", "fd_roundoff_float32", "black_box_matches_white_box", "random_rises")
STEPS = np.array([1e-1, 1e-4, 1e-8, 1e-12])
N = 200


def _cosines(curve: list[float]) -> np.ndarray:
    """(H, N) per-example cosines with the given means (a small symmetric spread)."""
    spread = np.tile([-0.0001, 0.0001], N // 2)
    return np.array([np.clip(c + spread, -1, 1) for c in curve])


def _hits(rate: float, offset: int = 0) -> np.ndarray:
    hits = np.zeros(N, dtype=bool)
    hits[offset : offset + round(rate * N)] = True
    return hits


def record(
    best64: dict[str, float] | None = None,
    small32: float = 0.01,
    white: float = 0.45,
    coordinate: float = 0.44,
    random_rates: tuple[float, ...] = (0.03, 0.1, 0.25, 0.35),
    query_error: int = 0,
) -> bx.BlackBoxMeasurements:
    best64 = best64 or {"mlp": 0.99995}
    models = list(best64)
    cosine = {}
    for k in models:
        cosine[f"{k}/float64"] = _cosines([0.99, best64[k], best64[k], 0.98])
        cosine[f"{k}/float32"] = _cosines([0.9999, 0.95, 0.1, small32])
    return bx.BlackBoxMeasurements(
        steps=STEPS,
        cosine=cosine,
        dimension=64,
        attack_step=4.9e-3,
        directions=np.array([1, 16, 64, 256]),
        white={k: _hits(white) for k in models},
        coordinate={k: _hits(coordinate) for k in models},
        random={k: np.stack([_hits(r) for r in random_rates]) for k in models},
        random_cosine={k: np.tile([[0.1], [0.45], [0.7], [0.9]], (1, N)) for k in models},
        coordinate_cosine={k: np.full(N, 0.99) for k in models},
        query_error=query_error,
        clean_acc=dict.fromkeys(models, 0.95),
    )


def verdicts(m: bx.BlackBoxMeasurements) -> dict[str, str]:
    return {c.key: c.verdict for c in bx.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("robustness.black_box")
    assert exp.claims == KEYS and exp.checks == ("queries_counted",)
    assert [c.key for c in bx.claims(record(), CFG)] == [*KEYS, "queries_counted"]


def test_the_phenomenon_holds_every_claim() -> None:
    assert set(verdicts(record()).values()) == {"holds"}


def test_each_claim_can_fail() -> None:
    assert verdicts(record(best64={"mlp": 0.998}))["fd_cosine_float64"] == "fails"
    assert verdicts(record(small32=0.6))["fd_roundoff_float32"] == "fails"
    assert verdicts(record(coordinate=0.38))["black_box_matches_white_box"] == "fails"
    assert verdicts(record(coordinate=0.52))["black_box_matches_white_box"] == "fails"
    assert verdicts(record(random_rates=(0.1, 0.1, 0.1, 0.1)))["random_rises"] == "fails"
    assert verdicts(record(query_error=2))["queries_counted"] == "fails"


def test_the_cnn_kink_is_a_known_failure_only_when_the_mlp_holds() -> None:
    got = verdicts(record(best64={"mlp": 0.99999, "cnn": 0.997}))
    assert got["fd_cosine_float64"] == "known failure"
    assert verdicts(record(best64={"mlp": 0.998, "cnn": 0.997}))["fd_cosine_float64"] == "fails"


def test_direction_grid_includes_d() -> None:
    assert bx.direction_grid(64, 4).tolist() == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert bx.direction_grid(12, 1).tolist() == [1, 2, 4, 8, 12]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="steps"):
        bx.BlackBoxConfig(steps=(1e-4, 1e-2))
    with pytest.raises(ConfigError, match="models"):
        bx.BlackBoxConfig(models=("resnet",))
    with pytest.raises(ConfigError, match="data_root"):
        bx.BlackBoxConfig(data_root="/tmp")
    with pytest.raises(ConfigError, match="attack_step"):
        bx.BlackBoxConfig(attack_step=-1.0)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "robustness.black_box",
        preset="quick",
        overrides=(
            "epochs=1",
            "test_limit=24",
            "steps=(0.01,1e-10)",
            "max_directions_factor=1",
        ),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record_ = result.record
    assert [c["key"] for c in record_["claims"]] == [*KEYS, "queries_counted"]
    checks = {c["key"]: c["holds"] for c in record_["claims"]}
    assert checks["queries_counted"]
    m = record_["metrics"]
    assert m["dimension"] == 64 and m["directions"] == [1, 2, 4, 8, 16, 32, 64]
    cos64 = m["cosine_mlp_float64"]
    assert cos64[0] > 0.99  # h = 0.01 in float64: accurate even after one epoch
    assert [Path(f).name for f in record_["figures"]] == ["black_box.png"]
