r"""Vanishing and exploding gradients through time, and what the LSTM's cell path changes.
Notes: discussion 6, section 1.3 "Vanilla RNN" (vanishing / exploding gradients) and section 2
"Long Short Term Memory (LSTM)", problem "Vanishing Gradient in LSTMs" (Bengio, Simard &
Frasconi, 1994; Hochreiter & Schmidhuber, 1997; gradient clipping: Pascanu, Mikolov & Bengio,
2013, "On the difficulty of training recurrent neural networks").

Measured, at initialisation (float64): a cell is unrolled with
:func:`~deepnotes.sequence.recurrent.unroll` over ``length`` steps of inputs
:math:`x_t \sim \mathcal N(0, I)`, the loss is :math:`L = u^\top h_T` for a random ``u``, and
``torch.autograd.grad`` gives :math:`\partial L / \partial h_t` for every ``t``. The *ratio at
lag k* is :math:`\lVert \partial L/\partial h_{T-k} \rVert / \lVert \partial L/\partial h_T
\rVert` (per sequence, its log10 averaged over the batch); the *log-slope* is the least-squares
slope of log10 ratio against lag. Cases (:data:`CASES`): the tanh RNN with its recurrent matrix
``W_hh`` rescaled to spectral radius ``rho_small`` (< 1) and ``rho_large`` (well above 1), the
LSTM with forget-gate bias ``forget_bias`` (the issue's 1.0), and, for the figure only, the LSTM
with ``large_forget_bias``. Each case is replicated ``replicates`` times (own init and inputs).

Claims (thresholds from the issue, fixed before the run; tests of :mod:`deepnotes.core.stats`
over replicates):

- ``rnn_vanishing_slope``: spectral radius ``rho_small``: mean log-slope < 0.
- ``rnn_vanishing_at_lag``: spectral radius ``rho_small``: mean log10 ratio at lag
  ``lag`` (100) below -3 (ratio <= 1e-3).
- ``rnn_exploding``: spectral radius ``rho_large``: mean log-slope > 0 (the gradient grows).
- ``lstm_keeps_gradient``: LSTM, forget bias 1: mean log10 ratio at lag 100 above -1
  (ratio >= 1e-1). Worked out before the run: at initialisation the forget gate is about
  :math:`\sigma(1) = 0.73`, and along the cell path :math:`\partial C_t/\partial C_{t-1} =
  f_t`, so the cell path alone predicts :math:`0.73^{100} \approx 10^{-14}`. The claim is kept
  as the issue states it; when it fails and the measured mean forget gate explains it
  (:math:`\bar f^{\,lag} < 0.1`), it is a known failure with that measured reason.
  The first quick run measured log10 ratio -8.0 at lag 100 (slower than the mean gate's
  -13.7: units whose gates sit above the mean dominate the norm), and with forget bias 5
  (:math:`\sigma(5)^{100} = 0.51`) the curve stays near 1e-1 (figure only, no claim).
- ``clipping_keeps_training_finite``: an exploding RNN (spectral radius ``rho_large``) trained
  by plain SGD (``clip_lr``) on the adding problem through the engine's
  :class:`~deepnotes.core.engine.Loop`: with the gradient norm clipped to ``clip_norm`` the run
  stays finite for ``clip_steps`` steps, without clipping it diverges (the engine raises
  :class:`~deepnotes.core.errors.DivergenceError`: a non-finite loss or one beyond 1e4 times its
  first value). Measured: the fraction of replicates in which both happen; bar 1 (every one).

Check ``forget_gate_product``: the closed-form cell-path gradient
:func:`~deepnotes.sequence.recurrent.forget_gate_product` (the product of forget gates) equals
autograd's :func:`~deepnotes.sequence.recurrent.cell_path_gradient` to a relative error of
:data:`GATE_TOL` (float64): the notes' answer :math:`\partial C_t/\partial C_{t-1} = f_t`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.sequences import adding_problem
from deepnotes.sequence.recurrent import (
    RNN,
    LSTMCell,
    ManyToOne,
    RNNCell,
    cell_path_gradient,
    forget_gate_product,
    unroll,
)

CASES = ("rnn_contractive", "rnn_expansive", "lstm", "lstm_large_bias")
"""RNN at spectral radius rho_small and rho_large; LSTM at forget_bias and large_forget_bias."""
VANISHED_LOG10 = -3.0
"""The RNN's log10 ratio at the lag must fall below this (ratio <= 1e-3; the issue)."""
KEPT_LOG10 = -1.0
"""The LSTM's log10 ratio at the lag must stay above this (ratio >= 1e-1; the issue)."""
GATE_TOL = 1e-10
"""Largest relative difference between forget_gate_product and cell_path_gradient (float64)."""
CLIP_MODES = ("clipped", "unclipped")


