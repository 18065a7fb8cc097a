"""gans.training: the alternating loop with n_critic, clipping, the penalty, instance noise,
bad input, the divergence guard, and a killed run that resumes to the same generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError, DivergenceError
from deepnotes.data import toy2d
from deepnotes.gans.models import stack_mlps, unstack_mlp
from deepnotes.gans.training import GANSettings, train_gan

RING = toy2d.ring()


def data(n: int, g: torch.Generator) -> torch.Tensor:
    return RING.sample(n, g)


def context(tmp_path: Path, resume: bool = False) -> RunContext:
    return RunContext(
        name="test.gan",
        seed=0,
        device=torch.device("cpu"),
        out_dir=tmp_path,
        resume=resume,
        show_progress=False,
    )


def nets(ctx: RunContext, out: int = 2) -> tuple[nn.Module, nn.Module]:
    with ctx.seeded("init"):
        generator = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, out))
        discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    return generator, discriminator


def final_samples(generator: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return generator(torch.randn(64, 2, generator=torch.Generator().manual_seed(9)))


def test_n_critic_discriminator_steps_per_generator_step(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    generator, discriminator = nets(ctx)
    settings = GANSettings(loss="wgan_gp", gp_weight=0.1, n_critic=3, steps=4, every=2, batch=8)
    result = train_gan(generator, discriminator, data, settings, ctx, latent_dim=2, tag="t")
    assert result.steps == 4 and len(result.history) == 2
    assert {"loss_D", "loss_G", "penalty"} <= set(result.history[0])
    # Adam counts its steps per parameter: 3 critic steps per generator step
    opt_state = torch.load(ctx.out_dir / "checkpoints" / "t.pt", weights_only=True)["track"]
    d_steps = {float(s["step"]) for s in opt_state["opt_D"]["state"].values()}
    g_steps = {float(s["step"]) for s in opt_state["opt_G"]["state"].values()}
    assert d_steps == {12.0} and g_steps == {4.0}


def test_weight_clipping_bounds_every_discriminator_weight(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    generator, discriminator = nets(ctx)
    settings = GANSettings(loss="wgan", clip=0.01, n_critic=2, steps=3, every=3, batch=8)
    train_gan(generator, discriminator, data, settings, ctx, latent_dim=2, tag="t")
    assert max(p.abs().max().item() for p in discriminator.parameters()) <= 0.01
    assert max(p.abs().max().item() for p in generator.parameters()) > 0.01


def test_instance_noise_changes_the_run_and_zero_noise_does_not(tmp_path: Path) -> None:
    outs = []
    for k, noise in enumerate((0.0, 0.0, 0.5)):
        ctx = context(tmp_path / str(k))
        generator, discriminator = nets(ctx)
        settings = GANSettings(noise_std=noise, steps=3, every=3, batch=8)
        train_gan(generator, discriminator, data, settings, ctx, latent_dim=2, tag="t")
        outs.append(final_samples(generator))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


def test_bad_input_is_a_config_error(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    generator, discriminator = nets(ctx, out=3)
    with pytest.raises(ConfigError, match=r"output shape \(3,\) does not match.*\(2,\)"):
        train_gan(generator, discriminator, data, GANSettings(), ctx, latent_dim=2)
    with pytest.raises(ConfigError, match="n_critic"):
        GANSettings(n_critic=0)
    with pytest.raises(ConfigError, match="penalty"):
        GANSettings(loss="wgan_gp", gp_weight=-1.0)
    with pytest.raises(ConfigError, match="loss must be one of"):
        GANSettings(loss="hinge")


def test_a_diverging_run_stops_naming_the_loss(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    generator, discriminator = nets(ctx)

    def broken(n: int, g: torch.Generator) -> torch.Tensor:
        x = RING.sample(n, g)
        return x if n == 2 else torch.full_like(x, float("nan"))  # the probe passes

    with pytest.raises(DivergenceError, match=r"\[t\] loss_D is nan"):
        train_gan(
            generator,
            discriminator,
            broken,
            GANSettings(steps=2, every=1),
            ctx,
            latent_dim=2,
            tag="t",
        )


def test_a_killed_run_resumes_to_the_same_final_samples(
    tmp_path: Path,
) -> None:
    settings = GANSettings(loss="wgan_gp", gp_weight=0.1, noise_std=0.1, steps=6, every=2, batch=8)
    ctx = context(tmp_path / "full")
    generator, discriminator = nets(ctx)
    full = train_gan(generator, discriminator, data, settings, ctx, latent_dim=2, tag="t")
    want = final_samples(generator)

    class Killed(Exception):
        pass

    def kill_at_round_two(r: int) -> None:
        if r == 2:
            raise Killed

    ctx = context(tmp_path / "killed")
    generator, discriminator = nets(ctx)
    with pytest.raises(Killed):
        train_gan(
            generator,
            discriminator,
            data,
            settings,
            ctx,
            latent_dim=2,
            tag="t",
            evaluate=kill_at_round_two,
        )
    ctx = context(tmp_path / "killed", resume=True)
    generator, discriminator = nets(ctx)  # fresh modules: the checkpoint restores them
    resumed = train_gan(generator, discriminator, data, settings, ctx, latent_dim=2, tag="t")
    assert resumed.restored_rounds == 1
    assert torch.equal(final_samples(generator), want)
    assert [r["loss_D"] for r in resumed.history] == [r["loss_D"] for r in full.history]


def test_stacked_members_train_as_separate_pairs(tmp_path: Path) -> None:
    """One member stacked is the plain fit (same draws, same updates, the gradient penalty and
    the learning-rate decay included); with two members, member 0's run does not depend on
    member 1's weights."""
    settings = GANSettings(
        loss="wgan_gp", gp_weight=0.1, n_critic=2, steps=6, every=3, batch=8, lr_decay=True
    )
    ctx = context(tmp_path / "plain")
    generator, discriminator = nets(ctx)
    train_gan(generator, discriminator, data, settings, ctx, latent_dim=2, tag="t")
    ctx = context(tmp_path / "stacked")
    g1, d1 = nets(ctx)
    g_stack, d_stack = stack_mlps([g1]), stack_mlps([d1])
    train_gan(
        g_stack,
        d_stack,
        lambda n, g: data(n, g).unsqueeze(0),
        settings,
        ctx,
        latent_dim=2,
        tag="t",
        members=1,
    )
    torch.testing.assert_close(
        final_samples(unstack_mlp(g_stack, 0)), final_samples(generator), rtol=0, atol=1e-5
    )

    def pair_of_members(scale: float, out: Path) -> nn.Module:
        ctx = context(out)
        (g0, d0), (g1, d1) = nets(ctx), nets(ctx)
        with torch.no_grad():
            for p in [*g1.parameters(), *d1.parameters()]:
                p.mul_(scale)
        g_stack, d_stack = stack_mlps([g0, g1]), stack_mlps([d0, d1])
        train_gan(
            g_stack,
            d_stack,
            lambda n, g: data(2 * n, g).view(2, n, 2),
            settings,
            ctx,
            latent_dim=2,
            tag="t",
            members=2,
        )
        return unstack_mlp(g_stack, 0)

    first = final_samples(pair_of_members(1.0, tmp_path / "a"))
    torch.testing.assert_close(final_samples(pair_of_members(-3.0, tmp_path / "b")), first)
    assert not torch.equal(first, final_samples(nets(context(tmp_path / "c"))[0]))  # it trained


def test_learning_rates_decay_linearly_to_zero(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    generator, discriminator = nets(ctx)
    settings = GANSettings(steps=5, every=5, batch=8, lr_g=2e-3, lr_d=1e-3, lr_decay=True)
    train_gan(generator, discriminator, data, settings, ctx, latent_dim=2, tag="t")
    track = torch.load(ctx.out_dir / "checkpoints" / "t.pt", weights_only=True)["track"]
    # the last step (5 of 5) ran at lr * (1 - 4/5)
    assert track["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2e-3 / 5)
    assert track["opt_D"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 5)


def test_stacked_data_must_have_the_members_axis(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    g, d = nets(ctx)
    with pytest.raises(ConfigError, match="members"):
        train_gan(
            stack_mlps([g, g]),
            stack_mlps([d, d]),
            data,  # (n, 2): no members axis
            GANSettings(steps=1, every=1, batch=4),
            ctx,
            latent_dim=2,
            members=2,
        )
