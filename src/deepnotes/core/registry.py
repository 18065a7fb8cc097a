"""The experiment registry, and what an experiment returns: an :class:`Outcome` with claims.

An experiment is a function ``(cfg, ctx) -> Outcome`` registered under a dotted name, with the
keys of its claims and checks declared up front::

    @experiment("foundations.supervised_digits", topic="foundations", config=DigitsConfig,
                claims=("test_accuracy",))
    def supervised_digits(cfg: DigitsConfig, ctx: RunContext) -> Outcome:
        '''An MLP trained on the digits reaches the accuracy the notes promise.'''
        ...
        return Outcome(metrics={"test_acc": acc}, figures=[curves], claims=[
            Claim.at_least("test accuracy >= 0.97", acc, 0.97, key="test_accuracy")])

One convention registers them all: each topic package has an ``experiments`` package with one
module per experiment, and :func:`discover` imports every module in it, so ``core`` never names
a topic. Experiments outside the package (a user's own, the test suite's probes) are modules
named in the environment variable ``DEEPNOTES_EXPERIMENTS``.

A **claim** is a statement of the notes or of a published result, which can fail; a **check**
is an identity of the implementation (``kind="check"``). They are counted apart. A declared key
that a run does not return becomes a claim that does not hold (:func:`complete`).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import operator
import os
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepnotes.core.errors import ConfigError
from deepnotes.core.stats import TestResult
from deepnotes.core.text import shorten

KINDS = ("claim", "check")
"""A claim can fail (a statement of the notes or a published result); a check is an identity of
the implementation (it fails only on a bug)."""

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
        key: a short identifier, unique in its experiment, naming the claim in the
            experiment's declaration (``@experiment(..., claims=(...), checks=(...))``).
        kind: ``"claim"`` (a statement of the notes or of a published result: it can fail)
            or ``"check"`` (an identity of the implementation, e.g. "equals torch to 1e-12").
            The tour, the report and README count them apart.
        baseline: empty when ``threshold`` was fixed before the run. When the threshold is
            relative to a baseline measured in the same run (the single nets an ensemble must
            beat), says which; the report labels the claim that way.

    Prefer the constructors :meth:`at_least`, :meth:`at_most` and :meth:`from_test`, which
    compute ``holds``.
    """

    statement: str
    measured: float
    threshold: float
    holds: bool
    comparison: str = ">="
    detail: str = ""
    known_failure: str = ""
    key: str = ""
    kind: str = "claim"
    baseline: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "holds", bool(self.holds))
        if self.known_failure and not self.known_failure.strip():
            raise ValueError("known_failure must say why the claim does not hold")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

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
        key: str = "",
        kind: str = "claim",
        baseline: str = "",
    ) -> Claim:
        """A claim whose verdict is ``measured <comparison> threshold`` (NaN never holds)."""
        if comparison not in _COMPARISONS:
            raise ValueError(f"comparison must be one of {list(_COMPARISONS)}, got {comparison!r}")
        measured, threshold = float(measured), float(threshold)
        holds = not math.isnan(measured) and _COMPARISONS[comparison](measured, threshold)
        return cls(
            statement,
            measured,
            threshold,
            holds,
            comparison,
            detail,
            known_failure,
            key=key,
            kind=kind,
            baseline=baseline,
        )

    @classmethod
    def from_test(
        cls,
        statement: str,
        result: TestResult,
        detail: str = "",
        *,
        known_failure: str = "",
        key: str = "",
        baseline: str = "",
    ) -> Claim:
        """A claim decided by a test of :mod:`deepnotes.core.stats` (the house policy).

        ``measured`` is the statistic, ``threshold`` the critical value (negated for
        ``alternative="less"``); the detail names the test, its degrees of freedom, level,
        family and p-value.
        """
        greater = result.alternative == "greater"
        text = result.describe() + (f"; {detail}" if detail else "")
        return cls(
            statement,
            result.statistic,
            result.critical if greater else -result.critical,
            result.holds,
            ">" if greater else "<",
            text,
            known_failure,
            key=key,
            kind="claim",
            baseline=baseline,
        )

    @classmethod
    def at_least(
        cls,
        statement: str,
        measured: float,
        threshold: float,
        detail: str = "",
        *,
        known_failure: str = "",
        key: str = "",
        kind: str = "claim",
        baseline: str = "",
    ) -> Claim:
        """Holds when ``measured >= threshold``."""
        return cls.compare(
            statement,
            measured,
            ">=",
            threshold,
            detail,
            known_failure=known_failure,
            key=key,
            kind=kind,
            baseline=baseline,
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
        key: str = "",
        kind: str = "claim",
        baseline: str = "",
    ) -> Claim:
        """Holds when ``measured <= threshold``."""
        return cls.compare(
            statement,
            measured,
            "<=",
            threshold,
            detail,
            known_failure=known_failure,
            key=key,
            kind=kind,
            baseline=baseline,
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

    def count(self, kind: str) -> int:
        """How many of the claims are of ``kind`` ("claim" or "check")."""
        return sum(c.kind == kind for c in self.claims)

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

    ``claims`` and ``checks`` are the keys of what the experiment states, declared up front: a
    run that returns fewer (a claim skipped because a method diverged) fails on each missing
    one (see :func:`complete`).

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
    claims: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()


_REGISTRY: dict[str, Experiment] = {}

PLUGINS_ENV = "DEEPNOTES_EXPERIMENTS"
"""Comma-separated modules imported by :func:`discover` besides the topics' own experiments:
a user's experiments outside the package (the test suite registers its probes this way)."""


_ABBREVIATIONS = frozenset({"e.g", "i.e", "vs", "cf", "etc", "fig", "eq", "al", "approx", "resp"})


def first_sentence(docstring: str | None) -> str:
    """The first sentence of a docstring, whole: its first paragraph's lines joined, cut after
    the first ``.``, ``!`` or ``?`` that ends a sentence.

    A full stop ends a sentence when it ends the paragraph or is followed by white space and a
    capital letter (or a quote or bracket), and does not close a common abbreviation ("e.g.",
    "vs.", "Fig."). A paragraph without such an end is returned whole.

    Arguments:
        docstring: The docstring (``fn.__doc__``), possibly indented or ``None``.

    Returns:
        The sentence, with runs of white space collapsed; ``""`` for an empty docstring.

    Example:
        >>> first_sentence('''The training risk underestimates the risk; for a fixed model
        ...     the empirical risk converges like 1/sqrt(n). More text.''')
        'The training risk underestimates the risk; for a fixed model the empirical risk converges like 1/sqrt(n).'
    """  # noqa: E501
    paragraph = re.split(r"\n[ \t]*\n", (docstring or "").strip(), maxsplit=1)[0]
    text = " ".join(paragraph.split())
    for match in re.finditer(r"[.!?](?=\s+[A-Z\"'(\[`]|$)", text):
        if match.group() == ".":
            word = re.search(r"([A-Za-z.]+)$", text[: match.start()])
            if word and word.group(1).lower() in _ABBREVIATIONS:
                continue
        return text[: match.end()]
    return text


def experiment(
    name: str,
    *,
    topic: str,
    config: type,
    claims: Sequence[str] = (),
    checks: Sequence[str] = (),
    draft: str | None = None,
) -> Callable[[Callable], Callable]:
    """Register ``fn(cfg, ctx) -> Outcome`` as the experiment ``name`` (``topic.short_name``).

    Arguments:
        claims: keys of the claims the experiment states (each :class:`Claim` it returns
            carries one as ``key``, with ``kind="claim"``).
        checks: keys of its implementation checks (``kind="check"``).
        draft: why the experiment is not part of the tour yet (see :class:`Experiment`).
    """
    if draft is not None and not draft.strip():
        raise ValueError(f"draft of {name!r} must say why the experiment is a draft")
    if not dataclasses.is_dataclass(config) or not config.__dataclass_params__.frozen:
        raise TypeError(f"config of {name!r} must be a frozen dataclass, got {config!r}")
    if not name.startswith(f"{topic}."):
        raise ValueError(f"experiment name {name!r} must start with its topic {topic!r}")
    claims, checks = tuple(claims), tuple(checks)
    keys = claims + checks
    if not keys:
        raise ValueError(f"experiment {name!r} must declare its claims or checks up front")
    if len(set(keys)) != len(keys) or not all(isinstance(k, str) and k for k in keys):
        raise ValueError(f"claim and check keys of {name!r} must be distinct names, got {keys}")

    def register(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"experiment {name!r} is registered twice")
        description = first_sentence(fn.__doc__ or "")
        _REGISTRY[name] = Experiment(
            name, topic, config, fn, description, draft, claims=claims, checks=checks
        )
        return fn

    return register


def complete(exp: Experiment, outcome: Outcome) -> Outcome:
    """The outcome with its claims checked against the declaration of ``exp``.

    Every declared key that the run did not return becomes a claim that does not hold ("not
    measured"), so a claim cannot vanish silently when a method diverges. A key returned twice,
    or not declared, or with the wrong kind, is a bug of the experiment: ``TypeError``.
    """
    declared = {key: "claim" for key in exp.claims} | {key: "check" for key in exp.checks}
    seen: set[str] = set()
    for claim in outcome.claims:
        if claim.key not in declared:
            raise TypeError(
                f"experiment {exp.name!r} returned {claim.kind} {claim.key!r}, which it did not "
                f"declare (declared: {', '.join(declared)})"
            )
        if claim.key in seen:
            raise TypeError(f"experiment {exp.name!r} returned {claim.key!r} twice")
        if claim.kind != declared[claim.key]:
            raise TypeError(
                f"experiment {exp.name!r} declared {claim.key!r} as a {declared[claim.key]}, "
                f"returned it as a {claim.kind}"
            )
        seen.add(claim.key)
    missing = [
        Claim(
            f"{key}: declared but not measured",
            math.nan,
            math.nan,
            False,
            "n/a",
            "not measured: the run returned no value for this "
            f"{kind} (a method diverged, or a branch was skipped)",
            key=key,
            kind=kind,
        )
        for key, kind in declared.items()
        if key not in seen
    ]
    return dataclasses.replace(outcome, claims=[*outcome.claims, *missing])


def discover() -> None:
    """Register every experiment: each module of each ``deepnotes.<topic>.experiments``
    package, then the modules named in the environment variable :data:`PLUGINS_ENV`."""
    import deepnotes

    for module in pkgutil.iter_modules(deepnotes.__path__):
        if not module.ispkg or module.name == "core":
            continue
        target = f"deepnotes.{module.name}.experiments"
        if importlib.util.find_spec(target) is None:
            continue
        package = importlib.import_module(target)
        for sub in pkgutil.iter_modules(getattr(package, "__path__", [])):
            importlib.import_module(f"{target}.{sub.name}")
    for target in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(target)
        except ImportError as err:
            raise ConfigError(
                f"{PLUGINS_ENV} names {target!r}, which cannot be imported: {err}"
            ) from err


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name``; ConfigError with close matches otherwise."""
    discover()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"unknown experiment {shorten(repr(name))}.{hint} Run `deepnotes list` to see all "
        f"{len(_REGISTRY)} experiments."
    )


def experiments(topics: Sequence[str] | None = None, drafts: bool = True) -> list[Experiment]:
    """Every registered experiment (of the given topics; without drafts if ``drafts`` is False),
    sorted by name."""
    discover()
    known = sorted({e.topic for e in _REGISTRY.values()})
    for topic in topics or ():
        if topic not in known:
            raise ConfigError(
                f"unknown topic {shorten(repr(topic))}; expected one of {', '.join(known)}"
            )
    return sorted(
        (
            e
            for e in _REGISTRY.values()
            if (not topics or e.topic in topics) and (drafts or e.draft is None)
        ),
        key=lambda e: e.name,
    )
