r"""Discounting: the discounted value equals its closed form, and a lower discount gives
lower-variance Monte Carlo returns. Notes: discussion 9, section 2.1 "Discounting"
(:math:`V^\pi(s) = \mathbb{E}_\pi[\sum_t \gamma^t r_t | s_0 = s]`; "we'll often use discounted
returns even if there is a finite horizon T in order to reduce variance"). The anchor is the
closed form below and :func:`~deepnotes.rl.mdp.policy_evaluation`.

Two MDPs, episodes sampled with :func:`~deepnotes.rl.tabular.sample_episodes`, and every
discount of ``gammas`` applied to the *same* episodes (a paired design):

- the *geometric* MDP (:func:`geometric_mdp`): one state paying ``reward`` per step, ending
  after each step with probability ``p``. The episode length ``T`` is geometric, the return
  :math:`G = r (1 - \gamma^T) / (1 - \gamma)`, and, with
  :math:`a(x) = \mathbb{E}[x^T] = p x / (1 - (1-p) x)`,

  .. math:: V = \frac{r}{1 - \gamma (1 - p)}, \qquad
            \operatorname{Var} G = r^2 \frac{a(\gamma^2) - a(\gamma)^2}{(1 - \gamma)^2}

  (at :math:`\gamma = 1`: :math:`V = r / p`, :math:`\operatorname{Var} G = r^2 (1-p) / p^2`);
- FrozenLake-v1 (slippery) under the uniform policy, where the reward 1 arrives at the end:
  :math:`V^\pi(s_0)` by the linear solve.

Claims (thresholds fixed before the run; levels from :mod:`deepnotes.core.stats`):

- ``value_closed_form``: the Monte Carlo mean of the discounted returns agrees with the closed
  form (geometric MDP) and with the linear solve (FrozenLake) at every discount: largest
  :math:`|z|` within the two-sided agreement bound at level 0.01, Bonferroni over
  ``2 len(gammas)``.
- ``variance_closed_form``: the sample variance of the geometric MDP's returns agrees with the
  closed form at every discount (same policy, Bonferroni over ``len(gammas)``).
- ``lower_gamma_lower_variance``: for every consecutive pair of discounts on both MDPs, the
  returns' variance is higher at the higher discount: a paired one-sided test on the squared
  deviations from the mean (the same episodes), level 0.025 Bonferroni over the
  ``2 (len(gammas) - 1)`` pairs; holds when every pair rejects (the weakest is shown).

Check: ``policy_evaluation_closed_form``: :func:`~deepnotes.rl.mdp.policy_evaluation` of the
geometric MDP equals :math:`r / (1 - \gamma(1-p))` to 1e-10 at every discount.

Nothing is trained: the episodes are cached per MDP (``ctx.cached``), no loop is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.rl.mdp import TabularMDP, from_gymnasium, policy_evaluation, uniform_policy
from deepnotes.rl.tabular import sample_episodes

MDPS = ("geometric", "frozenlake")
CHECK_TOL = 1e-10


def geometric_mdp(p: float, reward: float = 1.0, gamma: float = 0.99) -> TabularMDP:
    """State 0 pays ``reward`` per step and moves to the terminal state 1 with probability
    ``p`` (else stays): episodes last a geometric number of steps, mean ``1 / p``."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    P = np.array([[[1.0 - p, p]], [[0.0, 1.0]]])  # (S=2, A=1, S=2)
    R = np.zeros((2, 1, 2))
    R[0, 0, :] = reward
    return TabularMDP(P, R, np.array([1.0, 0.0]), np.array([False, True]), gamma)


def geometric_value(gamma: float, p: float, reward: float = 1.0) -> float:
    r""":math:`V = r / (1 - \gamma (1 - p))` (from :math:`V = r + \gamma (1-p) V`)."""
    return reward / (1.0 - gamma * (1.0 - p))


def geometric_return_variance(gamma: float, p: float, reward: float = 1.0) -> float:
    r""":math:`\operatorname{Var} G` of the geometric MDP (see the module docstring)."""
    if gamma == 1.0:
        return reward**2 * (1.0 - p) / p**2

    def a(x: float) -> float:  # E[x^T] for T ~ Geometric(p) on {1, 2, ...}
        return p * x / (1.0 - (1.0 - p) * x)

    return reward**2 * (a(gamma**2) - a(gamma) ** 2) / (1.0 - gamma) ** 2


