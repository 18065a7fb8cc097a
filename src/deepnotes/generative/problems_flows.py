r"""The notes' flow problems, answered by :mod:`deepnotes.generative.flows`.

Discussion 10, section 4.3 "Normalizing Flows": problem 7 (write the training objective, derive
it by the change of variables, and the properties :math:`f_\theta` must have) and problem 8 (the
determinant of RealNVP's forward Jacobian). Each is answered on a small untrained flow in
float64 with fixed seeds; every number is computed by the library and compared with an
independent route (autograd Jacobians, ``torch.linalg.slogdet``/``det``, numerical
integration).
"""

from __future__ import annotations

import torch

from deepnotes.core import stats
from deepnotes.core.catalog import Answer, problem
from deepnotes.core.seeding import seeded
from deepnotes.generative.flows import (
    AffineCoupling,
    jacobian_logdet,
    mlp,
    notes_affine_coupling,
    realnvp,
    standard_normal_log_prob,
)

SEED = 0
POINTS = 8
"""Points at which the identities are evaluated."""
GRID = 401
"""Points per axis of the quadrature grid for the normalisation of problem 7."""
BOX = 4.0
"""Half-width of the square integrated over."""
SAMPLES = 100_000
"""Samples of the flow counted in the box."""


def _flow() -> torch.nn.Module:
    """A small RealNVP (4 couplings, width 16) with random, non-zero output layers."""
    with seeded(SEED):
        flow = realnvp(2, couplings=4, hidden=16, depth=2).double()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for p in flow.parameters():  # leave the identity start: perturb every parameter
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


@problem(
    "Flow objective by change of variables",
    topic="generative",
    source="discussion 10, section 4.3, problem 7",
)
def _flow_objective() -> Answer:
    flow = _flow()
    g = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(POINTS, 2, generator=g, dtype=torch.float64)
    z = flow.inverse(x)[0]
    # the change of variables by brute force: log N(f^{-1}(x)) + log|det d f^{-1}/dx|
    inverse_map = _Inverse(flow)
    brute = standard_normal_log_prob(z.detach()) + jacobian_logdet(inverse_map, x)
    # and by the forward Jacobian: log|det df^{-1}/dx| = -log|det df/dz| at z = f^{-1}(x)
    forward_brute = standard_normal_log_prob(z.detach()) - jacobian_logdet(flow, z.detach())
    with torch.no_grad():
        ticks = torch.linspace(-BOX, BOX, GRID, dtype=torch.float64)
        grid = torch.cartesian_prod(ticks, ticks)
        cell = (ticks[1] - ticks[0]) ** 2
        mass = float(flow.log_prob(grid).exp().sum() * cell)  # Riemann sum of p over the box
        round_trip = float((flow(z)[0] - x).abs().max())
        inside = (flow.sample(SAMPLES, g).abs() <= BOX).all(dim=1).double().numpy()
    share, share_se = stats.mean_se(inside)  # P(x in the box) by sampling f(z)
    library = flow.log_prob(x).detach()
    return Answer(
        [
            (
                "objective",
                "max_theta (1/N) sum_i [log p_Z(f_theta^{-1}(x_i)) "
                "+ log |det d f_theta^{-1}(x_i) / dx|]",
            ),
            (
                "max |Flow.log_prob - (log N(f^{-1}(x)) + slogdet of autograd d f^{-1}/dx)|",
                float((library - brute).abs().max()),
            ),
            (
                "max |Flow.log_prob - (log N(z) - slogdet of autograd df/dz)|",
                float((library - forward_brute).abs().max()),
            ),
            (f"integral of p(x) over [-{BOX:g}, {BOX:g}]^2 (Riemann, {GRID}^2 points)", mass),
            (f"share of {SAMPLES} samples f(z) in the box +- SE", [share, share_se]),
            ("max |f(f^{-1}(x)) - x| (invertible)", round_trip),
            (
                "properties of f",
                "invertible (a bijection, so z = f^{-1}(x) exists and is unique), "
                "differentiable with a differentiable inverse, and a Jacobian determinant "
                "cheap to compute (triangular: coupling layers); compositions keep all three",
            ),
        ],
        note="A 4-coupling RealNVP with random weights in float64 at 8 random points: "
        "Flow.log_prob (the objective's summand) against the change of variables computed "
        "from the autograd Jacobians of f^{-1} and of f; the density it defines is normalised: "
        "its integral over a box equals the share of its samples that land there.",
    )


class _Inverse(torch.nn.Module):
    """``f^{-1}`` of a flow as a module returning ``(z, logdet)``, for :func:`jacobian_logdet`."""

    def __init__(self, flow: torch.nn.Module) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow.inverse(x)


@problem(
    "RealNVP determinant |det df/dz| = exp(sum h)",
    topic="generative",
    source="discussion 10, section 4.3, problem 8",
)
def _realnvp_determinant() -> Answer:
    dim, half = 4, 2
    with seeded(SEED):
        h = mlp(half, dim - half, hidden=16, depth=2).double()
    g = torch.Generator().manual_seed(SEED + 2)
    with torch.no_grad():  # the notes' h, not the identity start
        h[-1].weight.copy_(0.5 * torch.randn(h[-1].weight.shape, generator=g))
    layer = AffineCoupling(dim, 0, bound=False, scale_net=h, shift_net=h).double()
    z = torch.randn(POINTS, dim, generator=g, dtype=torch.float64)
    with torch.no_grad():
        x, logdet = layer(z)
        x2, notes_logdet = notes_affine_coupling(z[:, :half], z[:, half:], h)
    jacobians = torch.stack(
        [torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], row) for row in z]
    )  # (P, D, D)
    det = torch.linalg.det(jacobians).abs()
    upper = jacobians[:, :half, half:]  # d x_1 / d z_2: zero (triangular)
    diagonal = torch.diagonal(jacobians[:, half:, half:], dim1=1, dim2=2)
    with torch.no_grad():
        exp_h = h(z[:, :half]).exp()  # (P, D - d)
    return Answer(
        [
            ("|det df/dz|", "exp(sum_j h_j(z_{1:d})): the Jacobian is block lower triangular"),
            (
                "max relative |exp(sum h) - |det(autograd J)|| / |det J|",
                float(((notes_logdet.exp() - det) / det).abs().max()),
            ),
            (
                "max |sum h - log|det J| (torch.linalg.slogdet)|",
                float((logdet - torch.linalg.slogdet(jacobians).logabsdet).abs().max()),
            ),
            ("max |d x_{1:d} / d z_{d+1:n}| (upper block, zero)", float(upper.abs().max())),
            (
                "max |diag of d x_{d+1:n} / d z_{d+1:n} - exp(h)|",
                float((diagonal - exp_h).abs().max()),
            ),
            (
                "max |library coupling - notes' formula| (x and log det)",
                max(
                    float((x[:, half:] - x2).abs().max()),
                    float((logdet - notes_logdet).abs().max()),
                ),
            ),
            ("D, d", [dim, half]),
        ],
        note="The notes' coupling x_2 = exp(h(z_1)) * z_2 + h(z_1) with one random network h "
        "(AffineCoupling with scale_net = shift_net = h, bound=False, and "
        "notes_affine_coupling) in float64 at 8 random points; the full Jacobian by "
        "autograd: log |det| = sum h, and the determinant itself is positive.",
    )
