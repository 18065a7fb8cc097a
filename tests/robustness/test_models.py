"""The standard classifiers and their cached fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError
from deepnotes.data.digits import Splits
from deepnotes.robustness import models
from deepnotes.robustness.models import (
    ClassifierSettings,
    build_classifier,
    fit_classifier,
)


def _splits(n: int = 60) -> Splits:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3 * n) % 3
    x = (y.view(-1, 1, 1, 1) / 3 + 0.2 * torch.rand(3 * n, 1, 8, 8, generator=g)).clamp(0, 1)
    parts = [TensorDataset(x[i::3], y[i::3]) for i in range(3)]
    return Splits(
        *parts, num_classes=3, input_shape=(1, 8, 8), mean=torch.zeros(1), std=torch.ones(1)
    )


def _ctx(tmp_path: Path) -> RunContext:
    return RunContext("test", 0, torch.device("cpu"), tmp_path, show_progress=False)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_build_classifier_shapes(kind: str) -> None:
    net = build_classifier(kind, (1, 8, 8), 10)
    assert net(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    if kind == "mlp":
        assert [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)] == [
            128,
            128,
            10,
        ]


def test_build_classifier_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"model kind must be one of \('mlp', 'cnn'\)"):
        build_classifier("resnet", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="square images"):
        build_classifier("cnn", (1, 8, 6), 10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "vit"}, "kind must be one of"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch": 0}, "batch must be >= 1"),
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ],
)
def test_settings_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ClassifierSettings(**kwargs)


def test_fit_classifier_caches_and_passes_perturb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits = []
    real_fit = models.Trainer.fit

    def counting_fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fits.append(self.perturb)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(models.Trainer, "fit", counting_fit)
    ctx, splits = _ctx(tmp_path), _splits()
    settings = ClassifierSettings("mlp", epochs=2, batch=16, lr=1e-2)
    first = fit_classifier(settings, ctx, splits, tag="m")
    second = fit_classifier(settings, ctx, splits, tag="m")
    assert len(fits) == 1  # the second call loaded the cached weights
    assert not first.model.training and not second.model.training
    x = splits.test.tensors[0]
    assert torch.equal(first.model(x), second.model(x))
    assert second.test_acc == first.test_acc and second.seconds == first.seconds > 0
    assert first.epochs == 2 and 0 < first.epoch_seconds < first.seconds / 2  # no evaluation
    assert (tmp_path / "checkpoints" / "m.pt").exists()

    calls: list[bool] = []

    def perturb(model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        calls.append(model.training)
        return (1 - xb).clamp(0, 1)

    adv = fit_classifier(settings, ctx, splits, tag="m", perturb=perturb, perturb_key={"a": 1})
    assert len(fits) == 2 and fits[-1] is perturb  # another key: trained, perturb passed through
    assert calls and all(calls)  # applied to training batches, in training mode
    assert not torch.equal(adv.model(x), first.model(x))
    with pytest.raises(ConfigError, match="perturb_key must describe perturb"):
        fit_classifier(settings, ctx, splits, tag="m", perturb=perturb)
