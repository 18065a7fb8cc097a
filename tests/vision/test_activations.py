"""vision.activations: claims on synthetic records, and a smoke run in a tiny preset."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.vision.deep_nets import plain_mlp
from deepnotes.vision.experiments import activations as ae

CFG = ae.ActivationsConfig(repeats=4, flow_repeats=6)


def record(**changes) -> ae.ActivationsMeasurements:
    rng = np.random.default_rng(0)

    def noisy(mean: float, n: int = 4, sd: float = 0.01) -> np.ndarray:
        return mean + sd * rng.standard_normal(n)

    flow = {}
    for act, first in (("relu", 0.4), ("leaky_relu", 0.4), ("elu", 0.6), ("sigmoid", 0.01)):
        g = np.ones((6, CFG.depth + 1))
        g[:, 0] = first * np.exp(0.1 * rng.standard_normal(6))
        flow[act] = g
    fields = dict(
        flow=flow,
        acc={
            "relu_small": noisy(0.95),
            "leaky_relu_small": noisy(0.95),
            "elu_small": noisy(0.95),
            "sigmoid_small": noisy(0.2),
            "relu_large": noisy(0.95),
        },
        dead={
            "relu_init": noisy(0.0),
            "relu_small": noisy(0.02),
            "relu_after_step": noisy(0.35),
            "relu_large": noisy(0.3),
        },
        recovered_first={"relu": np.zeros(4), "leaky_relu": noisy(0.3), "elu": noisy(0.4)},
        recovered_all={"relu": noisy(0.4), "leaky_relu": noisy(0.5), "elu": noisy(0.5)},
        moved_first={"relu": np.zeros(4), "leaky_relu": noisy(0.01), "elu": noisy(0.05)},
    )
    fields.update(changes)
    return ae.ActivationsMeasurements(**fields)


def verdicts(m: ae.ActivationsMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ae.claims(m, CFG)}


def test_every_claim_holds_on_a_record_with_the_phenomena() -> None:
    v = verdicts(record())
    assert v == {
        "relu_gradient_flow": True,
        "relu_beats_sigmoid": True,
        "relu_large_step_kills": True,
        "large_step_kills_more": True,
        "leaky_relu_units_recover": True,
        "elu_units_recover": True,
        "relu_dead_stay_frozen": True,
    }
    kinds = {c.key: c.kind for c in ae.claims(record(), CFG)}
    assert kinds["relu_dead_stay_frozen"] == "check"


def test_no_recovery_at_all_does_not_hold() -> None:
    # zero difference with zero spread: the relatives do not "beat" ReLU
    m = record(recovered_first={"relu": np.zeros(4), "leaky_relu": np.zeros(4), "elu": np.zeros(4)})
    v = verdicts(m)
    assert not v["leaky_relu_units_recover"] and not v["elu_units_recover"]


def test_diverged_fits_make_their_claims_fail() -> None:
    acc = dict(record().acc)
    acc["relu_small"] = np.array([0.95, math.nan, 0.95, 0.94])
    dead = dict(record().dead)
    dead["relu_large"] = np.array([0.3, 0.3, math.nan, 0.3])
    moved = {
        "relu": np.array([0.0, math.nan, 0.0, 0.0]),
        "leaky_relu": np.ones(4),
        "elu": np.ones(4),
    }
    v = verdicts(record(acc=acc, dead=dead, moved_first=moved))
    assert not v["relu_beats_sigmoid"]
    assert not v["relu_large_step_kills"] and not v["large_step_kills_more"]
    assert not v["relu_dead_stay_frozen"]


def test_few_dead_units_after_the_large_step_do_not_hold() -> None:
    dead = dict(record().dead)
    dead["relu_large"] = np.array([0.09, 0.12, 0.08, 0.10])  # around 10%, not above it
    v = verdicts(record(dead=dead))
    assert not v["relu_large_step_kills"]


def test_large_step_helper_is_one_plain_sgd_step() -> None:
    x, y = torch.randn(40, 8), torch.randint(0, 3, (40,))
    torch_gen = torch.Generator().manual_seed(0)
    net = plain_mlp(8, 6, 2, 3, activation="relu", init="he")
    reference = [p.detach().clone() for p in net.parameters()]
    pick = torch.randperm(40, generator=torch.Generator().manual_seed(0))[:16]
    loss = torch.nn.functional.cross_entropy(net(x[pick]), y[pick])
    grads = torch.autograd.grad(loss, list(net.parameters()))
    ae._large_step(net, TensorDataset(x, y), 3.0, 16, torch_gen)
    for p, p0, g in zip(net.parameters(), reference, grads, strict=True):
        torch.testing.assert_close(p.detach(), p0 - 3.0 * g)


def test_a_moving_dead_relu_unit_fails_the_check() -> None:
    moved = {"relu": np.array([0.0, 1e-9, 0.0, 0.0]), "leaky_relu": np.ones(4), "elu": np.ones(4)}
    assert not verdicts(record(moved_first=moved))["relu_dead_stay_frozen"]


def test_bad_values_are_config_errors() -> None:
    for change in ({"large_lr": 0.01}, {"repeats": 1}, {"kill_fraction": 0.0}):
        with pytest.raises(ConfigError):
            ae.ActivationsConfig(**change)


def test_smoke_run_points_the_right_way(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.activations",
        preset="quick",
        overrides=[
            "depth=2",
            "width=16",
            "epochs=2",
            "repeats=2",
            "flow_repeats=3",
            "grad_batch=64",
        ],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["relu_first_over_last_grad"] > m["sigmoid_first_over_last_grad"]
    assert m["relu_pushed_weights_moved_max"] == 0.0  # dead units get no gradient
    assert m["elu_pushed_weights_moved_max"] > 0.0
    assert m["relu_recovered_first_layer"] == 0.0
    checks = [c for c in result.record["claims"] if c["kind"] == "check"]
    assert [c["key"] for c in checks] == ["relu_dead_stay_frozen"] and checks[0]["holds"]
    assert len(list((result.run_dir / "cache").glob("fit-*.pt"))) == 2 * 8
    assert (result.run_dir / "activations.png").is_file()
