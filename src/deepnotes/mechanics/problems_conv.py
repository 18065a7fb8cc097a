"""The notes' numeric convolution problems, answered by :mod:`deepnotes.mechanics.conv`.

Discussion 3, problems 4-6 (conv dimensions, convolution as a matrix, the backward pass of a
convolution) and discussion 5, problem 2 (2-D transposed convolution mechanics). Only the notes'
given data are literals; every number shown is computed by the library.
"""

from __future__ import annotations

import numpy as np

from deepnotes.core.catalog import Answer, problem
from deepnotes.mechanics.conv import (
    conv1d_backward,
    conv1d_forward,
    conv2d_matrix,
    conv_matrix,
    conv_output_size,
    conv_parameter_count,
    conv_transpose2d_forward,
)

# discussion 3, problem 4: a 32x32 image with 3 channels, 5x5x3 filters
IMAGE_SIZE, IMAGE_CHANNELS, FILTER_SIZE, N_FILTERS, PAD = 32, 3, 5, 10, 2
# discussion 3, problems 5 and 6: x in R^4, w in R^3; problem 5 pads by 1
X_LENGTH, W_LENGTH, MATRIX_PAD = 4, 3, 1
# discussion 5, problem 2: input and kernel, 1 channel each, padding 0, stride 1
TRANSPOSE_INPUT = [[0, 1], [2, 3]]
TRANSPOSE_KERNEL = [[0, 1], [2, 3]]
TRANSPOSE_STRIDE, TRANSPOSE_PADDING = 1, 0


def _hwc(h: int, w: int, c: int) -> str:
    return f"{h} x {w} x {c}"


@problem("Conv output sizes", topic="mechanics", source="discussion 3, problem 4")
def _conv_shapes() -> Answer:
    no_pad = conv_output_size(IMAGE_SIZE, FILTER_SIZE, stride=1, padding=0)
    padded = conv_output_size(IMAGE_SIZE, FILTER_SIZE, stride=1, padding=PAD)
    one_by_one = conv_output_size(padded, 1, stride=1, padding=0)
    return Answer(
        [
            ("1. 5x5x3 filter, stride 1, padding 0: output (H x W x C)", _hwc(no_pad, no_pad, 1)),
            ("2. zero-pad by 2: output", _hwc(padded, padded, 1)),
            ("3. ten 5x5x3 filters, padding 2: output", _hwc(padded, padded, N_FILTERS)),
            (
                "3. parameters of the ten filters (no biases, as asked)",
                conv_parameter_count(IMAGE_CHANNELS, N_FILTERS, FILTER_SIZE, bias=False),
            ),
            (
                "3. parameters including one bias per filter",
                conv_parameter_count(IMAGE_CHANNELS, N_FILTERS, FILTER_SIZE, bias=True),
            ),
            ("4. spatial size after a 1x1 convolution (stride 1)", f"{one_by_one} x {one_by_one}"),
            (
                "4. parameters of one 1x1 filter on the 10-channel output (no bias)",
                conv_parameter_count(N_FILTERS, 1, 1, bias=False),
            ),
        ],
        note="conv_output_size = floor((n + 2p - k)/s) + 1; a filter spans every input channel, "
        "so each output has one channel per filter. A 1x1 convolution keeps the spatial size and "
        "mixes channels: the same linear map (a small fully-connected layer across channels) "
        "applied at every pixel, used to shrink or grow the channel count cheaply.",
    )


def _symbolic(mat: np.ndarray, symbol: str) -> list[list[str]]:
    """Render a matrix built from the kernel indices 1..K as ``w1``, ``w2``... and ``0``."""
    return [[f"{symbol}{int(v)}" if v else "0" for v in row] for row in mat]


def _vector(indices: np.ndarray, symbol: str) -> str:
    """Render a vector of symbol indices (0 = a zero) as ``[0, dy1, dy2, 0]``."""
    return "[" + ", ".join(f"{symbol}{int(v)}" if v else "0" for v in indices) + "]"


@problem("Convolution as a 4x6 matrix", topic="mechanics", source="discussion 3, problem 5")
def _conv_as_matrix() -> Answer:
    indices = np.arange(1, W_LENGTH + 1, dtype=np.float64)  # w = [1, 2, 3] marks w1, w2, w3
    mat = conv_matrix(indices, X_LENGTH, padding=MATRIX_PAD)  # (4, 6)
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=X_LENGTH), rng.normal(size=W_LENGTH)
    by_matrix = conv_matrix(w, X_LENGTH, padding=MATRIX_PAD) @ np.pad(x, MATRIX_PAD)
    by_conv, _ = conv1d_forward(x[None, None], w[None, None], padding=MATRIX_PAD)
    return Answer(
        [
            ("W (symbolic)", _symbolic(mat, "w")),
            ("W for w = [1, 2, 3]", mat),
            ("shape of W", f"{mat.shape[0]} x {mat.shape[1]}"),
            (
                "max |W x_pad - conv1d(x, w, padding 1)| for a random x, w",
                float(np.max(np.abs(by_matrix - by_conv[0, 0]))),
            ),
        ],
        note="conv_matrix puts the kernel in row i at columns i..i+2 (a banded Toeplitz matrix): "
        "sparse, and every row reuses the same three weights.",
    )


