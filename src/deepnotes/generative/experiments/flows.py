r"""NICE and RealNVP on two moons: exact likelihoods by the change of variables. Notes:
discussion 10, section 4.3 "Normalizing Flows" (NICE's additive coupling is volume
preserving; RealNVP's scaling factors make it non-volume preserving; problems 7 and 8). The
anchor is issue 14's measurement of normflows' RealNVP (32 blocks, 141k parameters, batch
512): test NLL 0.297 nats after 2,000 steps on moons.

Data: :func:`deepnotes.data.toy2d.moons` with noise ``noise`` (0.05), fresh minibatches of
``batch`` points every step (stream "data", the same batches for both models), ``test_size``
held-out points (stream "test"). Models (:mod:`deepnotes.generative.flows`): RealNVP with
``couplings`` affine couplings (separate scale and shift networks, ``depth`` hidden ReLU layers
of width ``hidden``, tanh-bounded log-scales) and NICE with twice as many additive couplings of
the same networks plus its rescaling layer, so that both have the same size (parameter
counts within 0.1%, checked to 5%). Both trained by maximum likelihood, Adam (``lr``, weight
decay ``weight_decay``) for ``steps`` steps through the engine's Loop, the test NLL recorded
every ``every`` steps. NLLs are in nats per point (2 dimensions).

Checks (identities of the implementation, on the trained models copied to float64, at
``check_points`` test points):

- ``equal_size``: ``|params(NICE) / params(RealNVP) - 1| <= 0.05``.
- ``nice_volume_preserving``: every NICE coupling's log|det| from the brute-force autograd
  Jacobian (``torch.linalg.slogdet``) is 0 to 1e-10 (and the layers report exactly 0).
- ``nice_rescaling_carries_volume``: the whole NICE flow's brute-force log|det| equals its
  rescaling layer's ``sum_i s_i`` to 1e-8.
- ``realnvp_logdet``: RealNVP's log|det| (sum of the log-scales) equals the brute-force
  ``log|det|`` of the autograd Jacobian to 1e-5 (the issue's bar).
- ``inverse_exact``: ``inverse(forward(z)) = z`` and ``forward(inverse(x)) = x`` to 1e-6, both
  models.

Claims (thresholds fixed before the run, from the issue):

- ``realnvp_nll``: RealNVP's mean test NLL <= :data:`NLL_BAR` = 0.30 nats (normflows' RealNVP
  reached 0.297 here after 2,000 steps).
- ``nice_worse``: NICE's test NLL is higher than RealNVP's at equal size: paired one-sided test
  over the test points of ``NLL_NICE(x) - NLL_RealNVP(x) > 0``
  (:func:`deepnotes.core.stats.paired`).

Presets: the full preset is the benchmark's architecture (32 couplings of width 45, about 141k
parameters, batch 512, 2,000 steps, Adam 5e-4); the quick one (8 couplings, 800 steps of 256)
fits the topic's budget. Neither reaches the 0.30 bar (0.552 and 0.309 nats at seed 0):
``realnvp_nll`` is a known failure with the measured values (:data:`SHORTFALL`). A fit that
diverges (the engine's DivergenceError) records NaN: its claims and checks do not hold.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.toy2d import moons
from deepnotes.generative.flows import (
    AdditiveCoupling,
    Flow,
    Rescale,
    jacobian_logdet,
    nice,
    parameter_count,
    realnvp,
)

MODELS = ("nice", "realnvp")
LABELS = {"nice": "NICE", "realnvp": "RealNVP"}
NLL_BAR = 0.30
"""RealNVP's test NLL must be at most this, nats per point (the issue)."""
SIZE_TOLERANCE = 0.05
"""Equal size: parameter counts within 5%."""
VOLUME_TOLERANCE = 1e-10
RESCALE_TOLERANCE = 1e-8
LOGDET_TOLERANCE = 1e-5
INVERSE_TOLERANCE = 1e-6
QUICK_STEPS = 800
SHORTFALL = (
    "measured at seed 0: the quick preset (8 couplings, 800 steps of 256, Adam 1e-3) reaches a "
    "RealNVP test NLL of 0.552 nats (0.677 at Adam 5e-4); the full preset, the anchor's budget "
    "(32 couplings, 141k parameters, 2,000 steps of 512, Adam 5e-4), 0.309: close to the bar "
    "but above it. The anchor's normflows RealNVP, run side by side by "
    "benchmarks/flows_vs_normflows.py at that budget, reached 0.728 here, not 0.297: the "
    "anchor's own number is not reproduced either"
)
"""Why :data:`NLL_BAR` is not reached (measured, quick and full)."""
EXTENT = (-1.5, 2.5, -1.0, 1.5)
"""The plotted window (x0, x1, y0, y1) around the moons."""


