"""sequence.transformer_tasks: verdicts on synthetic records, the held-out filter, a smoke run."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import RunContext, run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.sequence.experiments import transformer_tasks as module
from deepnotes.sequence.experiments.transformer_tasks import (
    QUICK_STEPS,
    TransformerTasksConfig,
    TransformerTasksMeasurements,
    claims,
)
from deepnotes.sequence.symbol_tasks import held_out_batch, training_batches

CFG = TransformerTasksConfig()
KEYS = ("copy_solved", "reverse_solved", "sort_solved", "causal_mask", "padding_mask", "kv_cache")
TASKS = ("copy", "reverse", "sort")


def record(**changes: object) -> TransformerTasksMeasurements:
    m = TransformerTasksMeasurements(
        seq_accuracy=dict.fromkeys(TASKS, 1.0),
        n_test=dict.fromkeys(TASKS, 600),
        dropped=dict.fromkeys(TASKS, 0.4),
        per_position={t: np.ones(9) for t in TASKS},
        losses={t: [1.0, 0.1, 0.01] for t in TASKS},
        diverged=dict.fromkeys(TASKS, ""),
        causal_before=0.0,
        causal_after=3.0,
        padding_masked=0.0,
        padding_unmasked=5.0,
        cache_tokens_mismatch=0,
        cache_logit_gap=2e-14,
    )
    return replace(m, **changes)


def verdicts(m: TransformerTasksMeasurements, cfg: TransformerTasksConfig = CFG) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, cfg)}


def test_every_declared_key_is_returned_with_its_kind() -> None:
    exp = get_experiment("sequence.transformer_tasks")
    assert exp.claims + exp.checks == KEYS
    returned = claims(record(), CFG)
    assert [c.key for c in returned] == list(KEYS)
    assert [c.kind for c in returned] == ["claim"] * 3 + ["check"] * 3


def test_the_phenomenon_holds_everything() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_one_wrong_sequence_or_a_divergence_fails_the_task() -> None:
    got = verdicts(record(seq_accuracy={"copy": 1.0, "reverse": 599 / 600, "sort": math.nan}))
    assert got["copy_solved"] and not got["reverse_solved"] and not got["sort_solved"]


def test_the_quick_shortfall_is_marked_only_in_the_quick_budget() -> None:
    m = record(seq_accuracy={"copy": 1.0, "reverse": 0.995, "sort": 0.996})
    quick = {c.key: c.known_failure for c in claims(m, TransformerTasksConfig.quick())}
    assert quick["reverse_solved"] and quick["sort_solved"] and not quick["copy_solved"]
    assert TransformerTasksConfig.quick().steps == QUICK_STEPS
    full = {c.key: c.known_failure for c in claims(m, CFG)}
    assert not any(full.values())


def test_broken_masks_and_cache_fail_their_checks() -> None:
    assert not verdicts(record(causal_before=1e-7))["causal_mask"]
    # a mutation nobody saw proves nothing: the check does not hold
    assert not verdicts(record(causal_after=0.0))["causal_mask"]
    assert not verdicts(record(padding_masked=1e-9))["padding_mask"]
    assert not verdicts(record(padding_unmasked=0.0))["padding_mask"]
    assert not verdicts(record(cache_tokens_mismatch=1))["kv_cache"]
    assert not verdicts(record(cache_logit_gap=1e-9))["kv_cache"]
    got = verdicts(
        record(causal_before=math.nan, padding_masked=math.nan, cache_logit_gap=math.nan)
    )
    assert not got["causal_mask"] and not got["padding_mask"] and not got["kv_cache"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="tasks"):
        TransformerTasksConfig(tasks=("shuffle",))
    with pytest.raises(ConfigError, match="num_heads"):
        TransformerTasksConfig(d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match="min_length"):
        TransformerTasksConfig(min_length=5, max_length=4)


def test_the_test_set_holds_no_training_source(tmp_path: Path) -> None:
    cfg = TransformerTasksConfig(steps=20, batch_size=64, max_length=4, test_size=300)
    ctx = RunContext(name="t", seed=0, device=torch.device("cpu"), out_dir=tmp_path)
    batches = training_batches(cfg, "sort", ctx)
    seen = {
        tuple(row[:n])
        for b in batches
        for row, n in zip(b.src.tolist(), b.src_lengths.tolist(), strict=True)
    }
    test, dropped = held_out_batch(cfg, "sort", ctx, batches)
    kept = {tuple(r[:n]) for r, n in zip(test.src.tolist(), test.src_lengths.tolist(), strict=True)}
    assert not kept & seen
    assert len(test) == round(300 * (1 - dropped)) and 0 < dropped < 1
    # the targets stay aligned with their sources after the filter
    for row, n, out in zip(
        test.src.tolist(), test.src_lengths.tolist(), test.tgt_out.tolist(), strict=True
    ):
        assert out[:n] == sorted(row[:n]) and out[n] == 2


def test_smoke_run_then_resume_recomputes_only_the_missing_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {"preset": "quick", "out": tmp_path, "show_progress": False, "threads": 1}
    tiny = ("tasks=copy,sort", "steps=25", "d_model=16", "dim_feedforward=32", "test_size=60")
    first = run_experiment("sequence.transformer_tasks", overrides=tiny, run_id="r", **kwargs)
    m = first.record["metrics"]
    assert m["copy_final_loss"] < 2.4  # below log(14) = 2.64 of a uniform guess
    assert first.record["figures"] == ["transformer_tasks.png"]
    verdict = {c["key"]: c["holds"] for c in first.record["claims"]}
    assert verdict["causal_mask"] and verdict["padding_mask"] and verdict["kv_cache"]
    assert not verdict["reverse_solved"]  # not run: "not measured"

    # a run killed before its outcome, with the second fit not yet written
    fits = sorted((first.run_dir / "cache").glob("fit-*.pt"))
    assert len(fits) == 2
    (first.run_dir / "outcome.json").unlink()
    fits[0].unlink()
    calls = []
    original = module._fit
    monkeypatch.setattr(module, "_fit", lambda *a: calls.append(a[2]) or original(*a))
    second = run_experiment("sequence.transformer_tasks", resume=True, run_id="r", **kwargs)
    assert len(calls) == 1
    assert second.record["claims"] == first.record["claims"]
    assert second.record["metrics"] == first.record["metrics"]