@dataclass(frozen=True)
class GradientFlowConfig:
    """||dL/dh_t|| against time lag at initialisation, and clipping an exploding RNN."""

    hidden: int = 64
    input_size: int = 4
    length: int = 121
    """Steps unrolled: lags 0 .. length - 1."""
    batch: int = 32
    """Sequences per replicate (the log ratio is averaged over them)."""
    replicates: int = 10
    lag: int = 100
    """The lag of the ratio claims."""
    rho_small: float = 0.9
    rho_large: float = 3.0
    forget_bias: float = 1.0
    large_forget_bias: float = 5.0
    """Shown in the figure only (no claim)."""
    clip_hidden: int = 32
    clip_length: int = 30
    clip_batch: int = 32
    clip_lr: float = 0.1
    clip_norm: float = 1.0
    clip_steps: int = 300
    clip_replicates: int = 5

    def __post_init__(self) -> None:
        require(self.hidden >= 1 and self.input_size >= 1, "hidden and input_size must be >= 1")
        require(
            1 <= self.lag < self.length,
            f"lag must be in [1, length), got lag {self.lag}, length {self.length}",
        )
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(self.replicates >= 2, f"replicates must be >= 2, got {self.replicates}")
        require(0 < self.rho_small < 1, f"rho_small must be in (0, 1), got {self.rho_small}")
        require(self.rho_large > 1, f"rho_large must be > 1, got {self.rho_large}")
        require(self.clip_steps >= 1 and self.clip_replicates >= 1, "clip runs need >= 1 step")
        require(self.clip_length >= 2, f"clip_length must be >= 2, got {self.clip_length}")
        require(self.clip_norm > 0 and self.clip_lr > 0, "clip_norm and clip_lr must be > 0")

    @classmethod
    def quick(cls) -> GradientFlowConfig:
        """5 replicates, 3 clipping pairs of 100 steps (a few seconds)."""
        return cls(replicates=5, clip_steps=100, clip_replicates=3)


@dataclass(frozen=True)
class GradientFlowMeasurements:
    """Per case, log10 ratios against lag and log-slopes; the gate check; the clipping runs."""

    lags: np.ndarray
    """0 .. length - 1, (L,)."""
    log10_ratio: dict[str, np.ndarray]
    """Per case in :data:`CASES`, (replicates, L)."""
    slope: dict[str, np.ndarray]
    """Per case, the least-squares slope of log10 ratio against lag, (replicates,)."""
    mean_forget: float
    """Mean forget gate of the forget_bias LSTM over every step, unit and replicate."""
    gate_error: float
    """Max relative |forget_gate_product - cell_path_gradient|."""
    clip_diverged: dict[str, np.ndarray]
    """Per mode in :data:`CLIP_MODES`, whether each replicate diverged, (clip_replicates,)."""
    clip_final_loss: dict[str, np.ndarray]
    """Per mode, the last recorded training loss (NaN when diverged)."""
    clip_detail: dict[str, list[str]]
    """Per mode, the engine's divergence message per replicate ('' when finite)."""
    lag: int
    """The lag of the ratio claims."""

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for case in CASES:
            out[f"log10_ratio_at_lag_{case}"] = float(self.log10_ratio[case][:, self.lag].mean())
            out[f"slope_{case}"] = float(self.slope[case].mean())
        out["mean_forget"] = self.mean_forget
        out["gate_error"] = self.gate_error
        for mode in CLIP_MODES:
            out[f"diverged_{mode}"] = int(self.clip_diverged[mode].sum())
            out[f"final_loss_{mode}"] = self.clip_final_loss[mode].tolist()
        return out


def _scaled_rnn_cell(cfg: GradientFlowConfig, rho: float) -> RNNCell:
    cell = RNNCell(cfg.input_size, cfg.hidden).double()
    with torch.no_grad():
        radius = torch.linalg.eigvals(cell.W_hh).abs().max()
        cell.W_hh.mul_(rho / radius)  # spectral radius exactly rho
    return cell


