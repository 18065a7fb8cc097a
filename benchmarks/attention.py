"""Attention, LSTM and greedy decoding: our hand-written sequence modules vs torch's, timed.

Run: ``python benchmarks/attention.py [--quick] [--device cuda] [--threads N] [--repeats 10]``.
Not part of the test suite. The default run takes about a minute on a 2-core CPU, ``--quick``
(two lengths, fewer repeats; still 256 decoding tokens) about 20 s. On a shared, busy CPU pass
``--threads 1``: torch's intra-op threads then stop fighting other processes for the cores (with
2 threads on a loaded 2-core machine timings were seen to inflate 10-300x, erratically).

Three measurements, float32, all in one run:

1. **Multi-head attention, forward + backward** (gradients of the input and every parameter),
   self-attention, no mask, batch 8, ``d_model`` 128, 4 heads, at several sequence lengths
   (``--lengths``, default 64 128 256 512). Rows: our
   :class:`deepnotes.sequence.attention.MultiHeadAttention` (the hand-written softmax path,
   which also returns the weights), the same with ``use_sdpa=True``,
   ``nn.MultiheadAttention(batch_first=True)`` with ``need_weights=False`` (the reference: its
   usual training call, which attends through ``F.scaled_dot_product_attention``) and with
   ``need_weights=True`` (which, like our default path, materialises the weights), and bare
   ``F.scaled_dot_product_attention`` on pre-projected ``q, k, v`` of shape ``(B, H, L, D/H)``
   (no projections: a floor, not a like-for-like row). Ratio = time / reference.
2. **LSTM, forward + backward**: our :class:`deepnotes.sequence.recurrent.LSTM` (a Python loop
   over the time steps) vs ``nn.LSTM(batch_first=True)`` (fused kernel), batch 32, length 100,
   input 32, hidden 64.
3. **Greedy decoding** with :meth:`deepnotes.sequence.transformer.Transformer.greedy_decode` in
   eval mode (``d_model`` 64, 4 heads, 2 encoder + 2 decoder layers, vocabulary 1000, batch 8,
   source length 32) for ``--new-tokens`` (default 256) tokens, with the key/value cache
   (``use_cache=True``: one new position a step) and without (the whole prefix re-run every
   step, quadratic work). Tokens/s counts the batch (batch x new tokens / second); the issue's
   goal is cache >= 3x faster at 256 new tokens.

Each timing is the median over ``--repeats`` runs after ``--warmup`` warm-up runs, the
implementations interleaved round by round (fairer on a shared, busy machine). On CUDA the device
is synchronised before the clock starts and before it stops.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.sequence.attention import MultiHeadAttention
from deepnotes.sequence.recurrent import LSTM
from deepnotes.sequence.transformer import Transformer

BATCH, D_MODEL, HEADS = 8, 128, 4  # attention workload
LSTM_BATCH, LSTM_LEN, LSTM_IN, LSTM_HIDDEN = 32, 100, 32, 64
DEC_BATCH, DEC_SRC_LEN, DEC_D, DEC_HEADS, DEC_LAYERS, DEC_VOCAB = 8, 32, 64, 4, 2, 1000


def median_seconds(
    steps: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Median wall time of each step, the steps interleaved (one of each per round) so that load
    from other processes hits every implementation alike; CUDA is synchronised around each."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        for step in steps.values():
            step()  # allocations, thread pools, kernel selection
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def fwd_bwd(
    forward: Callable[[torch.Tensor], torch.Tensor], module: nn.Module | None, x: torch.Tensor
) -> Callable[[], None]:
    """One forward pass and the gradients of ``x`` and of every parameter of ``module``."""
    inputs = (x, *(() if module is None else module.parameters()))

    def step() -> None:
        y = forward(x)
        torch.autograd.grad(y, inputs, torch.ones_like(y))

    return step


def print_table(rows: list[tuple[str, float]], reference: float, ratio_label: str) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"  {'implementation':<{width}}  {'median ms':>10}  {ratio_label:>12}")
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds * 1e3:>10.2f}  {seconds / reference:>12.2f}")


def bench_attention(args: argparse.Namespace, device: torch.device) -> None:
    print(
        f"\n1. multi-head attention forward+backward: batch {BATCH}, d_model {D_MODEL}, "
        f"{HEADS} heads, self-attention, no mask, float32"
    )
    torch.manual_seed(0)
    ours = MultiHeadAttention(D_MODEL, HEADS).to(device)
    ours_sdpa = MultiHeadAttention(D_MODEL, HEADS, use_sdpa=True).to(device)
    theirs = nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True).to(device)
    ref_name = "nn.MultiheadAttention (need_weights=False)"
    summary: list[tuple[int, float, float]] = []
    for length in args.lengths:
        x = torch.randn(BATCH, length, D_MODEL, device=device, requires_grad=True)
        q, k, v = (
            torch.randn(BATCH, HEADS, length, D_MODEL // HEADS, device=device, requires_grad=True)
            for _ in range(3)
        )  # (B, H, L, D/H): already projected and split into heads

        def sdpa_step(q=q, k=k, v=v) -> None:
            y = F.scaled_dot_product_attention(q, k, v)  # (B, H, L, D/H)
            torch.autograd.grad(y, (q, k, v), torch.ones_like(y))

        steps = {
            "ours, hand-written (returns weights)": fwd_bwd(lambda t: ours(t, t, t)[0], ours, x),
            "ours, use_sdpa=True": fwd_bwd(lambda t: ours_sdpa(t, t, t)[0], ours_sdpa, x),
            ref_name: fwd_bwd(lambda t: theirs(t, t, t, need_weights=False)[0], theirs, x),
            "nn.MultiheadAttention (need_weights=True)": fwd_bwd(
                lambda t: theirs(t, t, t, need_weights=True)[0], theirs, x
            ),
            "F.scaled_dot_product_attention, bare q/k/v": sdpa_step,
        }
        medians = median_seconds(steps, args.repeats, args.warmup, device)
        print(f" length {length}:")
        print_table(list(medians.items()), medians[ref_name], "/ nn.MHA")
        ref = medians[ref_name]
        summary.append(
            (
                length,
                medians["ours, hand-written (returns weights)"] / ref,
                medians["ours, use_sdpa=True"] / ref,
            )
        )
    print(" summary, ours / nn.MultiheadAttention(need_weights=False):")
    for length, hand, sdpa in summary:
        print(f"  length {length:>4}: hand-written {hand:.2f}x, use_sdpa {sdpa:.2f}x")


def bench_lstm(args: argparse.Namespace, device: torch.device) -> None:
    print(
        f"\n2. LSTM forward+backward: batch {LSTM_BATCH}, length {LSTM_LEN}, input {LSTM_IN}, "
        f"hidden {LSTM_HIDDEN}, 1 layer, float32"
    )
    torch.manual_seed(0)
    ours = LSTM(LSTM_IN, LSTM_HIDDEN).to(device)
    theirs = nn.LSTM(LSTM_IN, LSTM_HIDDEN, batch_first=True).to(device)
    x = torch.randn(LSTM_BATCH, LSTM_LEN, LSTM_IN, device=device, requires_grad=True)
    steps = {
        "nn.LSTM": fwd_bwd(lambda t: theirs(t)[0], theirs, x),
        "ours (deepnotes LSTM, Python time loop)": fwd_bwd(lambda t: ours(t)[0], ours, x),
    }
    medians = median_seconds(steps, args.repeats, args.warmup, device)
    print_table(list(medians.items()), medians["nn.LSTM"], "/ nn.LSTM")


def bench_decoding(args: argparse.Namespace, device: torch.device) -> None:
    n = args.new_tokens
    print(
        f"\n3. greedy decoding, {n} new tokens: Transformer(d_model {DEC_D}, {DEC_HEADS} heads, "
        f"{DEC_LAYERS}+{DEC_LAYERS} layers, vocab {DEC_VOCAB}), eval, batch {DEC_BATCH}, "
        f"source length {DEC_SRC_LEN}, float32"
    )
    torch.manual_seed(0)
    model = Transformer(
        DEC_VOCAB,
        DEC_VOCAB,
        d_model=DEC_D,
        num_heads=DEC_HEADS,
        num_encoder_layers=DEC_LAYERS,
        num_decoder_layers=DEC_LAYERS,
        max_len=max(512, n + 1),
    )
    model = model.to(device).eval()
    src = torch.randint(1, DEC_VOCAB, (DEC_BATCH, DEC_SRC_LEN), device=device)
    out_cached = model.greedy_decode(src, bos_id=1, max_new_tokens=n, use_cache=True)
    out_full = model.greedy_decode(src, bos_id=1, max_new_tokens=n, use_cache=False)
    same = torch.equal(out_cached, out_full)
    steps = {
        "without cache (re-run the prefix)": lambda: model.greedy_decode(
            src, bos_id=1, max_new_tokens=n, use_cache=False
        ),
        "with key/value cache": lambda: model.greedy_decode(
            src, bos_id=1, max_new_tokens=n, use_cache=True
        ),
    }
    medians = median_seconds(steps, args.decode_repeats, 0, device)  # warmed up just above
    width = max(len(name) for name in medians)
    print(f"  {'decoding':<{width}}  {'median s':>9}  {'tokens/s':>9}  {'speed-up':>8}")
    slow = medians["without cache (re-run the prefix)"]
    for name, seconds in medians.items():
        rate = DEC_BATCH * n / seconds
        print(f"  {name:<{width}}  {seconds:>9.3f}  {rate:>9.0f}  {slow / seconds:>7.2f}x")
    speedup = slow / medians["with key/value cache"]
    verdict = "met" if speedup >= 3 else "NOT met"
    print(
        f"  cache speed-up {speedup:.2f}x at {n} new tokens (goal >= 3x: {verdict}); "
        f"cached and uncached outputs identical: {same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--lengths", type=int, nargs="+", help="default 64 128 256 512")
    parser.add_argument("--repeats", type=int, help="default 10")
    parser.add_argument("--warmup", type=int, help="default 2")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--decode-repeats", type=int, help="default 3")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="defaults become lengths 64 256, 3 repeats, 1 warm-up, 1 decoding repeat",
    )
    parser.add_argument(
        "--only", choices=["attention", "lstm", "decoding"], nargs="+", default=None
    )
    args = parser.parse_args()
    defaults = {
        "lengths": [64, 256] if args.quick else [64, 128, 256, 512],
        "repeats": 3 if args.quick else 10,
        "warmup": 1 if args.quick else 2,
        "decode_repeats": 1 if args.quick else 3,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:  # options given explicitly win over --quick
            setattr(args, name, value)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU, torch.get_num_threads() = {torch.get_num_threads()}"
    print(
        f"torch {torch.__version__} on {where}; median of {args.repeats} runs after "
        f"{args.warmup} warm-up(s) ({args.decode_repeats} for decoding)"
    )
    only = set(args.only or ["attention", "lstm", "decoding"])
    t0 = time.perf_counter()
    if "attention" in only:
        bench_attention(args, device)
    if "lstm" in only:
        bench_lstm(args, device)
    if "decoding" in only:
        bench_decoding(args, device)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
