"""Tests for deepnotes.core.registry: claims, outcomes and the experiment registry."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from deepnotes.core import registry
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import (
    FAILS,
    HOLDS,
    KNOWN,
    UNKNOWN,
    Claim,
    Outcome,
    experiment,
    experiments,
    get_experiment,
    verdict,
    verdict_text,
)

TEST_NAME = "testtopic.dummy"


@dataclass(frozen=True)
class FrozenConfig:
    steps: int = 1


@dataclass
class MutableConfig:
    steps: int = 1


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Remove every entry a test adds to the private registry."""
    registry.discover()
    registry.discover()  # so restoring the snapshot cannot drop the real experiments
    before = dict(registry._REGISTRY)
    yield
    for name in set(registry._REGISTRY) - set(before):
        del registry._REGISTRY[name]
    registry._REGISTRY.update(before)


# ----------------------------------------------------------------------------- Claim


@pytest.mark.parametrize(
    ("measured", "threshold", "holds"),
    [(0.98, 0.97, True), (0.97, 0.97, True), (0.96, 0.97, False), (-1.0, -2.0, True)],
)
def test_claim_at_least(measured: float, threshold: float, holds: bool) -> None:
    claim = Claim.at_least("acc high", measured, threshold, detail="n=100")
    assert claim.holds is holds
    assert claim.comparison == ">="
    assert (claim.statement, claim.measured, claim.threshold, claim.detail) == (
        "acc high",
        measured,
        threshold,
        "n=100",
    )


@pytest.mark.parametrize(
    ("measured", "threshold", "holds"),
    [(0.01, 0.05, True), (0.05, 0.05, True), (0.06, 0.05, False)],
)
def test_claim_at_most(measured: float, threshold: float, holds: bool) -> None:
    claim = Claim.at_most("gap small", measured, threshold)
    assert claim.holds is holds
    assert claim.comparison == "<="
    assert claim.detail == ""


@pytest.mark.parametrize(
    ("comparison", "expected"),
    [
        # verdicts at measured < threshold, measured == threshold, measured > threshold
        (">=", (False, True, True)),
        (">", (False, False, True)),
        ("<=", (True, True, False)),
        ("<", (True, False, False)),
    ],
)
def test_claim_compare_every_operator(comparison: str, expected: tuple[bool, bool, bool]) -> None:
    verdicts = tuple(Claim.compare("s", m, comparison, 1.0).holds for m in (0.5, 1.0, 1.5))
    assert verdicts == expected
    assert Claim.compare("s", 0.5, comparison, 1.0).comparison == comparison


@pytest.mark.parametrize("comparison", [">=", ">", "<=", "<"])
@pytest.mark.parametrize("measured", [math.nan, np.float32("nan"), torch.tensor(math.nan)])
def test_claim_nan_never_holds(comparison: str, measured: object) -> None:
    claim = Claim.compare("s", measured, comparison, 0.0)  # type: ignore[arg-type]
    assert claim.holds is False
    assert math.isnan(claim.measured)


def test_claim_infinite_values_compare_normally() -> None:
    assert Claim.at_least("s", math.inf, 1e300).holds is True
    assert Claim.at_most("s", -math.inf, -1e300).holds is True
    assert Claim.at_least("s", -math.inf, 0.0).holds is False


@pytest.mark.parametrize("comparison", ["==", "=>", "ge", "", "!="])
def test_claim_compare_rejects_unknown_comparison(comparison: str) -> None:
    with pytest.raises(ValueError) as info:
        Claim.compare("s", 1.0, comparison, 0.0)
    message = str(info.value)
    assert "comparison must be one of ['>=', '>', '<=', '<']" in message
    assert f"got {comparison!r}" in message


def test_claim_coerces_numpy_and_torch_numbers() -> None:
    claim = Claim.at_least("s", np.float32(0.75), np.int64(1))
    assert type(claim.measured) is float
    assert type(claim.threshold) is float
    assert type(claim.holds) is bool
    assert (claim.measured, claim.threshold, claim.holds) == (0.75, 1.0, False)

    direct = Claim("s", torch.tensor(2.5), np.float64(2.0), np.bool_(True), comparison="custom")
    assert type(direct.measured) is float and direct.measured == 2.5
    assert type(direct.threshold) is float and direct.threshold == 2.0
    assert direct.holds is True
    assert direct.comparison == "custom"


