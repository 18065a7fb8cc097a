"""robustness.transfer: claim verdicts on synthetic records and a smoke run through the real
entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.robustness.experiments import transfer as tr

CFG = tr.TransferConfig(targets=("mlp",))
KEYS = ("drop_same", "drop_other", "white_box_stronger_same", "white_box_stronger_other")
N = 300


def _hits(rate: float) -> np.ndarray:
    hits = np.zeros(N, dtype=bool)
    hits[: round(rate * N)] = True  # nested: a lower rate's hits are a subset of a higher's
    return hits


def record(
    clean: float = 0.95,
    white: float = 0.0,
    same: float = 0.05,
    other: float = 0.3,
) -> tr.TransferMeasurements:
    """One target (mlp), eps grid (0.1, 0.3); the rates are the anchor eps's accuracies."""
    rows = {"white": white, "same": same, "other": other}
    return tr.TransferMeasurements(
        eps=np.array([0.1, 0.3]),
        clean={"mlp": _hits(clean)},
        correct={f"mlp/{s}": np.stack([_hits(min(r + 0.4, 1)), _hits(r)]) for s, r in rows.items()},
        cosine={"mlp/same": np.linspace(0.8, 0.9, N), "mlp/other": np.linspace(0.4, 0.5, N)},
        surrogate_kind={"mlp/same": "mlp", "mlp/other": "cnn"},
        surrogate_acc={"mlp/same": 0.96, "mlp/other": 0.95},
    )


def verdicts(m: tr.TransferMeasurements) -> dict[str, str]:
    return {c.key: c.verdict for c in tr.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("robustness.transfer")
    assert exp.claims == KEYS and exp.checks == ()
    assert [c.key for c in tr.claims(record(), CFG)] == list(KEYS)


def test_the_phenomenon_holds_every_claim() -> None:
    assert set(verdicts(record()).values()) == {"holds"}


def test_a_weak_transfer_fails_the_drop() -> None:
    got = verdicts(record(other=0.7))
    assert got["drop_other"] == "fails" and got["drop_same"] == "holds"
    assert verdicts(record(same=0.66))["drop_same"] == "fails"  # drop 0.29


def test_a_tie_with_the_white_box_attack() -> None:
    # both at 0%: the saturated tie is a known failure ...
    assert verdicts(record(same=0.0))["white_box_stronger_same"] == "known failure"
    # ... a transfer as strong as an unsaturated white-box attack is a plain failure
    assert verdicts(record(white=0.2, same=0.2))["white_box_stronger_same"] == "fails"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="anchor"):
        tr.TransferConfig(eps=(0.1, 0.2))
    with pytest.raises(ConfigError, match="targets"):
        tr.TransferConfig(targets=())
    with pytest.raises(ConfigError, match="increasing"):
        tr.TransferConfig(eps=(0.3, 0.1))


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "robustness.transfer",
        preset="quick",
        overrides=("epochs=1", "test_limit=24", "eps=(0.1,0.3)", "pgd_steps=3"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record_ = result.record
    assert [c["key"] for c in record_["claims"]] == list(KEYS)
    m = record_["metrics"]
    assert m["n_test"] == 24 and m["surrogate_mlp_other"] == "cnn"
    assert -1 <= m["cosine_mlp_same"] <= 1
    # the white-box attack never leaves the target more accurate than it was on clean digits
    assert max(m["acc_mlp_white"]) <= m["clean_acc_mlp"]
    assert [Path(f).name for f in record_["figures"]] == ["transfer.png"]
    caches = sorted(p.name.split("-")[0] for p in (result.run_dir / "cache").glob("*.pt"))
    assert caches == ["classifier"] * 3  # target, same-architecture and other surrogates
