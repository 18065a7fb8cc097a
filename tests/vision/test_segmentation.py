"""U-Net, IoU/mIoU from confusion matrices, the boundary band, parameter counts per operation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from deepnotes.core.errors import UsageError
from deepnotes.vision.segmentation import (
    SkipConcat,
    UNet,
    boundary_band,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    parameters_by_operation,
    pixel_accuracy,
    pixel_loss,
)


def test_unet_keeps_the_resolution_and_scores_every_class() -> None:
    torch.manual_seed(0)
    net = UNet(1, 11, widths=(4, 8, 16))
    assert net(torch.rand(3, 1, 16, 24)).shape == (3, 11, 16, 24)


def test_input_side_must_be_a_multiple_of_the_pooling_factor() -> None:
    net = UNet(1, 3, widths=(4, 8, 16))
    with pytest.raises(UsageError, match="multiples of 4"):
        net(torch.rand(1, 1, 18, 16))


def test_up_conv_doubles_the_side_and_halves_the_channels() -> None:
    net = UNet(1, 2, widths=(4, 8, 16))
    up = net.up[0]
    assert isinstance(up, nn.ConvTranspose2d) and up.stride == (2, 2)
    assert up(torch.rand(2, 16, 5, 5)).shape == (2, 8, 10, 10)


def test_skip_concatenates_the_encoder_map_or_zeros() -> None:
    dec, enc = torch.rand(2, 3, 4, 4), torch.rand(2, 5, 4, 4)
    on = SkipConcat(True)(dec, enc)
    off = SkipConcat(False)(dec, enc)
    assert on.shape == off.shape == (2, 8, 4, 4)
    assert torch.equal(on[:, :3], dec) and torch.equal(on[:, 3:], enc)
    assert torch.equal(off[:, :3], dec) and not off[:, 3:].any()


def test_without_skips_same_weights_and_the_copied_channels_get_no_gradient() -> None:
    torch.manual_seed(1)
    with_skips = UNet(1, 4, widths=(4, 8, 16), batch_norm=True)
    torch.manual_seed(1)
    without = UNet(1, 4, widths=(4, 8, 16), skips=False, batch_norm=True)
    for (name, a), (_, b) in zip(
        with_skips.state_dict().items(), without.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    x = torch.rand(2, 1, 16, 16)
    without(x).square().sum().backward()
    first = without.decode[-1][0]  # the conv reading [upsampled (4), zeros (4)] at the top level
    assert first.weight.grad[:, 4:].abs().max() == 0
    assert first.weight.grad[:, :4].abs().max() > 0
    with_skips(x).square().sum().backward()
    assert with_skips.decode[-1][0].weight.grad[:, 4:].abs().max() > 0


def test_masks_of_the_wrong_size_name_the_expected_shape() -> None:
    scores = torch.rand(2, 3, 8, 8)
    with pytest.raises(UsageError, match=r"\(2, 8, 8\)"):
        pixel_loss(scores, torch.zeros(2, 8, 9, dtype=torch.long))
    with pytest.raises(UsageError, match=r"\(2, 8, 8\)"):
        pixel_accuracy(scores, torch.zeros(8, 8, dtype=torch.long))
    with pytest.raises(UsageError, match=r"\(2, 8, 8\)"):
        confusion_matrix(scores.argmax(1), torch.zeros(2, 4, 4, dtype=torch.long), 3)


def test_pixel_loss_and_accuracy_match_torch() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 4, 5, 6, generator=g)
    masks = torch.randint(0, 4, (3, 5, 6), generator=g)
    ref = nn.functional.cross_entropy(scores.permute(0, 2, 3, 1).reshape(-1, 4), masks.reshape(-1))
    assert torch.allclose(pixel_loss(scores, masks), ref)
    acc = pixel_accuracy(scores, masks)
    assert acc.shape == (3,)
    assert torch.allclose(acc, (scores.argmax(1) == masks).double().mean((1, 2)))


def test_confusion_and_iou_equal_a_brute_force_count() -> None:
    g = torch.Generator().manual_seed(3)
    c = 5
    truth = torch.randint(0, c - 1, (4, 7, 7), generator=g)  # class 4 never true...
    predicted = torch.randint(0, c - 2, (4, 7, 7), generator=g)  # ...nor predicted; 3 only true
    conf = confusion_matrix(predicted, truth, c)
    t, p = truth.flatten().tolist(), predicted.flatten().tolist()
    for i, j in itertools.product(range(c), range(c)):
        assert conf[i, j] == sum(1 for a, b in zip(t, p, strict=True) if a == i and b == j)
    iou = iou_per_class(conf)
    brute = []
    for k in range(c):
        inter = sum(1 for a, b in zip(t, p, strict=True) if a == k and b == k)
        union = sum(1 for a, b in zip(t, p, strict=True) if a == k or b == k)
        brute.append(inter / union if union else float("nan"))
    np.testing.assert_allclose(iou.numpy(), brute, atol=1e-12)
    assert torch.isnan(iou[4]) and iou[3] == 0  # absent from both: NaN; only in the truth: 0
    assert mean_iou(conf) == pytest.approx(float(np.mean(brute[:4])), abs=1e-12)


def test_perfect_prediction_has_miou_one() -> None:
    masks = torch.tensor([[[0, 1], [2, 2]]])
    assert mean_iou(confusion_matrix(masks, masks, 11)) == 1.0


def test_boundary_band_equals_a_brute_force_window_check() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(2, 9, 9, dtype=torch.long)
    masks[:, 2:6, 3:7] = torch.randint(1, 4, (2, 4, 4), generator=g)
    for radius in (1, 2):
        band = boundary_band(masks, radius)
        for b, y, x in itertools.product(range(2), range(9), range(9)):
            window = masks[
                b, max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1
            ]
            assert bool(band[b, y, x]) == (window.unique().numel() > 1)


def test_parameters_by_operation_of_the_paper_unet() -> None:
    widths = (64, 128, 256, 512, 1024)
    net = UNet(1, 2, widths)
    counts = parameters_by_operation(net)
    assert counts["max-pool 2x2"] == counts["ReLU"] == counts["copy and concatenate"] == 0
    up = sum(d * w * 4 + w for d, w in zip(widths[:0:-1], widths[-2::-1], strict=True))
    assert counts["up-conv 2x2"] == up
    assert counts["conv 1x1"] == 64 * 2 + 2
    assert sum(counts.values()) == sum(p.numel() for p in net.parameters())
    pairs = [(1, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]  # encoder + bottleneck
    pairs += [(2 * w, w) for w in widths[-2::-1]]  # decoder: reads the concatenation
    conv3 = sum((a * b * 9 + b) + (b * b * 9 + b) for a, b in pairs)
    assert counts["conv 3x3"] == conv3
