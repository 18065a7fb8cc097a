"""optim.quadratic: its claims on synthetic records, and a smoke run in a tiny preset."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.optim.experiments.quadratic import (
    QuadraticConfig,
    QuadraticMeasurements,
    claims,
)
from deepnotes.optim.quadratic import Setting

CFG = QuadraticConfig(kappas=(1.0, 10.0, 100.0))
NEVER = Setting(None, None, None)


def _path(factor_x1: float, factor_x2: float, steps: int = CFG.plot_steps) -> np.ndarray:
    t = np.arange(steps + 1)
    return np.stack([CFG.start[0] * factor_x1**t, CFG.start[1] * factor_x2**t], axis=1)


def _record(**changes: object) -> QuadraticMeasurements:
    alpha = 0.5
    base = {
        "well_gd": Setting(alpha, 0.0, 2),
        "ill": {
            "GD": Setting(0.39, 0.0, 2000),
            "momentum": Setting(0.6, 0.7, 200),
            "RMSProp": Setting(1.0, 0.99, 30),
        },
        "sweep": {
            "GD": [Setting(0.5, 0.0, 2), Setting(0.45, 0.0, 200), Setting(0.39, 0.0, 2000)],
            "momentum": [NEVER, NEVER, NEVER],
            "RMSProp": [NEVER, NEVER, NEVER],
        },
        # GD with alpha on the ill-conditioned problem: x2 multiplied by 1 - 2 alpha a2 = -1.5
        "paths": {"2a": _path(0.0, 0.0), "2b": _path(1 - 2 * alpha * 0.025, 1 - 2 * alpha * 2.5)},
    }
    return QuadraticMeasurements(**(base | changes))


def _verdicts(m: QuadraticMeasurements) -> dict[str, tuple[bool, float, str]]:
    return {c.key: (c.holds, c.measured, c.detail) for c in claims(m, CFG)}


def test_every_claim_holds_on_a_record_of_the_notes_figures() -> None:
    v = _verdicts(_record())
    assert all(holds for holds, _, _ in v.values()), v
    assert v["fig2b_same_step_diverges"][1] == pytest.approx(1.5**40)
    assert v["fig2b_closed_form"][1] < 1e-12
    assert v["momentum_far_fewer"][1] == 10 and v["rmsprop_far_fewer"][1] == pytest.approx(
        2000 / 30
    )
    assert v["gd_slows_with_kappa"][1] == 10
    kinds = {c.key: c.kind for c in claims(_record(), CFG)}
    assert kinds["fig2b_closed_form"] == "check"


def test_a_step_that_stays_stable_on_the_ill_conditioned_problem_does_not_diverge() -> None:
    paths = {"2a": _path(0.0, 0.0), "2b": _path(0.99, -0.8)}  # |x2| shrinks
    holds, growth, _ = _verdicts(_record(paths=paths))["fig2b_same_step_diverges"]
    assert not holds and growth < 1
    # and a path that does not follow the closed form of the step fails the check
    assert not _verdicts(_record(paths=paths))["fig2b_closed_form"][0]


def test_no_step_reaching_the_tolerance_on_the_well_problem_fails_2a_and_2b_visibly() -> None:
    v = _verdicts(_record(well_gd=NEVER, paths={}))
    for key in ("fig2a_well_quick", "fig2b_same_step_diverges", "fig2b_closed_form"):
        holds, measured, _ = v[key]
        assert not holds and math.isnan(measured), key
    assert "no step" in v["fig2b_same_step_diverges"][2]
    assert "never reached" in v["fig2a_well_quick"][2]


def test_a_method_that_never_converges_makes_its_claim_fail_not_vanish() -> None:
    ill = _record().ill | {"momentum": NEVER}
    v = _verdicts(_record(ill=ill))
    holds, measured, detail = v["momentum_far_fewer"]
    assert not holds and math.isnan(measured)
    assert "never reached the tolerance" in detail
    assert v["rmsprop_far_fewer"][0]  # the other comparison is unaffected
    # and GD never converging makes both ratios NaN
    v = _verdicts(_record(ill=ill | {"GD": NEVER}))
    assert math.isnan(v["rmsprop_far_fewer"][1])


def test_gd_slowing_with_kappa_fails_when_a_count_is_missing_or_does_not_grow() -> None:
    sweep = _record().sweep
    flat = sweep | {"GD": [Setting(0.5, 0.0, 20), Setting(0.5, 0.0, 20), Setting(0.4, 0.0, 30)]}
    assert not _verdicts(_record(sweep=flat))["gd_slows_with_kappa"][0]
    missing = sweep | {"GD": [Setting(0.5, 0.0, 2), NEVER, Setting(0.4, 0.0, 30)]}
    holds, measured, _ = _verdicts(_record(sweep=missing))["gd_slows_with_kappa"]
    assert not holds and math.isnan(measured)


def test_config_rejects_bad_values_and_quick_is_smaller() -> None:
    with pytest.raises(ConfigError, match="x2"):
        QuadraticConfig(start=(1.0, 0.0))
    with pytest.raises(ConfigError, match="kappas"):
        QuadraticConfig(kappas=(10.0,))
    assert preset(QuadraticConfig, "quick").max_steps <= preset(QuadraticConfig, "full").max_steps


def test_smoke_run_reproduces_the_figures_and_the_ordering(tmp_path: Path) -> None:
    result = run_experiment(
        "optim.quadratic",
        preset="quick",
        # a grid of 21 steps holds 0.501, near the well problem's best step 1 / (a1 + a2) = 0.5
        overrides=("kappas=1,10", "lr_points=21", "momenta=0.7,0.9", "max_steps=2000"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["x2_growth_fig2b"] > 1  # the well problem's best step diverges on the ill one
    assert m["x1_left_after_plot_steps_fig2c"] > 0.3  # GD's best step crawls along x1
    assert m["momentum_iterations"] < m["gd_iterations"]
    assert m["rmsprop_iterations"] < m["gd_iterations"]
    gd = m["gd_iterations_by_kappa"]
    assert gd == sorted(gd) and gd[0] < gd[-1]
    assert {c["key"]: c["holds"] for c in result.record["claims"]} == {
        "fig2a_well_quick": True,
        "fig2b_same_step_diverges": True,
        "fig2b_closed_form": True,
        "momentum_far_fewer": True,
        "rmsprop_far_fewer": True,
        "gd_slows_with_kappa": True,
    }
    assert [Path(f).name for f in result.record["figures"]] == ["trajectories.png", "kappa.png"]
