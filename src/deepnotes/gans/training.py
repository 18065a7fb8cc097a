r"""The alternating GAN training loop with ``n_critic`` discriminator steps per generator step,
through the engine's :class:`~deepnotes.core.engine.Loop` (notes, discussion 11, part 1: the
minimax game, the non-saturating loss, WGAN, WGAN-GP, LSGAN, instance noise).

Goodfellow et al. (2014, algorithm 1, https://arxiv.org/abs/1406.2661): each generator step is
preceded by ``n_critic`` discriminator steps, each on a fresh real batch :math:`x \sim p` and a
fresh latent batch :math:`z \sim \mathcal N(0, I)`:

.. math::
    \theta_D \leftarrow \theta_D - \eta_D \nabla_{\theta_D}\big[
        L_D(D(\tilde x), D(\tilde G(z))) + \lambda\, \mathrm{GP}\big], \qquad
    \theta_G \leftarrow \theta_G - \eta_G \nabla_{\theta_G} L_G(D(\tilde G(z)))

with the losses :math:`L_D, L_G` of :mod:`deepnotes.gans.losses` (``kind``), the gradient
penalty of WGAN-GP (Gulrajani et al., 2017) when ``gp_weight`` > 0, the weights of ``D`` clipped
to ``[-clip, clip]`` after each of its steps for WGAN (Arjovsky et al., 2017), and instance
noise (Sønderby et al., 2017; Arjovsky & Bottou, 2017): :math:`\tilde x = x + s_t \epsilon`
on every input of ``D``, real and generated, in both players' steps, with :math:`s_t` annealed
linearly from ``noise_std`` to 0 over the run. Spectral normalisation is applied by the caller
to ``D`` (:func:`deepnotes.gans.spectral.spectral_norm`) before calling :func:`train_gan`.

Adam for both players (``lr_g``, ``lr_d``, ``betas``; WGAN-GP's paper uses (0.5, 0.9)).

Resumable: the loop tracks ``G``, ``D``, both optimisers and the three generators it draws from
(real data, latent codes, the auxiliary draws of the penalty and the noise), so a run killed
after a round and resumed with ``ctx.resume`` ends with bitwise the same generator
(tests/gans/test_training.py). The divergence guard watches ``loss_D`` and ``loss_G``; for the
Wasserstein losses, whose first value is near 0 by construction, it checks finiteness only.

Example:
    >>> ring = toy2d.ring()
    >>> with ctx.seeded("init"):
    ...     G, D = mlp(2, 2, 128), spectral_norm_all(mlp(2, 1, 128))
    >>> settings = GANSettings(loss="nonsaturating", steps=2000)
    >>> train_gan(G, D, lambda n, g: ring.sample(n, g), settings, ctx, latent_dim=2, tag="sn")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop, LoopResult
from deepnotes.core.errors import ConfigError
from deepnotes.gans.losses import (
    LOSSES,
    annealed_std,
    clip_weights,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    instance_noise,
)

DataFn = Callable[[int, torch.Generator], torch.Tensor]
"""``data(n, generator)`` -> ``n`` real samples ``(n, *shape)``, drawn from ``generator``."""
WASSERSTEIN = ("wgan", "wgan_gp")


@dataclass(frozen=True)
class GANSettings:
    """The knobs of one GAN fit."""

    loss: str = "nonsaturating"
    """One of :data:`deepnotes.gans.losses.LOSSES`."""
    steps: int = 2000
    """Generator steps."""
    n_critic: int = 1
    """Discriminator (critic) steps per generator step."""
    batch: int = 256
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    gp_weight: float = 0.0
    """Weight lambda of the gradient penalty (WGAN-GP uses 10); 0 turns it off."""
    clip: float | None = None
    """WGAN weight clipping: D's weights are clamped to [-clip, clip] after each of its steps."""
    noise_std: float = 0.0
    """Instance noise: its standard deviation at step 1, annealed linearly to 0."""
    every: int = 100
    """Steps per round (a record, a checkpoint, an ``evaluate`` call)."""
    lr_decay: bool = False
    """Decay both learning rates linearly to 0 over the run (WGAN-GP's and SN-GAN's code do;
    step ``i`` of ``steps`` uses ``lr * (1 - (i - 1) / steps)``)."""

    def __post_init__(self) -> None:
        require(self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}")
        require(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        require(self.n_critic >= 1, f"n_critic must be >= 1, got {self.n_critic}")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(self.lr_g > 0 and self.lr_d > 0, f"lr_g, lr_d must be > 0, got {self.lr_g}")
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"betas must be two numbers in [0, 1), got {self.betas}",
        )
        require(self.gp_weight >= 0, f"gp_weight (the penalty) must be >= 0, got {self.gp_weight}")
        require(self.clip is None or self.clip > 0, f"clip must be > 0 or None, got {self.clip}")
        require(self.noise_std >= 0, f"noise_std must be >= 0, got {self.noise_std}")
        require(1 <= self.every <= self.steps, f"need 1 <= every <= steps, got {self.every}")


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    data: DataFn,
    settings: GANSettings,
    ctx: RunContext,
    *,
    latent_dim: int,
    tag: str = "gan",
    evaluate: Callable[[int], Mapping[str, Any] | None] | None = None,
    progress: bool = False,
    members: int | None = None,
) -> LoopResult:
    """Train ``generator`` (latent ``(B, latent_dim)`` -> samples) against ``discriminator``
    (samples -> ``(B, 1)`` logits or critic values) in place, as the module docstring says.

    Arguments:
        generator, discriminator: initialised by the caller (under ``ctx.seeded``), on
            ``ctx.device``; spectral norm, if any, already applied to ``discriminator``.
        data: ``data(n, g)`` draws ``n`` real samples from the CPU generator ``g``.
        settings: the fit's knobs.
        ctx: the run context (its streams ``(tag, "data")``, ``(tag, "latent")``,
            ``(tag, "aux")`` feed the loop).
        latent_dim: size of the generator's input.
        tag: the engine loop's name (its checkpoint); one per fit of an experiment.
        evaluate: called after each round (``every`` steps) with the round number.
        progress: show the engine's progress bar.
        members: train this many independent pairs at once, stacked
            (:func:`deepnotes.gans.models.stack_mlps`): ``data(n, g)`` returns
            ``(members, n, *shape)``, the generator maps ``(members, B, latent_dim)`` to
            ``(members, B, *shape)`` and the discriminator to ``(members, B)`` or
            ``(members, B, 1)``. Each player minimises the sum of the members' losses (the
            mean over all samples times ``members``), whose gradient for each member is that
            member's own; the recorded losses are the members' mean.

    Returns:
        The engine's result: a record per round with the mean ``loss_D``, ``loss_G`` (and
        ``penalty`` with a gradient penalty) over the round, plus what ``evaluate`` returns.

    Raises:
        ConfigError: a generator whose output shape differs from the data's, ``latent_dim``
            < 1.
        DivergenceError: ``loss_D`` or ``loss_G`` became non-finite (or exploded).
    """
    require(latent_dim >= 1, f"latent_dim must be >= 1, got {latent_dim}")
    require(members is None or members >= 1, f"members must be >= 1 or None, got {members}")
    lead = () if members is None else (members,)
    scale = 1 if members is None else members
    device = ctx.device
    _check_shapes(generator, data, latent_dim, device, lead)
    opt_g = torch.optim.Adam(generator.parameters(), lr=settings.lr_g, betas=settings.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=settings.lr_d, betas=settings.betas)
    data_stream = ctx.stream(tag, "data")
    latent_stream = ctx.stream(tag, "latent")
    # the penalty's interpolation weights and the instance noise, drawn on the inputs' device
    aux_stream = torch.Generator(device=device).manual_seed(ctx.seed_for(tag, "aux"))
    n = settings.batch

    def noisy(x: torch.Tensor, step: int) -> torch.Tensor:
        std = annealed_std(step - 1, settings.steps, settings.noise_std)  # step 1: noise_std
        return instance_noise(x, std, aux_stream) if std > 0 else x

    def latent() -> torch.Tensor:
        # (*lead, B, latent_dim)
        return torch.randn(*lead, n, latent_dim, generator=latent_stream).to(device)

    def step(i: int) -> dict[str, float]:
        record: dict[str, float] = {}
        if settings.lr_decay:  # a function of the step alone, so resuming needs no state
            factor = 1.0 - (i - 1) / settings.steps
            for opt, lr in ((opt_g, settings.lr_g), (opt_d, settings.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr * factor
        for _ in range(settings.n_critic):
            real = data(n, data_stream).to(device)  # (*lead, B, *shape)
            with torch.no_grad():
                fake = generator(latent())  # (*lead, B, *shape)
            real_in, fake_in = noisy(real, i), noisy(fake, i)
            loss_d = discriminator_loss(
                settings.loss, discriminator(real_in), discriminator(fake_in)
            )
            if settings.gp_weight > 0:
                penalty = gradient_penalty(
                    discriminator, real_in, fake_in, aux_stream, sample_dims=1 + len(lead)
                )
                loss_d = loss_d + settings.gp_weight * penalty
                record["penalty"] = float(penalty.detach())
            opt_d.zero_grad(set_to_none=True)
            (scale * loss_d).backward()
            opt_d.step()
            if settings.clip is not None:
                clip_weights(discriminator, settings.clip)
        loss_g = generator_loss(settings.loss, discriminator(noisy(generator(latent()), i)))
        opt_g.zero_grad(set_to_none=True)
        (scale * loss_g).backward()
        opt_g.step()
        record["loss_D"] = float(loss_d.detach())
        record["loss_G"] = float(loss_g.detach())
        return record

    loop = Loop(
        ctx,
        tag=tag,
        track={
            "G": generator,
            "D": discriminator,
            "opt_G": opt_g,
            "opt_D": opt_d,
            "data": data_stream,
            "latent": latent_stream,
            "aux": aux_stream,
        },
        watch=("loss_D", "loss_G"),
        explode_factor=None if settings.loss in WASSERSTEIN else 1e4,
        progress=progress,
    )
    generator.train()
    discriminator.train()
    return loop.run(step, steps=settings.steps, every=settings.every, evaluate=evaluate)


def _check_shapes(
    generator: nn.Module,
    data: DataFn,
    latent_dim: int,
    device: torch.device,
    lead: tuple[int, ...] = (),
) -> None:
    """A generator whose samples' shape differs from the data's is a configuration error
    (probed on a few zero codes and samples of a throwaway stream; ``lead`` = the members axis
    of stacked pairs, which both must have too)."""
    n = lead[0] + 1 if lead else 2  # a batch size that cannot pass for the members axis
    real = data(n, torch.Generator().manual_seed(0))
    with torch.no_grad():
        fake = generator(torch.zeros(*lead, n, latent_dim, device=device))
    if tuple(real.shape[: len(lead)]) != lead:
        raise ConfigError(
            f"the data's batches have shape {tuple(real.shape)}; expected {lead[0]} members "
            f"stacked on the first axis, (members, n, *shape)"
        )
    k = len(lead) + 1
    if tuple(fake.shape[k - 1 :]) != tuple(real.shape[k - 1 :]):
        raise ConfigError(
            f"the generator's output shape {tuple(fake.shape[k:])} does not match the data's "
            f"sample shape {tuple(real.shape[k:])} (latent_dim={latent_dim})"
        )
