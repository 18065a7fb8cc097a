"""Registries of derivations and problems, the other two kinds of artefact besides experiments.

A **derivation** is a gradient or Jacobian the notes ask to compute by hand. Its entry computes
the closed form and compares it with autograd in float64, returning the largest absolute error::

    @derivation("sigmoid derivative", topic="mechanics", closed_form="s'(x) = s(x) (1 - s(x))")
    def sigmoid_derivative() -> Check:
        x = torch.linspace(-6, 6, 101, dtype=torch.float64, requires_grad=True)
        (auto,) = torch.autograd.grad(torch.sigmoid(x).sum(), x)
        return Check.compare(sigmoid(x.detach().numpy()) * (1 - ...), auto)

A **problem** is a numeric question of the notes. Its entry answers it by calling library
functions (never by writing the number down) and returns the quantities asked for::

    @problem("Bayes from a table", topic="foundations", source="discussion 1, problem 2")
    def bayes() -> Answer:
        return Answer([("P(F|H)", posterior(...))], note="...")

Topics put their entries in ``deepnotes/<topic>/derivations.py`` and ``.../problems.py``;
:func:`discover_catalog` imports them, so ``core`` names no topic.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import pkgutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepnotes.core.errors import ConfigError

DEFAULT_TOLERANCE = 1e-8


@dataclass(frozen=True)
class Check:
    """The result of comparing a closed form with autograd.

    Arguments:
        max_abs_error: largest absolute difference over every entry compared.
        tolerance: the bound it must stay under (float64 round-off unless stated otherwise).
        detail: shapes or points checked, anything a reader needs.
        unit: the unit of the error and tolerance when they are not plain absolute differences
            (``"SE"`` for a Monte Carlo check measured in standard errors); empty otherwise.
    """

    max_abs_error: float
    tolerance: float = DEFAULT_TOLERANCE
    detail: str = ""
    unit: str = ""

    @property
    def passed(self) -> bool:
        return math.isfinite(self.max_abs_error) and self.max_abs_error <= self.tolerance

    @classmethod
    def compare(
        cls,
        closed_form: Any | Sequence[Any],
        reference: Any | Sequence[Any],
        tolerance: float = DEFAULT_TOLERANCE,
        detail: str = "",
    ) -> Check:
        """Max abs difference of one array (or matching sequences of arrays) against another.

        Arrays may be NumPy arrays or torch tensors (detached to NumPy); shapes must match.
        """
        pairs = (
            list(zip(closed_form, reference, strict=True))
            if isinstance(closed_form, list | tuple)
            else [(closed_form, reference)]
        )
        worst = 0.0
        for ours, theirs in pairs:
            a, b = _numpy(ours), _numpy(theirs)
            if a.shape != b.shape:
                raise ValueError(f"closed form has shape {a.shape}, reference has {b.shape}")
            if a.size:
                worst = max(worst, float(np.max(np.abs(a - b))))
        return cls(worst, tolerance, detail)


@dataclass(frozen=True)
class Answer:
    """The answer to a numeric problem: named quantities, each computed by the library.

    Arguments:
        quantities: ``(name, value)`` pairs in the order the problem asks for them; values are
            numbers, strings, or arrays (shown as nested lists).
        note: a sentence on how they were computed (which functions, which formula).
    """

    quantities: list[tuple[str, Any]]
    note: str = ""


@dataclass(frozen=True)
class Derivation:
    name: str
    topic: str
    closed_form: str
    fn: Callable[[], Check]


@dataclass(frozen=True)
class Problem:
    name: str
    topic: str
    source: str
    fn: Callable[[], Answer]


_DERIVATIONS: dict[str, Derivation] = {}
_PROBLEMS: dict[str, Problem] = {}


def derivation(name: str, *, topic: str, closed_form: str) -> Callable[[Callable], Callable]:
    """Register ``fn() -> Check`` as the derivation ``name`` with its closed form in words."""

    def register(fn: Callable[[], Check]) -> Callable[[], Check]:
        _add(_DERIVATIONS, name, Derivation(name, topic, closed_form, fn), fn)
        return fn

    return register


def problem(name: str, *, topic: str, source: str) -> Callable[[Callable], Callable]:
    """Register ``fn() -> Answer`` as the problem ``name``; ``source``: where the notes pose it."""

    def register(fn: Callable[[], Answer]) -> Callable[[], Answer]:
        _add(_PROBLEMS, name, Problem(name, topic, source, fn), fn)
        return fn

    return register


def _add(registry: dict[str, Any], name: str, entry: Any, fn: Callable) -> None:
    if name in registry and registry[name].fn.__qualname__ != fn.__qualname__:
        raise ValueError(f"{name!r} is registered twice")
    registry[name] = entry


def discover_catalog() -> None:
    """Import ``deepnotes.<topic>.derivations`` and ``.problems`` for every topic package."""
    import deepnotes

    for module in pkgutil.iter_modules(deepnotes.__path__):
        if module.ispkg and module.name != "core":
            for kind in ("derivations", "problems"):
                target = f"deepnotes.{module.name}.{kind}"
                if importlib.util.find_spec(target) is not None:
                    importlib.import_module(target)


def derivations(topics: Sequence[str] | None = None) -> list[Derivation]:
    """Registered derivations (of the given topics), in registration order."""
    discover_catalog()
    return _select(list(_DERIVATIONS.values()), topics, "derivations")


def problems(topics: Sequence[str] | None = None) -> list[Problem]:
    """Registered problems (of the given topics), in registration order."""
    discover_catalog()
    return _select(list(_PROBLEMS.values()), topics, "problems")


def _select(entries: list[Any], topics: Sequence[str] | None, kind: str) -> list[Any]:
    known = sorted({e.topic for e in entries})
    for topic in topics or ():
        if topic not in known:
            raise ConfigError(f"no {kind} for topic {topic!r}; topics with {kind}: {known}")
    return [e for e in entries if not topics or e.topic in topics]


@dataclass
class DerivationRow:
    """One line of the ``deepnotes derivations`` table."""

    name: str
    topic: str
    closed_form: str
    max_abs_error: float
    tolerance: float
    passed: bool
    detail: str = ""
    seconds: float = 0.0
    error: str = ""
    unit: str = ""


def run_derivations(topics: Sequence[str] | None = None) -> list[DerivationRow]:
    """Run every derivation check; an exception is reported as a failed row, not raised."""
    rows = []
    for entry in derivations(topics):
        t0 = time.perf_counter()
        try:
            check = entry.fn()
            row = DerivationRow(
                entry.name,
                entry.topic,
                entry.closed_form,
                check.max_abs_error,
                check.tolerance,
                check.passed,
                check.detail,
                unit=check.unit,
            )
        except Exception as err:  # a broken check is a failure to show, not a crash
            row = DerivationRow(
                entry.name,
                entry.topic,
                entry.closed_form,
                math.nan,
                math.nan,
                False,
                error=f"{type(err).__name__}: {err}",
            )
        row.seconds = time.perf_counter() - t0
        rows.append(row)
    return rows


@dataclass
class ProblemRow:
    """One answered problem of the ``deepnotes problems`` listing."""

    name: str
    topic: str
    source: str
    quantities: list[tuple[str, Any]] = field(default_factory=list)
    note: str = ""
    error: str = ""


def run_problems(
    topics: Sequence[str] | None = None, names: Sequence[str] = ()
) -> list[ProblemRow]:
    """Answer every problem (or those named); an exception becomes the row's ``error``."""
    entries = problems(topics)
    if names:
        known = {e.name for e in entries}
        for name in names:
            if name not in known:
                raise ConfigError(f"unknown problem {name!r}; known: {sorted(known)}")
        entries = [e for e in entries if e.name in names]
    rows = []
    for entry in entries:
        row = ProblemRow(entry.name, entry.topic, entry.source)
        try:
            answer = entry.fn()
            row.quantities = [(q, _plain(v)) for q, v in answer.quantities]
            row.note = answer.note
        except Exception as err:  # shown in the listing, and the command exits non-zero
            row.error = f"{type(err).__name__}: {err}"
        rows.append(row)
    return rows


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _plain(value: Any) -> Any:
    """Arrays and tensors as nested lists, NumPy scalars as Python numbers."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
