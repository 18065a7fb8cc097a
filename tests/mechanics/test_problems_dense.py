"""The dense-network problems are answered, and the answers agree with torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import deepnotes.mechanics.problems_dense as dense
from deepnotes.core.catalog import ProblemRow, problems, run_problems

RELU = "ReLU forward and backward on the notes' 4x4 matrices"
SIGMOID = "Sigmoid derivative at x = 0.5"
SOFTMAX = "Softmax derivative at z = (1, 2, 0.5)"


def _answer(name: str) -> dict[str, Any]:
    (row,) = run_problems(["mechanics"], [name])
    assert isinstance(row, ProblemRow)
    assert not row.error, row.error
    assert row.note
    return dict(row.quantities)


def test_the_dense_problems_are_registered_with_their_sources() -> None:
    ours = {p.name: p.source for p in problems(["mechanics"]) if p.fn.__module__ == dense.__name__}
    assert set(ours) == {RELU, SIGMOID, SOFTMAX}
    assert ours[RELU].startswith("discussion 4")
    assert ours[SIGMOID].startswith("discussion 1, problem 3")
    assert ours[SOFTMAX].startswith("discussion 1, problem 4")


def test_relu_answer_equals_torch_relu_and_its_autograd() -> None:
    answer = _answer(RELU)
    x = torch.tensor(dense.RELU_X, dtype=torch.float64, requires_grad=True)
    y = torch.relu(x)
    (dx,) = torch.autograd.grad(y, x, torch.tensor(dense.RELU_DY, dtype=torch.float64))
    np.testing.assert_array_equal(answer["y = ReLU(x)"], y.detach().numpy())
    np.testing.assert_array_equal(answer["dL/dx = dL/dy * 1[x > 0]"], dx.numpy())


def test_sigmoid_answer_equals_autograd_and_finite_differences_agree() -> None:
    answer = _answer(SIGMOID)
    x = torch.tensor(dense.SIGMOID_POINT, dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(torch.sigmoid(x), x)
    assert abs(answer["s = sigma(x)"] - torch.sigmoid(x).item()) < 1e-15
    assert abs(answer["sigma'(x) = s (1 - s)"] - auto.item()) < 1e-15
    assert abs(answer["sigma'(x) by central differences, h = 1e-6"] - auto.item()) < 1e-9
    assert answer["absolute difference"] < 1e-9


def test_softmax_answer_equals_the_autograd_jacobian_in_the_notes_convention() -> None:
    answer = _answer(SOFTMAX)
    z = torch.tensor(dense.SOFTMAX_POINT, dtype=torch.float64)
    auto = torch.autograd.functional.jacobian(lambda t: torch.softmax(t, dim=0), z).T.numpy()
    closed = np.array(answer["Jacobian p_i (delta_ij - p_j)"])
    numeric = np.array(
        answer["Jacobian by central differences, h = 1e-6 (entry (i, j) = dp_j/dz_i)"]
    )
    np.testing.assert_allclose(answer["p = softmax(z)"], torch.softmax(z, 0).numpy(), rtol=1e-15)
    np.testing.assert_allclose(closed, auto, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(numeric, auto, atol=1e-9)
    assert answer["max absolute difference"] < 1e-9
