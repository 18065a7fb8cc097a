r"""The notes' adversarial-example problems (discussion 11, part 2), answered by the library.

- Problem 3 (FGSM's optimal perturbation): for the linear loss :math:`L(x + \delta) = L(x) +
  g^\top \delta`, the maximiser over :math:`\|\delta\|_\infty \le \epsilon` is
  :math:`\epsilon\,\mathrm{sign}(g)` with value :math:`\epsilon \|g\|_1` (each coordinate
  independently at the bound of the sign of :math:`g_i`), and over :math:`\|\delta\|_2 \le
  \epsilon` it is :math:`\epsilon g / \|g\|_2` with value :math:`\epsilon \|g\|_2`
  (Cauchy-Schwarz). :func:`deepnotes.robustness.attacks.steepest_step` is compared with a brute
  force over all :math:`2^{10}` vertices of the box (a linear function on a box peaks at a
  vertex) and with 200,000 points on the sphere.
- Problem 4 (other perturbation sets): a model adversarially trained on
  :math:`\|\delta\|_\infty \le 0.5` is guaranteed on the sets inside that ball only:
  :func:`deepnotes.robustness.training.ball_inside` answers each of the notes' sets, with the
  witness :func:`~deepnotes.robustness.training.farthest_point`; stop signs at night are a
  brightness change whose L-inf distance :math:`(1 - f) \max_i x_i` is measured on a digit with
  :func:`~deepnotes.robustness.attacks.brightness`. The experiment
  ``robustness.other_perturbations`` measures the same question on a trained model.
"""

from __future__ import annotations

import itertools

import torch

from deepnotes.core.catalog import Answer, problem
from deepnotes.data import image_splits
from deepnotes.robustness.attacks import brightness, steepest_step
from deepnotes.robustness.training import ball_inside, enclosing_radius, farthest_point, norm_of

SEED = 0
DIM = 10
"""Dimension of the brute force (2^10 = 1,024 vertices)."""
SPHERE_SAMPLES = 200_000
TRAIN_EPS = 0.5
"""The notes' training ball in problem 4: L-inf, radius 0.5."""
PROBLEM_4_SETS = (("linf", 0.1), ("linf", 1.0), ("l2", 0.5), ("l2", 1.0))
"""The notes' options 1-4 (option 5 is the night-time images)."""
IMAGE_DIM = 64
"""Dimension of the containment answers: an 8x8 digit."""


@problem(
    "FGSM's optimal perturbation for a linear loss (L-inf and L2)",
    topic="robustness",
    source="discussion 11, section 2.2, problem 3",
)
def _fgsm_optimal() -> Answer:
    gen = torch.Generator().manual_seed(SEED)
    g = torch.randn(1, DIM, generator=gen, dtype=torch.float64)
    eps = 0.3
    vertices = torch.tensor(list(itertools.product((-eps, eps), repeat=DIM)), dtype=torch.float64)
    brute_linf = float((vertices @ g[0]).max())
    fgsm_linf = float(steepest_step(g, eps, "linf")[0] @ g[0])
    sphere = torch.randn(SPHERE_SAMPLES, DIM, generator=gen, dtype=torch.float64)
    sphere = eps * sphere / sphere.norm(dim=1, keepdim=True)
    sampled_l2 = float((sphere @ g[0]).max())
    fgsm_l2 = float(steepest_step(g, eps, "l2")[0] @ g[0])
    return Answer(
        [
            (
                "L-inf: g.(eps sign g), max over the 1,024 vertices, eps ||g||_1",
                [fgsm_linf, brute_linf, eps * float(g.abs().sum())],
            ),
            (
                "L2: g.(eps g/||g||), max over 200,000 sphere points, eps ||g||_2",
                [fgsm_l2, sampled_l2, eps * float(g.norm())],
            ),
        ],
        note=f"g ~ N(0, I_{DIM}) (seed {SEED}), eps = {eps}. The linearised loss gain g.delta is "
        "separable over the box, so each coordinate sits at eps sign(g_i): value eps ||g||_1, "
        "attained by steepest_step and by the best vertex. Over the L2 ball Cauchy-Schwarz "
        "gives g.delta <= eps ||g||_2 with equality at eps g / ||g||_2; every sampled sphere "
        "point stays below it.",
    )


@problem(
    "Robustness to other perturbation sets after L-inf adversarial training at 0.5",
    topic="robustness",
    source="discussion 11, section 2.3, problem 4",
)
def _other_perturbations() -> Answer:
    rows = []
    for norm, radius in PROBLEM_4_SETS:
        witness = farthest_point(norm, radius, "linf", IMAGE_DIM)
        rows.append(
            [
                f"{norm} <= {radius:g}",
                ball_inside(norm, radius, "linf", TRAIN_EPS, IMAGE_DIM),
                enclosing_radius(norm, radius, "linf", IMAGE_DIM),
                float(witness.abs().max()),
            ]
        )
    splits = image_splits("digits", seed=SEED)
    digit = splits.test.tensors[0][:1]
    night = brightness(digit, 0.3)
    return Answer(
        [
            (
                "set, inside the L-inf 0.5 ball (robust), its L-inf radius, witness's L-inf norm",
                rows,
            ),
            (
                "stop signs at night: L-inf distance of a digit dimmed to 0.3 from the original",
                float(norm_of(night - digit, "linf")[0]),
            ),
        ],
        note="Training on ||delta||_inf <= 0.5 covers exactly the sets inside that ball. "
        "||delta||_inf <= ||delta||_2, so the L2 ball of 0.5 is inside (robust: yes) and the L-inf "
        "ball of 0.1 too (yes); the L-inf ball of 1.0 and the L2 ball of 1.0 contain points of "
        "L-inf norm 1.0 (the vertex 1.0 * ones, the point 1.0 * e_1) outside it (no guarantee). "
        "Night images are a distribution shift, not a small additive perturbation of a day "
        "image: dimming a digit to 30% moves its brightest pixel by 0.7 (no).",
    )