@dataclass(frozen=True)
class FlowsConfig:
    """Train NICE and RealNVP of equal size on two moons by maximum likelihood."""

    noise: float = 0.05
    """Standard deviation of the moons' Gaussian noise."""
    couplings: int = 32
    """RealNVP's affine couplings; NICE gets twice as many additive ones."""
    hidden: int = 45
    depth: int = 2
    batch: int = 512
    steps: int = 2000
    every: int = 250
    lr: float = 5e-4
    weight_decay: float = 1e-5
    test_size: int = 20_000
    check_points: int = 16
    """Test points at which the Jacobians are computed by brute force."""
    grid: int = 160
    """Heat-map resolution per axis."""
    samples: int = 3000
    """Points drawn from each model (and from the data) for the figure."""

    def __post_init__(self) -> None:
        require(self.noise >= 0, f"noise must be >= 0, got {self.noise}")
        require(self.couplings >= 2, f"couplings must be >= 2, got {self.couplings}")
        require(self.hidden >= 1 and self.depth >= 1, "hidden and depth must be >= 1")
        require(self.batch >= 2 and self.test_size >= 2, "batch and test_size must be >= 2")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")
        require(self.lr > 0 and self.weight_decay >= 0, "need lr > 0 and weight_decay >= 0")
        require(
            1 <= self.check_points <= self.test_size,
            f"check_points must be in [1, test_size], got {self.check_points}",
        )
        require(self.grid >= 2 and self.samples >= 1, "need grid >= 2 and samples >= 1")

    @property
    def nice_couplings(self) -> int:
        """NICE's additive couplings: twice RealNVP's, one network each (equal size)."""
        return 2 * self.couplings

    @classmethod
    def quick(cls) -> FlowsConfig:
        """8 couplings, 800 steps of 256 at Adam 1e-3 (about 25 s of CPU on one thread)."""
        return cls(couplings=8, batch=256, steps=QUICK_STEPS, every=200, lr=1e-3, test_size=10_000)


@dataclass(frozen=True)
class FlowsMeasurements:
    """Test-NLL curves, per-point test NLLs, implementation checks and what the figure shows."""

    steps: np.ndarray
    """The steps at which the test NLL was recorded, (K,)."""
    test_nll: dict[str, np.ndarray]
    """Per model, mean test NLL in nats per point, (K,); NaN after a divergence."""
    point_nll: dict[str, np.ndarray]
    """Per model, the final NLL of every test point, (test_size,)."""
    parameters: dict[str, int]
    diverged: dict[str, str]
    nice_coupling_logdet: float
    """Largest |brute-force log|det|| of a NICE coupling."""
    nice_rescale_residual: float
    """Largest |brute-force log|det| of NICE - sum of its log-scales|."""
    realnvp_logdet_error: float
    inverse_error: dict[str, float]
    """Per model, the largest round-trip error of inverse/forward."""
    log_density: dict[str, np.ndarray]
    """Per model, log p on the figure's grid, (grid, grid) (rows: y)."""
    samples: dict[str, np.ndarray]
    """Per model and "data", (samples, 2)."""

    def final(self, model: str) -> float:
        return float(self.test_nll[model][-1])

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "parameters": self.parameters,
            "nice_coupling_logdet": self.nice_coupling_logdet,
            "nice_rescale_residual": self.nice_rescale_residual,
            "realnvp_logdet_error": self.realnvp_logdet_error,
            "inverse_error": self.inverse_error,
        }
        for model in MODELS:
            mean, se = stats.mean_se(self.point_nll[model])
            out[f"test_nll_{model}"] = mean
            out[f"test_nll_se_{model}"] = se
            out[f"test_bits_per_dim_{model}"] = mean / (2 * math.log(2))
        return out


