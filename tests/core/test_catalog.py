"""The registries of derivations and problems."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepnotes.core import catalog
from deepnotes.core.catalog import Answer, Check, derivation, problem
from deepnotes.core.errors import ConfigError


@pytest.fixture
def clean_catalog():
    catalog.discover_catalog()
    saved = dict(catalog._DERIVATIONS), dict(catalog._PROBLEMS)
    yield
    catalog._DERIVATIONS.clear()
    catalog._DERIVATIONS.update(saved[0])
    catalog._PROBLEMS.clear()
    catalog._PROBLEMS.update(saved[1])


def test_check_compare_takes_the_largest_error_over_all_pairs() -> None:
    a = [np.array([1.0, 2.0]), torch.tensor([[3.0]], dtype=torch.float64)]
    b = [np.array([1.0, 2.5]), np.array([[2.0]])]
    check = Check.compare(a, b, tolerance=0.6)
    assert check.max_abs_error == 1.0 and not check.passed
    assert Check.compare(np.ones(3), np.ones(3)).passed
    assert not Check(math.nan).passed


def test_check_compare_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"closed form has shape \(2,\), reference has \(3,\)"):
        Check.compare(np.zeros(2), np.zeros(3))


def test_derivations_run_and_failures_are_rows(clean_catalog) -> None:
    @derivation("double", topic="testtopic", closed_form="d(x^2)/dx = 2x")
    def _good() -> Check:
        x = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
        (auto,) = torch.autograd.grad((x**2).sum(), x)
        return Check.compare(2 * x.detach(), auto)

    @derivation("wrong", topic="testtopic", closed_form="d(x^2)/dx = x")
    def _bad() -> Check:
        x = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
        (auto,) = torch.autograd.grad((x**2).sum(), x)
        return Check.compare(x.detach(), auto)

    @derivation("broken", topic="testtopic", closed_form="-")
    def _broken() -> Check:
        raise RuntimeError("boom")

    rows = {r.name: r for r in catalog.run_derivations(["testtopic"])}
    assert rows["double"].passed and rows["double"].max_abs_error == 0.0
    assert not rows["wrong"].passed and rows["wrong"].max_abs_error == pytest.approx(2.0)
    assert not rows["broken"].passed and rows["broken"].error == "RuntimeError: boom"


def test_problems_answer_and_select_by_name(clean_catalog) -> None:
    @problem("area", topic="testtopic", source="here")
    def _area() -> Answer:
        return Answer([("pi r^2 at r=2", np.float64(np.pi * 4)), ("grid", np.eye(2))], note="n")

    (row,) = catalog.run_problems(["testtopic"], ["area"])
    assert row.quantities == [
        ("pi r^2 at r=2", pytest.approx(4 * np.pi)),
        ("grid", [[1.0, 0.0], [0.0, 1.0]]),
    ]
    assert isinstance(row.quantities[0][1], float)
    with pytest.raises(ConfigError, match="unknown problem 'aera'"):
        catalog.run_problems(["testtopic"], ["aera"])
    with pytest.raises(ConfigError, match="no problems for topic 'nosuch'"):
        catalog.run_problems(["nosuch"])


def test_registering_a_name_twice_is_an_error(clean_catalog) -> None:
    @problem("dup", topic="testtopic", source="")
    def _one() -> Answer:
        return Answer([])

    with pytest.raises(ValueError, match="registered twice"):

        @problem("dup", topic="testtopic", source="")
        def _two() -> Answer:
            return Answer([])
