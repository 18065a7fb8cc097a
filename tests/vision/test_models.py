"""The CNN zoo: shapes, hand-counted parameters, published full-size counts, blocks, gradients."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from deepnotes.vision.models import (
    GOOGLENET_BLOCKS,
    RESNET_CONFIGS,
    VGG,
    VGG_CONFIGS,
    AlexNet,
    BasicBlock,
    Bottleneck,
    GoogLeNet,
    Inception,
    LeNet5,
    ResNet,
    alexnet,
    count_parameters,
    googlenet,
    meta_parameter_count,
    resnet,
    vgg,
)


def conv(c_in: int, c_out: int, k: int, bias: bool = True, groups: int = 1) -> int:
    """Parameters of a k x k convolution: weights c_out * (c_in / groups) * k^2 (+ c_out)."""
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def bn(c: int) -> int:
    return 2 * c  # scale and shift; running statistics are buffers


# ---------------------------------------------------------------------------------------------
# output shapes

SMALL_MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "lenet5-32": (lambda: LeNet5(), (3, 1, 32, 32)),
    "lenet5-16": (lambda: LeNet5(7, 1, input_size=16), (3, 1, 16, 16)),
    "lenet5-8": (lambda: LeNet5(10, 1, input_size=8, kernel_size=3, padding=1), (3, 1, 8, 8)),
    "lenet5-rgb28-max-relu": (
        lambda: LeNet5(5, 3, input_size=28, activation="relu", pool="max"),
        (3, 3, 28, 28),
    ),
    "alexnet-8": (lambda: alexnet(10, 1, small_input=True, width=0.125), (3, 1, 8, 8)),
    "alexnet-32": (lambda: alexnet(10, 3, small_input=True, width=0.125), (3, 3, 32, 32)),
    "vgg11-32": (lambda: vgg(11, 10, 1, width=8, hidden=32, pool_size=1), (3, 1, 32, 32)),
    "vgg16bn-32": (
        lambda: vgg(16, 10, 3, batch_norm=True, width=8, hidden=32, pool_size=1),
        (3, 3, 32, 32),
    ),
    "googlenet-8": (lambda: googlenet(10, 1, small_input=True, width=0.125), (3, 1, 8, 8)),
    "googlenet-32": (lambda: googlenet(10, 3, small_input=True, width=0.125), (3, 3, 32, 32)),
    "resnet18-8": (lambda: resnet(18, 10, 1, small_input=True, width=8), (3, 1, 8, 8)),
    "resnet18-32": (lambda: resnet(18, 10, 3, small_input=True, width=8), (3, 3, 32, 32)),
    "resnet50-16": (lambda: resnet(50, 10, 1, small_input=True, width=4), (3, 1, 16, 16)),
}


@pytest.mark.parametrize("name", list(SMALL_MODELS))
def test_small_models_map_images_to_logits(name: str) -> None:
    build, shape = SMALL_MODELS[name]
    torch.manual_seed(0)
    net = build().eval()
    out = net(torch.randn(shape))
    expected_classes = 7 if name == "lenet5-16" else 5 if "rgb28" in name else 10
    assert out.shape == (shape[0], expected_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "build",
    [alexnet, googlenet, lambda: vgg(16), lambda: resnet(18), lambda: resnet(50)],
    ids=["alexnet", "googlenet", "vgg16", "resnet18", "resnet50"],
)
def test_full_size_models_on_meta_take_imagenet_images(build: Callable[[], nn.Module]) -> None:
    with torch.device("meta"):
        net = build()
        out = net(torch.empty(2, 3, 224, 224))
    assert out.shape == (2, 1000) and out.device.type == "meta"


def test_full_size_feature_maps_match_the_papers() -> None:
    with torch.device("meta"):
        x = torch.empty(1, 3, 224, 224)
        assert alexnet().features(x).shape == (1, 256, 6, 6)  # 55 -> 27 -> 13 -> 6
        assert vgg(16).features(x).shape == (1, 512, 7, 7)  # five poolings: 224 / 32
        net = googlenet()
        assert net.stem(x).shape == (1, 192, 28, 28)
        assert net.blocks(net.stem(x)).shape == (1, 1024, 7, 7)
        res = resnet(50)
        assert res.stem(x).shape == (1, 64, 56, 56)
        assert res.stages(res.stem(x)).shape == (1, 2048, 7, 7)


# ---------------------------------------------------------------------------------------------
# parameter counts by hand


def test_lenet5_count_by_layer() -> None:
    # C1 6 5x5 on 1 map; C3 16 5x5 on 6 maps (full table); C5 120 on 16x5x5; F6 84; output 10
    by_hand = (
        conv(1, 6, 5) + conv(6, 16, 5) + linear(16 * 5 * 5, 120) + linear(120, 84) + linear(84, 10)
    )
    assert by_hand == 61_706
    assert count_parameters(LeNet5()) == by_hand
    # Deviation pinned: C3 is fully connected, 2,416 parameters instead of the paper's 1,516
    c3 = LeNet5().features[3]
    assert isinstance(c3, nn.Conv2d) and count_parameters(c3) == 2_416
    # small input, 3x3 same convolutions: 8 -> 8 -> 4 -> 4 -> 2
    small = LeNet5(10, 1, input_size=8, kernel_size=3, padding=1)
    assert small.feature_side == 2
    assert count_parameters(small) == (
        conv(1, 6, 3) + conv(6, 16, 3) + linear(16 * 2 * 2, 120) + linear(120, 84) + linear(84, 10)
    )


def test_lenet5_rejects_inputs_too_small() -> None:
    with pytest.raises(ValueError, match="too small"):
        LeNet5(input_size=8)  # 8 -> 4 -> 2 -> no room for a valid 5x5 convolution
    with pytest.raises(ValueError, match="activation"):
        LeNet5(activation="sigmoid")  # type: ignore[arg-type]


def alexnet_by_hand(channels: tuple[int, ...], groups: int, fc_in: int, hidden: int) -> int:
    c1, c2, c3, c4, c5 = channels
    return (
        conv(3, c1, 11)
        + conv(c1, c2, 5, groups=groups)
        + conv(c2, c3, 3)
        + conv(c3, c4, 3, groups=groups)
        + conv(c4, c5, 3, groups=groups)
        + linear(fc_in, hidden)
        + linear(hidden, hidden)
        + linear(hidden, 1000)
    )


def test_alexnet_counts() -> None:
    paper = alexnet_by_hand((96, 256, 384, 384, 256), 2, 256 * 6 * 6, 4096)
    assert paper == 60_965_224  # the paper's "60 million parameters"
    assert meta_parameter_count(alexnet) == paper
    one_tower = alexnet_by_hand((96, 256, 384, 384, 256), 1, 256 * 6 * 6, 4096)
    assert meta_parameter_count(lambda: AlexNet()) == one_tower == 62_378_344
    # torchvision's one-tower variant with 64-192-384-256-256 kernels
    assert meta_parameter_count(lambda: AlexNet(channels=(64, 192, 384, 256, 256))) == 61_100_840


def test_small_alexnet_count_by_hand() -> None:
    net = AlexNet(10, 1, channels=(8, 16, 24, 24, 16), hidden=32, small_input=True)
    by_hand = (
        conv(1, 8, 3)
        + conv(8, 16, 3)
        + conv(16, 24, 3)
        + conv(24, 24, 3)
        + conv(24, 16, 3)
        + linear(16, 32)  # global average pooling to 1x1
        + linear(32, 32)
        + linear(32, 10)
    )
    assert count_parameters(net) == by_hand
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in net.modules())
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in alexnet().modules()) == 2


def vgg_by_hand(depth: int, width: int, batch_norm: bool, fc_in_side: int, hidden: int) -> int:
    total, c_in = 0, 3
    for item in VGG_CONFIGS[depth]:
        if item != "M":
            c_out = int(item) * width // 64
            total += conv(c_in, c_out, 3, bias=not batch_norm) + (bn(c_out) if batch_norm else 0)
            c_in = c_out
    return total + linear(c_in * fc_in_side**2, hidden) + linear(hidden, hidden) + linear(hidden, 7)


@pytest.mark.parametrize("depth", sorted(VGG_CONFIGS))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_small_vgg_count_by_hand(depth: int, batch_norm: bool) -> None:
    net = vgg(depth, 7, 3, batch_norm=batch_norm, width=8, hidden=20, pool_size=1)
    assert count_parameters(net) == vgg_by_hand(depth, 8, batch_norm, 1, 20)
    # only 3x3 convolutions; depth = convolutions + 3 fully connected layers
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.kernel_size == (3, 3) for m in convs)
    assert len(convs) + sum(isinstance(m, nn.Linear) for m in net.modules()) == depth


def test_vgg_rejects_bad_configurations() -> None:
    with pytest.raises(ValueError, match="depth must be one of"):
        vgg(17)
    with pytest.raises(ValueError, match="positive ints or 'M'"):
        VGG([64, "P"])


def inception_by_hand(c_in: int, spec: tuple[int, ...]) -> int:
    c1, r3, c3, r5, c5, pp = spec
    return (
        conv(c_in, c1, 1)
        + conv(c_in, r3, 1)
        + conv(r3, c3, 3)
        + conv(c_in, r5, 1)
        + conv(r5, c5, 5)
        + conv(c_in, pp, 1)
    )


def test_inception_block_concatenates_its_branches() -> None:
    torch.manual_seed(0)
    block = Inception(12, 4, 3, 6, 2, 5, 7)
    assert block.out_channels == 4 + 6 + 5 + 7
    x = torch.randn(2, 12, 9, 9)
    y = block(x)
    assert y.shape == (2, 22, 9, 9)
    # the channels are the branches in order: 1x1 | 3x3 | 5x5 | pool projection
    assert torch.equal(y[:, :4], block.branch1(x))
    assert torch.equal(y[:, 4:10], block.branch3(x))
    assert torch.equal(y[:, 10:15], block.branch5(x))
    assert torch.equal(y[:, 15:], block.branch_pool(x))
    assert count_parameters(block) == inception_by_hand(12, (4, 3, 6, 2, 5, 7))


def test_googlenet_count_by_hand() -> None:
    total, c_in = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3), 192
    for spec in GOOGLENET_BLOCKS:
        if spec != "M":
            total += inception_by_hand(c_in, spec)
            c_in = spec[0] + spec[2] + spec[4] + spec[5]
    total += linear(c_in, 1000)
    assert c_in == 1024
    assert meta_parameter_count(googlenet) == total == 6_998_552
    small = GoogLeNet([(4, 2, 4, 2, 4, 4), "M", (8, 4, 8, 2, 4, 4)], 10, 1, small_input=True)
    assert count_parameters(small) == (
        conv(1, 192, 3)
        + inception_by_hand(192, (4, 2, 4, 2, 4, 4))
        + inception_by_hand(16, (8, 4, 8, 2, 4, 4))
        + linear(24, 10)
    )


def resnet_by_hand(depth: int, width: int, in_channels: int, classes: int, small: bool) -> int:
    block, layers = RESNET_CONFIGS[depth]
    total = conv(in_channels, width, 3 if small else 7, bias=False) + bn(width)
    c_in = width
    for i, n_blocks in enumerate(layers):
        c = width * 2**i
        for j in range(n_blocks):
            stride = 2 if i > 0 and j == 0 else 1
            if block is BasicBlock:
                c_out = c
                total += conv(c_in, c, 3, False) + bn(c) + conv(c, c, 3, False) + bn(c)
            else:
                c_out = 4 * c
                total += conv(c_in, c, 1, False) + bn(c) + conv(c, c, 3, False) + bn(c)
                total += conv(c, c_out, 1, False) + bn(c_out)
            if stride != 1 or c_in != c_out:  # projection shortcut (option B)
                total += conv(c_in, c_out, 1, False) + bn(c_out)
            c_in = c_out
    return total + linear(c_in, classes)


@pytest.mark.parametrize("depth", sorted(RESNET_CONFIGS))
def test_resnet_count_by_hand_and_depth(depth: int) -> None:
    with torch.device("meta"):
        net = resnet(depth)
    assert count_parameters(net) == resnet_by_hand(depth, 64, 3, 1000, small=False)
    small = resnet(depth, 10, 1, small_input=True, width=4)
    assert count_parameters(small) == resnet_by_hand(depth, 4, 1, 10, small=True)
    # depth = weight layers on the main path: every convolution outside the shortcuts + the fc
    main_convs = [
        name
        for name, m in small.named_modules()
        if isinstance(m, nn.Conv2d) and "shortcut" not in name
    ]
    assert len(main_convs) + 1 == depth == small.depth


# ---------------------------------------------------------------------------------------------
# the published full-size counts (torchvision's models of the same architectures)


@pytest.mark.parametrize(
    ("build", "published"),
    [
        (lambda: vgg(11), 132_863_336),
        (lambda: vgg(13), 133_047_848),
        (lambda: vgg(16), 138_357_544),
        (lambda: vgg(19), 143_667_240),
        (lambda: resnet(18), 11_689_512),
        (lambda: resnet(34), 21_797_672),
        (lambda: resnet(50), 25_557_032),
        (lambda: resnet(101), 44_549_160),
        (lambda: resnet(152), 60_192_808),
    ],
    ids=[
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "r152",
    ],
)
def test_full_size_counts_equal_the_published_ones(
    build: Callable[[], nn.Module], published: int
) -> None:
    assert meta_parameter_count(build) == published


def test_vgg16_bn_drops_the_redundant_conv_biases() -> None:
    # Deviation pinned: torchvision's vgg16_bn keeps 4,224 conv biases (138,365,992)
    biases = sum(c for c in VGG_CONFIGS[16] if c != "M")
    assert biases == 4_224
    assert meta_parameter_count(lambda: vgg(16, batch_norm=True)) == 138_365_992 - biases


def test_meta_device_allocates_nothing() -> None:
    with torch.device("meta"):
        net = vgg(19)
    assert all(p.device.type == "meta" for p in net.parameters())


# ---------------------------------------------------------------------------------------------
# residual blocks


def test_basic_block_shortcut_with_stride_two() -> None:
    torch.manual_seed(0)
    block = BasicBlock(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    assert isinstance(block.shortcut, nn.Sequential)  # projection: shapes change
    assert block.shortcut(x).shape == (2, 32, 4, 4)
    assert block(x).shape == (2, 32, 4, 4)
    same = BasicBlock(16, 16)
    assert isinstance(same.shortcut, nn.Identity)
    assert same(x).shape == x.shape


def test_bottleneck_shortcut_with_stride_two_and_stride_on_3x3() -> None:
    torch.manual_seed(0)
    block = Bottleneck(32, 16, stride=2)
    assert block.out_channels == 64
    x = torch.randn(2, 32, 8, 8)
    assert block.shortcut(x).shape == (2, 64, 4, 4)
    assert block(x).shape == (2, 64, 4, 4)
    # Deviation pinned (v1.5): the stride is on the 3x3 convolution, not the first 1x1
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert isinstance(Bottleneck(64, 16).shortcut, nn.Identity)  # 64 -> 4 * 16: identity


@pytest.mark.parametrize("block", [BasicBlock(8, 8), Bottleneck(32, 8)], ids=["basic", "bneck"])
def test_block_is_relu_of_residual_plus_identity(block: nn.Module) -> None:
    """With the last BatchNorm's scale and shift at 0, F(x) = 0 and the block is ReLU(x)."""
    torch.manual_seed(0)
    last_bn = block.bn2 if isinstance(block, BasicBlock) else block.bn3
    nn.init.zeros_(last_bn.weight)
    nn.init.zeros_(last_bn.bias)
    x = torch.randn(2, block.out_channels, 5, 5)
    assert torch.equal(block(x), torch.relu(x))


# ---------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("name", list(SMALL_MODELS))
def test_backward_gives_finite_gradients_to_every_parameter(name: str) -> None:
    build, shape = SMALL_MODELS[name]
    torch.manual_seed(0)
    net = build().train()
    out = net(torch.randn(shape))
    loss = nn.functional.cross_entropy(out, torch.arange(shape[0]) % out.shape[1])
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
    assert any(p.grad.abs().sum() > 0 for p in net.parameters() if p.grad is not None)


def test_resnet_gradient_reaches_the_input_through_the_skips() -> None:
    torch.manual_seed(0)
    net: ResNet = resnet(34, 10, 1, small_input=True, width=4)
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