def _build(cfg: FlowsConfig, kind: str) -> Flow:
    if kind == "nice":
        return nice(2, cfg.nice_couplings, cfg.hidden, cfg.depth)
    return realnvp(2, cfg.couplings, cfg.hidden, cfg.depth)


def _fit(cfg: FlowsConfig, ctx: RunContext, kind: str) -> dict[str, Any]:
    test = moons(cfg.test_size, ctx.stream("test"), cfg.noise).to(ctx.device)
    with ctx.seeded("init", kind):
        flow = _build(cfg, kind).to(ctx.device)
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = ctx.stream("data")  # the same batches for both models

    def step(_: int) -> dict[str, float]:
        x = moons(cfg.batch, data, cfg.noise).to(ctx.device)
        loss = -flow.log_prob(x).mean()  # NLL, nats per point
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    def evaluate(_: int) -> dict[str, float]:
        with torch.no_grad():
            return {"test_nll": float(-flow.log_prob(test).mean())}

    rounds = math.ceil(cfg.steps / cfg.every)
    loop = Loop(ctx, tag=kind, track={"model": flow, "opt": opt, "data": data}, progress=False)
    try:
        result = loop.run(step, steps=cfg.steps, every=cfg.every, evaluate=evaluate)
        curve, diverged = [rec["test_nll"] for rec in result.history], ""
    except DivergenceError as err:
        done = [rec["test_nll"] for rec in loop.history]
        curve, diverged = done + [math.nan] * (rounds - len(done)), str(err)
    state = {k: v.detach().cpu() for k, v in flow.state_dict().items()}
    return {"curve": curve, "diverged": diverged, "state": state}


def _restore(cfg: FlowsConfig, kind: str, state: dict[str, torch.Tensor]) -> Flow:
    flow = _build(cfg, kind)
    flow.load_state_dict(state)
    return flow.eval()


def _round_trip(flow: Flow, points: torch.Tensor) -> float:
    """Largest |f^{-1}(f(z)) - z| and |f(f^{-1}(x)) - x| at ``points`` (float64)."""
    with torch.no_grad():
        z = flow.inverse(points)[0]
        return max(
            float((flow.inverse(flow(z)[0])[0] - z).abs().max()),
            float((flow(flow.inverse(points)[0])[0] - points).abs().max()),
        )


def _checks(flows: dict[str, Flow], points: torch.Tensor) -> dict[str, Any]:
    """The brute-force Jacobian checks in float64 at ``points`` (N, 2)."""
    f64 = {k: copy.deepcopy(f).double() for k, f in flows.items()}
    x = points.double()
    nice64, real64 = f64["nice"], f64["realnvp"]
    z_nice = nice64.inverse(x)[0].detach()
    coupling_logdet, reported = 0.0, 0.0
    h = z_nice
    for layer in nice64.layers:  # walk the sampling direction z -> x, layer by layer
        if isinstance(layer, AdditiveCoupling):
            coupling_logdet = max(coupling_logdet, float(jacobian_logdet(layer, h).abs().max()))
            reported = max(reported, float(layer(h)[1].abs().max()))
        h = layer(h)[0].detach()
    rescale = next(layer for layer in nice64.layers if isinstance(layer, Rescale))
    nice_total = jacobian_logdet(nice64, z_nice)
    z_real = real64.inverse(x)[0].detach()
    with torch.no_grad():
        real_reported = real64(z_real)[1]
    return {
        "nice_coupling_logdet": max(coupling_logdet, reported),
        "nice_rescale_residual": float((nice_total - rescale.log_scale.sum()).abs().max().detach()),
        "realnvp_logdet_error": float(
            (jacobian_logdet(real64, z_real) - real_reported).abs().max().detach()
        ),
        "inverse_error": {k: _round_trip(f, x) for k, f in f64.items()},
    }


