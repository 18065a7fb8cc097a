"""Masked convolutions, PixelCNN, PixelRNN (Row LSTM) and the pixel transformer: masks against
their definition, exact causality on every pixel, likelihoods that sum to one over every
image, torch's LSTM as the oracle of the Row LSTM, samplers against the model's own law."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.errors import DataFormatError
from deepnotes.generative.autoregressive import (
    MaskedConv2d,
    PixelCNN,
    PixelModel,
    PixelRNN,
    PixelTransformer,
    RowLSTM,
    raster_mask,
)


def small_models(shape: tuple[int, int, int]) -> dict[str, PixelModel]:
    torch.manual_seed(0)
    return {
        "pixelcnn": PixelCNN(shape, channels=6, layers=2, first_kernel=3),
        "pixelrnn": PixelRNN(shape, channels=6, layers=2, first_kernel=3, kernel_size=3),
        "transformer": PixelTransformer(shape, d_model=8, num_heads=2, layers=2, dim_feedforward=8),
    }


def jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d model(x)_i / d x_j, (D, D), pixels in raster order."""
    return torch.autograd.functional.jacobian(
        lambda v: model(v.reshape(x.shape)).reshape(-1), x.reshape(-1)
    )


def all_images(shape: tuple[int, int, int]) -> torch.Tensor:
    d = shape[1] * shape[2]
    rows = list(itertools.product((0.0, 1.0), repeat=d))
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, *shape)


# --------------------------------------------------------------------------------------------
# masks


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (5, 5), (1, 5), (3, 5)])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_mask_keeps_exactly_the_positions_before_the_centre(
    kernel: tuple[int, int], mask_type: str
) -> None:
    mask = raster_mask(kernel, mask_type)
    cy, cx = kernel[0] // 2, kernel[1] // 2
    for y, x in itertools.product(range(kernel[0]), range(kernel[1])):
        before = (y, x) < (cy, cx)  # raster order: earlier row, or same row and to the left
        expected = before or (mask_type == "B" and (y, x) == (cy, cx))
        assert mask[y, x].item() == float(expected)


def test_mask_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mask_type"):
        raster_mask(3, "C")
    with pytest.raises(ValueError, match="odd"):
        raster_mask(4, "A")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 1, (1, 2), "B")


def test_masked_conv_is_torch_conv_with_the_masked_kernel() -> None:
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 4, 5, "B").double()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    reference = F.conv2d(x, conv.weight * raster_mask(5, "B").double(), conv.bias, padding=2)
    assert torch.equal(conv(x), reference)
    conv(x).sum().backward()
    assert torch.all(conv.weight.grad[..., raster_mask(5, "B") == 0] == 0)  # masked: no grad


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_single_masked_conv_is_causal_on_every_pixel(mask_type: str) -> None:
    torch.manual_seed(0)
    conv = MaskedConv2d(1, 1, 5, mask_type).double()
    jac = jacobian(conv, torch.rand(1, 1, 6, 6, dtype=torch.float64)).abs()
    d = jac.shape[0]
    forbidden = torch.ones(d, d, dtype=torch.bool).triu(1 if mask_type == "B" else 0)
    assert jac[forbidden].max() == 0
    diagonal = jac.diagonal()
    assert (diagonal > 0).all() if mask_type == "B" else (diagonal == 0).all()


# --------------------------------------------------------------------------------------------
# the three models


@pytest.mark.parametrize("kind", ["pixelcnn", "pixelrnn", "transformer"])
def test_logit_i_ignores_every_pixel_at_or_after_i(kind: str) -> None:
    shape = (1, 4, 5)
    model = small_models(shape)[kind].double().eval()
    jac = jacobian(model, torch.rand(1, *shape, dtype=torch.float64)).abs()
    d = jac.shape[0]
    assert jac[torch.ones(d, d, dtype=torch.bool).triu()].max() == 0
    assert (jac[torch.ones(d, d, dtype=torch.bool).tril(-1)] > 0).float().mean() > 0.5


def test_row_lstm_reaches_a_triangle_above_the_pixel() -> None:
    torch.manual_seed(0)
    model = PixelRNN((1, 6, 12), channels=4, layers=1, first_kernel=3, kernel_size=3).double()
    jac = jacobian(model, torch.rand(1, 1, 6, 12, dtype=torch.float64)).abs()
    i = 5 * 12 + 0  # row 5, column 0
    assert jac[i, 0 * 12 + 11] == 0  # row 0, column 11: earlier in raster order, out of reach
    assert jac[i, 4 * 12 + 1] > 0  # the row above, next column: in reach


