"""Config values outside their domain are refused before anything runs (issue 11, section 5).

Each bad value is refused by the config's ``__post_init__`` (ranges) or by
:mod:`deepnotes.core.config` (finite floats, well-formed tuples, shortened echoes), so the CLI
prints one line, exits 2 and writes nothing. The generic rules are checked on every registered
experiment, so an experiment added later inherits them.
"""

from __future__ import annotations

import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pytest
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core.config import ALLOW_INF, apply_overrides, field_types, preset
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import experiments, get_experiment

runner = CliRunner()
DIGITS = "foundations.supervised_digits"
FINITE = "expected a finite number (magnitude at most 1.8e+308)"
FRACTIONS = "val_fraction and test_fraction must each be in (0, 1) and sum to less than 1, got"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # a negative momentum (and one that never decays)
        (["optimizer=sgd", "momentum=-0.5"], "momentum must be in [0, 1), got -0.5"),
        (["momentum=1"], "momentum must be in [0, 1), got 1.0"),
        # a negative, zero or NaN clipping norm
        (["grad_clip=-1"], "grad_clip must be > 0 or none, got -1.0"),
        (["grad_clip=0"], "grad_clip must be > 0 or none, got 0.0"),
        (["grad_clip=nan"], f"grad_clip: {FINITE}, got 'nan' (not a number)"),
        # patience 0
        (["patience=0"], "patience must be >= 1 epoch or none, got 0"),
        # split fractions of 0, 1, NaN, negative, or summing past 1
        (["val_fraction=0"], f"{FRACTIONS} val_fraction=0, test_fraction=0.2 (sum 0.2)"),
        (["test_fraction=1"], f"{FRACTIONS} val_fraction=0.2, test_fraction=1 (sum 1.2)"),
        (["val_fraction=nan"], f"val_fraction: {FINITE}, got 'nan' (not a number)"),
        (["test_fraction=-0.1"], f"{FRACTIONS} val_fraction=0.2, test_fraction=-0.1"),
        (["val_fraction=0.5", "test_fraction=0.5"], "(sum 1)"),
        (["val_fraction=0.7", "test_fraction=0.4"], "(sum 1.1)"),
        # infinite or overflowing values
        (["lr=inf"], f"lr: {FINITE}, got 'inf'"),
        (["lr=1e309"], f"lr: {FINITE}, got '1e309' (too large: it overflows to inf)"),
        (["weight_decay=inf"], f"weight_decay: {FINITE}, got 'inf'"),
        (["lr=nan"], f"lr: {FINITE}, got 'nan' (not a number)"),
        # a malformed tuple
        (
            ["hidden=("],
            'hidden: expected comma-separated values written "256,128" or "(256, 128)"',
        ),
        (["hidden=128,,64"], "hidden: expected comma-separated values"),
        # a huge value, echoed back shortened
        ([f"epochs={'9' * 100_000}x"], "epochs: expected an integer, got '999"),
        ([f"hidden={'1,' * 50_000}x"], "hidden: expected an integer, got 'x'"),
    ],
)
def test_cli_refuses_out_of_domain_values_in_one_line_exit_2_nothing_written(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    """Issue 11: each of these printed a traceback, exited 1 or was accepted as if valid."""
    out = tmp_path / "runs"
    args = ["run", DIGITS, "--out", str(out)]
    for override in overrides:
        args += ["--set", override]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 2, result.output[:500]
    assert result.output.startswith("error: ")
    assert result.output.count("\n") == 1  # one line
    assert len(result.output) < 400  # a huge value is not echoed in full
    assert message in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("foundations.test_set_tuning", ["lrs=-0.01,0.01"], "lrs must be > 0, got (-0.01, 0.01)"),
        ("foundations.test_set_tuning", ["widths=0,16"], "widths must be >= 1, got (0, 16)"),
        ("foundations.test_set_tuning", ["weight_decays=-1,0"], "weight_decays must be >= 0"),
        ("foundations.test_set_tuning", ["batch_size=0"], "batch_size must be >= 1, got 0"),
        ("foundations.test_set_tuning", ["val_fraction=nan"], FINITE),
        ("foundations.empirical_risk", ["sigma=0"], "sigma must be > 0, got 0.0"),
        ("foundations.empirical_risk", ["sigma=-1"], "sigma must be > 0, got -1.0"),
        ("optim.adagrad_decay", ["eps=0"], "eps must be > 0"),
        ("vision.digits_cnns", ["optimizer=sgd", "momentum=1"], "momentum must be in [0, 1)"),
        ("vision.digits_cnns", ["momentum=-0.1"], "momentum must be in [0, 1), got -0.1"),
        ("optim.compare_digits", ["sgd_lrs=0.1,inf"], f"sgd_lrs: {FINITE}, got 'inf'"),
        ("optim.quadratic", ["start=1e309,1"], "(too large: it overflows to inf)"),
    ],
)
def test_other_experiments_refuse_values_outside_their_domain(
    name: str, overrides: list[str], message: str
) -> None:
    """Holes of the same kind found by scanning every experiment config (issue 11)."""
    cls = get_experiment(name).config
    with pytest.raises(ConfigError) as info:
        apply_overrides(preset(cls, "quick"), overrides)
    assert message in str(info.value)


ALL = [exp.name for exp in experiments()]


@pytest.mark.parametrize("name", ALL)
def test_presets_of_every_experiment_are_valid(name: str) -> None:
    cls = get_experiment(name).config
    for which in ("quick", "full"):
        cfg = preset(cls, which)
        assert apply_overrides(cfg, []) == cfg


def _float_slots(hint: Any) -> str | None:
    """Text for a field of type ``hint`` with ``inf`` in every float slot, or None when the
    field holds no float (or explicitly allows infinity)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Annotated:
        return None if ALLOW_INF in hint.__metadata__ else _float_slots(args[0])
    if origin in (Union, types.UnionType):
        texts = [_float_slots(a) for a in args if a is not type(None)]
        return texts[0] if len(texts) == 1 else None
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return "inf" if _float_slots(args[0]) else None
        return (
            ",".join("inf" if _float_slots(a) else "1" for a in args)
            if any(_float_slots(a) for a in args)
            else None
        )
    if origin is Literal:
        return None
    return "inf" if hint is float else None


@pytest.mark.parametrize("name", ALL)
def test_every_float_field_of_every_experiment_refuses_infinity(name: str) -> None:
    """The finite rule lives once in core.config: every experiment (and every one to come)
    inherits it without writing a check."""
    cls = get_experiment(name).config
    cfg = preset(cls, "quick")
    checked = 0
    for key, hint in field_types(cls).items():
        text = _float_slots(hint)
        if text is None:
            continue
        checked += 1
        for bad in (text, text.replace("inf", "1e309"), text.replace("inf", "nan")):
            with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: {re.escape(FINITE)}"):
                apply_overrides(cfg, [f"{key}={bad}"])
    if name == DIGITS:
        assert checked >= 6  # dropout, lr, momentum, weight_decay, grad_clip, fractions


def test_nan_is_refused_even_where_a_range_check_would_miss_it() -> None:
    """``require(not x < 0)`` would pass NaN; the finite rule makes that impossible from text."""
    cfg = preset(get_experiment(DIGITS).config, "quick")
    for key in ("dropout", "momentum", "weight_decay", "test_fraction"):
        with pytest.raises(ConfigError, match="not a number"):
            apply_overrides(cfg, [f"{key}=nan"])
    assert math.isfinite(apply_overrides(cfg, ["lr=1e308"]).lr)
