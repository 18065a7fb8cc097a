"""Deep plain/residual MLPs, initialisation, and the measurements of deepnotes.vision.deep_nets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.vision.deep_nets import (
    DeepMLP,
    HiddenLayer,
    ResidualBlock,
    activation_statistics,
    batchnorm_scale_invariance,
    dead_unit_fraction,
    dead_unit_masks,
    init_std,
    init_weights_,
    kill_units_,
    layer_gradient_norms,
    linear_output_variance,
    make_activation,
    monte_carlo_linear_variance,
    plain_mlp,
    residual_mlp,
    tanh_mean_field_variances,
    xavier_weight_variance,
)


@pytest.mark.parametrize("norm", ["none", "before", "after"])
@pytest.mark.parametrize("build", [plain_mlp, residual_mlp])
def test_builders_give_the_requested_shapes_and_layers(build, norm: str) -> None:
    net = build(64, 32, 5, 10, activation="tanh", norm=norm, init="xavier")
    assert net(torch.randn(7, 64)).shape == (7, 10)
    assert net(torch.randn(7, 1, 8, 8)).shape == (7, 10)  # images are flattened
    assert len(net.layers) == 5 and len(net.linears()) == 6
    assert [lin.in_features for lin in net.linears()] == [64, 32, 32, 32, 32, 32]
    assert isinstance(net.layers[0], HiddenLayer)  # the width-changing layer is never residual
    expected = ResidualBlock if build is residual_mlp else HiddenLayer
    assert all(isinstance(layer, expected) for layer in net.layers[1:])
    first = net.layers[0]
    assert isinstance(first.norm_before, nn.BatchNorm1d) == (norm == "before")
    assert isinstance(first.norm_after, nn.BatchNorm1d) == (norm == "after")
    traces = net.trace(torch.randn(7, 64))
    assert len(traces) == 5 and all(t.out.shape == (7, 32) for t in traces)


def test_batchnorm_placement_normalises_the_right_tensor() -> None:
    x = torch.randn(256, 16) * 5 + 3
    before = HiddenLayer(16, 8, "relu", "before").train().trace(x)
    after = HiddenLayer(16, 8, "relu", "after").train().trace(x)
    # "before": the nonlinearity's input has batch mean 0 and variance 1 per unit
    assert before.pre.mean(0).abs().max() < 1e-5
    assert (before.pre.var(0, unbiased=False) - 1).abs().max() < 1e-3
    # "after": the layer's output does, and the nonlinearity's input does not
    assert after.out.mean(0).abs().max() < 1e-5
    assert after.pre.mean(0).abs().max() > 0.1


def test_residual_block_is_identity_plus_f() -> None:
    torch.manual_seed(0)
    block = ResidualBlock(12, "sigmoid")
    h = torch.randn(5, 12)
    torch.testing.assert_close(block(h), h + block.f(h))
    torch.testing.assert_close(block.trace(h).out, h + block.f(h))
    # the Jacobian is I + df/dh
    jac = torch.autograd.functional.jacobian(lambda v: block(v[None])[0], h[0])
    jac_f = torch.autograd.functional.jacobian(lambda v: block.f(v[None])[0], h[0])
    torch.testing.assert_close(jac, torch.eye(12) + jac_f)
    # with f = relu(0 h + 0) = 0 the block is exactly the identity
    relu_block = ResidualBlock(12, "relu")
    nn.init.zeros_(relu_block.f.linear.weight)
    nn.init.zeros_(relu_block.f.linear.bias)
    torch.testing.assert_close(relu_block(h), h)


def test_activations_by_name() -> None:
    x = torch.tensor([-2.0, 0.0, 3.0])
    torch.testing.assert_close(make_activation("relu")(x), torch.tensor([0.0, 0.0, 3.0]))
    torch.testing.assert_close(make_activation("leaky_relu", 0.1)(x), torch.tensor([-0.2, 0, 3]))
    torch.testing.assert_close(
        make_activation("elu", alpha=2.0)(x), torch.tensor([2 * (math.exp(-2) - 1), 0.0, 3.0])
    )
    torch.testing.assert_close(make_activation("identity")(x), x)
    with pytest.raises(ValueError, match="activation must be one of"):
        make_activation("swish")
    with pytest.raises(ValueError, match="norm must be one of"):
        HiddenLayer(3, 3, norm="layer")


def test_gradient_norms_match_a_hand_computed_two_layer_net() -> None:
    torch.manual_seed(1)
    net = DeepMLP(5, 4, 1, 3, activation="relu").double()  # x -> relu(W1 x + b1) -> W2 . + b2
    x = torch.randn(6, 5, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 1, 0, 2])
    w1, b1 = net.layers[0].linear.weight.detach(), net.layers[0].linear.bias.detach()
    w2, b2 = net.head.weight.detach(), net.head.bias.detach()
    z1 = x @ w1.T + b1  # (B, 4)
    a1 = z1.clamp(min=0)
    p = torch.softmax(a1 @ w2.T + b2, dim=1)  # (B, 3)
    delta2 = (p - F.one_hot(y, 3).double()) / len(y)  # dL/dlogits of the mean cross-entropy
    grad_w2 = delta2.T @ a1  # (3, 4)
    delta1 = (delta2 @ w2) * (z1 > 0).double()  # (B, 4)
    grad_w1 = delta1.T @ x  # (4, 5)
    expected = torch.stack([grad_w1.norm(), grad_w2.norm()])
    torch.testing.assert_close(layer_gradient_norms(net, x, y), expected, rtol=1e-12, atol=0)
    assert all(p.grad is None for p in net.parameters())  # .grad fields left untouched


def test_dead_unit_counter_on_a_constructed_layer() -> None:
    net = DeepMLP(2, 3, 1, 1, activation="relu")
    with torch.no_grad():
        net.layers[0].linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, -1.0]]))
        net.layers[0].linear.bias.copy_(torch.tensor([0.0, -1.0, 0.5]))
    x = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.2, 0.9]])  # unit 2 is 0.5 - x1 - x2 <= 0.5-0.5
    # unit 0: x1 > 0 on every example (alive); unit 1: -1 always (dead); unit 2: <= 0 (dead)
    assert dead_unit_masks(net, x)[0].tolist() == [False, True, True]
    assert dead_unit_fraction(net, x) == pytest.approx(2 / 3)
    # one example that opens unit 2 revives it
    assert dead_unit_fraction(net, torch.cat([x, torch.tensor([[-1.0, -1.0]])])) == 1 / 3
    # Leaky ReLU with the same weights: nothing outputs exactly 0, two units are never positive
    leaky = DeepMLP(2, 3, 1, 1, activation="leaky_relu")
    leaky.load_state_dict(net.state_dict())
    assert dead_unit_fraction(leaky, x) == 0.0
    assert dead_unit_fraction(leaky, x, rule="never_positive") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="rule must be"):
        dead_unit_masks(net, x, rule="sometimes")


@pytest.mark.parametrize(
    ("scheme", "std", "scale", "expected"),
    [
        ("xavier", None, 1.0, math.sqrt(1 / 2000)),
        ("he", None, 1.0, math.sqrt(2 / 2000)),
        ("he", None, 0.1, 0.1 * math.sqrt(2 / 2000)),
        ("normal", 0.05, 3.0, 0.15),
        ("default", None, 1.0, math.sqrt(1 / (3 * 2000))),
    ],
)
def test_init_stds_measured_on_large_layers(scheme, std, scale, expected) -> None:
    layer = nn.Linear(2000, 500)
    init_weights_(layer, scheme, std=std, scale=scale, generator=torch.Generator().manual_seed(0))
    measured = layer.weight.std().item()
    assert measured == pytest.approx(expected, rel=0.01)  # 10^6 draws: relative SE ~ 0.07%
    assert layer.weight.mean().abs().item() < 0.01 * expected
    if scheme != "default":
        assert torch.count_nonzero(layer.bias) == 0
    assert init_std(scheme, 2000, std) * scale == pytest.approx(expected)


def test_init_is_reproducible_with_a_generator_and_rejects_bad_input() -> None:
    a = plain_mlp(8, 16, 3, 2, init="he", generator=torch.Generator().manual_seed(3))
    b = plain_mlp(8, 16, 3, 2, init="he", generator=torch.Generator().manual_seed(3))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(ValueError, match="needs a standard deviation"):
        init_std("normal", 10)
    with pytest.raises(ValueError, match="init scheme must be one of"):
        init_std("orthogonal", 10)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        init_weights_(a, "he", scale=-1.0)


def test_activation_statistics_of_a_linear_xavier_net_keep_the_variance() -> None:
    # with the identity activation the notes' assumption Var(a) = Var(z) holds exactly
    net = plain_mlp(
        512,
        512,
        6,
        10,
        activation="identity",
        init="xavier",
        generator=torch.Generator().manual_seed(0),
    ).double()
    x = torch.randn(1000, 512, dtype=torch.float64)
    stats = activation_statistics(net, x)
    assert stats.input_var == pytest.approx(1.0, rel=0.01)
    torch.testing.assert_close(stats.gain, torch.ones(6, dtype=torch.float64), rtol=0.1, atol=0)
    torch.testing.assert_close(stats.pre_var, stats.post_var)
    # unbounded outputs: the "saturated" fraction is just P(|N(0, 1)| > 0.99) = 0.322
    torch.testing.assert_close(
        stats.saturation, torch.full_like(stats.saturation, 0.322), rtol=0, atol=0.03
    )
    # a huge tanh net saturates
    big = plain_mlp(512, 512, 3, 10, activation="tanh", init="normal", std=1.0)
    assert activation_statistics(big, x.float()).saturation[-1] > 0.9


def test_linear_variance_closed_form_and_monte_carlo_agree() -> None:
    assert linear_output_variance(64, xavier_weight_variance(64), 0.7) == pytest.approx(0.7)
    estimate, se = monte_carlo_linear_variance(
        20, 0.1, 2.0, 20_000, torch.Generator().manual_seed(0)
    )
    assert abs(estimate - 4.0) < 4 * se
    assert 0 < se < 0.1


def test_tanh_mean_field_decays_like_one_over_two_l() -> None:
    v = tanh_mean_field_variances(1.0, 200)
    assert np.all(np.diff(v) < 0)  # tanh compresses, so the variance decays
    assert v[-1] * 2 * 200 == pytest.approx(1.0, rel=0.1)  # v_l ~ 1 / (2 l)
    # small variances pass almost unchanged (the notes' linear regime): v - 2 v^2
    assert tanh_mean_field_variances(1e-4, 1)[0] == pytest.approx(1e-4 - 2e-8, rel=1e-6)


def test_batchnorm_scale_invariance_and_what_breaks_it() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 12, dtype=torch.float64), torch.randint(0, 3, (32,))
    net = plain_mlp(12, 16, 3, 3, norm="before", generator=torch.Generator().manual_seed(1))
    net = net.double()
    before = [p.detach().clone() for p in net.parameters()]
    exact = batchnorm_scale_invariance(net, x, y, 10.0)
    assert exact.factor == 10.0
    assert exact.output_change < 1e-12 and exact.gradient_deviation < 1e-12
    # with BN's eps left alone the identities hold only up to O(eps / Var z)
    check = batchnorm_scale_invariance(net, x, y, 10.0, scale_eps=False)
    assert 1e-9 < check.output_change < 1e-3
    # ...and shrinking eps by hand brings them back, independently of the eps scaling
    for module in net.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.eps = 1e-12  # torch refuses 0 in training mode
    tiny = batchnorm_scale_invariance(net, x, y, 10.0, scale_eps=False)
    assert tiny.output_change < 1e-8 and tiny.gradient_deviation < 1e-8
    assert all(m.eps == 1e-12 for m in net.modules() if isinstance(m, nn.BatchNorm1d))
    # the model itself is untouched, gradients cleared, mode restored
    assert all(torch.equal(a, p) for a, p in zip(before, net.parameters(), strict=True))
    assert all(p.grad is None for p in net.parameters()) and net.training
    # an independent check of grad L(cW) = grad L(W) / c by autograd on a hand-scaled copy
    layer = net.layers[1].linear
    loss = lambda: F.cross_entropy(net(x), y)  # noqa: E731
    g = torch.autograd.grad(loss(), layer.weight)[0]
    with torch.no_grad():
        layer.weight.mul_(4.0)
        layer.bias.mul_(4.0)
    g4 = torch.autograd.grad(loss(), layer.weight)[0]
    assert torch.allclose(4.0 * g4, g, rtol=1e-4, atol=1e-10)
    # without BN after the linear map the identities fail, and the function says so
    with pytest.raises(ValueError, match="no BatchNorm right after a linear layer"):
        batchnorm_scale_invariance(plain_mlp(12, 16, 3, 3, norm="after"), x.float(), y, 10.0)
    with pytest.raises(ValueError, match="factor must be > 0"):
        batchnorm_scale_invariance(net, x, y, 0.0)


def test_kill_units_pushes_the_chosen_units_below_zero_on_every_example() -> None:
    torch.manual_seed(0)
    net = plain_mlp(
        16, 24, 3, 4, activation="relu", init="he", generator=torch.Generator().manual_seed(1)
    )
    x = torch.randn(300, 16)
    weights = [lin.weight.clone() for lin in net.linears()]
    killed = kill_units_(net, x, 0.25, 0.5, torch.Generator().manual_seed(2))
    assert [int(k.sum()) for k in killed] == [6, 6, 6]
    for trace, mask in zip(net.trace(x), killed, strict=True):
        pre = trace.pre[:, mask]  # (N, killed)
        assert (pre.max(dim=0).values <= -0.5 * pre.std(dim=0) + 1e-5).all()
    dead = dead_unit_masks(net, x, "zero_output")
    assert all(bool(d[k].all()) for d, k in zip(dead, killed, strict=True))
    assert all(torch.equal(w, lin.weight) for w, lin in zip(weights, net.linears(), strict=True))


def test_dead_relu_units_get_no_gradient_and_leaky_ones_do() -> None:
    torch.manual_seed(0)
    x = torch.randn(200, 16)
    y = torch.randint(0, 4, (200,))
    for act, expect_zero in (("relu", True), ("leaky_relu", False), ("elu", False)):
        net = plain_mlp(
            16, 24, 2, 4, activation=act, init="he", generator=torch.Generator().manual_seed(3)
        )
        killed = kill_units_(net, x, 0.5, 0.5, torch.Generator().manual_seed(4))
        F.cross_entropy(net(x), y).backward()
        grad = net.layers[0].linear.weight.grad[killed[0]]  # (killed, 16)
        assert (grad.abs().max().item() == 0.0) == expect_zero


def test_kill_units_refuses_bad_input() -> None:
    x = torch.randn(10, 8)
    with pytest.raises(ValueError, match="fraction"):
        kill_units_(plain_mlp(8, 4, 2, 2), x, 1.5, 0.0)
    with pytest.raises(ValueError, match="margin"):
        kill_units_(plain_mlp(8, 4, 2, 2), x, 0.5, -1.0)
    with pytest.raises(ValueError, match="BatchNorm"):
        kill_units_(plain_mlp(8, 4, 2, 2, norm="before"), x, 0.5, 0.0)