def test_claim_is_frozen_and_to_dict() -> None:
    claim = Claim.at_most("loss low", 0.25, 0.5, detail="se 0.01")
    with pytest.raises(dataclasses.FrozenInstanceError):
        claim.holds = False  # type: ignore[misc]
    assert claim.to_dict() == {
        "statement": "loss low",
        "measured": 0.25,
        "threshold": 0.5,
        "holds": True,
        "comparison": "<=",
        "detail": "se 0.01",
        "known_failure": "",
        "key": "",
        "kind": "claim",
        "baseline": "",
    }


# ----------------------------------------------------------------------------- Outcome


def test_verdicts_of_ordinary_and_known_failure_claims() -> None:
    holds = Claim.at_least("a", 1.0, 0.5)
    fails = Claim.at_least("a", 0.1, 0.5)
    known = Claim.at_least("a", 0.1, 0.5, known_failure="too few epochs")
    lucky = Claim.at_least("a", 1.0, 0.5, known_failure="holds at some seeds only")
    assert [c.verdict for c in (holds, fails, known, lucky)] == [HOLDS, FAILS, KNOWN, HOLDS]
    # the verdict is never changed by the mark: a known failure still does not hold
    assert known.holds is False and lucky.holds is True
    assert verdict_text(known.to_dict()) == "does not hold (known)"
    assert verdict_text(lucky.to_dict()) == "holds (marked as a known failure)"
    assert verdict_text(fails.to_dict()) == "does not hold"
    # records read back from disk: an old one without the key, and a malformed one
    assert verdict({"holds": False}) == FAILS
    assert verdict({"holds": "yes"}) == UNKNOWN
    outcome = Outcome(claims=[holds, known, lucky])
    assert outcome.all_hold is False and outcome.unexpected_failures == 0
    assert Outcome(claims=[known, fails]).unexpected_failures == 1
    with pytest.raises(ValueError, match="must say why"):
        Claim.at_least("a", 0.1, 0.5, known_failure="   ")


def test_outcome_all_hold() -> None:
    good = Claim.at_least("a", 1.0, 0.5)
    bad = Claim.at_most("b", 1.0, 0.5)
    assert Outcome().all_hold is True  # vacuously
    assert Outcome(claims=[good, good]).all_hold is True
    assert Outcome(claims=[good, bad]).all_hold is False
    assert Outcome(claims=[bad]).all_hold is False


def test_outcome_defaults_are_independent() -> None:
    first, second = Outcome(), Outcome()
    first.metrics["x"] = 1
    first.claims.append(Claim.at_least("a", 1.0, 0.5))
    assert second.metrics == {} and second.claims == [] and second.figures == []


# ----------------------------------------------------------------------------- the decorator


def test_experiment_rejects_non_frozen_config() -> None:
    with pytest.raises(TypeError, match="must be a frozen dataclass") as info:
        experiment("testtopic.mutable", topic="testtopic", config=MutableConfig)
    assert "'testtopic.mutable'" in str(info.value)
    assert "testtopic.mutable" not in registry._REGISTRY


def test_experiment_rejects_non_dataclass_config() -> None:
    with pytest.raises(TypeError, match="must be a frozen dataclass"):
        experiment("testtopic.plain", topic="testtopic", config=dict)


@pytest.mark.parametrize("name", ["othertopic.dummy", "testtopicdummy", "dummy", "x.testtopic.y"])
def test_experiment_rejects_name_outside_topic(name: str) -> None:
    with pytest.raises(ValueError) as info:
        experiment(name, topic="testtopic", config=FrozenConfig, checks=("c",))
    message = str(info.value)
    assert f"experiment name {name!r} must start with its topic 'testtopic'" in message


def test_register_and_get_experiment(clean_registry: None) -> None:
    @experiment(TEST_NAME, topic="testtopic", config=FrozenConfig, checks=("c",))
    def dummy(cfg: FrozenConfig, ctx: object) -> Outcome:
        """A dummy experiment.

        More text that is not part of the description.
        """
        return Outcome(metrics={"steps": cfg.steps})

    found = get_experiment(TEST_NAME)
    assert found.name == TEST_NAME
    assert found.topic == "testtopic"
    assert found.config is FrozenConfig
    assert found.fn is dummy
    assert found.description == "A dummy experiment."
    assert found.fn(FrozenConfig(steps=3), None).metrics == {"steps": 3}

    listed = experiments(["testtopic"])
    assert [e.name for e in listed] == [TEST_NAME]
    assert TEST_NAME in [e.name for e in experiments()]


