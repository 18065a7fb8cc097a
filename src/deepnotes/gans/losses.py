r"""The GAN losses of the notes: the minimax game, the non-saturating generator loss, WGAN (weight
clipping), WGAN-GP, LSGAN, and annealed instance noise.

Notes: discussion 11, part 1, sections 1.1 "The GAN Game", 1.3 "Training GANs in Practice" and
1.3.1 "Techniques for Lipschitz Continuity". Every loss is written to be *minimised* by its
player; ``d_real`` and ``d_fake`` are the discriminator's outputs on a batch of data and of
generated samples, shape ``(N,)`` or ``(N, 1)``.

- **Minimax** (Goodfellow et al., 2014, https://arxiv.org/abs/1406.2661): the value of the game is
  :math:`V(D, G) = E_{x \sim p}[\log D(x)] + E_{z}[\log(1 - D(G(z)))]`; the discriminator
  minimises :math:`-V` (binary cross-entropy with the data labelled 1 and the samples 0) and the
  generator minimises :math:`E_z[\log(1 - D(G(z)))]`. Inputs are LOGITS :math:`l` with
  :math:`D = \sigma(l)`, so :math:`\log(1 - D) = -\operatorname{softplus}(l)` and
  :math:`\log D = -\operatorname{softplus}(-l)` are evaluated without overflow.
- **Non-saturating** (same paper, section 3): the same discriminator; the generator minimises
  :math:`-E_z[\log D(G(z))]`, whose gradient does not vanish where :math:`D(G(z)) \to 0`.
- **WGAN** (Arjovsky, Chintala & Bottou, 2017, https://arxiv.org/abs/1701.07875): a real-valued
  critic :math:`f` maximises :math:`E_p[f(x)] - E_{p_G}[f(\tilde x)]` (it minimises
  :math:`E_{p_G}[f] - E_p[f]`), kept Lipschitz by clipping every weight to :math:`[-c, c]`
  (:func:`clip_weights`); the generator minimises :math:`-E_z[f(G(z))]`.
- **WGAN-GP** (Gulrajani et al., 2017, https://arxiv.org/abs/1704.00028): the WGAN losses plus
  :math:`\lambda\, E_{\hat x}[(\|\nabla_x f(\hat x)\|_2 - 1)^2]` on per-sample interpolates
  :math:`\hat x = \epsilon x + (1 - \epsilon)\tilde x`, :math:`\epsilon \sim U[0, 1]`
  (:func:`gradient_penalty`; the norm is taken per sample, a test pins it).
- **LSGAN** (Mao et al., 2017, https://arxiv.org/abs/1611.04076): least squares on raw outputs
  with the 0-1 coding :math:`a = 0` (fake), :math:`b = 1` (real), :math:`c = 1` (the generator's
  target): :math:`\tfrac12 E_p[(D(x) - 1)^2] + \tfrac12 E_{p_G}[D(\tilde x)^2]` for the
  discriminator and :math:`\tfrac12 E_z[(D(G(z)) - 1)^2]` for the generator. (Mao et al.'s
  Pearson :math:`\chi^2` result needs :math:`b - c = 1, b - a = 2`, e.g. ``a, b, c = -1, 1, 0``;
  :mod:`deepnotes.gans.problems` checks it numerically with that coding.)
- **Instance noise** (Sønderby et al., 2017, https://arxiv.org/abs/1610.04490): Gaussian noise
  added to both the data and the samples before the discriminator, its standard deviation
  annealed linearly to zero (:func:`instance_noise`, :func:`annealed_std`).

Example:
    >>> d_loss = discriminator_loss("wgan_gp", critic(x), critic(fake.detach()))
    >>> d_loss = d_loss + gradient_penalty(critic, x, fake.detach(), gen, weight=10.0)
    >>> g_loss = generator_loss("wgan_gp", critic(fake))
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.errors import ConfigError, UsageError

Loss = Literal["minimax", "nonsaturating", "wgan", "wgan_gp", "lsgan"]
LOSSES: tuple[str, ...] = ("minimax", "nonsaturating", "wgan", "wgan_gp", "lsgan")


def _check_kind(kind: str) -> None:
    if kind not in LOSSES:
        raise ConfigError(f"unknown GAN loss {kind!r}; expected one of {', '.join(LOSSES)}")


def discriminator_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's (critic's) loss to minimise, a scalar.

    Arguments:
        kind: one of :data:`LOSSES`.
        d_real: outputs on data, shape ``(N,)`` or ``(N, 1)``: logits for ``minimax`` and
            ``nonsaturating``, raw values for ``wgan``, ``wgan_gp`` and ``lsgan``.
        d_fake: outputs on generated samples, same convention, shape ``(M,)`` or ``(M, 1)``.
    """
    _check_kind(kind)
    if kind in ("minimax", "nonsaturating"):
        # -V(D, G) = -E_p[log D(x)] - E_pG[log(1 - D(x~))]: BCE with labels 1 (real), 0 (fake)
        real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
        fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        return real + fake
    if kind in ("wgan", "wgan_gp"):
        # -(E_p[f(x)] - E_pG[f(x~)])
        return d_fake.mean() - d_real.mean()
    # LSGAN, a = 0, b = 1: 1/2 E_p[(D(x) - b)^2] + 1/2 E_pG[(D(x~) - a)^2]
    return 0.5 * (d_real - 1.0).pow(2).mean() + 0.5 * d_fake.pow(2).mean()


