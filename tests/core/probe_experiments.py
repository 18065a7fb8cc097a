"""Probe experiments for the engine's process tests, registered through DEEPNOTES_EXPERIMENTS.

Not part of the curriculum: tests/core/test_engine_processes.py runs them in real processes,
kills them with SIGKILL and resumes them. Each has a ``pause`` knob (seconds per step) so that a
test can kill it mid-run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.registry import Claim, Outcome, experiment


@dataclass(frozen=True)
class ProbeConfig:
    steps: int = 60
    """Steps of the loop."""
    every: int = 5
    """Steps per round (checkpoint, record)."""
    pause: float = 0.0
    """Seconds to sleep in every step, so that a test can kill the run mid-way."""
    fits: int = 6
    """Networks fitted by probe.fits."""
    nan_at: int = 23
    """Step at which probe.diverge's critic loss becomes NaN."""


def _samples_claim(samples: torch.Tensor) -> Claim:
    return Claim.at_most(
        "the samples are finite",
        float((~torch.isfinite(samples)).sum()),
        0,
        key="finite",
        kind="check",
    )


@experiment("probe.gan", topic="probe", config=ProbeConfig, checks=("finite",))
def gan(cfg: ProbeConfig, ctx: RunContext) -> Outcome:
    """A tiny GAN on 1-D data: two networks, two Adam optimisers, alternating updates."""
    with ctx.seeded("init"):
        generator = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
        critic = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(critic.parameters(), lr=1e-2)
    noise = ctx.stream("noise")
    loop = Loop(
        ctx,
        tag="gan",
        track={"G": generator, "D": critic, "opt_G": opt_g, "opt_D": opt_d, "noise": noise},
        progress=False,
    )

    def step(i: int) -> dict[str, torch.Tensor]:
        time.sleep(cfg.pause)
        real = 2.0 + 0.5 * torch.randn(32, 1)  # the global generator: restored on resume
        fake = generator(torch.randn(32, 1, generator=noise))
        loss_d = F.softplus(-critic(real)).mean() + F.softplus(critic(fake.detach())).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-critic(fake)).mean()  # the non-saturating generator loss
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return {"loss_D": loss_d, "loss_G": loss_g}

    loop.run(step, steps=cfg.steps, every=cfg.every)
    with torch.no_grad():
        samples = generator(torch.linspace(-2, 2, 8).unsqueeze(1)).squeeze(1)
    return Outcome(metrics={"samples": samples.tolist()}, claims=[_samples_claim(samples)])


@experiment("probe.replay", topic="probe", config=ProbeConfig, checks=("finite",))
def replay(cfg: ProbeConfig, ctx: RunContext) -> Outcome:
    """A Q-style regression whose state holds a replay buffer sampled by its own generator."""
    with ctx.seeded("init"):
        net = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    buffer: dict[str, torch.Tensor] = {"x": torch.zeros(0, 2), "y": torch.zeros(0, 1)}
    sampler = ctx.stream("sampler")
    env = ctx.stream("env")
    loop = Loop(
        ctx,
        tag="replay",
        track={"net": net, "opt": optimizer, "buffer": buffer, "sampler": sampler, "env": env},
        progress=False,
    )

    def step(i: int) -> dict[str, float]:
        time.sleep(cfg.pause)
        x = torch.randn(4, 2, generator=env)  # new transitions join the buffer
        y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(4, 1, generator=env)
        buffer["x"] = torch.cat([buffer["x"], x])[-64:]
        buffer["y"] = torch.cat([buffer["y"], y])[-64:]
        pick = torch.randint(len(buffer["x"]), (8,), generator=sampler)
        loss = F.mse_loss(net(buffer["x"][pick]), buffer["y"][pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "buffer": float(len(buffer["x"]))}

    loop.run(step, steps=cfg.steps, every=cfg.every)
    weights = torch.cat([p.detach().flatten() for p in net.parameters()])
    return Outcome(
        metrics={"weights": weights.tolist(), "buffer_sum": float(buffer["x"].sum())},
        claims=[_samples_claim(weights)],
    )


@experiment("probe.diverge", topic="probe", config=ProbeConfig, checks=("finite",))
def diverge(cfg: ProbeConfig, ctx: RunContext) -> Outcome:
    """Two losses, the second of which turns NaN at step ``nan_at``."""
    loop = Loop(ctx, tag="two_losses", progress=False)

    def step(i: int) -> dict[str, float]:
        return {"loss_G": 1.0 / i, "loss_critic": float("nan") if i >= cfg.nan_at else 0.5}

    loop.run(step, steps=cfg.steps, every=cfg.every)
    return Outcome(claims=[_samples_claim(torch.zeros(1))])


@experiment("probe.fits", topic="probe", config=ProbeConfig, checks=("finite",))
def fits(cfg: ProbeConfig, ctx: RunContext) -> Outcome:
    """Many small fits, each kept in the run folder once done."""

    def fit(r: int) -> dict[str, float]:
        time.sleep(cfg.pause * 10)
        ctx.log({"computed_fit": r})
        with ctx.seeded("init", r):
            net = nn.Linear(3, 1)
        data = ctx.stream("data", r)
        x = torch.randn(64, 3, generator=data)
        y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(20):
            loss = F.mse_loss(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        ctx.metrics.flush()
        return {"loss": loss.item(), "weight": net.weight.detach().clone()}

    results = [ctx.cached("fit", {"r": r}, lambda r=r: fit(r)) for r in range(cfg.fits)]
    losses = torch.tensor([res["loss"] for res in results])
    return Outcome(
        metrics={"losses": losses.tolist(), "w0": results[0]["weight"].tolist()},
        claims=[_samples_claim(losses)],
    )
