"""sequence.adding_problem: verdicts on synthetic records, a smoke run, and a resume that
recomputes only the missing fits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.sequence.experiments import adding_problem as ap

CFG = ap.AddingConfig(length=50, steps=300, every=100, replicates=2)
KEYS = ("lstm_solves", "rnn_fails")
TINY = ("length=12", "hidden=8", "batch=16", "steps=20", "every=10", "test_size=64")


def record(lstm: tuple[float, ...] = (0.002, 0.004), rnn: tuple[float, ...] = (0.17, 0.16)):
    """Curves falling from the mean predictor's 0.167 to the given final values."""

    def curves(finals: tuple[float, ...]) -> np.ndarray:
        return np.array([[0.167, (0.167 + f) / 2, f] for f in finals])

    return ap.AddingMeasurements(
        steps=np.array([100, 200, 300]),
        test_mse={"rnn": curves(rnn), "lstm": curves(lstm)},
        diverged={"rnn": ["", ""], "lstm": ["", ""]},
        mean_predictor_mse=0.167,
        length=50,
    )


def verdicts(m: ap.AddingMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ap.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("sequence.adding_problem")
    assert exp.claims == KEYS and exp.checks == ()
    assert [c.key for c in ap.claims(record(), CFG)] == list(KEYS)


def test_the_phenomenon_holds_both_claims() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_every_replicate_counts() -> None:
    # one LSTM replicate stuck at the mean predictor, one RNN replicate that learned
    assert not verdicts(record(lstm=(0.002, 0.16)))["lstm_solves"]
    assert not verdicts(record(rnn=(0.17, 0.05)))["rnn_fails"]
    # the bars are strict for the LSTM, inclusive for the RNN
    assert not verdicts(record(lstm=(0.01, 0.002)))["lstm_solves"]
    assert verdicts(record(rnn=(0.1, 0.2)))["rnn_fails"]


def test_a_diverged_fit_holds_nothing() -> None:
    got = verdicts(record(lstm=(0.002, math.nan), rnn=(math.nan, 0.17)))
    assert got == dict.fromkeys(KEYS, False)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="implementation"):
        ap.AddingConfig(implementation="cudnn")
    with pytest.raises(ConfigError, match="every"):
        ap.AddingConfig(steps=10, every=20)


@pytest.mark.parametrize("implementation", ["torch", "ours"])
def test_both_implementations_build_the_same_shapes(implementation: str) -> None:
    cfg = ap.AddingConfig(hidden=8, implementation=implementation)
    for kind in ap.MODELS:
        model = ap._model(cfg, kind)
        assert model(torch.rand(3, 5, 2)).shape == (3, 1)
    lstm = ap._model(cfg, "lstm")
    if implementation == "torch":  # forget block [H, 2H) of the summed biases = forget_bias
        bias = lstm.core.bias_ih_l0 + lstm.core.bias_hh_l0
    else:
        bias = lstm.core.cells[0].b
    assert bias[8:16].detach().tolist() == [1.0] * 8


def test_smoke_and_resume_recomputes_only_the_missing_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_experiment(
        "sequence.adding_problem",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record_ = result.record
    m = record_["metrics"]
    assert m["length"] == 12 and abs(m["mean_predictor_mse"] - 2 / 12) < 0.06
    assert [c["key"] for c in record_["claims"]] == list(KEYS)
    assert [Path(f).name for f in record_["figures"]] == ["test_mse.png"]

    caches = sorted((result.run_dir / "cache").glob("fit-*.pt"))
    assert len(caches) == 2
    caches[0].unlink()
    (result.run_dir / "outcome.json").unlink()
    calls: list[str] = []
    original = ap._fit

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(ap, "_fit", counting)
    resumed = run_experiment(
        "sequence.adding_problem",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        resume=True,
        run_id=result.run_dir.name,
        show_progress=False,
        threads=1,
    )
    assert len(calls) == 1  # only the missing fit was trained again
    assert json.dumps(resumed.record["claims"]) == json.dumps(record_["claims"])
    assert resumed.record["metrics"] == m