@pytest.mark.parametrize("kind", ["pixelcnn", "pixelrnn", "transformer"])
def test_likelihood_sums_to_one_over_every_image(kind: str) -> None:
    shape = (1, 3, 3)
    model = small_models(shape)[kind].double().eval()
    with torch.no_grad():
        nll = model.nll(all_images(shape))  # (512,)
    assert abs(torch.logsumexp(-nll, 0).item()) < 1e-10  # log sum_x p(x) = 0


@pytest.mark.parametrize("kind", ["pixelcnn", "pixelrnn", "transformer"])
def test_samples_follow_the_models_law(kind: str) -> None:
    shape = (1, 2, 2)
    model = small_models(shape)[kind].double().eval()
    images = all_images(shape)  # the 16 images in binary order
    with torch.no_grad():
        p = torch.exp(-model.nll(images))  # (16,)
    n = 4000
    drawn = model.sample(n, torch.Generator().manual_seed(0))  # (n, 1, 2, 2)
    index = (drawn.reshape(n, 4) * torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=drawn.dtype)).sum(1)
    freq = torch.bincount(index.long(), minlength=16).double() / n
    se = torch.sqrt(p * (1 - p) / n)
    assert ((freq - p).abs() / se).max() < 4.5  # 16 cells, each within 4.5 standard errors


def test_cached_transformer_sampling_equals_the_uncached_loop() -> None:
    shape = (1, 4, 4)
    model = small_models(shape)["transformer"].double().eval()
    cached = model.sample(64, torch.Generator().manual_seed(3))
    uncached = PixelModel.sample(model, 64, torch.Generator().manual_seed(3))  # D full passes
    assert torch.equal(cached, uncached)


def test_pixel_value_embedding_is_a_two_row_table() -> None:
    """The Deviation: Linear(1, d) of a 0/1 pixel is the embedding table [e_0; e_1]."""
    model = small_models((1, 2, 2))["transformer"]
    table = nn.Embedding(2, 8)
    with torch.no_grad():
        table.weight[0] = model.value.bias
        table.weight[1] = model.value.bias + model.value.weight[:, 0]
    x = torch.tensor([0.0, 1.0, 1.0, 0.0])
    assert torch.allclose(model.value(x[:, None]), table(x.long()), atol=1e-7)


def test_row_lstm_equals_torch_lstm_down_a_column() -> None:
    """Width 1 and kernel 1: the Row LSTM is an LSTM over the rows (torch as the oracle)."""
    torch.manual_seed(0)
    ours = RowLSTM(3, 5, kernel_size=1).double()
    theirs = nn.LSTM(3, 5, batch_first=True, dtype=torch.float64)
    h = 5

    def torch_order(w: torch.Tensor) -> torch.Tensor:  # ours (o, f, i, g) -> torch (i, f, g, o)
        o, f, i, g = w.split(h)
        return torch.cat([i, f, g, o])

    with torch.no_grad():
        theirs.weight_ih_l0.copy_(torch_order(ours.input_to_state.weight[:, :, 0, 0]))
        theirs.weight_hh_l0.copy_(torch_order(ours.state_to_state.weight[:, :, 0]))
        theirs.bias_ih_l0.copy_(torch_order(ours.input_to_state.bias))
        theirs.bias_hh_l0.copy_(torch_order(ours.state_to_state.bias))
    x = torch.randn(2, 3, 7, 1, dtype=torch.float64)  # (N, C, H, W = 1)
    expected, _ = theirs(x[..., 0].transpose(1, 2))  # rows as time: (N, H, hidden)
    got = ours(x)[..., 0].transpose(1, 2)  # (N, H, hidden)
    assert (got - expected).abs().max() < 1e-12


def test_sequential_depth_counts_the_rows_of_the_rnn() -> None:
    models = small_models((1, 5, 6))
    assert models["pixelcnn"].sequential_depth() == 1 + 2 + 2
    assert models["pixelrnn"].sequential_depth() == 1 + 2 * (1 + 5) + 2
    assert models["transformer"].sequential_depth() == 1 + 2 * 2 + 1


def test_bad_input_is_refused_with_what_was_expected() -> None:
    model = small_models((1, 4, 4))["pixelcnn"]
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(DataFormatError, match="0 or 1"):
        model.nll(x + 0.5)
    with pytest.raises(DataFormatError, match=r"\(N, 1, 4, 4\)"):
        model.nll(torch.zeros(2, 1, 8, 8))
    with pytest.raises(DataFormatError, match="NaN"):
        model.nll(torch.full((2, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        PixelCNN((3, 8, 8))
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0)
