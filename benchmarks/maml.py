"""Second-order MAML on sinusoids: milliseconds per meta-iteration, loop over tasks vs vmap.

Run: ``python benchmarks/maml.py [--threads 1] [--iterations 2000] [--repeats 7]``.
Not part of the test suite.

The anchor (issue 18, measured before it): learn2learn needed 4.2 ms per meta-iteration of
second-order MAML in this setup. learn2learn does not build on Python 3.11, so it cannot be
installed next to the project and is not run here: its number is quoted. Goal: <= 4.2 ms at
equal MSE after equal iterations.

Setup (Finn et al. 2017, section 5.1, with the issue's batch): a 1-40-40-1 ReLU MLP, 5 tasks per
meta-batch, K = 10 support and 10 query points, one inner step of size 0.01, Adam 1e-3. Three
implementations of the same meta-loss (:class:`deepnotes.meta.maml.MAML`):

- ``loop``: :meth:`MAML.meta_loss`, one :func:`~deepnotes.meta.maml.adapt` per task
  (``torch.autograd.grad(create_graph=True)``);
- ``vmap``: :meth:`MAML.meta_loss_batched` with ``path="vmap"``, ``torch.func.grad`` inside
  ``torch.func.vmap`` over the stacked tasks;
- ``bmm``: :meth:`MAML.meta_loss_batched` with ``path="bmm"``, one copy of the MLP's parameters
  per task and batched matrix products (the library's default for plain MLPs, ``"auto"``).

Time: a meta-iteration is drawing the tasks, the meta-loss, backward and the Adam step; after a
warm-up, ``--repeats`` blocks of ``--block`` iterations alternate between the three, and the
median block time per iteration is reported. Quality: each implementation trains
``--iterations`` meta-iterations from the same initialisation on the same task stream, then its
test MSE after one step on K = 10 points is measured on 500 test tasks (100 query points each).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from deepnotes.core.seeding import seeded
from deepnotes.data.tasks import sample_sinusoids
from deepnotes.meta.maml import MAML
from deepnotes.meta.regression import evaluate_curves, mlp

LEARN2LEARN_MS = 4.2
"""learn2learn's ms per meta-iteration in this setup (issue 18, measured before it)."""


def _trainer(mode: str, seed: int, tasks: int, shots: int) -> Callable[[], float]:
    """One meta-iteration of ``mode`` ("loop", "vmap" or "bmm") on its own model and tasks."""
    with seeded(seed):
        net = mlp((40, 40))
    learner = MAML(net, inner_lr=0.01, inner_steps=1, loss_fn=F.mse_loss)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(seed + 1)

    def step() -> float:
        xs, ys, xq, yq, _, _ = sample_sinusoids(tasks, shots, data)
        if mode == "loop":
            loss = learner.meta_loss(list(zip(xs, ys, xq, yq, strict=True)))
        else:
            loss = learner.meta_loss_batched(xs, ys, xq, yq, path=mode)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    step.net = net  # type: ignore[attr-defined]
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = ("loop", "vmap", "bmm")

    timers = {m: _trainer(m, args.seed, args.tasks, args.shots) for m in modes}
    for m in modes:
        for _ in range(20):
            timers[m]()
    blocks: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for m in modes:
            t0 = time.perf_counter()
            for _ in range(args.block):
                timers[m]()
            blocks[m].append((time.perf_counter() - t0) * 1000.0 / args.block)

    test = sample_sinusoids(500, args.shots, torch.Generator().manual_seed(10_000), queries=100)
    mse = {}
    for m in modes:
        step = _trainer(m, args.seed, args.tasks, args.shots)
        for _ in range(args.iterations):
            step()
        curves = evaluate_curves(step.net, test[:4], inner_lr=0.01, steps=1)  # type: ignore[attr-defined]
        mse[m] = float(curves[:, 1].mean())

    print(
        f"second-order MAML, {args.tasks} tasks x K = {args.shots}, 1-40-40-1 MLP, "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"{'implementation':<16}{'ms / meta-iteration':>22}{f'MSE after {args.iterations} it.':>24}"
    )
    for m in modes:
        spread = f"[{min(blocks[m]):.2f}-{max(blocks[m]):.2f}]"
        print(f"{m:<16}{statistics.median(blocks[m]):>10.2f} {spread:<11}{mse[m]:>24.3f}")
    print(f"{'learn2learn':<16}{LEARN2LEARN_MS:>10.2f} (quoted, not installable on Python 3.11)")


if __name__ == "__main__":
    main()