@dataclass(frozen=True)
class DiscountingConfig:
    """Monte Carlo returns of two MDPs at several discounts, from the same episodes."""

    gammas: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99, 1.0)
    p: float = 0.1
    """The geometric MDP's probability of ending after each step."""
    reward: float = 1.0
    episodes: int = 100_000
    max_steps: int = 2000
    """Episodes still running after this many steps are truncated (probability below 1e-90
    for the geometric MDP at p = 0.1)."""

    def __post_init__(self) -> None:
        g = self.gammas
        require(len(g) >= 2, f"need at least two gammas, got {g}")
        require(all(0.0 < x <= 1.0 for x in g), f"every gamma must be in (0, 1], got {g}")
        require(all(a < b for a, b in pairwise(g)), "gammas must increase")
        require(0.0 < self.p < 1.0, f"p must be in (0, 1), got {self.p}")
        require(self.reward != 0.0, "reward must be non-zero")
        require(self.episodes >= 30, f"episodes must be >= 30, got {self.episodes}")
        require(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")

    @classmethod
    def quick(cls) -> DiscountingConfig:
        """20,000 episodes per MDP."""
        return cls(episodes=20_000)


@dataclass(frozen=True)
class DiscountingMeasurements:
    gammas: np.ndarray
    """(G,)"""
    returns: dict[str, np.ndarray]
    """Per MDP, discounted returns of the same episodes at every gamma, (G, E)."""
    exact: dict[str, np.ndarray]
    """Per MDP, the closed-form (geometric) or linear-solve (FrozenLake) value, (G,)."""
    policy_evaluation: np.ndarray
    """policy_evaluation of the geometric MDP at every gamma, (G,)."""
    exact_variance: np.ndarray
    """Closed-form Var G of the geometric MDP, (G,)."""
    truncated: dict[str, int]

    def mean_se(self, mdp: str) -> tuple[np.ndarray, np.ndarray]:
        return stats.mean_and_se(self.returns[mdp], axis=1)

    def variance_se(self, mdp: str) -> tuple[np.ndarray, np.ndarray]:
        return stats.variance_and_se(self.returns[mdp], axis=1)

    def value_z(self) -> np.ndarray:
        """(2, G) standardised deviations of the Monte Carlo means from the exact values."""
        return np.stack(
            [stats.standardized_deviation(*self.mean_se(k), self.exact[k]) for k in MDPS]
        )

    def variance_tests(self) -> list[tuple[str, float, float, stats.TestResult]]:
        """Paired tests that Var at the higher gamma exceeds Var at the lower one."""
        family = len(MDPS) * (len(self.gammas) - 1)
        out = []
        for k in MDPS:
            g = self.returns[k]
            sq = (g - g.mean(axis=1, keepdims=True)) ** 2  # (G, E) squared deviations
            for i in range(len(self.gammas) - 1):
                test = stats.paired(sq[i + 1], sq[i], "greater", family=family)
                out.append((k, float(self.gammas[i]), float(self.gammas[i + 1]), test))
        return out

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"gammas": self.gammas.tolist()}
        for k in MDPS:
            mean, _ = self.mean_se(k)
            var, _ = self.variance_se(k)
            out[f"{k}_mc_value"] = mean.tolist()
            out[f"{k}_exact_value"] = self.exact[k].tolist()
            out[f"{k}_variance"] = var.tolist()
        out["geometric_exact_variance"] = self.exact_variance.tolist()
        return out


def _sample(cfg: DiscountingConfig, ctx: RunContext, name: str) -> dict[str, Any]:
    mdp = (
        geometric_mdp(cfg.p, cfg.reward)
        if name == "geometric"
        else from_gymnasium("FrozenLake-v1", gamma=1.0)
    )
    episodes = sample_episodes(
        mdp, uniform_policy(mdp), cfg.episodes, ctx.numpy_rng("episodes", name), cfg.max_steps
    )
    return {
        "returns": episodes.returns(np.asarray(cfg.gammas)),
        "exact": np.array(
            [policy_evaluation(mdp.with_gamma(g), uniform_policy(mdp))[0] for g in cfg.gammas]
        ),
        "truncated": int((~episodes.terminated).sum()),
    }


def measure(cfg: DiscountingConfig, ctx: RunContext) -> DiscountingMeasurements:
    runs = {}
    for name in MDPS:
        key = {"mdp": name, "gammas": list(cfg.gammas), "p": cfg.p, "reward": cfg.reward}
        key.update(episodes=cfg.episodes, max_steps=cfg.max_steps)
        runs[name] = ctx.cached("episodes", key, lambda name=name: _sample(cfg, ctx, name))
    gammas = np.asarray(cfg.gammas)
    closed = np.array([geometric_value(g, cfg.p, cfg.reward) for g in gammas])
    return DiscountingMeasurements(
        gammas=gammas,
        returns={k: runs[k]["returns"] for k in MDPS},
        exact={"geometric": closed, "frozenlake": runs["frozenlake"]["exact"]},
        policy_evaluation=runs["geometric"]["exact"],
        exact_variance=np.array([geometric_return_variance(g, cfg.p, cfg.reward) for g in gammas]),
        truncated={k: runs[k]["truncated"] for k in MDPS},
    )


TITLES = {"geometric": "geometric MDP", "frozenlake": "FrozenLake, uniform policy"}


