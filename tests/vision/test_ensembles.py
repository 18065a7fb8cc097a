"""The ensemble pieces: prediction averaging, parameter averaging, head-only ensembles and the
cyclic cosine schedule with snapshots."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from deepnotes.core.context import RunContext
from deepnotes.core.trainer import Trainer
from deepnotes.vision.ensembles import (
    CyclicCosineLR,
    HeadEnsemble,
    average_state_dicts,
    averaged_model,
    cyclic_cosine,
    cyclic_cosine_factor,
    ensemble_probabilities,
    head_ensemble_accuracy,
    majority_vote,
    multi_head_cross_entropy,
    negative_log_likelihood,
    prediction_scores,
)

# ------------------------------------------------------------------------ prediction averaging


def test_prediction_scores_by_hand() -> None:
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    target = torch.tensor([0, 1, 0])
    scores = prediction_scores(probabilities, target)
    assert scores["acc"] == pytest.approx(2 / 3)  # the second example is misclassified
    nll = -(math.log(0.7) + math.log(0.3) + math.log(0.5)) / 3
    assert scores["nll"] == pytest.approx(nll, rel=1e-6)


def test_ensemble_probabilities_is_the_mean_of_independent_softmaxes() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(5, 4, generator=gen, dtype=torch.float64) * 3 for _ in range(3)]
    by_hand = torch.zeros(5, 4, dtype=torch.float64)
    for z in logits:  # softmax written out: exp(z - max) / sum exp(z - max)
        e = (z - z.max(dim=1, keepdim=True).values).exp()
        by_hand += e / e.sum(dim=1, keepdim=True) / len(logits)
    torch.testing.assert_close(ensemble_probabilities(logits), by_hand, rtol=0, atol=1e-15)
    torch.testing.assert_close(ensemble_probabilities(torch.stack(logits)), by_hand)
    torch.testing.assert_close(by_hand.sum(dim=1), torch.ones(5, dtype=torch.float64))


def test_ensemble_probabilities_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, B, C\)"):
        ensemble_probabilities(torch.zeros(4, 3))


def test_ensemble_nll_is_at_most_the_mean_member_nll_on_every_example() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 50, 10, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, 10, (50,), generator=gen)
    ensemble = negative_log_likelihood(ensemble_probabilities(logits), y)
    members = torch.stack([F.cross_entropy(z, y, reduction="none") for z in logits])  # (N, B)
    assert (ensemble <= members.mean(dim=0) + 1e-12).all()  # Jensen: -log is convex


def test_negative_log_likelihood_matches_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 6, (8,), generator=gen)
    torch.testing.assert_close(
        negative_log_likelihood(z.softmax(-1), y), F.cross_entropy(z, y, reduction="none")
    )
    assert torch.isfinite(negative_log_likelihood(torch.tensor([[1.0, 0.0]]), torch.tensor([1])))


def test_majority_vote_counts_arg_maxes_and_breaks_ties_to_the_smallest_class() -> None:
    def one_hot_logits(classes: list[int]) -> torch.Tensor:
        return F.one_hot(torch.tensor(classes), 3).float()  # (B, 3): arg-max = class

    members = [one_hot_logits([0, 2, 1]), one_hot_logits([1, 2, 2]), one_hot_logits([1, 0, 0])]
    # example 0: votes 0,1,1 -> 1; example 1: 2,2,0 -> 2; example 2: 1,2,0 -> tie -> 0
    assert majority_vote(members).tolist() == [1, 2, 0]


# ------------------------------------------------------------------------ parameter averaging


def _bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))


def _run_batches(net: nn.Module, batches: int) -> None:
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            net(torch.randn(16, 4))  # updates the BatchNorm running statistics


def test_averaging_identical_nets_is_the_identity() -> None:
    net = _bn_net(0)
    _run_batches(net, 2)
    state = net.state_dict()
    averaged = average_state_dicts([state, state, state])
    assert averaged.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(averaged[key], value), key
        assert averaged[key].dtype == value.dtype


def test_averaging_two_nets_gives_the_midpoint_and_handles_buffers() -> None:
    a, b = _bn_net(0), _bn_net(1)
    _run_batches(a, 1)
    _run_batches(b, 3)
    sa, sb = a.state_dict(), b.state_dict()
    mid = average_state_dicts([sa, sb])
    for key in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var", "3.bias"):
        torch.testing.assert_close(mid[key], (sa[key] + sb[key]) / 2)
    # an integer counter cannot be averaged: it is copied from the first state dict
    assert sa["1.num_batches_tracked"].item() == 1 and sb["1.num_batches_tracked"].item() == 3
    assert mid["1.num_batches_tracked"].item() == 1
    weighted = average_state_dicts([sa, sb], weights=[0.25, 0.75])
    torch.testing.assert_close(weighted["0.weight"], 0.25 * sa["0.weight"] + 0.75 * sb["0.weight"])
    # the averaged tensors are new: changing them leaves the members untouched
    mid["0.weight"].zero_()
    assert sa["0.weight"].abs().sum() > 0


def test_averaged_model_is_a_new_model_in_eval_mode() -> None:
    a, b = _bn_net(0), _bn_net(1)
    before = a.state_dict()["0.weight"].clone()
    model = averaged_model(a, [a.state_dict(), b.state_dict()])
    assert model is not a and not model.training
    assert torch.equal(a.state_dict()["0.weight"], before)
    torch.testing.assert_close(
        model.state_dict()["0.weight"], (before + b.state_dict()["0.weight"]) / 2
    )


def test_average_state_dicts_rejects_mismatches() -> None:
    sa = _bn_net(0).state_dict()
    with pytest.raises(ValueError, match="at least one"):
        average_state_dicts([])
    with pytest.raises(ValueError, match="missing"):
        average_state_dicts([sa, {k: v for k, v in sa.items() if k != "0.bias"}])
    wrong = dict(sa, **{"0.bias": torch.zeros(7)})
    with pytest.raises(ValueError, match="shape"):
        average_state_dicts([sa, wrong])
    with pytest.raises(ValueError, match="sum to 1"):
        average_state_dicts([sa, sa], weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="2 weights"):
        average_state_dicts([sa, sa], weights=[1.0])


# ------------------------------------------------------------------------ head-only ensemble


def _head_ensemble(heads: int = 3) -> HeadEnsemble:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
    return HeadEnsemble(trunk, in_features=32, num_classes=10, num_heads=heads)


def test_head_ensemble_output_shape_and_parameter_count_by_hand() -> None:
    model = _head_ensemble(3)
    assert model(torch.randn(7, 64)).shape == (7, 3, 10)  # (B, N, C)
    trunk = 64 * 32 + 32  # Linear(64, 32)
    head = 32 * 10 + 10  # Linear(32, 10)
    assert sum(p.numel() for p in model.parameters()) == trunk + 3 * head == 3070
    assert 3 * (trunk + head) == 7230  # three full networks
    assert model.num_heads == 3


def test_head_ensemble_prediction_averages_the_heads() -> None:
    model = _head_ensemble(4)
    x = torch.randn(5, 64)
    logits = model(x)  # (B, N, C)
    expected = torch.stack([logits[:, i].softmax(-1) for i in range(4)]).mean(0)
    torch.testing.assert_close(model.predict_proba(x), expected)
    y = torch.randint(0, 10, (5,))
    accuracy = head_ensemble_accuracy(logits, y)
    assert accuracy.tolist() == (expected.argmax(-1) == y).double().tolist()


def test_multi_head_cross_entropy_is_the_mean_of_the_heads_losses() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 3, 10, generator=gen)
    y = torch.randint(0, 10, (6,), generator=gen)
    expected = torch.stack([F.cross_entropy(logits[:, i], y) for i in range(3)]).mean()
    torch.testing.assert_close(multi_head_cross_entropy(logits, y), expected)
    with pytest.raises(ValueError, match=r"\(B, N, C\)"):
        multi_head_cross_entropy(logits[:, 0], y)


# ------------------------------------------------------------------------ cyclic cosine schedule


def _rates(total_steps: int, cycles: int, lr: float = 0.1) -> list[float]:
    """The learning rate used by each of the ``total_steps`` optimiser steps."""
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = CyclicCosineLR(optimizer, total_steps, cycles)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_cyclic_cosine_restarts_and_anneals_at_the_cycle_boundaries() -> None:
    lr, cycle = 0.1, 5
    rates = _rates(total_steps=20, cycles=4, lr=lr)  # L = 5
    last = lr * 0.5 * (1 + math.cos(math.pi * (cycle - 1) / cycle))  # closed form at t = kL - 1
    for k in range(4):
        assert rates[k * cycle] == pytest.approx(lr, abs=1e-15)  # restart: alpha_0
        assert rates[k * cycle + cycle - 1] == pytest.approx(last, rel=1e-12)
    for t, rate in enumerate(rates):
        expected = lr / 2 * (1 + math.cos(math.pi * (t % cycle) / cycle))
        assert rate == pytest.approx(expected, rel=1e-12)
    assert _rates(16, 4)[2] == pytest.approx(0.05, rel=1e-12)  # half-way: cos(pi / 2) = 0


def test_cyclic_cosine_factor_closed_form_and_errors() -> None:
    assert cyclic_cosine_factor(0, 10) == 1.0
    assert cyclic_cosine_factor(10, 10) == 1.0
    assert cyclic_cosine_factor(5, 10) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        cyclic_cosine_factor(0, 0)
    with pytest.raises(ValueError):
        CyclicCosineLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), 3, cycles=4)


def test_snapshots_are_the_weights_at_the_end_of_each_cycle() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = cyclic_cosine(3, snapshot_model=model)(optimizer, 10)  # L = 4: 4, 8, 10
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    weights = {}
    for t in range(1, 11):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
        scheduler.step()
        weights[t] = model.weight.detach().clone()
    assert scheduler.snapshot_steps == [4, 8, 10]
    for step, snapshot in zip(scheduler.snapshot_steps, scheduler.snapshots, strict=True):
        assert torch.equal(snapshot["weight"], weights[step])
    state = scheduler.state_dict()
    assert "_snapshot_model" not in state and len(state["snapshots"]) == 3


def test_cyclic_cosine_collects_snapshots_through_the_trainer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    data = TensorDataset(x, (x[:, 0] > 0).long())
    model = nn.Linear(5, 2)
    ctx = RunContext(name="test", seed=0, device=torch.device("cpu"), out_dir=tmp_path)
    schedule = cyclic_cosine(3, snapshot_model=model)
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        ctx,
        epochs=6,
        batch_size=16,
        schedule=schedule,
        checkpoint=False,
        progress=False,
        log=False,
    )
    trainer.fit(data, data)
    assert schedule.last is not None
    assert schedule.last.snapshot_steps == [8, 16, 24]  # 4 steps per epoch, 2 epochs per cycle
    assert len(schedule.last.snapshots) == 3
    assert not torch.equal(
        schedule.last.snapshots[0]["weight"], schedule.last.snapshots[2]["weight"]
    )
