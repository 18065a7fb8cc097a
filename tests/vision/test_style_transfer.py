"""vision.style_transfer: claim verdicts on synthetic records, config validation, a smoke run."""

from __future__ import annotations

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.vision.experiments.style_transfer import (
    StyleTransferConfig,
    StyleTransferMeasurements,
    claims,
)


def _record(style_after: float, content_after: float, gram_error: float = 0.0):
    image = np.zeros((4, 6, 3))
    return StyleTransferMeasurements(
        content_image=image,
        style_image=image,
        result=image,
        style_before=2.0,
        style_after=style_after,
        content_after=content_after,
        content_of_style=0.4,
        curve=[],
        evaluations=260,
        gram_error=gram_error,
        network="random",
    )


def _verdicts(m: StyleTransferMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, StyleTransferConfig.quick())}


def test_claim_verdicts():
    ok = {"style_falls": True, "content_kept": True, "gram_permutation": True}
    assert _verdicts(_record(0.02, 0.39)) == ok
    assert _verdicts(_record(0.0201, 0.39))["style_falls"] is False
    assert _verdicts(_record(0.01, 0.4))["content_kept"] is False  # strictly below
    assert _verdicts(_record(0.01, 0.3, gram_error=1e-9))["gram_permutation"] is False
    kinds = [c.kind for c in claims(_record(0.01, 0.3), StyleTransferConfig.quick())]
    assert kinds == ["claim", "claim", "check"]

    # the measured shortfall is declared below the full preset (random features) only
    def known(cfg: StyleTransferConfig) -> list[bool]:
        return [bool(c.known_failure) for c in claims(_record(0.01, 0.3), cfg)]

    assert known(StyleTransferConfig()) == [False, False, False]  # full: Adam, 3,000 steps
    assert known(StyleTransferConfig.quick()) == [True, False, False]  # L-BFGS
    assert known(StyleTransferConfig(steps=2000)) == [True, False, False]  # Adam, fewer steps
    quick = claims(_record(0.01, 0.3), StyleTransferConfig.quick())
    assert "32x at seed 0" in quick[0].known_failure
    assert "L-BFGS, 12 x 20 iterations (260 evaluations" in quick[0].detail


def test_config_validation(tmp_path):
    with pytest.raises(ConfigError, match="existing VGG-19"):
        StyleTransferConfig(weights=str(tmp_path / "absent.pth"))
    with pytest.raises(ConfigError, match="style_layers must be names"):
        StyleTransferConfig(style_layers=("relu1_1", "fc6"))
    with pytest.raises(ConfigError, match="content_layers must be names"):
        StyleTransferConfig(content_layers=())
    with pytest.raises(ConfigError, match="pool must be one of"):
        StyleTransferConfig(pool="min")
    with pytest.raises(ConfigError, match="style must be one of"):
        StyleTransferConfig(style="starry_night")
    with pytest.raises(ConfigError, match="optimiser must be one of"):
        StyleTransferConfig(optimiser="sgd")
    with pytest.raises(ConfigError, match="inner must be >= 1"):
        StyleTransferConfig(inner=0)
    quick = StyleTransferConfig.quick()
    assert (quick.optimiser, StyleTransferConfig().optimiser) == ("lbfgs", "adam")


def test_smoke_run(tmp_path):
    result = run_experiment(
        "vision.style_transfer",
        preset="quick",
        overrides=["size=24", "steps=2", "inner=4", "width=4"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record = result.record
    assert [c["key"] for c in record["claims"]] == [
        "style_falls",
        "content_kept",
        "gram_permutation",
    ]
    assert {c["key"]: c["holds"] for c in record["claims"]}["gram_permutation"] is True
    metrics = record["metrics"]
    assert metrics["style_after"] < metrics["style_before"]  # the direction, after 2 steps
    assert 2 <= metrics["evaluations"] <= 10  # two L-BFGS steps of at most 4 iterations
    assert [p.rsplit("/", 1)[-1] for p in record["figures"]] == ["style_transfer.png"]
    adam = run_experiment(
        "vision.style_transfer",
        preset="quick",
        overrides=["optimiser=adam", "size=16", "steps=4", "every=2", "width=2"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    ).record
    assert adam["metrics"]["evaluations"] == 4  # one per Adam step, summed over two records
    assert adam["metrics"]["style_after"] < adam["metrics"]["style_before"]
