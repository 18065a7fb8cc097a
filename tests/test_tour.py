"""`deepnotes tour` end to end on throwaway experiments: exit codes, report, failures isolated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import registry
from deepnotes.core.registry import Claim, Outcome, experiment

runner = CliRunner()


@dataclass(frozen=True)
class TinyConfig:
    value: float = 1.0
    """The measured value."""


@pytest.fixture
def tour_topic():
    registry.discover()  # so restoring the snapshot cannot drop the real experiments
    saved = dict(registry._REGISTRY)

    @experiment("tourtest.holds", topic="tourtest", config=TinyConfig, claims=("c",))
    def _holds(cfg: TinyConfig, ctx) -> Outcome:
        """A claim that holds."""
        ctx.log({"value": cfg.value})
        return Outcome(
            metrics={"value": cfg.value}, claims=[Claim.at_least("one", cfg.value, 1, key="c")]
        )

    yield _holds
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


def test_tour_exit_0_when_every_claim_holds(tmp_path: Path, tour_topic) -> None:
    result = runner.invoke(app, ["tour", "--topic", "tourtest", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1/1 claims hold; 0 experiments failed" in result.output
    index = (tmp_path / "report" / "index.html").read_text()
    assert "tourtest.holds" in index


def test_tour_exit_1_and_goes_on_when_one_fails(tmp_path: Path, tour_topic) -> None:
    @experiment("tourtest.crashes", topic="tourtest", config=TinyConfig, claims=("c",))
    def _crashes(cfg: TinyConfig, ctx) -> Outcome:
        """Raises."""
        raise RuntimeError("deliberate")

    @experiment("tourtest.fails", topic="tourtest", config=TinyConfig, claims=("c",))
    def _fails(cfg: TinyConfig, ctx) -> Outcome:
        """A claim that does not hold."""
        return Outcome(claims=[Claim.at_least("two", cfg.value, 2, key="c")])

    result = runner.invoke(app, ["tour", "--topic", "tourtest", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "1/2 claims hold, 1 fail; 1 experiments failed" in " ".join(result.output.split())
    # the experiments after the crash still ran and wrote their outcomes
    outcomes = sorted(p.parent.parent.name for p in tmp_path.glob("*/*/outcome.json"))
    assert outcomes == ["tourtest.fails", "tourtest.holds"]
    fails = json.loads(next(tmp_path.glob("tourtest.fails/*/outcome.json")).read_text())
    assert fails["all_hold"] is False


def test_known_failures_are_reported_but_do_not_fail_the_tour(tmp_path: Path, tour_topic) -> None:
    @experiment("tourtest.known", topic="tourtest", config=TinyConfig, claims=("c",))
    def _known(cfg: TinyConfig, ctx) -> Outcome:
        """A claim that does not hold, documented as such: E[x] < 2."""
        return Outcome(
            claims=[
                Claim.at_least("two", cfg.value, 2, known_failure="one is less than two", key="c")
            ]
        )

    result = runner.invoke(app, ["tour", "--topic", "tourtest", "--out", str(tmp_path)])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "1/2 claims hold, 1 known not to hold; 0 experiments failed" in text
    assert "known failure: one is less than two" in text
    assert "documented as such: E[x] < 2." in text  # brackets are text, not console markup
    record = json.loads(next(tmp_path.glob("tourtest.known/*/outcome.json")).read_text())
    assert record["all_hold"] is False and record["unexpected_failures"] == 0
    assert record["claims"][0]["holds"] is False  # reported as it is
    assert "1 known not to hold" in (tmp_path / "report" / "index.html").read_text()
    # `run` agrees: exit 0 for a known failure, 1 for a claim that fails unexpectedly
    assert runner.invoke(app, ["run", "tourtest.known", "--out", str(tmp_path)]).exit_code == 0
    failing = runner.invoke(
        app, ["run", "tourtest.holds", "--set", "value=0", "--out", str(tmp_path)]
    )
    assert failing.exit_code == 1


def test_tour_unknown_topic_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["tour", "--topic", "nosuch", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown topic 'nosuch'" in result.output
    assert not tmp_path.joinpath("report").exists()


def test_drafts_are_listed_and_left_out_of_the_tour_unless_asked(
    tmp_path: Path, tour_topic
) -> None:
    @experiment(
        "tourtest.draft",
        topic="tourtest",
        config=TinyConfig,
        claims=("c",),
        draft="claim under study",
    )
    def _draft(cfg: TinyConfig, ctx) -> Outcome:
        """A draft whose claim does not hold."""
        return Outcome(claims=[Claim.at_least("two", cfg.value, 2, key="c")])

    listing = runner.invoke(app, ["list", "--topic", "tourtest", "--out", str(tmp_path)])
    assert "draft: claim under study" in " ".join(listing.output.split())
    plain = runner.invoke(app, ["tour", "--topic", "tourtest", "--out", str(tmp_path / "a")])
    assert plain.exit_code == 0 and "tourtest.draft" not in plain.output
    with_drafts = runner.invoke(
        app, ["tour", "--topic", "tourtest", "--drafts", "--out", str(tmp_path / "b")]
    )
    assert with_drafts.exit_code == 1
    record = json.loads(next((tmp_path / "b").glob("tourtest.draft/*/outcome.json")).read_text())
    assert record["draft"] == "claim under study" and record["all_hold"] is False
    with pytest.raises(ValueError, match="must say why"):
        experiment("tourtest.empty", topic="tourtest", config=TinyConfig, claims=("c",), draft=" ")


def test_threads_option_applies_during_the_run_only(tmp_path: Path, tour_topic) -> None:
    import torch

    seen = []

    @experiment("tourtest.threads", topic="tourtest", config=TinyConfig, claims=("c",))
    def _threads(cfg: TinyConfig, ctx) -> Outcome:
        """Records torch's thread count."""
        seen.append(torch.get_num_threads())
        return Outcome(claims=[Claim.at_least("one", 1, 1, key="c")])

    before = torch.get_num_threads()
    result = runner.invoke(
        app, ["run", "tourtest.threads", "--threads", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert seen == [1] and torch.get_num_threads() == before
    bad = runner.invoke(app, ["run", "tourtest.threads", "--threads", "0", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "threads must be >= 1" in bad.output
