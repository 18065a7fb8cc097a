"""NICE and RealNVP: exact inverses, log-determinants against brute-force autograd Jacobians,
the notes' one-network form as a special case, and the separate scale/shift networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepnotes.core.errors import UsageError
from deepnotes.generative import flows as fl


def perturbed(flow: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Leave the identity start: add noise to every parameter (float64)."""
    flow = flow.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def points(n: int = 6, dim: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("build", [fl.nice, fl.realnvp])
@pytest.mark.parametrize("dim", [2, 5])
def test_inverse_is_exact_and_logdets_cancel(build, dim: int) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    flow = perturbed(build(dim, 4, hidden=8))
    z = points(dim=dim)
    x, fwd = flow(z)
    back, inv = flow.inverse(x)
    assert (back - z).abs().max() < 1e-12
    assert (fwd + inv).abs().max() < 1e-12
    assert not torch.allclose(x, z)  # not the identity


@pytest.mark.parametrize("dim", [2, 5])
def test_realnvp_logdet_equals_brute_force_slogdet(dim: int) -> None:
    torch.manual_seed(0)
    flow = perturbed(fl.realnvp(dim, 4, hidden=8))
    z = points(dim=dim)
    reported = flow(z)[1]
    assert (reported - fl.jacobian_logdet(flow, z)).abs().max() < 1e-10
    assert reported.abs().min() > 1e-3  # not volume preserving
    # and in the density direction
    x = flow(z)[0].detach()
    inverse = fl.jacobian_logdet(_Inverse(flow), x)
    assert (flow.inverse(x)[1] - inverse).abs().max() < 1e-10


class _Inverse(nn.Module):
    def __init__(self, flow: fl.Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow.inverse(x)


def test_nice_couplings_preserve_volume_and_rescaling_carries_it() -> None:
    torch.manual_seed(0)
    flow = perturbed(fl.nice(4, 4, hidden=8))
    z = points(dim=4)
    h = z
    for layer in flow.layers:
        x, ld = layer(h)
        if isinstance(layer, fl.AdditiveCoupling):
            assert torch.equal(ld, torch.zeros_like(ld))
            assert fl.jacobian_logdet(layer, h).abs().max() < 1e-12
        h = x.detach()
    (rescale,) = [m for m in flow.layers if isinstance(m, fl.Rescale)]
    total = fl.jacobian_logdet(flow, z)
    assert (total - rescale.log_scale.sum()).abs().max() < 1e-12
    assert (flow(z)[1] - total).abs().max() < 1e-12


def test_log_prob_is_the_change_of_variables() -> None:
    torch.manual_seed(0)
    flow = perturbed(fl.realnvp(2, 3, hidden=8))
    x = points()
    z = flow.inverse(x)[0]
    eye = torch.eye(2, dtype=x.dtype)
    base = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=x.dtype), eye)
    expected = base.log_prob(z) - fl.jacobian_logdet(flow, z.detach())
    assert (flow.log_prob(x) - expected).abs().max() < 1e-12
    assert (fl.standard_normal_log_prob(z) - base.log_prob(z)).abs().max() < 1e-12


@pytest.mark.parametrize("build", [fl.nice, fl.realnvp])
def test_flows_start_as_the_identity(build) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    flow = build(2, 4, hidden=8)  # zero output layers, unit alpha, zero log-scales
    x = points().float()
    assert torch.equal(flow.inverse(x)[0], x)
    assert torch.allclose(flow.log_prob(x), fl.standard_normal_log_prob(x))


def test_notes_form_is_the_special_case_with_one_network() -> None:
    # Deviation pinned: the notes' x2 = exp(h(z1)) * z2 + h(z1) is AffineCoupling with
    # scale_net = shift_net = h and no tanh bound
    torch.manual_seed(0)
    h = perturbed(fl.mlp(2, 3, hidden=8, depth=2))
    layer = fl.AffineCoupling(5, 0, bound=False, scale_net=h, shift_net=h)
    z = points(dim=5)
    x, logdet = layer(z)
    x2, notes_logdet = fl.notes_affine_coupling(z[:, :2], z[:, 2:], h)
    assert torch.equal(x[:, :2], z[:, :2])
    assert (x[:, 2:] - x2).abs().max() < 1e-14
    assert (logdet - notes_logdet).abs().max() < 1e-14
    assert (logdet - fl.jacobian_logdet(layer, z)).abs().max() < 1e-12
    # the library's default (separate nets, bounded) is not tied to that form
    free = perturbed(fl.AffineCoupling(5, 0, hidden=8))
    s, t = free.scale_shift(z[:, :2])
    assert not torch.allclose(s, t)
    assert s.abs().max() <= free.alpha.abs().max() + 1e-12  # |alpha tanh(.)| <= |alpha|


def test_twin_networks_are_two_separate_mlps() -> None:
    torch.manual_seed(0)
    twin = perturbed(fl.TwinMLP(3, 2, hidden=8, depth=2))
    scale, shift = fl.mlp(3, 2, 8, 2).double(), fl.mlp(3, 2, 8, 2).double()
    with torch.no_grad():
        for k, net in enumerate((scale, shift)):
            linears = [m for m in net if isinstance(m, nn.Linear)]
            for lin, w, b in zip(linears, twin.weights, twin.biases, strict=True):
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k, 0])
    v = points(dim=3)
    s, t = twin(v)
    assert (s - scale(v)).abs().max() < 1e-14 and (t - shift(v)).abs().max() < 1e-14
    separate = sum(p.numel() for p in (*scale.parameters(), *shift.parameters()))
    assert fl.parameter_count(twin) == separate
    # no sharing: the shift network's output does not move with the scale network's weights
    with torch.no_grad():
        twin.weights[0][0].add_(1.0)
    assert torch.equal(twin(v)[1], t)


def test_parity_alternates_which_half_is_transformed() -> None:
    torch.manual_seed(0)
    flow = perturbed(fl.realnvp(4, 2, hidden=8))
    z = points(dim=4)
    first, second = flow.layers
    assert torch.equal(first(z)[0][:, :2], z[:, :2])
    assert torch.equal(second(z)[0][:, 2:], z[:, 2:])


def test_sampling_is_seeded_and_shaped() -> None:
    torch.manual_seed(0)
    flow = fl.realnvp(2, 2, hidden=8)
    a = flow.sample(7, torch.Generator().manual_seed(3))
    b = flow.sample(7, torch.Generator().manual_seed(3))
    assert a.shape == (7, 2) and torch.equal(a, b)


def test_parameter_counts_of_equal_size_builders() -> None:
    # NICE with twice the couplings of one network each = RealNVP's two networks per coupling
    real, nice = fl.realnvp(2, 8, hidden=45), fl.nice(2, 16, hidden=45)
    per_net = 45 + 45 + 45 * 45 + 45 + 45 + 1  # [1, 45, 45, 1]
    assert fl.parameter_count(real) == 8 * (2 * per_net + 1)  # + alpha per coupling
    assert fl.parameter_count(nice) == 16 * per_net + 2  # + the rescaling layer


def test_bad_input_is_refused_with_the_expected_shape() -> None:
    flow = fl.realnvp(2, 2, hidden=4)
    with pytest.raises(UsageError, match=r"\(N, 2\)"):
        flow.log_prob(torch.zeros(3, 3))
    with pytest.raises(UsageError, match="both"):
        fl.AffineCoupling(2, 0, scale_net=nn.Identity())
    with pytest.raises(UsageError, match="dim >= 2"):
        fl.AdditiveCoupling(1, 0)
    with pytest.raises(UsageError, match="depth"):
        fl.mlp(1, 1, hidden=4, depth=0)