def _log10_ratios(
    cell: RNNCell | LSTMCell, x: torch.Tensor, u: torch.Tensor
) -> tuple[np.ndarray, torch.Tensor]:
    """log10 ||dL/dh_{T-k}|| / ||dL/dh_T|| for k = 0 .. T-1, averaged over the batch."""
    states = unroll(cell, x)
    hs = [s[0] for s in states] if isinstance(cell, LSTMCell) else states
    loss = (hs[-1] @ u).sum()  # L = u^T h_T, summed over the batch
    grads = torch.autograd.grad(loss, hs, allow_unused=True)
    norms = torch.stack(
        [torch.zeros(x.shape[0], dtype=x.dtype) if g is None else g.norm(dim=1) for g in grads],
        dim=1,
    )  # (B, T)
    tiny = torch.finfo(x.dtype).tiny
    logs = torch.log10(norms.clamp_min(tiny)) - torch.log10(norms[:, -1:].clamp_min(tiny))
    return logs.mean(0).flip(0).numpy(), norms  # (T,) indexed by lag


def _slope(lags: np.ndarray, values: np.ndarray) -> float:
    if not np.all(np.isfinite(values)):
        return math.nan
    return float(np.polyfit(lags, values, 1)[0])


def _gradient_flow(cfg: GradientFlowConfig, ctx: RunContext, r: int) -> dict[str, Any]:
    lags = np.arange(cfg.length)
    gen = ctx.stream("inputs", r)
    x = torch.randn(cfg.batch, cfg.length, cfg.input_size, generator=gen, dtype=torch.float64)
    u = torch.randn(cfg.hidden, generator=gen, dtype=torch.float64)
    out: dict[str, Any] = {}
    for case in CASES:
        with ctx.seeded("init", case, r):
            if case == "rnn_contractive":
                cell = _scaled_rnn_cell(cfg, cfg.rho_small)
            elif case == "rnn_expansive":
                cell = _scaled_rnn_cell(cfg, cfg.rho_large)
            else:
                bias = cfg.forget_bias if case == "lstm" else cfg.large_forget_bias
                cell = LSTMCell(cfg.input_size, cfg.hidden, forget_bias=bias).double()
        logs, _ = _log10_ratios(cell, x, u)
        out[case] = logs
        out[f"slope_{case}"] = _slope(lags, logs)
        if case == "lstm":
            with torch.no_grad():
                f = torch.sigmoid(
                    _forget_preactivations(cell, x)
                )  # (B, T, H): recomputed from the same unroll
            out["mean_forget"] = float(f.mean())
            product = forget_gate_product(_gates_without_feedback(cell, x))
            autograd = cell_path_gradient(cell, x)
            scale = autograd.abs().clamp_min(torch.finfo(torch.float64).tiny)
            out["gate_error"] = float(((product - autograd).abs() / scale).max())
    return out


def _forget_preactivations(cell: LSTMCell, x: torch.Tensor) -> torch.Tensor:
    """The forget gates' pre-activations along the ordinary unroll, (B, T, H)."""
    states = unroll(cell, x)
    hs = torch.stack([s[0] for s in states], dim=1)  # (B, T, H)
    h_prev = torch.cat([torch.zeros_like(hs[:, :1]), hs[:, :-1]], dim=1)  # (B, T, H): h_{t-1}
    a = cell.input_term(x) + h_prev @ cell.W  # (B, T, 4H)
    return a.chunk(4, dim=-1)[1]  # (B, T, H): the f block (torch's order i, f, g, o)


def _gates_without_feedback(cell: LSTMCell, x: torch.Tensor) -> torch.Tensor:
    """The forget gates of the run :func:`cell_path_gradient` differentiates, (B, T, H)."""
    with torch.no_grad():
        h = c = x.new_zeros(x.shape[0], cell.hidden_size)
        x_term = cell.input_term(x)  # (B, T, 4H)
        fs = []
        for t in range(x.shape[1]):
            h, c, (_, f, _, _) = cell.step(x_term[:, t], h, c)
            fs.append(f)
    return torch.stack(fs, dim=1)  # (B, T, H)