def measure(cfg: FlowsConfig, ctx: RunContext) -> FlowsMeasurements:
    """Train both flows (each fit cached), then score, check and sample them."""
    runs: dict[str, dict[str, Any]] = {}
    with ctx.progress(len(MODELS), "fits") as bar:
        for kind in MODELS:
            key = {"model": kind, **{f: getattr(cfg, f) for f in _FIT_FIELDS}}
            runs[kind] = ctx.cached("fit", key, lambda kind=kind: _fit(cfg, ctx, kind))
            bar.advance()
    flows = {k: _restore(cfg, k, runs[k]["state"]) for k in MODELS}
    test = moons(cfg.test_size, ctx.stream("test"), cfg.noise)
    xs = torch.linspace(EXTENT[0], EXTENT[1], cfg.grid)
    ys = torch.linspace(EXTENT[2], EXTENT[3], cfg.grid)
    grid = torch.cartesian_prod(ys, xs).flip(1)  # (grid^2, 2) as (x, y), rows of equal y
    with torch.no_grad():
        point_nll = {k: (-f.log_prob(test)).numpy() for k, f in flows.items()}
        log_density = {
            k: f.log_prob(grid).reshape(cfg.grid, cfg.grid).numpy() for k, f in flows.items()
        }
        samples = {
            k: f.sample(cfg.samples, ctx.stream("sample", k)).numpy() for k, f in flows.items()
        }
    samples["data"] = moons(cfg.samples, ctx.stream("figure data"), cfg.noise).numpy()
    checks = _checks(flows, test[: cfg.check_points])
    rounds = math.ceil(cfg.steps / cfg.every)
    return FlowsMeasurements(
        steps=np.minimum(np.arange(1, rounds + 1) * cfg.every, cfg.steps),
        test_nll={k: np.array(runs[k]["curve"], dtype=float) for k in MODELS},
        point_nll=point_nll,
        parameters={k: parameter_count(f) for k, f in flows.items()},
        diverged={k: runs[k]["diverged"] for k in MODELS},
        log_density=log_density,
        samples=samples,
        **checks,
    )


_FIT_FIELDS = (
    "noise",
    "couplings",
    "hidden",
    "depth",
    "batch",
    "steps",
    "every",
    "lr",
    "weight_decay",
    "test_size",
)
"""The config fields a fit depends on (its cache key)."""


def draw(m: FlowsMeasurements, cfg: FlowsConfig, ctx: RunContext) -> list[Path]:
    fig, axes = figure(ncols=3, nrows=2, size=(4.2, 3.0))
    x0, x1, y0, y1 = EXTENT
    data = m.samples["data"]
    axes[0].scatter(data[:, 0], data[:, 1], s=2, alpha=0.4, color="k")
    axes[0].set_title(f"two moons (noise {cfg.noise:g}), {len(data)} points")
    for col, model in enumerate(MODELS, start=1):
        density = m.log_density[model]
        finite = density[np.isfinite(density)]
        top = float(finite.max()) if finite.size else 0.0
        image = axes[col].imshow(
            np.clip(density, top - 8.0, top),
            origin="lower",
            extent=EXTENT,
            cmap="viridis",
            aspect="auto",
        )
        fig.colorbar(image, ax=axes[col], shrink=0.85, label="log p(x)")
        axes[col].set_title(
            f"{LABELS[model]}: log-density, test NLL {m.final(model):.3f} nats "
            f"({m.parameters[model]:,} params)",
            fontsize=8,
        )
        pts = m.samples[model]
        axes[3 + col].scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color=f"C{col - 1}")
        axes[3 + col].set_title(f"{LABELS[model]}: {len(pts)} samples")
    for ax in (axes[0], axes[1], axes[2], axes[4], axes[5]):
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    for model in MODELS:
        axes[3].plot(m.steps, m.test_nll[model], marker="o", ms=3, label=LABELS[model])
    axes[3].axhline(NLL_BAR, color="grey", ls="--", lw=1, label=f"bar {NLL_BAR:g} nats")
    axes[3].set_xlabel("training step")
    axes[3].set_ylabel("test NLL (nats per point)")
    axes[3].set_title("test NLL during training")
    axes[3].grid(alpha=0.3)
    axes[3].legend(fontsize=7)
    return [ctx.savefig(fig, "flows")]


