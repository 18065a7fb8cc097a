"""Training on the adding problem, shared by ``sequence.adding_problem`` and
``sequence.why_transformers``: one loop through the engine, one LSTM initialisation.

The data are :func:`deepnotes.data.sequences.adding_problem`; a model maps ``(B, T, 2)`` inputs
to ``(B, 1)`` predictions of the sum of the two marked values.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch
from torch import nn

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.data.sequences import adding_problem as adding_batch


def torch_lstm(input_size: int, hidden: int, forget_bias: float) -> nn.LSTM:
    """A batch-first ``nn.LSTM`` whose forget gate starts at bias ``forget_bias`` (set on
    ``bias_ih``, ``bias_hh``'s forget block zeroed, as :class:`~deepnotes.sequence.recurrent.LSTM`
    with ``forget_bias`` does)."""
    lstm = nn.LSTM(input_size, hidden, batch_first=True)
    with torch.no_grad():  # torch's gate order i, f, g, o: the f block is [H, 2H)
        lstm.bias_ih_l0[hidden : 2 * hidden].fill_(forget_bias)
        lstm.bias_hh_l0[hidden : 2 * hidden].zero_()
    return lstm


def fit_adding(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    ctx: RunContext,
    *,
    tag: str,
    length: int,
    batch: int,
    steps: int,
    every: int,
    clip_norm: float,
    test: Any,
    data: torch.Generator,
) -> dict[str, Any]:
    """Train ``model`` on fresh batches of ``batch`` sequences drawn from ``data`` (MSE, norm
    clipped to ``clip_norm``) for ``steps`` steps through the engine's Loop, measuring the test
    MSE on ``test`` every ``every`` steps.

    Returns ``curve`` (test MSE per round, NaN after a divergence), ``step_seconds`` (median
    wall time of a training step, data drawing excluded) and ``diverged`` (the engine's message,
    or '').
    """

    def step(i: int) -> dict[str, float]:
        x = adding_batch(batch, length, seed=data)
        t0 = time.perf_counter()
        loss = (model(x.inputs).squeeze(-1) - x.targets).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()
        return {"loss": float(loss.detach()), "step_seconds": time.perf_counter() - t0}

    def evaluate(_: int) -> dict[str, float]:
        with torch.no_grad():
            mse = float((model(test.inputs).squeeze(-1) - test.targets).pow(2).mean())
        return {"test_mse": mse}

    rounds = math.ceil(steps / every)
    loop = Loop(ctx, tag=tag, track={"model": model, "opt": opt, "data": data}, progress=False)
    try:
        history, diverged = loop.run(step, steps=steps, every=every, evaluate=evaluate).history, ""
    except DivergenceError as err:
        history, diverged = loop.history, str(err)
    curve = [rec["test_mse"] for rec in history]
    seconds = [rec["step_seconds"] for rec in history]
    return {
        "curve": curve + [math.nan] * (rounds - len(curve)),
        "step_seconds": statistics.median(seconds) if seconds else math.nan,
        "diverged": diverged,
    }
