"""Autoencoders: noise, penalty, error measures, shapes, identity capacity, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.generative import autoencoders as A


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_flip_noise_flips_the_expected_share_and_keeps_binary() -> None:
    x = torch.randint(0, 2, (400, 1, 8, 8), generator=gen()).float()
    noisy = A.flip_noise(x, 0.1, gen(1))
    assert ((noisy == 0) | (noisy == 1)).all()
    share = float((noisy != x).float().mean())
    assert abs(share - 0.1) < 4 * (0.1 * 0.9 / x.numel()) ** 0.5
    assert torch.equal(A.flip_noise(x, 0.0, gen()), x) and torch.equal(
        A.flip_noise(x, 1.0, gen()), 1 - x
    )
    with pytest.raises(ValueError, match="flip probability"):
        A.flip_noise(x, 1.5, gen())


def test_penalty_errors_and_near_zero_by_hand() -> None:
    h = torch.tensor([[1.0, -2.0, 0.0], [0.005, 0.0, 3.0]])
    assert A.sparsity_penalty(h).tolist() == pytest.approx([3.0, 3.005])
    assert A.near_zero_fraction(h, 0.01) == pytest.approx(3 / 6)
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert A.pixel_error(logits, target).tolist() == [0.5]


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_shapes_and_code_activation(activation: str) -> None:
    ae = A.Autoencoder((1, 8, 8), code_size=5, hidden=(16, 12), code_activation=activation)
    x = torch.randint(0, 2, (3, 1, 8, 8), generator=gen()).float()
    h = ae.encode(x)
    assert h.shape == (3, 5) and ae(x).shape == (3, 1, 8, 8)
    assert (h >= 0).all() or activation == "linear"
    with pytest.raises(ValueError, match="code_activation"):
        A.Autoencoder(code_activation="tanh")


def test_bad_input_and_settings_are_rejected() -> None:
    ae = A.Autoencoder()
    with pytest.raises(DataFormatError, match="0 or 1"):
        ae.encode(torch.full((2, 1, 8, 8), 0.3))
    with pytest.raises(DataFormatError, match=r"\(N, 1, 8, 8\)"):
        ae.encode(torch.zeros(2, 64))
    with pytest.raises(ConfigError, match="kind"):
        A.AESettings(kind="contractive")
    with pytest.raises(ConfigError, match="denoising"):
        A.AESettings(noise=0.1)
    with pytest.raises(ConfigError, match="sparse"):
        A.AESettings(kind="sparse")


def test_an_overcomplete_relu_layer_can_be_exactly_the_identity() -> None:
    """The capacity the experiment relies on: h = relu(a x) on 64 of 128 units, logits 2a h - a."""
    ae = A.Autoencoder((1, 8, 8), code_size=128, hidden=(), code_activation="relu")
    a = 20.0
    with torch.no_grad():
        enc, dec = ae.encoder[0], ae.decoder[0]
        enc.weight.zero_()
        enc.bias.zero_()
        enc.weight[:64] = a * torch.eye(64)
        dec.weight.zero_()
        dec.weight[:, :64] = 2 * torch.eye(64)
        dec.bias.fill_(-a)
    x = torch.randint(0, 2, (50, 1, 8, 8), generator=gen(2)).float()
    assert A.pixel_error(ae(x), x).max() == 0


@pytest.mark.parametrize("kind", ["plain", "denoising", "sparse"])
def test_fit_lowers_the_reconstruction_loss(tmp_path: Path, kind: str) -> None:
    ctx = RunContext(name="t", seed=0, device=torch.device("cpu"), out_dir=tmp_path)
    x = torch.randint(0, 2, (64, 1, 4, 4), generator=gen(3)).float()
    extra = {"denoising": {"noise": 0.1}, "sparse": {"l1": 0.01}}.get(kind, {})
    settings = A.AESettings(
        code_size=32,
        hidden=(),
        code_activation="relu",
        kind=kind,
        lr=1e-2,
        steps=80,
        every=40,
        **extra,
    )
    model, history = A.fit_autoencoder(settings, ctx, x, tag=kind)
    assert len(history) == 2 and history[1]["reconstruction"] < history[0]["reconstruction"]
    assert not model.training
