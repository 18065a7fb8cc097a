"""Conv2d forward + backward: explicit loops vs im2col (NumPy) vs torch ``F.conv2d`` on the CPU.

Run: ``python benchmarks/conv.py [--repeats 20]``. Not part of the test suite.

Workload: batch 64, 3 -> 16 channels, 32x32 input, 3x3 kernel, stride 1, padding 1 (a CIFAR-like
first layer). Each timing is one forward and one backward pass (input, weight and bias
gradients); the table shows the median over ``--repeats`` runs after one warm-up run, the
implementations interleaved round by round (fairer on a shared, busy machine).

Like is compared with like: every row is float64 unless it says float32 (torch's float32 row is
there for reference only -- it uses a different, vectorised kernel). torch runs with its default
number of intra-op threads (printed); NumPy's BLAS uses its own default.

The naive loops are far too slow for batch 64: they are timed on a batch of ``--naive-batch``
(default 2) and the time is scaled linearly to 64 (the loops are linear in the batch).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.mechanics.conv import (
    conv2d_backward,
    conv2d_backward_im2col,
    conv2d_forward,
    conv2d_naive,
    conv2d_naive_backward,
)

N, C_IN, C_OUT, SIZE, K, STRIDE, PADDING = 64, 3, 16, 32, 3, 1, 1


def median_seconds(steps: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each step, the steps interleaved (one of each per round) so that load
    from other processes on a shared machine hits every implementation alike."""
    for step in steps.values():
        step()  # warm-up: allocations, BLAS and OpenMP thread start-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--naive-batch", type=int, default=2)
    parser.add_argument("--naive-repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, C_IN, SIZE, SIZE))
    w = rng.normal(size=(C_OUT, C_IN, K, K))
    b = rng.normal(size=C_OUT)
    out_shape = (N, C_OUT, SIZE, SIZE)
    dout = rng.normal(size=out_shape)

    def im2col_step() -> None:
        _, cache = conv2d_forward(x, w, b, STRIDE, PADDING)
        conv2d_backward_im2col(dout, cache)

    def conv_form_step() -> None:
        _, cache = conv2d_forward(x, w, b, STRIDE, PADDING)
        conv2d_backward(dout, cache)

    xn, doutn = x[: args.naive_batch], dout[: args.naive_batch]

    def naive_step() -> None:
        conv2d_naive(xn, w, b, STRIDE, PADDING)
        conv2d_naive_backward(doutn, xn, w, STRIDE, PADDING)

    def torch_step(dtype: torch.dtype) -> Callable[[], None]:
        tx = torch.tensor(x, dtype=dtype, requires_grad=True)
        tw = torch.tensor(w, dtype=dtype, requires_grad=True)
        tb = torch.tensor(b, dtype=dtype, requires_grad=True)
        tdout = torch.tensor(dout, dtype=dtype)

        def step() -> None:
            y = F.conv2d(tx, tw, tb, stride=STRIDE, padding=PADDING)
            torch.autograd.grad(y, (tx, tw, tb), tdout)

        return step

    medians = median_seconds(
        {
            "torch F.conv2d, float64": torch_step(torch.float64),
            "torch F.conv2d, float32 (reference)": torch_step(torch.float32),
            "im2col fwd + im2col bwd, float64": im2col_step,
            "im2col fwd + conv-form bwd, float64": conv_form_step,
        },
        args.repeats,
    )
    rows = list(medians.items())
    scale = N / args.naive_batch
    naive = median_seconds({"naive": naive_step}, args.naive_repeats)["naive"] * scale
    rows.append((f"naive loops, float64 (batch {args.naive_batch}, x{scale:g})", naive))

    torch64 = rows[0][1]
    print(
        f"conv2d forward+backward: x ({N}, {C_IN}, {SIZE}, {SIZE}), w ({C_OUT}, {C_IN}, {K}, {K}),"
        f" stride {STRIDE}, padding {PADDING}"
    )
    print(
        f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()} "
        f"(default), NumPy {np.__version__}; median of {args.repeats} runs "
        f"({args.naive_repeats} for the naive loops)"
    )
    width = max(len(name) for name, _ in rows)
    print(f"{'implementation':<{width}}  {'median ms':>10}  {'/ torch f64':>11}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds * 1e3:>10.2f}  {seconds / torch64:>11.2f}")
    im2col = rows[2][1]
    print(
        f"im2col / torch (float64): {im2col / torch64:.2f}x; naive / torch: {naive / torch64:.0f}x"
    )


if __name__ == "__main__":
    main()
