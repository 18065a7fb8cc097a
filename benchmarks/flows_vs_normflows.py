"""RealNVP on two moons: deepnotes' :func:`~deepnotes.generative.flows.realnvp` vs normflows'.

Run: ``python benchmarks/flows_vs_normflows.py [--steps 2000] [--threads 1] [--device cuda]``.
Not part of the test suite; needs ``pip install normflows`` (the ``.[bench]`` extra). The
default run trains both models 2,000 steps each, a few minutes on one CPU thread; ``--quick``
does 300. On a shared, busy CPU pass ``--threads 1`` (see benchmarks/attention.py).

The anchor (issue 14, measured before it): normflows' RealNVP, 32 blocks, 141k parameters,
batch 512: 26 ms per step, test NLL 0.297 nats after 2,000 steps on moons. Goal: deepnotes'
ms per step <= normflows' at equal or lower test NLL after equal steps.

Equal architecture: 32 coupling blocks of alternating halves, two hidden ReLU layers each, a
standard-normal base, output layers initialised at zero, about 141k parameters each.
normflows' block (its README's RealNVP) is ``AffineCouplingBlock(MLP([1, 64, 64, 2]))`` then
``Permute(2, "swap")``: one network gives the shift and the log-scale (``exp`` scale map, no
bound). deepnotes' coupling has separate scale and shift networks (the library's design,
:mod:`deepnotes.generative.flows`), ``[1, 45, 45, 1]`` each plus the tanh bound's per-coordinate
factor, so that the parameter counts match to 0.1% (``--hidden`` changes it).

Protocol: the same Adam (``--lr`` 5e-4, weight decay 1e-5, normflows' example) and the same
minibatches of fresh moons (noise 0.05, :func:`deepnotes.data.toy2d.moons`) for both; the steps
of the two models are interleaved one by one, each timed (CUDA synchronised), and the median is
reported (fair under load from other processes). Test NLL: mean ``-log p(x)`` in nats over
``--test-size`` held-out points (their own seed), with its standard error. Ratio = deepnotes /
normflows.
"""

from __future__ import annotations

import argparse
import statistics
import time

import normflows as nf
import torch
from torch import nn

from deepnotes.core import stats
from deepnotes.data.toy2d import moons
from deepnotes.generative.flows import parameter_count, realnvp


def normflows_realnvp(blocks: int, hidden: int) -> nn.Module:
    """normflows' README RealNVP on 2-D data."""
    flows: list[nn.Module] = []
    for _ in range(blocks):
        param_map = nf.nets.MLP([1, hidden, hidden, 2], init_zeros=True)
        flows.append(nf.flows.AffineCouplingBlock(param_map))
        flows.append(nf.flows.Permute(2, mode="swap"))
    base = nf.distributions.base.DiagGaussian(2, trainable=False)
    return nf.NormalizingFlow(base, flows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--steps", type=int, default=None, help="default 2000 (300 with --quick)")
    parser.add_argument("--blocks", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=45, help="deepnotes' s and t width")
    parser.add_argument("--theirs-hidden", type=int, default=64, help="normflows' MLP width")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--test-size", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="300 steps")
    args = parser.parse_args()
    steps = args.steps if args.steps is not None else (300 if args.quick else 2000)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, torch.get_num_threads() = {torch.get_num_threads()}"
    )

    torch.manual_seed(args.seed)
    models = {
        "deepnotes realnvp": realnvp(2, args.blocks, args.hidden, depth=2).to(device),
        "normflows RealNVP": normflows_realnvp(args.blocks, args.theirs_hidden).to(device),
    }
    losses = {
        "deepnotes realnvp": lambda x: -models["deepnotes realnvp"].log_prob(x).mean(),
        "normflows RealNVP": lambda x: models["normflows RealNVP"].forward_kld(x),
    }
    optimisers = {
        name: torch.optim.Adam(m.parameters(), lr=args.lr, weight_decay=1e-5)
        for name, m in models.items()
    }
    test = moons(args.test_size, seed=args.seed + 1).to(device)
    data = torch.Generator().manual_seed(args.seed + 2)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    print(
        f"torch {torch.__version__}, normflows {nf.__version__} on {where}; moons noise 0.05, "
        f"batch {args.batch}, {steps} steps, Adam lr {args.lr:g}, {args.blocks} blocks"
    )
    times: dict[str, list[float]] = {name: [] for name in models}
    t0 = time.perf_counter()
    for _ in range(steps):
        x = moons(args.batch, seed=data).to(device)  # the same batch for both
        for name in models:
            sync()
            start = time.perf_counter()
            loss = losses[name](x)
            optimisers[name].zero_grad()
            loss.backward()
            optimisers[name].step()
            sync()
            times[name].append(time.perf_counter() - start)
    wall = time.perf_counter() - t0

    rows = []
    for name, model in models.items():
        with torch.no_grad():
            nll = -model.log_prob(test)  # both classes have log_prob(x) -> (N,)
        mean, se = stats.mean_se(nll.double().cpu().numpy())
        ms = statistics.median(times[name]) * 1e3
        rows.append((name, parameter_count(model), ms, mean, se))
    ref = rows[1]
    print()
    print("| implementation | parameters | ms / step (median) | ratio | test NLL (nats) +- SE |")
    print("|---|---:|---:|---:|---:|")
    for name, params, ms, mean, se in rows:
        print(f"| {name} | {params:,} | {ms:.2f} | {ms / ref[2]:.2f} | {mean:.4f} +- {se:.4f} |")
    ours = rows[0]
    goal = ours[2] <= ref[2] and ours[3] <= ref[3]
    print(
        f"\ngoal (ms/step <= normflows' at equal or lower NLL after {steps} steps): "
        f"{'met' if goal else 'NOT met'}; anchor: normflows 26 ms, NLL 0.297 after 2000 steps; "
        f"total {wall:.1f} s"
    )


if __name__ == "__main__":
    main()