def _note(m: FlowsMeasurements, model: str) -> str:
    return f"; {LABELS[model]} diverged: {m.diverged[model]}" if m.diverged[model] else ""


def claims(m: FlowsMeasurements, cfg: FlowsConfig) -> list[Claim]:
    real_mean, real_se = stats.mean_se(m.point_nll["realnvp"])
    nice_mean, nice_se = stats.mean_se(m.point_nll["nice"])
    p_nice, p_real = m.parameters["nice"], m.parameters["realnvp"]
    inverse = max(m.inverse_error.values())
    return [
        Claim.at_most(
            f"RealNVP's test NLL on two moons (noise {cfg.noise:g}) is at most {NLL_BAR:g} nats",
            real_mean,
            NLL_BAR,
            f"mean over {len(m.point_nll['realnvp'])} test points {real_mean:.4f} +- "
            f"{real_se:.4f} (SE) after {cfg.steps} steps of {cfg.batch}, {cfg.couplings} "
            f"couplings; normflows' RealNVP reached 0.297 after 2000 steps" + _note(m, "realnvp"),
            known_failure=SHORTFALL,
            key="realnvp_nll",
        ),
        Claim.from_test(
            "NICE's test NLL is higher than RealNVP's at equal size (per test point, paired)",
            stats.paired(m.point_nll["nice"], m.point_nll["realnvp"], "greater"),
            f"NICE {nice_mean:.4f} +- {nice_se:.4f}, RealNVP {real_mean:.4f} +- {real_se:.4f} "
            f"nats; {p_nice:,} vs {p_real:,} parameters" + _note(m, "nice"),
            key="nice_worse",
        ),
        Claim.at_most(
            "NICE and RealNVP have the same size (|parameter ratio - 1|)",
            abs(p_nice / p_real - 1),
            SIZE_TOLERANCE,
            f"NICE {p_nice:,} ({cfg.nice_couplings} additive couplings + rescaling), RealNVP "
            f"{p_real:,} ({cfg.couplings} affine couplings, separate scale and shift nets)",
            key="equal_size",
            kind="check",
        ),
        Claim.at_most(
            "NICE's coupling layers are volume preserving (max |log det| by brute force)",
            m.nice_coupling_logdet,
            VOLUME_TOLERANCE,
            f"autograd Jacobian of each of {cfg.nice_couplings} couplings, slogdet, float64, "
            f"at {cfg.check_points} test points",
            key="nice_volume_preserving",
            kind="check",
        ),
        Claim.at_most(
            "NICE's rescaling layer carries all the volume change (|log det - sum s|)",
            m.nice_rescale_residual,
            RESCALE_TOLERANCE,
            "brute-force log|det| of the whole NICE flow vs the rescaling layer's sum of "
            "log-scales, float64",
            key="nice_rescaling_carries_volume",
            kind="check",
        ),
        Claim.at_most(
            "RealNVP's log det (sum of log-scales) equals torch's logdet of the autograd Jacobian",
            m.realnvp_logdet_error,
            LOGDET_TOLERANCE,
            f"max abs difference over {cfg.check_points} test points, float64",
            key="realnvp_logdet",
            kind="check",
        ),
        Claim.at_most(
            "the inverse is exact: inverse(forward(z)) = z and forward(inverse(x)) = x",
            inverse,
            INVERSE_TOLERANCE,
            f"max abs error, float64: NICE {m.inverse_error['nice']:.2g}, RealNVP "
            f"{m.inverse_error['realnvp']:.2g}",
            key="inverse_exact",
            kind="check",
        ),
    ]


@experiment(
    "generative.flows",
    topic="generative",
    config=FlowsConfig,
    claims=("realnvp_nll", "nice_worse"),
    checks=(
        "equal_size",
        "nice_volume_preserving",
        "nice_rescaling_carries_volume",
        "realnvp_logdet",
        "inverse_exact",
    ),
)
def flows(cfg: FlowsConfig, ctx: RunContext) -> Outcome:
    """RealNVP's affine couplings fit two moons to the published likelihood, and NICE's
    volume-preserving couplings of the same size fit them worse."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
