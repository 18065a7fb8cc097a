"""The notes' numeric problems on activations, answered by :mod:`deepnotes.mechanics`.

Discussion 4, section 6, problem "(Review) Forward and Backward Pass for ReLU" (the two 4x4
matrices); discussion 1, problems 3 and 4 (the sigmoid and softmax derivatives, evaluated at a
point and confirmed by finite differences). Only the notes' given data and the chosen evaluation
points are literals; every number shown is computed by the library.
"""

from __future__ import annotations

import numpy as np

from deepnotes.core.catalog import Answer, problem
from deepnotes.mechanics.activations import (
    relu_backward,
    relu_forward,
    sigmoid_derivative,
    sigmoid_forward,
    softmax_forward,
    softmax_jacobian,
)
from deepnotes.mechanics.gradcheck import numerical_gradient, numerical_jacobian

# discussion 4, "(Review) Forward and Backward Pass for ReLU": the input x and dL/dy
RELU_X = [
    [1.5, 2.2, 1.3, 6.7],
    [4.3, -0.3, -0.2, 4.9],
    [-4.5, 1.4, 5.5, 1.8],
    [0.1, -0.5, -0.1, 2.2],
]
RELU_DY = [
    [4.5, 1.2, 2.3, 1.3],
    [-1.3, -6.3, 4.1, -2.9],
    [-0.5, 1.2, 3.5, 1.2],
    [-6.1, 0.5, -4.1, -3.2],
]
# evaluation points chosen here (the notes ask for the formulas, not for values)
SIGMOID_POINT = 0.5
SOFTMAX_POINT = [1.0, 2.0, 0.5]
STEP = 1e-6


@problem(
    "ReLU forward and backward on the notes' 4x4 matrices",
    topic="mechanics",
    source="discussion 4, section 6, 'Forward and Backward Pass for ReLU'",
)
def _relu_4x4() -> Answer:
    y, cache = relu_forward(RELU_X)
    dx = relu_backward(RELU_DY, cache)
    return Answer(
        [("y = ReLU(x)", y), ("dL/dx = dL/dy * 1[x > 0]", dx)],
        note="relu_forward / relu_backward: the gradient passes where x > 0 and is 0 elsewhere",
    )


@problem(
    "Sigmoid derivative at x = 0.5",
    topic="mechanics",
    source="discussion 1, problem 3, 'Derivative of Sigmoid'",
)
def _sigmoid_at_point() -> Answer:
    x = np.array([SIGMOID_POINT])
    s, _ = sigmoid_forward(x)
    closed = sigmoid_derivative(x)
    numeric = numerical_gradient(lambda v: float(sigmoid_forward(v)[0].sum()), x, STEP)
    return Answer(
        [
            ("x", float(x[0])),
            ("s = sigma(x)", float(s[0])),
            ("sigma'(x) = s (1 - s)", float(closed[0])),
            ("sigma'(x) by central differences, h = 1e-6", float(numeric[0])),
            ("absolute difference", float(abs(closed[0] - numeric[0]))),
        ],
        note="sigmoid_derivative (closed form) beside gradcheck.numerical_gradient",
    )


@problem(
    "Softmax derivative at z = (1, 2, 0.5)",
    topic="mechanics",
    source="discussion 1, problem 4, 'Derivative of Softmax (Challenge)'",
)
def _softmax_at_point() -> Answer:
    z = np.array(SOFTMAX_POINT)
    p, _ = softmax_forward(z)
    closed = softmax_jacobian(z)
    numeric = numerical_jacobian(lambda v: softmax_forward(v)[0], z, STEP)
    return Answer(
        [
            ("z", z),
            ("p = softmax(z)", p),
            ("Jacobian p_i (delta_ij - p_j)", closed),
            ("Jacobian by central differences, h = 1e-6 (entry (i, j) = dp_j/dz_i)", numeric),
            ("max absolute difference", float(np.max(np.abs(closed - numeric)))),
        ],
        note="softmax_jacobian (closed form) beside gradcheck.numerical_jacobian",
    )
