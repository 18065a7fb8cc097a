r"""The notes' GAN problems (discussion 11, part 1), answered numerically on 1-D densities
(:mod:`deepnotes.gans.divergences`).

- Problem 1 (optimal discriminator): for a fixed generator the discriminator maximises, at every
  ``x``, :math:`p(x) \log D + p_G(x) \log(1 - D)`; the maximiser is
  :math:`D^*(x) = p(x) / (p(x) + p_G(x))`. Checked by maximising that pointwise objective
  numerically (gradient ascent on one logit per grid point) and comparing.
- The JSD identity: :math:`V(D^*, G) = 2\,\mathrm{JSD}(p \| p_G) - \log 4`, both sides integrated
  numerically on a fine grid, for overlapping, identical and nearly disjoint pairs.
- Problem 2 (composition of Lipschitz functions): :math:`|f(g(x)) - f(g(y))| \le L_1 |g(x) -
  g(y)| \le L_1 L_2 |x - y|`; measured for two scalar functions, and for a random ReLU network
  whose layers' constants are their spectral norms
  (:func:`deepnotes.gans.spectral.largest_singular_value`).
- LSGAN and Pearson :math:`\chi^2` (Mao et al., 2017, https://arxiv.org/abs/1611.04076,
  theorem 1): with codes :math:`a, b, c` the optimal discriminator is
  :math:`D^* = (b p + a p_G) / (p + p_G)`, and when :math:`b - c = 1, b - a = 2` the generator's
  objective :math:`C(G) = \tfrac12 E_p[(D^* - c)^2] + \tfrac12 E_{p_G}[(D^* - c)^2]` satisfies
  :math:`2 C(G) = \chi^2_{\text{Pearson}}(p + p_G \| 2 p_G) = \int \frac{(2 p_G - (p + p_G))^2}
  {p + p_G} dx`; checked by integration for ``a, b, c = -1, 1, 0``, and shown to fail for the
  0-1 coding of :mod:`deepnotes.gans.losses` (``a, b, c = 0, 1, 1``).

Integrals are trapezoid sums on :func:`grid_1d` (float64); only densities and sizes are chosen
here.
"""

from __future__ import annotations

import itertools
import math

import torch

from deepnotes.core.catalog import Answer, problem
from deepnotes.gans.divergences import (
    GRID,
    PAIRS,
    game_value,
    grid_1d,
    jensen_shannon,
    lsgan_optimum,
    optimal_logit,
    pearson_mao,
)
from deepnotes.gans.spectral import largest_singular_value

SEED = 0