@problem("Backward pass of a 1-D convolution", topic="mechanics", source="discussion 3, problem 6")
def _conv_backward() -> Answer:
    indices = np.arange(1, W_LENGTH + 1, dtype=np.float64)
    mat = conv_matrix(indices, X_LENGTH)  # (2, 4): y = W x, W[j, i] = w_{i - j + 1}
    n_out, n_in = mat.shape
    # dL/dx = W^T dy: dx_i = sum_j W[j, i] dy_j
    dx = [
        " + ".join(f"w{int(mat[j, i])}·dy{j + 1}" for j in range(n_out) if mat[j, i])
        for i in range(n_in)
    ]
    # dL/dw_k = sum of dy_j x_i over the entries W[j, i] that hold w_k
    dw = [
        " + ".join(
            f"x{i + 1}·dy{j + 1}" for j in range(n_out) for i in range(n_in) if mat[j, i] == k
        )
        for k in range(1, W_LENGTH + 1)
    ]
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=X_LENGTH), rng.normal(size=W_LENGTH)
    y, cache = conv1d_forward(x[None, None], w[None, None])
    dy = rng.normal(size=y.shape)
    dx_num, dw_num, _ = conv1d_backward(dy, cache)
    dx_by_matrix = conv_matrix(w, X_LENGTH).T @ dy[0, 0]
    return Answer(
        [
            ("dL/dx (symbolic)", dx),
            ("dL/dw (symbolic)", dw),
            (
                "dL/dx as a convolution (full correlation with the flipped kernel)",
                f"{_vector(np.pad(np.arange(1, n_out + 1), W_LENGTH - 1), 'dy')} * "
                f"{_vector(indices[::-1], 'w')}",
            ),
            (
                "dL/dw as a convolution (correlation of x with dy)",
                f"{_vector(np.arange(1, n_in + 1), 'x')} * "
                f"{_vector(np.arange(1, n_out + 1), 'dy')}",
            ),
            (
                "max |conv1d_backward dx - W^T dy| for a random x, w, dy",
                float(np.max(np.abs(dx_num[0, 0] - dx_by_matrix))),
            ),
            (
                "max |conv1d_backward dw - corr(x, dy)| for the same",
                float(np.max(np.abs(dw_num[0, 0] - conv_matrix(dy[0, 0], X_LENGTH) @ x))),
            ),
        ],
        note="The notes ask for the gradients with respect to x and w (the text says y). "
        "Read off the 2x4 matrix W of y = W x: dx = W^T dy, a full correlation of dy with the "
        "flipped kernel, and dw_k collects dy_j x_i over the entries of W holding w_k, a "
        "correlation of x with dy. conv1d_backward computes both as convolutions.",
    )


@problem("2D transposed convolution mechanics", topic="mechanics", source="discussion 5, problem 2")
def _transposed_conv() -> Answer:
    x = np.asarray(TRANSPOSE_INPUT, dtype=np.float64)
    kernel = np.asarray(TRANSPOSE_KERNEL, dtype=np.float64)
    out, _ = conv_transpose2d_forward(
        x[None, None], kernel[None, None], None, TRANSPOSE_STRIDE, TRANSPOSE_PADDING
    )
    out = out[0, 0]
    mat = conv2d_matrix(kernel, out.shape, TRANSPOSE_STRIDE, TRANSPOSE_PADDING)  # (4, 9)
    by_transpose = (mat.T @ x.ravel()).reshape(out.shape)
    h, k = x.shape[0], kernel.shape[0]
    return Answer(
        [
            ("output", out),
            (
                "output size (H - 1) s - 2p + k",
                f"({h} - 1)*{TRANSPOSE_STRIDE} - 2*{TRANSPOSE_PADDING} + {k} = {out.shape[0]}",
            ),
            ("M^T x, M = 4x9 matrix of the conv by the kernel on a 3x3 input", by_transpose),
        ],
        note="Each input pixel stamps the kernel scaled by its value at its own position "
        "(stride 1) and the overlaps add: 0*K at (0,0), 1*K at (0,1), 2*K at (1,0), 3*K at (1,1). "
        "The same numbers come from the transpose of the convolution's matrix.",
    )