def test_register_without_docstring_and_reregistration(clean_registry: None) -> None:
    def make() -> object:
        def dummy(cfg: FrozenConfig, ctx: object) -> Outcome:
            return Outcome()

        return dummy

    first = experiment(TEST_NAME, topic="testtopic", config=FrozenConfig, checks=("c",))(make())
    assert get_experiment(TEST_NAME).description == ""
    # The same function registered again (a module imported twice) replaces the entry.
    second = experiment(TEST_NAME, topic="testtopic", config=FrozenConfig, checks=("c",))(make())
    assert get_experiment(TEST_NAME).fn is second is not first

    def other(cfg: FrozenConfig, ctx: object) -> Outcome:
        return Outcome()

    with pytest.raises(ValueError, match=r"experiment 'testtopic\.dummy' is registered twice"):
        experiment(TEST_NAME, topic="testtopic", config=FrozenConfig, checks=("c",))(other)
    assert get_experiment(TEST_NAME).fn is second


def test_experiments_are_sorted_by_name(clean_registry: None) -> None:
    for short in ("zeta", "alpha", "mid"):

        def fn(cfg: FrozenConfig, ctx: object) -> Outcome:
            return Outcome()

        fn.__qualname__ = f"fn_{short}"
        experiment(f"testtopic.{short}", topic="testtopic", config=FrozenConfig, checks=("c",))(fn)
    names = [e.name for e in experiments(["testtopic"])]
    assert names == ["testtopic.alpha", "testtopic.mid", "testtopic.zeta"]
    everything = [e.name for e in experiments()]
    assert everything == sorted(everything)


def test_clean_registry_fixture_left_no_test_entries() -> None:
    registry.discover()
    assert not [name for name in registry._REGISTRY if name.startswith("testtopic.")]


# ----------------------------------------------------------------------------- lookup


def test_real_experiments_are_discovered() -> None:
    names = {e.name for e in experiments(["foundations"])}
    assert {"foundations.supervised_digits", "foundations.test_set_tuning"} <= names
    found = get_experiment("foundations.supervised_digits")
    assert found.topic == "foundations"
    assert dataclasses.is_dataclass(found.config)
    assert found.config.__dataclass_params__.frozen
    assert callable(found.fn)


def test_get_experiment_near_miss_suggests_name() -> None:
    with pytest.raises(ConfigError) as info:
        get_experiment("foundations.supervised_digit")
    message = str(info.value)
    assert "unknown experiment 'foundations.supervised_digit'" in message
    assert "Did you mean 'foundations.supervised_digits'" in message
    assert f"all {len(registry._REGISTRY)} experiments" in message


def test_get_experiment_far_miss_has_no_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        get_experiment("qqqqqqqqqqqqqqqqqqqqqqqq")
    assert "Did you mean" not in str(info.value)
    assert "deepnotes list" in str(info.value)


def test_experiments_unknown_topic_raises() -> None:
    with pytest.raises(ConfigError) as info:
        experiments(["nosuchtopic"])
    message = str(info.value)
    assert "unknown topic 'nosuchtopic'" in message
    assert "foundations" in message.split("expected one of", 1)[1]


# ----------------------------------------------------------------------------- declarations

CURRICULUM = {
    "foundations.bias_variance",
    "foundations.empirical_risk",
    "foundations.estimators",
    "foundations.ridge",
    "foundations.supervised_digits",
    "foundations.test_set_tuning",
    "gans.digits",
    "gans.lipschitz",
    "gans.optimal_discriminator",
    "gans.ring_and_grid",
    "gans.vanishing_gradient",
    "generative.autoencoders",
    "generative.autoregressive",
    "generative.flows",
    "generative.likelihoods",
    "generative.vae",
    "language.bert_pretraining",
    "language.contextual_embeddings",
    "language.pretraining_helps",
    "language.word2vec_cost",
    "language.word2vec_degenerate",
    "mechanics.numpy_mlp",
    "meta.few_shot",
    "meta.maml_gradient",
    "meta.maml_rl",
    "meta.rl2",
    "meta.sinusoid",
    "optim.adagrad_decay",
    "optim.compare_digits",
    "optim.quadratic",
    "optim.sgd_noise",
    "rl.actor_critic",
    "rl.discounting",
    "rl.dqn_cartpole",
    "rl.exploration",
    "rl.imitation",
    "rl.partial_observation",
    "rl.policy_gradient_variance",
    "rl.reinforce_cartpole",
    "rl.tabular",
    "robustness.adversarial_training",
    "robustness.black_box",
    "robustness.fgsm_pgd",
    "robustness.linear_optimality",
    "robustness.other_perturbations",
    "robustness.transfer",
    "sequence.adding_problem",
    "sequence.gradient_flow",
    "sequence.luong_translation",
    "sequence.positional_encoding",
    "sequence.scaled_attention",
    "sequence.transformer_tasks",
    "sequence.why_transformers",
    "vision.activations",
    "vision.batchnorm_init",
    "vision.deepdream",
    "vision.detection",
    "vision.digits_cnns",
    "vision.dropout",
    "vision.ensembles",
    "vision.init",
    "vision.localisation",
    "vision.parameter_counts",
    "vision.segmentation",
    "vision.skip_connections",
    "vision.style_transfer",
}
"""Every experiment of the curriculum: one that stops registering (a module renamed, a
decorator lost) is caught here."""