def _densities(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The grid, the densities ``p``, ``p_G`` and the optimal logit of the pair ``name``."""
    x = grid_1d()
    p, p_g = PAIRS[name]
    return x, p.pdf(x), p_g.pdf(x), optimal_logit(p.log_pdf(x), p_g.log_pdf(x))


def pointwise_maximiser(p: torch.Tensor, p_g: torch.Tensor, iters: int = 100) -> torch.Tensor:
    r"""The maximiser over :math:`D \in [0, 1]` of the concave :math:`p \log D + p_G \log(1 - D)`
    at every grid point, by golden-section search on the objective itself (no derivative, no
    closed form); the bracket shrinks by 0.618 per iteration."""
    ratio = (math.sqrt(5) - 1) / 2

    def objective(d: torch.Tensor) -> torch.Tensor:
        return torch.special.xlogy(p, d) + torch.special.xlogy(p_g, 1 - d)

    lo, hi = torch.zeros_like(p), torch.ones_like(p)
    for _ in range(iters):
        left, right = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        right_better = objective(right) > objective(left)  # the maximiser lies right of `left`
        lo = torch.where(right_better, left, lo)
        hi = torch.where(right_better, hi, right)
    return (lo + hi) / 2


@problem(
    "Optimal discriminator D*(x) = p(x) / (p(x) + p_G(x))",
    topic="gans",
    source="discussion 11, section 1.2, problem 1",
)
def _optimal_discriminator() -> Answer:
    x, p, p_g, logit = _densities("overlapping")
    keep = torch.maximum(p, p_g) > 1e-6  # where the objective is not numerically zero
    d_numeric = pointwise_maximiser(p[keep], p_g[keep])
    d_star = torch.sigmoid(logit)
    value = game_value(logit, p, p_g, x)
    perturbed = [game_value(logit + delta, p, p_g, x) for delta in (-0.2, 0.2)]
    return Answer(
        [
            (
                "max |numerical maximiser - p / (p + p_G)|",
                float((d_numeric - d_star[keep]).abs().max()),
            ),
            ("V(D*)", value),
            ("V at logit(D*) -+ 0.2 (both smaller)", perturbed),
        ],
        note="p = 0.5 N(-1, 0.45^2) + 0.5 N(1.2, 0.6^2), p_G = N(0.3, 1.1^2). For fixed x the "
        "objective p log D + p_G log(1 - D) is concave in D with derivative p/D - p_G/(1 - D), "
        "zero at D = p / (p + p_G); the numerical maximiser (golden-section search per grid "
        "point, where max(p, p_G) > 1e-6) finds it without using that formula.",
    )


@problem(
    "The game's value at D* is 2 JSD(p || p_G) - log 4",
    topic="gans",
    source="discussion 11, section 1.2",
)
def _jsd_identity() -> Answer:
    rows = []
    for name in PAIRS:
        x, p, p_g, logit = _densities(name)
        value = game_value(logit, p, p_g, x)
        jsd = jensen_shannon(p, p_g, x)
        rows.append([name, value, jsd, 2 * jsd - math.log(4), abs(value - (2 * jsd - math.log(4)))])
    return Answer(
        [("pair, V(D*), JSD, 2 JSD - log 4, |difference|", rows)],
        note="Substituting D* gives E_p[log p/(p+p_G)] + E_pG[log p_G/(p+p_G)] = KL(p||m) + "
        "KL(p_G||m) - 2 log 2 with m = (p+p_G)/2, i.e. 2 JSD - log 4: -log 4 for identical "
        "densities, 0 (JSD = log 2) in the limit of disjoint ones. Trapezoid rule on "
        f"[{GRID[0]}, {GRID[1]}] with {GRID[2]} points.",
    )


@problem(
    "Composition of Lipschitz functions: L(f o g) <= L1 L2",
    topic="gans",
    source="discussion 11, section 1.3.1, problem 2",
)
def _composition() -> Answer:
    g = torch.Generator().manual_seed(SEED)
    x = 6 * torch.rand(20000, generator=g, dtype=torch.float64) - 3
    y = 6 * torch.rand(20000, generator=g, dtype=torch.float64) - 3

    def inner(t: torch.Tensor) -> torch.Tensor:  # L2 = sup |2 + cos t| = 3
        return 2 * t + torch.sin(t)

    def outer(t: torch.Tensor) -> torch.Tensor:  # L1 = 1.5
        return 1.5 * torch.tanh(t)

    l_inner, l_outer = 3.0, 1.5
    slope = ((outer(inner(x)) - outer(inner(y))).abs() / (x - y).abs()).max()
    # a random ReLU network: each layer's constant is sigma(W); ReLU's is 1
    widths = (4, 32, 32, 1)
    weights = [
        torch.randn(o, i, generator=g, dtype=torch.float64) / math.sqrt(i)
        for i, o in itertools.pairwise(widths)
    ]
    sigmas = [float(largest_singular_value(w, iters=300)) for w in weights]
    points = torch.randn(20000, widths[0], generator=g, dtype=torch.float64, requires_grad=True)
    h = points
    for i, w in enumerate(weights):
        h = h @ w.T
        h = torch.relu(h) if i < len(weights) - 1 else h
    (grad,) = torch.autograd.grad(h.sum(), points)
    return Answer(
        [
            ("f o g: L1 L2 and the largest measured slope", [l_outer * l_inner, float(slope)]),
            ("ReLU net 4-32-32-1: layers' spectral norms", sigmas),
            (
                "product bound and the largest gradient norm",
                [math.prod(sigmas), float(grad.norm(dim=1).max())],
            ),
        ],
        note="|f(g(x)) - f(g(y))| <= L1 |g(x) - g(y)| <= L1 L2 |x - y|. f = 1.5 tanh (L1 = 1.5), "
        "g(t) = 2t + sin t (L2 = 3 = sup |2 + cos t|), slopes over 20,000 random pairs in "
        "[-3, 3]. For the network, each layer's constant is its largest singular value (power "
        "iteration) and ReLU's is 1, so the product bounds every gradient norm (20,000 inputs).",
    )


@problem(
    "LSGAN at the optimum minimises the Pearson chi-squared divergence",
    topic="gans",
    source="discussion 11, section 1.3 (Mao et al. 2017, theorem 1)",
)
def _lsgan_pearson() -> Answer:
    rows = []
    for name in ("overlapping", "nearly disjoint"):
        x, p, p_g, _ = _densities(name)
        chi2 = pearson_mao(p, p_g, x)
        _, c_mao = lsgan_optimum(p, p_g, x, a=-1.0, b=1.0, c=0.0)
        _, c_01 = lsgan_optimum(p, p_g, x, a=0.0, b=1.0, c=1.0)
        rows.append([name, 2 * c_mao, chi2, abs(2 * c_mao - chi2), 2 * c_01])
    return Answer(
        [
            (
                "pair, 2 C(G) (a,b,c = -1,1,0), chi2_Pearson(p+p_G || 2p_G), |difference|, "
                "2 C(G) (a,b,c = 0,1,1)",
                rows,
            )
        ],
        note="D* = (b p + a p_G)/(p + p_G) minimises the discriminator's least squares pointwise; "
        "then 2 C(G) = int ((b-c)(p + p_G) - (b-a) p_G)^2 / (p + p_G) dx, which is Pearson's "
        "chi^2 between p + p_G and 2 p_G when b - c = 1 and b - a = 2. The library's 0-1 coding "
        "(a, b, c = 0, 1, 1) does not meet the condition: its C(G) is another quantity.",
    )