def generator_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss to minimise, a scalar.

    Arguments:
        kind: one of :data:`LOSSES`.
        d_fake: the discriminator's outputs on generated samples, shape ``(M,)`` or ``(M, 1)``
            (logits for ``minimax`` and ``nonsaturating``).
    """
    _check_kind(kind)
    if kind == "minimax":
        # E_z[log(1 - D(G(z)))] = -E[softplus(l)] = -BCE(l, 0)
        return -F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    if kind == "nonsaturating":
        # -E_z[log D(G(z))] = BCE(l, 1)
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    if kind in ("wgan", "wgan_gp"):
        return -d_fake.mean()
    # LSGAN, c = 1: 1/2 E_z[(D(G(z)) - c)^2]
    return 0.5 * (d_fake - 1.0).pow(2).mean()


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator,
    weight: float = 1.0,
    sample_dims: int = 1,
) -> torch.Tensor:
    r"""WGAN-GP's penalty :math:`\text{weight} \cdot \frac1N \sum_i
    (\|\nabla_x f(\hat x_i)\|_2 - 1)^2`, a scalar with a graph (``create_graph=True``) so that
    it trains the critic.

    :math:`\hat x_i = \epsilon_i x_i + (1 - \epsilon_i) \tilde x_i` with one
    :math:`\epsilon_i \sim U[0, 1]` per sample, and the norm is taken per sample over all of its
    coordinates (not over the batch). The interpolates are built from detached inputs: the
    penalty trains the critic only.

    Arguments:
        critic: maps ``(N, *shape)`` to ``(N,)`` or ``(N, 1)``.
        real: data, shape ``(N, *shape)``.
        fake: generated samples, the same shape.
        generator: the source of the :math:`\epsilon_i` (on the inputs' device).
        weight: :math:`\lambda \ge 0` (1 returns the bare penalty).
        sample_dims: leading axes that index samples (2 for stacked critics' ``(E, N, *shape)``
            batches: one interpolate, norm and penalty term per member and sample).
    """
    if weight < 0:
        raise ConfigError(f"the gradient-penalty weight must be >= 0, got {weight}")
    if real.shape != fake.shape:
        raise UsageError(
            f"real and generated batches must have the same shape, got {tuple(real.shape)} "
            f"and {tuple(fake.shape)}"
        )
    if not 1 <= sample_dims < real.dim():
        raise UsageError(f"sample_dims must be in [1, {real.dim() - 1}], got {sample_dims}")
    lead = tuple(real.shape[:sample_dims])
    eps = torch.rand(
        lead + (1,) * (real.dim() - sample_dims),
        generator=generator,
        device=real.device,
        dtype=real.dtype,
    )  # (N, 1, ..., 1)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = grad.flatten(sample_dims).norm(dim=-1)  # (N,) ||grad_x f(x_hat_i)||_2 per sample
    return weight * (norms - 1.0).pow(2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, c: float) -> None:
    """WGAN's weight clipping: every parameter of ``module`` clamped to ``[-c, c]``, in place."""
    if not c > 0:
        raise ConfigError(f"the clipping bound c must be > 0, got {c}")
    for parameter in module.parameters():
        parameter.clamp_(-c, c)


def instance_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """``x + std * N(0, I)``, the same shape as ``x`` (``x`` itself when ``std == 0``)."""
    if std < 0:
        raise ConfigError(f"the instance-noise std must be >= 0, got {std}")
    if std == 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + std * noise


def annealed_std(step: int, steps: int, start: float) -> float:
    """Instance noise's std at ``step`` of ``steps``: ``start`` at step 0, linear to 0 at
    ``steps`` and 0 after."""
    if steps < 1 or step < 0 or start < 0:
        raise ConfigError(
            f"annealed_std needs steps >= 1, step >= 0 and start >= 0, got steps={steps}, "
            f"step={step}, start={start}"
        )
    return start * max(0.0, 1.0 - step / steps)