def test_the_registered_experiments_are_the_curriculum() -> None:
    assert {e.name for e in experiments() if e.topic != "probe"} == CURRICULUM


def test_every_experiment_declares_claims_or_checks_and_a_whole_sentence() -> None:
    for exp in experiments():
        assert exp.claims or exp.checks, exp.name
        assert exp.description.endswith("."), (exp.name, exp.description)
        assert len(exp.description) > 20, exp.name


def test_declarations_are_required_and_distinct() -> None:
    with pytest.raises(ValueError, match="must declare its claims or checks"):
        experiment("testtopic.none", topic="testtopic", config=FrozenConfig)
    with pytest.raises(ValueError, match="distinct names"):
        experiment("testtopic.dup", topic="testtopic", config=FrozenConfig, claims=("a", "a"))
    with pytest.raises(ValueError, match="distinct names"):
        experiment(
            "testtopic.dup", topic="testtopic", config=FrozenConfig, claims=("a",), checks=("a",)
        )


def _declared(claims: tuple[str, ...] = (), checks: tuple[str, ...] = ()) -> registry.Experiment:
    return registry.Experiment(
        "testtopic.d", "testtopic", FrozenConfig, lambda c, x: Outcome(), "", None, claims, checks
    )


def test_complete_turns_a_missing_claim_into_one_that_does_not_hold() -> None:
    exp = _declared(claims=("beats", "converges"), checks=("matches_torch",))
    outcome = Outcome(
        claims=[
            Claim.at_least("A beats B", 2.0, 1.0, key="beats"),
            Claim.at_most("equals torch", 1e-13, 1e-12, key="matches_torch", kind="check"),
        ]
    )
    done = registry.complete(exp, outcome)
    assert [c.key for c in done.claims] == ["beats", "matches_torch", "converges"]
    missing = done.claims[-1]
    assert not missing.holds and missing.verdict == FAILS and missing.kind == "claim"
    assert math.isnan(missing.measured) and missing.detail.startswith("not measured")
    assert outcome.claims[-1].key == "matches_torch"  # the input is not modified
    assert done.count("claim") == 2 and done.count("check") == 1


def test_complete_of_an_empty_outcome_fails_every_declared_claim() -> None:
    done = registry.complete(_declared(claims=("a", "b")), Outcome())
    assert [c.verdict for c in done.claims] == [FAILS, FAILS]
    assert done.unexpected_failures == 2


@pytest.mark.parametrize(
    "claim, message",
    [
        (Claim.at_least("x", 1, 0, key="other"), "did not declare"),
        (Claim.at_least("x", 1, 0, key="a", kind="check"), "declared 'a' as a claim"),
    ],
)
def test_complete_rejects_undeclared_and_mistyped_keys(claim: Claim, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        registry.complete(_declared(claims=("a",)), Outcome(claims=[claim]))
    with pytest.raises(TypeError, match="twice"):
        twice = [Claim.at_least("x", 1, 0, key="a")] * 2
        registry.complete(_declared(claims=("a",)), Outcome(claims=twice))


def test_claim_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        Claim.at_least("x", 1, 0, kind="identity")


@pytest.mark.parametrize(
    "doc, sentence",
    [
        ("One line.", "One line."),
        (
            "A sentence that goes\n    over two lines. And a second.",
            "A sentence that goes over two lines.",
        ),
        ("No full stop", "No full stop"),
        (
            "Keeps e.g. inside? Not quite: p = 0.5 stays. Next.",
            "Keeps e.g. inside?",
        ),
        ("First paragraph.\n\nSecond paragraph.", "First paragraph."),
        ("", ""),
    ],
)
def test_first_sentence(doc: str, sentence: str) -> None:
    assert registry.first_sentence(doc) == sentence
