"""generative.flows: claim and check verdicts on synthetic records, and one tiny smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.generative.experiments import flows as ex

CLAIMS = ("realnvp_nll", "nice_worse")
CHECKS = (
    "equal_size",
    "nice_volume_preserving",
    "nice_rescaling_carries_volume",
    "realnvp_logdet",
    "inverse_exact",
)
FULL = ex.FlowsConfig()
TINY = (
    "couplings=2",
    "hidden=8",
    "batch=64",
    "steps=20",
    "every=20",
    "test_size=256",
    "check_points=3",
    "grid=12",
    "samples=50",
)


def record(real: float = 0.28, nice: float = 0.45, params=(71_714, 71_728), **over):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.5, 2000)
    fields = dict(
        steps=np.array([1000, 2000]),
        test_nll={"nice": np.array([0.6, nice]), "realnvp": np.array([0.5, real])},
        point_nll={"nice": nice + noise + rng.normal(0, 0.05, 2000), "realnvp": real + noise},
        parameters={"nice": params[0], "realnvp": params[1]},
        diverged={"nice": "", "realnvp": ""},
        nice_coupling_logdet=0.0,
        nice_rescale_residual=1e-15,
        realnvp_logdet_error=1e-14,
        inverse_error={"nice": 1e-15, "realnvp": 1e-15},
        log_density={},
        samples={},
    )
    fields.update(over)
    return ex.FlowsMeasurements(**fields)


def verdicts(m: ex.FlowsMeasurements, cfg: ex.FlowsConfig = FULL) -> dict[str, bool]:
    return {c.key: c.holds for c in ex.claims(m, cfg)}


def test_declared_keys_and_kinds() -> None:
    exp = get_experiment("generative.flows")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    got = ex.claims(record(), FULL)
    assert [c.key for c in got] == [*CLAIMS, *CHECKS]
    assert [c.kind for c in got] == ["claim"] * 2 + ["check"] * 5


def test_the_phenomenon_holds_everything() -> None:
    assert verdicts(record()) == dict.fromkeys(CLAIMS + CHECKS, True)


def test_each_claim_and_check_can_fail() -> None:
    assert not verdicts(record(real=0.35))["realnvp_nll"]
    assert not verdicts(record(nice=0.28))["nice_worse"]  # equal NLLs: no effect
    assert not verdicts(record(params=(100_000, 71_728)))["equal_size"]
    assert not verdicts(record(nice_coupling_logdet=1e-6))["nice_volume_preserving"]
    assert not verdicts(record(nice_rescale_residual=1e-6))["nice_rescaling_carries_volume"]
    assert not verdicts(record(realnvp_logdet_error=2e-5))["realnvp_logdet"]
    assert not verdicts(record(inverse_error={"nice": 1e-5, "realnvp": 0.0}))["inverse_exact"]


def test_a_diverged_fit_holds_no_claim() -> None:
    bad = record(point_nll={"nice": np.full(10, math.nan), "realnvp": np.full(10, math.nan)})
    got = verdicts(bad)
    assert not got["realnvp_nll"] and not got["nice_worse"]


def test_the_shortfall_is_known_in_both_presets_and_still_decided() -> None:
    for cfg in (ex.FlowsConfig.quick(), FULL):
        (nll,) = [c for c in ex.claims(record(real=0.5), cfg) if c.key == "realnvp_nll"]
        assert nll.known_failure and not nll.holds
        (nll,) = [c for c in ex.claims(record(real=0.25), cfg) if c.key == "realnvp_nll"]
        assert nll.holds  # a run that reaches the bar is shown as holding


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="couplings"):
        ex.FlowsConfig(couplings=1)
    with pytest.raises(ConfigError, match="every"):
        ex.FlowsConfig(steps=10, every=20)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "generative.flows",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(CLAIMS + CHECKS)
    assert [Path(f).name for f in rec["figures"]] == ["flows.png"]
    checks = {c["key"]: c["holds"] for c in rec["claims"] if c["kind"] == "check"}
    assert checks == dict.fromkeys(CHECKS, True)  # identities hold even after 20 steps
    assert math.isfinite(rec["metrics"]["test_nll_realnvp"])