def draw(m: DiscountingMeasurements, cfg: DiscountingConfig, ctx: RunContext) -> list[Path]:
    fig, (ax, bx) = figure(ncols=2, size=(5.0, 3.8))
    fine = np.linspace(m.gammas[0], m.gammas[-1], 200)
    for k, color in zip(MDPS, ("C0", "C1"), strict=True):
        mean, se = m.mean_se(k)
        scale = 1.0 / m.exact[k][-1]  # each MDP's value at the largest gamma = 1 on the plot
        ax.errorbar(
            m.gammas,
            mean * scale,
            yerr=2 * se * scale,
            fmt="o",
            color=color,
            ms=4,
            label=f"{TITLES[k]}: Monte Carlo mean +- 2 SE",
        )
        ax.plot(m.gammas, m.exact[k] * scale, "x", color="k", ms=6)
        var, vse = m.variance_se(k)
        bx.errorbar(
            m.gammas,
            var,
            yerr=2 * vse,
            fmt="o",
            color=color,
            ms=4,
            label=f"{TITLES[k]}: sample variance +- 2 SE",
        )
    closed = [geometric_value(g, cfg.p, cfg.reward) for g in fine]
    ax.plot(
        fine,
        np.asarray(closed) / m.exact["geometric"][-1],
        color="C0",
        lw=1,
        label="closed form r / (1 - gamma (1 - p))",
    )
    ax.plot([], [], "x", color="k", label="exact (closed form / linear solve)")
    ax.set_xlabel("discount gamma")
    ax.set_ylabel(f"value V(s0) / V at gamma = {m.gammas[-1]:g}")
    ax.set_title(f"discounted value (p = {cfg.p:g}, {cfg.episodes} episodes)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    variance = [geometric_return_variance(g, cfg.p, cfg.reward) for g in fine]
    bx.plot(fine, variance, color="C0", lw=1, label="closed-form Var G (geometric)")
    bx.set_yscale("log")
    bx.set_xlabel("discount gamma")
    bx.set_ylabel("Var of the Monte Carlo return G")
    bx.set_title("lower gamma, lower-variance returns")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3, which="both")
    return [ctx.savefig(fig, "discounting")]


def claims(m: DiscountingMeasurements, cfg: DiscountingConfig) -> list[Claim]:
    z = m.value_z()
    value_bound = stats.agreement_bound(z.size)
    var, vse = m.variance_se("geometric")
    z_var = stats.standardized_deviation(var, vse, m.exact_variance)
    var_bound = stats.agreement_bound(len(m.gammas))
    tests = m.variance_tests()
    weakest = min(tests, key=lambda t: t[3].statistic)
    pairs = "; ".join(f"{k} {lo:g}->{hi:g}: z = {t.statistic:.1f}" for k, lo, hi, t in tests)
    return [
        Claim.at_most(
            "the Monte Carlo mean of the discounted return equals the closed-form value "
            "(geometric MDP) and the linear solve (FrozenLake) at every gamma (largest |z|)",
            float(np.max(np.abs(z))),
            value_bound,
            f"two-sided agreement level {stats.ALPHA_AGREEMENT:g}, Bonferroni over {z.size}; "
            f"z geometric {np.round(z[0], 2).tolist()}, FrozenLake {np.round(z[1], 2).tolist()} "
            f"at gammas {m.gammas.tolist()}; truncated episodes {m.truncated}",
            key="value_closed_form",
        ),
        Claim.at_most(
            "the sample variance of the geometric MDP's returns equals the closed form "
            "r^2 (a(gamma^2) - a(gamma)^2) / (1 - gamma)^2 at every gamma (largest |z|)",
            float(np.max(np.abs(z_var))),
            var_bound,
            f"two-sided agreement level {stats.ALPHA_AGREEMENT:g}, Bonferroni over "
            f"{len(m.gammas)}; z {np.round(z_var, 2).tolist()}",
            key="variance_closed_form",
        ),
        Claim.from_test(
            "a lower discount gives lower-variance Monte Carlo returns: Var G rises with gamma "
            f"at every step of {m.gammas.tolist()} on both MDPs (weakest pair: {weakest[0]} "
            f"{weakest[1]:g} -> {weakest[2]:g})",
            weakest[3],
            detail=f"paired on the same episodes, squared deviations; {pairs}",
            key="lower_gamma_lower_variance",
        ),
        Claim.at_most(
            "policy_evaluation of the geometric MDP equals r / (1 - gamma (1 - p)) "
            "(largest absolute difference over the gammas)",
            float(np.max(np.abs(m.policy_evaluation - m.exact["geometric"]))),
            CHECK_TOL,
            f"gammas {m.gammas.tolist()}, p = {cfg.p:g}, r = {cfg.reward:g}",
            key="policy_evaluation_closed_form",
            kind="check",
        ),
    ]


@experiment(
    "rl.discounting",
    topic="rl",
    config=DiscountingConfig,
    claims=("value_closed_form", "variance_closed_form", "lower_gamma_lower_variance"),
    checks=("policy_evaluation_closed_form",),
)
def discounting(cfg: DiscountingConfig, ctx: RunContext) -> Outcome:
    """The discounted value equals its closed form, and a lower gamma gives lower-variance
    Monte Carlo returns."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
