r"""The notes' problem 1 (PixelCNN vs. PixelRNN), answered by timing and counting the library's
models (discussion 10, section 2, "Problem 1: PixelCNN vs. Pixel RNN": the main difference;
the run-time of each at training time and at test time; the generation of pixels).

A :class:`~deepnotes.generative.autoregressive.PixelCNN` and a Row LSTM
:class:`~deepnotes.generative.autoregressive.PixelRNN` at the sizes of the experiment
``generative.autoregressive`` (8x8 binary images, 32 channels; about 39k and 43k parameters),
seeded and untrained (run-time does not depend on the weights), are measured here, on random
binary images: the median wall time of one training step (batch :data:`TRAIN_BATCH`, the two
models interleaved), the time of sampling :data:`SAMPLE_BATCH` images and that of one forward
pass over them (the mean of ``D`` passes in a row), the network calls made while
sampling (a forward hook), the sequential depth of one training pass
(:meth:`~deepnotes.generative.autoregressive.PixelModel.sequential_depth`) and its FLOPs per
image (``torch.utils.flop_counter.FlopCounterMode``, 2 per multiply-add). Timings are of this
machine and this moment (no claim rests on them; the experiment makes the claims, with
interleaved epochs and fixed bars); the counts are exact.

Only the sizes, batch sizes, repeats and the seed are chosen here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from deepnotes.core.catalog import Answer, problem
from deepnotes.core.seeding import seeded
from deepnotes.generative.autoregressive import PixelCNN, PixelModel, PixelRNN

SEED = 0
SHAPE = (1, 8, 8)
TRAIN_BATCH = 64
SAMPLE_BATCH = 4
REPEATS = 3


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _training_step(model: PixelModel, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
    loss = model.nll(x).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def _calls_while_sampling(model: PixelModel, n: int) -> int:
    calls = [0]

    def hook(*_: object) -> None:
        calls[0] += 1

    handle = model.register_forward_hook(hook)
    try:
        model.sample(n, torch.Generator().manual_seed(SEED))
    finally:
        handle.remove()
    return calls[0]


def _flops_per_image(model: PixelModel, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / x.shape[0]


@problem(
    "PixelCNN vs. PixelRNN: run-time at training and test time",
    topic="generative",
    source="discussion 10, section 2, problem 1",
)
def _pixelcnn_vs_pixelrnn() -> Answer:
    with seeded(SEED):
        models = {
            "PixelCNN": PixelCNN(SHAPE, channels=32, layers=4, first_kernel=5),
            "PixelRNN": PixelRNN(SHAPE, channels=32, layers=1, first_kernel=5, kernel_size=5),
        }
    g = torch.Generator().manual_seed(SEED)
    x = torch.randint(0, 2, (TRAIN_BATCH, *SHAPE), generator=g).float()
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    for k, m in models.items():  # warm-up
        _training_step(m, opts[k], x)
    step_times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(REPEATS):  # interleaved, so that a change of load hits both
        for k, m in models.items():
            step_times[k].append(_seconds(lambda m=m, k=k: _training_step(m, opts[k], x)))
    step = {k: statistics.median(v) for k, v in step_times.items()}
    small = x[:SAMPLE_BATCH]
    pixels = SHAPE[1] * SHAPE[2]
    forward, sample = {}, {}
    for k, m in models.items():
        m.eval()
        with torch.no_grad():  # one sampling, then D forward passes in a row (the same load)
            sample[k] = _seconds(lambda m=m: m.sample(SAMPLE_BATCH, g))
            forward[k] = _seconds(lambda m=m: [m(small) for _ in range(pixels)]) / pixels
    names = list(models)
    return Answer(
        [
            (
                "main difference",
                "how the context x_<i of pixel i reaches its conditional: PixelCNN through a "
                "stack of masked convolutions (a bounded receptive field, with a blind spot; "
                "no recurrence), PixelRNN through LSTM states carried from row to row (the "
                "Row LSTM's triangle; the diagonal BiLSTM sees all of x_<i)",
            ),
            ("models", names),
            ("parameters", [sum(p.numel() for p in m.parameters()) for m in models.values()]),
            (
                "training: sequential depth of one pass (layer steps, all pixels at once)",
                [m.sequential_depth() for m in models.values()],
            ),
            (
                "training: forward FLOPs per image",
                [_flops_per_image(m, x[:8]) for m in models.values()],
            ),
            (
                f"training: median seconds per step (batch {TRAIN_BATCH})",
                [step[k] for k in names],
            ),
            ("training: PixelRNN step / PixelCNN step", step["PixelRNN"] / step["PixelCNN"]),
            (
                "training, answer",
                "PixelCNN is faster to train: every conditional is known at training time (the "
                "pixels are the data), so masked convolutions compute all D of them in one "
                f"parallel pass, while the Row LSTM walks the {SHAPE[1]} rows one after another "
                "in every layer at similar FLOPs (measured here: a PixelRNN step took "
                f"{step['PixelRNN'] / step['PixelCNN']:.1f} times a PixelCNN step)",
            ),
            (
                f"test: network calls to sample a batch (D = {pixels})",
                [_calls_while_sampling(m, 2) for m in models.values()],
            ),
            (
                f"test: seconds to sample {SAMPLE_BATCH} images",
                [sample[k] for k in names],
            ),
            (
                "test: sampling time / one forward pass",
                [sample[k] / forward[k] for k in names],
            ),
            (
                "test, answer",
                "both are slow: sampling is sequential, one full network pass per pixel "
                f"({pixels} passes), since pixel i needs the drawn x_<i; PixelCNN's advantage "
                "disappears, and each PixelRNN pass still has its row recurrence inside",
            ),
            (
                "generation of pixels",
                "both generate one pixel at a time in raster order, x_i ~ p(x_i | x_<i), "
                "starting from the corner; the Row LSTM computes a whole row's states in one "
                "step when the row is known (training), but in generation the pixels of a row "
                "still depend on each other and are drawn one by one",
            ),
        ],
        note=f"Seeded untrained models of the experiment's sizes on random {SHAPE[1]}x"
        f"{SHAPE[2]} binary images, one CPU process; training steps: median of {REPEATS} "
        "interleaved; sampling timed once, then D forward passes in a row; calls counted by "
        "a forward hook, FLOPs by FlopCounterMode.",
    )
