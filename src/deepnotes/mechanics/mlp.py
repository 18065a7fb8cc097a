"""The notes' 3-layer network with inverted dropout, and the heavy-ball momentum step, in NumPy.

Notes: discussion 4, section "Dropout": ``H1 = max(0, W1 X + b1)``, ``U1 = (rand < p) / p``,
``H1 *= U1``, the same for ``H2``, ``out = W3 H2 + b3``; ``predict`` is the same network
without the masks. Completed here with its backward pass (the :mod:`deepnotes.mechanics` layers)
and the momentum update of discussion 2: ``v = m v + g``, ``theta -= alpha v``.

Batch-first: inputs (N, D), weights (fan_out, fan_in) as in the notes' ``W X``.

Example:
    >>> rng = np.random.default_rng(0)
    >>> net = NumpyMLP((64, 128, 64, 10), keep=0.8, rng=rng)
    >>> x, y = rng.normal(size=(32, 64)), rng.integers(0, 10, 32)
    >>> velocity = {}
    >>> loss, grads = net.loss_and_grads(x, y)
    >>> sgd_momentum_step(net.params, grads, velocity, lr=0.05, momentum=0.9)
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from deepnotes.mechanics.activations import relu_backward, relu_forward
from deepnotes.mechanics.layers import affine_backward, affine_forward
from deepnotes.mechanics.losses import softmax_cross_entropy
from deepnotes.mechanics.normalization import dropout_backward, dropout_forward

Params = dict[str, np.ndarray]
"""Parameters (or gradients, or velocities) by name: ``W1, b1, W2, b2, W3, b3``."""


class NumpyMLP:
    """The notes' 3-layer ReLU network with inverted dropout after each hidden layer.

    Arguments:
        sizes: (D, H1, H2, C).
        keep: the probability p of keeping a hidden unit (the notes' convention).
        rng: generator for the initialisation (He: N(0, 2 / fan_in)) and the dropout masks.
    """

    def __init__(self, sizes: tuple[int, int, int, int], keep: float, rng: np.random.Generator):
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        if len(sizes) != 4 or min(sizes) < 1:
            raise ValueError(f"sizes must be 4 positive widths (D, H1, H2, C), got {sizes}")
        self.keep = keep
        self.rng = rng
        self.params: Params = {}
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), start=1):
            self.params[f"W{i}"] = rng.normal(0.0, math.sqrt(2.0 / fan_in), (fan_out, fan_in))
            self.params[f"b{i}"] = np.zeros(fan_out)
        self.last_masks: list[np.ndarray | None] = []

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        """Training-mode forward (fresh dropout masks) and backward; masks kept in last_masks."""
        p = self.params
        a1, c_a1 = affine_forward(x, p["W1"], p["b1"])  # (N, H1)
        h1, c_r1 = relu_forward(a1)
        h1, c_d1 = dropout_forward(h1, self.keep, self.rng)  # H1 *= U1
        a2, c_a2 = affine_forward(h1, p["W2"], p["b2"])  # (N, H2)
        h2, c_r2 = relu_forward(a2)
        h2, c_d2 = dropout_forward(h2, self.keep, self.rng)  # H2 *= U2
        out, c_a3 = affine_forward(h2, p["W3"], p["b3"])  # (N, C)
        loss, dout = softmax_cross_entropy(out, y)
        self.last_masks = [c_d1.mask, c_d2.mask]
        grads: Params = {}
        dh2, grads["W3"], grads["b3"] = affine_backward(dout, c_a3)
        da2 = relu_backward(dropout_backward(dh2, c_d2), c_r2)
        dh1, grads["W2"], grads["b2"] = affine_backward(da2, c_a2)
        da1 = relu_backward(dropout_backward(dh1, c_d1), c_r1)
        _, grads["W1"], grads["b1"] = affine_backward(da1, c_a1)
        return loss, grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Test-time forward: the same network without dropout masks; returns logits (N, C)."""
        p = self.params
        h1 = np.maximum(0.0, x @ p["W1"].T + p["b1"])  # (N, H1)
        h2 = np.maximum(0.0, h1 @ p["W2"].T + p["b2"])  # (N, H2)
        return h2 @ p["W3"].T + p["b3"]  # (N, C)


def sgd_momentum_step(
    params: Params, grads: Params, velocity: Params, lr: float, momentum: float
) -> None:
    """Heavy-ball momentum in place: ``v = m v + g``; ``theta -= alpha v`` (notes, discussion 2)."""
    for name, g in grads.items():
        velocity[name] = momentum * velocity.get(name, np.zeros_like(g)) + g
        params[name] -= lr * velocity[name]
