"""FGSM and PGD-40: deepnotes' :mod:`deepnotes.robustness.attacks` vs torchattacks 3.5.1.

Run: ``python benchmarks/attacks_vs_torchattacks.py [--threads 1] [--repeats 21] [--device cuda]``.
Not part of the test suite; needs ``pip install --no-deps torchattacks`` (its declared
torchvision dependency is not needed for these attacks and would pull another torch).

The anchor (issue 16, measured before it): a digits MLP, 297 test examples, eps 0.1:
torchattacks 1 ms FGSM, 10 ms PGD-40; accuracy 0.909 -> 0.293 (FGSM) / 0.256 (PGD). Goal: the
same adversarial accuracies (the same algorithm: identical), and time per batch at most
torchattacks'.

Protocol: the standard digits MLP of :func:`deepnotes.robustness.models.build_classifier`
(64 -> 128 -> 128 -> 10, ReLU), trained here once with the core Trainer through
:func:`~deepnotes.robustness.models.fit_classifier` (seed fixed, a throwaway run folder); all
test digits in one batch; L-inf eps 0.1; PGD-40 with step 2.5 eps / 40 and no random start in
both libraries. torchattacks takes the gradient of the batch-MEAN cross-entropy, deepnotes of
the sum (each row is the example's own gradient): the sign step makes the scale irrelevant for
L-inf (L2 is not compared: torchattacks' PGDL2 normalises differently). Agreement is per example
(same prediction on both adversarial batches) and the largest pixel difference of the two
adversarial batches. Time: the two libraries' calls are interleaved ``--repeats`` times after a
warm-up, each timed (CUDA synchronised), the median reported; ratio = deepnotes / torchattacks.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchattacks

from deepnotes.core.context import RunContext
from deepnotes.data import image_splits
from deepnotes.robustness.attacks import fgsm, pgd
from deepnotes.robustness.models import ClassifierSettings, fit_classifier


def _timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, torch.Tensor]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) * 1000.0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext("bench", args.seed, device, Path(tmp), show_progress=False)
        splits = image_splits("digits", seed=args.seed)
        fitted = fit_classifier(ClassifierSettings("mlp"), ctx, splits, tag="mlp")
    model = fitted.model.eval()
    x, y = (t.to(device) for t in splits.test.tensors)
    eps, steps = args.eps, args.steps
    alpha = 2.5 * eps / steps

    ours: dict[str, Callable[[], torch.Tensor]] = {
        "FGSM": lambda: fgsm(model, x, y, eps),
        f"PGD-{steps}": lambda: pgd(
            model, x, y, eps, steps=steps, step_size=alpha, random_start=False
        ),
    }
    ta_fgsm = torchattacks.FGSM(model, eps=eps)
    ta_pgd = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    theirs: dict[str, Callable[[], torch.Tensor]] = {
        "FGSM": lambda: ta_fgsm(x, y),
        f"PGD-{steps}": lambda: ta_pgd(x, y),
    }

    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, torch.get_num_threads() = {torch.get_num_threads()}"
    )
    print(
        f"digits MLP (test acc {fitted.test_acc:.3f}), {len(y)} test digits in one batch, "
        f"L-inf eps {eps:g}, PGD step {alpha:g}, no random start; {where}; "
        f"torchattacks {torchattacks.__version__}; median of {args.repeats} interleaved repeats"
    )
    print(f"clean accuracy {clean:.4f}")
    print()
    print(
        "| attack | deepnotes acc | torchattacks acc | agreement | max abs diff "
        "| deepnotes ms | torchattacks ms | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in ours:
        for fn in (ours[name], theirs[name]):  # warm-up
            fn()
        times: dict[str, list[float]] = {"ours": [], "theirs": []}
        for _ in range(args.repeats):
            t, adv_ours = _timed(ours[name], device)
            times["ours"].append(t)
            t, adv_theirs = _timed(theirs[name], device)
            times["theirs"].append(t)
        with torch.no_grad():
            pred_ours = model(adv_ours).argmax(1)
            pred_theirs = model(adv_theirs).argmax(1)
        acc_ours = float((pred_ours == y).float().mean())
        acc_theirs = float((pred_theirs == y).float().mean())
        agree = float((pred_ours == pred_theirs).float().mean())
        diff = float((adv_ours - adv_theirs).abs().max())
        ms_ours, ms_theirs = statistics.median(times["ours"]), statistics.median(times["theirs"])
        print(
            f"| {name} | {acc_ours:.4f} | {acc_theirs:.4f} | {agree:.4f} | {diff:.2e} "
            f"| {ms_ours:.2f} | {ms_theirs:.2f} | {ms_ours / ms_theirs:.2f} |"
        )
        verdict = "identical" if acc_ours == acc_theirs else "DIFFERENT"
        print(f"  {name}: accuracies {verdict}; time ratio {ms_ours / ms_theirs:.2f}")


if __name__ == "__main__":
    main()
