"""meta.maml_gradient: the closed-form meta-gradient, its pieces, verdicts and a smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.seeding import seeded
from deepnotes.meta.experiments.maml_gradient import (
    GradientConfig,
    GradientMeasurements,
    claims,
)
from deepnotes.meta.meta_gradient import (
    angle_degrees,
    autograd_meta_gradient,
    closed_form_meta_gradient,
    first_order_meta_gradient,
    flat_loss,
    flatten,
    hessian_factors,
    inner_trajectory,
    tanh_mlp,
    unflatten,
)


def _setup(seed: int = 0):
    with seeded(seed):
        model = tanh_mlp((5,))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 1, generator=g, dtype=torch.float64)
    support, query = (x[0], torch.sin(x[0])), (x[1], torch.cos(x[1]))
    theta = flatten({k: v.detach() for k, v in model.named_parameters()})
    return model, support, query, theta


def test_flatten_round_trip() -> None:
    model, _, _, theta = _setup()
    like = dict(model.named_parameters())
    back = unflatten(theta, like)
    assert all(torch.equal(back[k], v.detach()) for k, v in like.items())
    with pytest.raises(ConfigError, match="parameters need"):
        unflatten(theta[:-1], like)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_closed_form_equals_autograd_and_the_gap_is_the_hessian_term(steps: int) -> None:
    model, support, query, theta = _setup()
    loss0, loss1 = flat_loss(model, F.mse_loss, *support), flat_loss(model, F.mse_loss, *query)
    closed = closed_form_meta_gradient(loss0, loss1, theta, 0.3, steps)
    auto = autograd_meta_gradient(
        model, support, query, inner_lr=0.3, steps=steps, first_order=False
    )
    torch.testing.assert_close(closed, auto, atol=1e-12, rtol=0)
    # the product of the factors (I - a H_0) ... (I - a H_{k-1}) applied to grad L1(theta_k)
    product = torch.eye(theta.numel(), dtype=theta.dtype)
    for factor in hessian_factors(loss0, theta, 0.3, steps):
        product = product @ factor
    first = first_order_meta_gradient(loss0, loss1, theta, 0.3, steps)
    torch.testing.assert_close(closed, product @ first, atol=1e-12, rtol=0)
    auto1 = autograd_meta_gradient(
        model, support, query, inner_lr=0.3, steps=steps, first_order=True
    )
    torch.testing.assert_close(auto1, first, atol=1e-12, rtol=0)
    assert angle_degrees(closed, first) > 0.1


def test_the_factors_do_not_commute_so_the_order_matters() -> None:
    model, support, query, theta = _setup()
    loss0, loss1 = flat_loss(model, F.mse_loss, *support), flat_loss(model, F.mse_loss, *query)
    auto = autograd_meta_gradient(model, support, query, inner_lr=0.3, steps=2, first_order=False)
    f0, f1 = hessian_factors(loss0, theta, 0.3, 2)
    g1 = first_order_meta_gradient(loss0, loss1, theta, 0.3, 2)
    assert float((f1 @ f0 @ g1 - auto).abs().max()) > 1e-6
    assert len(inner_trajectory(loss0, theta, 0.3, 2)) == 3


def test_angle_degrees() -> None:
    a = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert angle_degrees(a, a) == pytest.approx(0.0)
    assert angle_degrees(a, torch.tensor([0.0, 2.0], dtype=torch.float64)) == pytest.approx(90.0)


def _m(err: float, gap: float) -> GradientMeasurements:
    return GradientMeasurements(
        steps=(1, 2),
        inner_lrs=(0.1,),
        closed_form_error=np.full((2, 3), err),
        gap_error=np.full((2, 3), gap),
        angle=np.full((2, 1, 3), 10.0),
        angle_at_lr=np.full((2, 3), 10.0),
        gradient_norm=1.0,
    )


def test_check_verdicts_on_synthetic_measurements() -> None:
    cfg = GradientConfig(tasks=3, steps=(1, 2), inner_lrs=(0.1,))
    ok = claims(_m(1e-14, 1e-14), cfg)
    assert [c.key for c in ok] == ["closed_form", "first_order_gap"]
    assert all(c.holds and c.kind == "check" for c in ok)
    bad = claims(_m(1e-6, 1e-14), cfg)
    assert not bad[0].holds and bad[1].holds


def test_config_validation() -> None:
    assert preset(GradientConfig, "quick").tasks == 8
    with pytest.raises(ValueError, match="steps"):
        GradientConfig(steps=(0,))
    with pytest.raises(ValueError, match="inner_lrs"):
        GradientConfig(inner_lrs=())


def test_smoke_run(tmp_path: Path) -> None:
    result = run_experiment(
        "meta.maml_gradient",
        overrides=("tasks=2", "hidden=3", "steps=1,2", "inner_lrs=0.1"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record = result.record
    assert [c["key"] for c in record["claims"]] == ["closed_form", "first_order_gap"]
    assert all(c["holds"] for c in record["claims"])
    assert [Path(f).name for f in record["figures"]] == ["angle_over_inner_lr.png"]
