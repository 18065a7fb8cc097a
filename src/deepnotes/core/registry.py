"""The experiment registry, and what an experiment returns: an :class:`Outcome` with claims.

An experiment is a function ``(cfg, ctx) -> Outcome`` registered under a dotted name::

    @experiment("foundations.supervised_digits", topic="foundations", config=DigitsConfig)
    def supervised_digits(cfg: DigitsConfig, ctx: RunContext) -> Outcome:
        ...
        return Outcome(metrics={"test_acc": acc}, figures=[curves],
                       claims=[Claim.at_least("test accuracy >= 0.97", acc, 0.97)])

Topic packages put their experiments in ``deepnotes/<topic>/experiments.py``; :func:`discover`
imports every such module, so ``core`` never names a topic.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import operator
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepnotes.core.errors import ConfigError

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Claim:
    """A sentence from the notes plus the measurement that checks it.

    Arguments:
        statement: the claim in words, e.g. "selecting on test overstates accuracy".
        measured: the measured value.
        threshold: the value fixed before the run that ``measured`` is compared with.
        holds: the verdict.
        comparison: how ``measured`` is compared with ``threshold`` (">=", "<", ...; free text
            for compound checks, which must then say how ``holds`` was decided in ``detail``).
        detail: anything a reader needs to judge it (standard errors, sample sizes).
        known_failure: empty for an ordinary claim. A claim of the notes (or of an issue) that
            was measured honestly and found not to hold, reliably or at all, carries here the
            reason in words. Its verdict is still computed and reported as it is; it just does
            not make the run fail (like pytest's ``xfail``), so the tour's exit status keeps
            guarding every other claim.

    Prefer the constructors :meth:`at_least` and :meth:`at_most`, which compute ``holds``.
    """

    statement: str
    measured: float
    threshold: float
    holds: bool
    comparison: str = ">="
    detail: str = ""
    known_failure: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "holds", bool(self.holds))
        if self.known_failure and not self.known_failure.strip():
            raise ValueError("known_failure must say why the claim does not hold")

    @property
    def verdict(self) -> str:
        """One of :data:`VERDICTS`: see :func:`verdict`."""
        return verdict(self.to_dict())

    @classmethod
    def compare(
        cls,
        statement: str,
        measured: float,
        comparison: str,
        threshold: float,
        detail: str = "",
        *,
        known_failure: str = "",
    ) -> Claim:
        """A claim whose verdict is ``measured <comparison> threshold`` (NaN never holds)."""
        if comparison not in _COMPARISONS:
            raise ValueError(f"comparison must be one of {list(_COMPARISONS)}, got {comparison!r}")
        measured, threshold = float(measured), float(threshold)
        holds = not math.isnan(measured) and _COMPARISONS[comparison](measured, threshold)
        return cls(statement, measured, threshold, holds, comparison, detail, known_failure)

    @classmethod
    def at_least(
        cls,
        statement: str,
        measured: float,
        threshold: float,
        detail: str = "",
        *,
        known_failure: str = "",
    ) -> Claim:
        """Holds when ``measured >= threshold``."""
        return cls.compare(
            statement, measured, ">=", threshold, detail, known_failure=known_failure
        )

    @classmethod
    def at_most(
        cls,
        statement: str,
        measured: float,
        threshold: float,
        detail: str = "",
        *,
        known_failure: str = "",
    ) -> Claim:
        """Holds when ``measured <= threshold``."""
        return cls.compare(
            statement, measured, "<=", threshold, detail, known_failure=known_failure
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Outcome:
    """What an experiment returns: scalar metrics, figure paths and claims."""

    metrics: dict[str, Any] = field(default_factory=dict)
    figures: list[Path | str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    @property
    def all_hold(self) -> bool:
        return all(c.holds for c in self.claims)

    @property
    def unexpected_failures(self) -> int:
        """Claims that do not hold and are not marked as known failures: these fail a run."""
        return sum(c.verdict == FAILS for c in self.claims)


HOLDS, FAILS, KNOWN, UNKNOWN = "holds", "fails", "known failure", "unknown"
VERDICTS = (HOLDS, FAILS, KNOWN, UNKNOWN)


def verdict(claim: Mapping[str, Any]) -> str:
    """The verdict of a claim (a :class:`Claim` as a dict, e.g. read from ``outcome.json``).

    ``"holds"``; ``"fails"`` (does not hold, and nobody said it might not: the run fails);
    ``"known failure"`` (does not hold, as its ``known_failure`` says); ``"unknown"`` (no
    boolean ``holds``: a malformed record). A known failure that holds in this run is
    ``"holds"``; :func:`verdict_text` still shows the mark.
    """
    holds = claim.get("holds")
    if not isinstance(holds, bool):
        return UNKNOWN
    if holds:
        return HOLDS
    return KNOWN if str(claim.get("known_failure") or "").strip() else FAILS


def verdict_text(claim: Mapping[str, Any]) -> str:
    """The verdict in words, for tables: "holds", "does not hold", "does not hold (known)",
    "holds (marked as a known failure)", "unknown"."""
    v = verdict(claim)
    if v == HOLDS and str(claim.get("known_failure") or "").strip():
        return "holds (marked as a known failure)"
    return {
        HOLDS: "holds",
        FAILS: "does not hold",
        KNOWN: "does not hold (known)",
        UNKNOWN: "unknown",
    }[v]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    ``draft`` is None for experiments of the curriculum tour. A draft experiment has a claim
    that does not hold yet (or is still being designed); ``draft`` says which and why. Drafts
    run with ``deepnotes run`` and ``deepnotes tour --drafts``, report their claims as they
    are, and are listed as drafts; the plain tour, whose exit code certifies the curriculum,
    leaves them out.
    """

    name: str
    topic: str
    config: type
    fn: Callable[..., Outcome]
    description: str
    draft: str | None = None


_REGISTRY: dict[str, Experiment] = {}


def experiment(
    name: str, *, topic: str, config: type, draft: str | None = None
) -> Callable[[Callable], Callable]:
    """Register ``fn(cfg, ctx) -> Outcome`` as the experiment ``name`` (``topic.short_name``).

    ``draft``: why the experiment is not part of the tour yet (see :class:`Experiment`).
    """
    if draft is not None and not draft.strip():
        raise ValueError(f"draft of {name!r} must say why the experiment is a draft")
    if not dataclasses.is_dataclass(config) or not config.__dataclass_params__.frozen:
        raise TypeError(f"config of {name!r} must be a frozen dataclass, got {config!r}")
    if not name.startswith(f"{topic}."):
        raise ValueError(f"experiment name {name!r} must start with its topic {topic!r}")

    def register(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"experiment {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Experiment(name, topic, config, fn, doc[0] if doc else "", draft)
        return fn

    return register


def discover() -> None:
    """Import ``deepnotes.<topic>.experiments`` for every topic package, registering them all."""
    import deepnotes

    for module in pkgutil.iter_modules(deepnotes.__path__):
        if module.ispkg and module.name != "core":
            target = f"deepnotes.{module.name}.experiments"
            if importlib.util.find_spec(target) is not None:
                importlib.import_module(target)


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name``; ConfigError with close matches otherwise."""
    discover()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"unknown experiment {name!r}.{hint} Run `deepnotes list` to see all "
        f"{len(_REGISTRY)} experiments."
    )


def experiments(topics: Sequence[str] | None = None, drafts: bool = True) -> list[Experiment]:
    """Every registered experiment (of the given topics; without drafts if ``drafts`` is False),
    sorted by name."""
    discover()
    known = sorted({e.topic for e in _REGISTRY.values()})
    for topic in topics or ():
        if topic not in known:
            raise ConfigError(f"unknown topic {topic!r}; expected one of {', '.join(known)}")
    return sorted(
        (
            e
            for e in _REGISTRY.values()
            if (not topics or e.topic in topics) and (drafts or e.draft is None)
        ),
        key=lambda e: e.name,
    )
