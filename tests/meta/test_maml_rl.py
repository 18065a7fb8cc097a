"""MAML for RL: the inner step is a REINFORCE step; the claims; a smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import FAILS, HOLDS
from deepnotes.meta.experiments.maml_rl import METHODS, MamlRLConfig, MamlRLMeasurements, claims
from deepnotes.meta.maml_rl import (
    GaussianPolicy,
    adapt_to,
    meta_step,
    sample_trajectories,
)
from deepnotes.rl.returns import reward_to_go


def _setup() -> tuple[GaussianPolicy, torch.Tensor]:
    torch.manual_seed(0)
    return GaussianPolicy((8,), init_std=0.2), torch.tensor([[0.3, -0.2], [-0.1, 0.4]])


def test_trajectories_follow_the_environment() -> None:
    model, goals = _setup()
    traj = sample_trajectories(
        model, dict(model.named_parameters()), goals, 3, 6, torch.Generator().manual_seed(0)
    )
    assert traj.obs.shape == (2, 3, 6, 2) and traj.rewards.shape == (2, 3, 6)
    # next position = position + clipped action; reward = -distance after the move
    nxt = traj.obs[:, :, :1] + traj.actions[:, :, :1].clamp(-0.1, 0.1)
    torch.testing.assert_close(nxt, traj.obs[:, :, 1:2])
    torch.testing.assert_close(traj.rewards[:, :, 0], -(nxt[:, :, 0] - goals[:, None]).norm(dim=-1))


def test_advantages_against_reward_to_go() -> None:
    model, goals = _setup()
    traj = sample_trajectories(
        model, dict(model.named_parameters()), goals, 4, 5, torch.Generator().manual_seed(1)
    )
    go = np.stack([[reward_to_go(r, 0.9) for r in task] for task in traj.rewards.double().numpy()])
    adv = go - go.mean(1, keepdims=True)
    adv = adv / adv.reshape(2, -1).std(1, ddof=1)[:, None, None]
    np.testing.assert_allclose(traj.advantages(0.9).numpy(), adv, rtol=1e-4, atol=1e-5)


def test_inner_step_is_a_hand_reinforce_step() -> None:
    model, goals = _setup()
    theta = dict(model.named_parameters())
    traj = sample_trajectories(model, theta, goals[:1], 5, 4, torch.Generator().manual_seed(2))
    phi = adapt_to(model, theta, traj, inner_lr=0.1, gamma=0.99, first_order=True)
    # by hand: torch's Normal log-density, the REINFORCE surrogate, its gradient
    obs, actions = traj.obs.reshape(-1, 2), traj.actions.reshape(-1, 2)
    adv = traj.advantages(0.99).reshape(-1)
    dist = torch.distributions.Normal(model.net(obs), model.log_std.exp())
    loss = -(dist.log_prob(actions).sum(-1) * adv).mean()
    grads = torch.autograd.grad(loss, list(theta.values()))
    for (name, value), g in zip(theta.items(), grads, strict=True):
        torch.testing.assert_close(phi[name], value - 0.1 * g)


def test_meta_gradient_first_and_second_order() -> None:
    model, goals = _setup()
    grads = {}
    for first_order in (True, False):
        model.zero_grad()
        loss, before, after = meta_step(
            model,
            goals,
            per_task=4,
            horizon=5,
            inner_lr=0.1,
            gamma=0.99,
            first_order=first_order,
            generator=torch.Generator().manual_seed(3),
        )
        loss.backward()
        grads[first_order] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        assert before.shape == after.shape == (2,)
    # the same trajectories: the two differ only by the Hessian terms, which are not zero
    assert torch.isfinite(grads[False]).all()
    assert not torch.allclose(grads[True], grads[False])


def _record(gain_m: float, gain_p: float) -> MamlRLMeasurements:
    rng = np.random.default_rng(0)
    before = {m: -10 + rng.normal(0, 0.5, 100) for m in METHODS}
    after = {
        "maml": before["maml"] + gain_m + rng.normal(0, 0.5, 100),
        "pretrained": before["pretrained"] + gain_p + rng.normal(0, 0.5, 100),
    }
    return MamlRLMeasurements(
        before=before,
        after=after,
        iteration=np.arange(2.0),
        train_before={m: np.zeros(2) for m in METHODS},
        train_after=np.zeros(2),
        diverged={m: "" for m in METHODS},
    )


def test_verdicts_on_synthetic_measurements() -> None:
    cfg = MamlRLConfig.quick()
    good = [c.verdict for c in claims(_record(4.0, 1.0), cfg)]
    assert good == [HOLDS, HOLDS]
    assert [c.verdict for c in claims(_record(1.0, 1.0), cfg)] == [FAILS, FAILS]


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="per_task"):
        MamlRLConfig(per_task=1)
    with pytest.raises(ConfigError, match="init_std"):
        GaussianPolicy(init_std=0.0)


def test_smoke_run(tmp_path: Path) -> None:
    tiny = {
        "iterations": 2,
        "every": 1,
        "tasks": 2,
        "per_task": 3,
        "horizon": 5,
        "hidden": [8],
        "test_tasks": 4,
    }
    result = run_experiment(
        "meta.maml_rl", overrides=tiny, out=tmp_path, show_progress=False, threads=1
    )
    record = result.record
    assert [c["key"] for c in record["claims"]] == ["maml_improves_more", "maml_adapted_better"]
    assert [Path(f).name for f in record["figures"]] == ["maml_rl_navigation.png"]