def _clip_fit(cfg: GradientFlowConfig, ctx: RunContext, mode: str, r: int) -> dict[str, Any]:
    """SGD on the adding problem from an exploding init, with or without clipping."""
    with ctx.seeded("clip-init", r):
        model = ManyToOne(RNN(2, cfg.clip_hidden), output_size=1)
        with torch.no_grad():
            w = model.core.cells[0].W_hh
            w.mul_(cfg.rho_large / torch.linalg.eigvals(w).abs().max())
    opt = torch.optim.SGD(model.parameters(), lr=cfg.clip_lr)
    data = ctx.stream("clip-data", r)  # the same batches for both modes (paired)
    max_norm = cfg.clip_norm if mode == "clipped" else math.inf

    def step(i: int) -> dict[str, float]:
        batch = adding_problem(cfg.clip_batch, cfg.clip_length, seed=data)
        loss = (model(batch.inputs).squeeze(-1) - batch.targets).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm)}

    loop = Loop(
        ctx,
        tag=f"clip-{mode}-{r}",
        track={"model": model, "opt": opt, "data": data},
        progress=False,
    )
    try:
        result = loop.run(step, steps=cfg.clip_steps, every=max(1, cfg.clip_steps // 10))
    except DivergenceError as err:
        return {"diverged": True, "final_loss": math.nan, "detail": str(err)}
    return {"diverged": False, "final_loss": float(result.history[-1]["loss"]), "detail": ""}


def measure(cfg: GradientFlowConfig, ctx: RunContext) -> GradientFlowMeasurements:
    """Gradient norms against lag per case and replicate, then the clipping pairs."""
    runs = []
    with ctx.progress(cfg.replicates, "replicates") as bar:
        for r in range(cfg.replicates):
            runs.append(_gradient_flow(cfg, ctx, r))
            bar.advance()
    clip: dict[str, list[dict[str, Any]]] = {mode: [] for mode in CLIP_MODES}
    for r in range(cfg.clip_replicates):
        for mode in CLIP_MODES:
            key = {
                "mode": mode,
                "replicate": r,
                "hidden": cfg.clip_hidden,
                "length": cfg.clip_length,
                "batch": cfg.clip_batch,
                "lr": cfg.clip_lr,
                "clip_norm": cfg.clip_norm,
                "steps": cfg.clip_steps,
                "rho": cfg.rho_large,
            }
            clip[mode].append(
                ctx.cached("fit", key, lambda mode=mode, r=r: _clip_fit(cfg, ctx, mode, r))
            )
    return GradientFlowMeasurements(
        lags=np.arange(cfg.length),
        log10_ratio={case: np.stack([run[case] for run in runs]) for case in CASES},
        slope={case: np.array([run[f"slope_{case}"] for run in runs]) for case in CASES},
        mean_forget=float(np.mean([run["mean_forget"] for run in runs])),
        gate_error=float(max(run["gate_error"] for run in runs)),
        clip_diverged={m: np.array([run["diverged"] for run in clip[m]]) for m in CLIP_MODES},
        clip_final_loss={m: np.array([run["final_loss"] for run in clip[m]]) for m in CLIP_MODES},
        clip_detail={m: [run["detail"] for run in clip[m]] for m in CLIP_MODES},
        lag=cfg.lag,
    )


def _labels(cfg: GradientFlowConfig) -> dict[str, str]:
    return {
        "rnn_contractive": f"tanh RNN, spectral radius {cfg.rho_small:g}",
        "rnn_expansive": f"tanh RNN, spectral radius {cfg.rho_large:g}",
        "lstm": f"LSTM, forget bias {cfg.forget_bias:g}",
        "lstm_large_bias": f"LSTM, forget bias {cfg.large_forget_bias:g}",
    }


def draw(m: GradientFlowMeasurements, cfg: GradientFlowConfig, ctx: RunContext) -> list[Path]:
    fig, ax = figure(ncols=1, size=(6.4, 4.4))
    colors = dict(zip(CASES, ("C0", "C3", "C2", "C1"), strict=True))
    for case, label in _labels(cfg).items():
        logs = m.log10_ratio[case]
        for row in logs:
            ax.plot(m.lags, 10.0**row, color=colors[case], lw=0.6, alpha=0.35)
        ax.plot(m.lags, 10.0 ** logs.mean(0), color=colors[case], lw=2, label=label)
    ax.plot(
        m.lags,
        m.mean_forget**m.lags,
        color="C2",
        ls=":",
        lw=1.2,
        label=f"mean forget gate^lag = {m.mean_forget:.2f}^lag",
    )
    ax.axhline(10.0**VANISHED_LOG10, color="grey", ls="--", lw=0.8, label="1e-3 (RNN bar)")
    ax.axhline(10.0**KEPT_LOG10, color="grey", ls="-.", lw=0.8, label="1e-1 (LSTM bar)")
    ax.axvline(cfg.lag, color="grey", lw=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("time lag k = T - t")
    ax.set_ylabel("||dL/dh_{T-k}|| / ||dL/dh_T||  (geometric mean over the batch)")
    ax.set_title(f"gradient through time at initialisation ({cfg.replicates} replicates)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return [ctx.savefig(fig, "gradient_vs_lag")]


def claims(m: GradientFlowMeasurements, cfg: GradientFlowConfig) -> list[Claim]:
    lag = m.lag
    slope_small = stats.one_sample(m.slope["rnn_contractive"], "less")
    at_lag_small = stats.one_sample(
        m.log10_ratio["rnn_contractive"][:, lag], "less", null=VANISHED_LOG10
    )
    slope_large = stats.one_sample(m.slope["rnn_expansive"], "greater")
    lstm = stats.one_sample(m.log10_ratio["lstm"][:, lag], "greater", null=KEPT_LOG10)
    predicted = m.mean_forget**lag
    known = ""
    lstm_slope = float(np.mean(m.slope["lstm"]))
    if not lstm.holds and lstm_slope < 0 and predicted < 10.0**KEPT_LOG10:
        known = (
            f"measured: the LSTM's gradient decays exponentially too (log10-slope "
            f"{lstm_slope:.3g} per step) because at initialisation the forget gate averages "
            f"{m.mean_forget:.3f} (bias {cfg.forget_bias:g}), and dC_t/dC_(t-1) = f_t < 1 "
            f"shrinks the cell-path gradient geometrically ({m.mean_forget:.3f}^{lag} = "
            f"{predicted:.2g} for the mean gate); a forget bias of 1 does not keep the gradient "
            "over 100 steps at init (the figure's large-bias curve does)"
        )
    both = m.clip_diverged["unclipped"] & ~m.clip_diverged["clipped"]
    finite_clipped = np.isfinite(m.clip_final_loss["clipped"])
    fraction = float(np.mean(both & finite_clipped)) if both.size else math.nan
    unclipped_why = "; ".join(sorted({d.split(" (")[0] for d in m.clip_detail["unclipped"] if d}))
    return [
        Claim.from_test(
            f"the tanh RNN's gradient decays exponentially with lag at spectral radius "
            f"{cfg.rho_small:g}: fitted log10-slope < 0",
            slope_small,
            f"slope per step {m.slope['rnn_contractive'].mean():.3g} (log10)",
            key="rnn_vanishing_slope",
        ),
        Claim.from_test(
            f"at spectral radius {cfg.rho_small:g} the ratio ||dL/dh_(T-{lag})|| / ||dL/dh_T|| "
            "is <= 1e-3 (log10 < -3)",
            at_lag_small,
            f"mean log10 ratio {m.log10_ratio['rnn_contractive'][:, lag].mean():.3g}",
            key="rnn_vanishing_at_lag",
        ),
        Claim.from_test(
            f"at spectral radius {cfg.rho_large:g} the gradient grows with lag (exploding): "
            "fitted log10-slope > 0",
            slope_large,
            f"mean log10 ratio at lag {lag}: {m.log10_ratio['rnn_expansive'][:, lag].mean():.3g}",
            key="rnn_exploding",
        ),
        Claim.from_test(
            f"the LSTM (forget bias {cfg.forget_bias:g}) keeps the gradient: ratio at lag "
            f"{lag} >= 1e-1 (log10 > -1)",
            lstm,
            f"mean log10 ratio {m.log10_ratio['lstm'][:, lag].mean():.3g}; mean forget gate "
            f"{m.mean_forget:.3f}, whose {lag}th power is {predicted:.2g}",
            key="lstm_keeps_gradient",
            known_failure=known,
        ),
        Claim.at_least(
            f"gradient clipping (norm {cfg.clip_norm:g}) keeps an exploding RNN's SGD training "
            "finite where the unclipped run diverges: fraction of replicates",
            fraction,
            1.0,
            f"{int(m.clip_diverged['unclipped'].sum())}/{both.size} unclipped runs diverged "
            f"({unclipped_why or 'none'}); {int(m.clip_diverged['clipped'].sum())} clipped "
            f"runs diverged; clipped final losses {np.round(m.clip_final_loss['clipped'], 3)}",
            key="clipping_keeps_training_finite",
        ),
        Claim.at_most(
            "dC_t/dC_(t-1) = f_t: the product of forget gates equals autograd's cell-path "
            "gradient (max relative error)",
            m.gate_error,
            GATE_TOL,
            "float64, forget_gate_product vs cell_path_gradient over every replicate",
            key="forget_gate_product",
            kind="check",
        ),
    ]


@experiment(
    "sequence.gradient_flow",
    topic="sequence",
    config=GradientFlowConfig,
    claims=(
        "rnn_vanishing_slope",
        "rnn_vanishing_at_lag",
        "rnn_exploding",
        "lstm_keeps_gradient",
        "clipping_keeps_training_finite",
    ),
    checks=("forget_gate_product",),
)
def gradient_flow(cfg: GradientFlowConfig, ctx: RunContext) -> Outcome:
    """The tanh RNN's gradient vanishes or explodes with time lag depending on the spectral
    radius of its recurrent matrix, the LSTM's cell path scales it by the forget gates, and
    gradient clipping keeps an exploding RNN's training finite."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
