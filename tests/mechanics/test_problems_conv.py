"""The notes' convolution problems, answered by the library, checked against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import deepnotes.mechanics.problems_conv  # noqa: F401  (registers the problems)
from deepnotes.core.catalog import run_problems


def answers(name: str) -> dict:
    (row,) = run_problems(["mechanics"], [name])
    assert not row.error, row.error
    return dict(row.quantities)


def test_conv_output_sizes_match_torch_layers() -> None:
    got = answers("Conv output sizes")
    image = torch.zeros(1, 3, 32, 32)
    no_pad = torch.nn.Conv2d(3, 1, 5)(image)
    padded = torch.nn.Conv2d(3, 1, 5, padding=2)(image)
    ten = torch.nn.Conv2d(3, 10, 5, padding=2)
    one_by_one = torch.nn.Conv2d(10, 4, 1)(ten(image))
    assert got["1. 5x5x3 filter, stride 1, padding 0: output (H x W x C)"] == "{} x {} x {}".format(
        *no_pad.shape[2:], no_pad.shape[1]
    )
    assert got["2. zero-pad by 2: output"] == "32 x 32 x 1" and padded.shape[2:] == (32, 32)
    assert got["3. ten 5x5x3 filters, padding 2: output"] == "32 x 32 x 10"
    assert got["3. parameters of the ten filters (no biases, as asked)"] == ten.weight.numel()
    assert got["3. parameters including one bias per filter"] == sum(
        p.numel() for p in ten.parameters()
    )
    assert got["4. spatial size after a 1x1 convolution (stride 1)"] == "{} x {}".format(
        *one_by_one.shape[2:]
    )


def test_conv_matrix_problem_is_the_jacobian_of_conv1d() -> None:
    got = answers("Convolution as a 4x6 matrix")
    mat = np.array(got["W for w = [1, 2, 3]"])
    w = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(
        lambda x_pad: F.conv1d(x_pad[None, None], w)[0, 0], torch.zeros(6, dtype=torch.float64)
    )
    np.testing.assert_array_equal(mat, jac.numpy())
    symbolic = got["W (symbolic)"]
    assert symbolic[0] == ["w1", "w2", "w3", "0", "0", "0"]
    assert symbolic[3] == ["0", "0", "0", "w1", "w2", "w3"]
    assert got["shape of W"] == "4 x 6"
    assert got["max |W x_pad - conv1d(x, w, padding 1)| for a random x, w"] < 1e-12


def _evaluate(expression: str, values: dict[str, float]) -> float:
    """Evaluate a rendered sum of products such as 'w2·dy1 + w1·dy2'."""
    return sum(np.prod([values[f] for f in term.split("·")]) for term in expression.split(" + "))


def test_symbolic_conv_gradients_agree_with_autograd() -> None:
    got = answers("Backward pass of a 1-D convolution")
    rng = np.random.default_rng(0)
    x, w, dy = rng.normal(size=4), rng.normal(size=3), rng.normal(size=2)
    values = {f"x{i + 1}": v for i, v in enumerate(x)}
    values |= {f"w{i + 1}": v for i, v in enumerate(w)}
    values |= {f"dy{i + 1}": v for i, v in enumerate(dy)}
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    y = F.conv1d(tx[None, None], tw[None, None])[0, 0]
    tdx, tdw = torch.autograd.grad(y, (tx, tw), torch.tensor(dy))
    dx = [_evaluate(e, values) for e in got["dL/dx (symbolic)"]]
    dw = [_evaluate(e, values) for e in got["dL/dw (symbolic)"]]
    np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dw, tdw.numpy(), rtol=1e-12)
    assert got["dL/dx as a convolution (full correlation with the flipped kernel)"] == (
        "[0, 0, dy1, dy2, 0, 0] * [w3, w2, w1]"
    )
    assert got["max |conv1d_backward dx - W^T dy| for a random x, w, dy"] < 1e-12
    assert got["max |conv1d_backward dw - corr(x, dy)| for the same"] < 1e-12


def test_transposed_convolution_answer_equals_torch() -> None:
    got = answers("2D transposed convolution mechanics")
    notes = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64)[None, None]
    ref = F.conv_transpose2d(notes, notes, stride=1, padding=0)[0, 0].numpy()
    np.testing.assert_array_equal(np.array(got["output"]), ref)
    np.testing.assert_array_equal(ref, [[0, 0, 1], [0, 4, 6], [4, 12, 9]])  # worked by hand
    np.testing.assert_allclose(
        np.array(got["M^T x, M = 4x9 matrix of the conv by the kernel on a 3x3 input"]), ref
    )
    assert got["output size (H - 1) s - 2p + k"].endswith("= 3")


@pytest.mark.parametrize(
    "name",
    [
        "Conv output sizes",
        "Convolution as a 4x6 matrix",
        "Backward pass of a 1-D convolution",
        "2D transposed convolution mechanics",
    ],
)
def test_problem_is_registered_with_its_source(name: str) -> None:
    (row,) = run_problems(["mechanics"], [name])
    assert row.source.startswith("discussion ") and row.note and not row.error
