r"""Policy-gradient estimators on a tabular MDP: all unbiased, variance falling trick by trick.
Notes: discussion 9, section 1 "Policy Gradients" (1.2.1 reward-to-go, 1.2.2 baselines and
problem 1 "State-dependent baselines") and section 2.3 (the exact value as a baseline); issue
13, experiment 2. Anchor: Williams (1992), REINFORCE, and the policy gradient theorem of Sutton
et al. (2000), which gives the exact gradient the Monte Carlo is compared with.

The MDP (:func:`deepnotes.rl.policy_gradient.random_mdp`, drawn from the run's stream "mdp"):
``n_states`` live states, ``n_actions`` actions, termination with probability ``end_prob`` at
every step (episodes of mean length ``1 / end_prob``), sparse Dirichlet(``concentration``)
dynamics, dense rewards whose level differs by state; undiscounted (``gamma = 1``, the notes'
:math:`J = E[\sum_t r_t]`). The policy is a softmax table at logits
:math:`\theta \sim \mathcal{N}(0, \text{theta\_scale}^2)` (stream "theta"). The exact
:math:`\nabla J` is computed by autograd through the Bellman linear solve and, independently, by
the policy gradient theorem. ``episodes`` episodes (stream "episodes") give one gradient estimate
per episode for each estimator of :data:`~deepnotes.rl.policy_gradient.ESTIMATORS`, all on the
same episodes (paired):

- ``total``: :math:`R(\tau) \sum_t \nabla \log \pi(a_t|s_t)` (notes eq. in 1.1);
- ``total_baseline``: :math:`R(\tau) - b` (the notes' constant baseline of 1.2.2, on the total
  return), :math:`b = J`, the policy's average return (exact; see below);
- ``reward_to_go``: :math:`G_t` (1.2.1);
- ``rtg_baseline``: :math:`G_t - b`, the same constant on the reward-to-go (the issue's
  "constant baseline (the average return)" in its chain);
- ``state_baseline``: :math:`G_t - V^\pi(s_t)` (problem 1; the exact :math:`V^\pi`).

The variance measure of an estimator is :math:`E\|\hat g - \nabla J\|^2` = trace of the covariance
of the per-episode estimate plus its squared bias (zero when unbiased, as the first claims test);
it is estimated by the mean over episodes of :math:`\|\hat g_i - \nabla J\|^2` (the exact
gradient as centre), and two estimators are compared by a paired test on those per-episode
values. The trace of the sample covariance is reported beside it.

Claims (thresholds fixed before the run, from the house policy of :mod:`deepnotes.core.stats`):

- ``unbiased_<estimator>`` for each of the five: the Monte Carlo mean equals the exact gradient
  in every coordinate: max |z| over the coordinates of the live states within the two-sided
  Bonferroni bound at ``alpha`` (= 0.01) over those coordinates. ``unbiased_state_baseline`` is
  the numeric answer to the notes' problem 1 (a state-dependent baseline adds no bias).
- ``rtg_below_total``, ``rtg_baseline_below_rtg``, ``state_baseline_below_rtg_baseline``: the
  issue's chain, variance falls in the order total return > reward-to-go > reward-to-go minus the
  average return > reward-to-go minus :math:`V^\pi(s_t)`: each consecutive pair a one-sided
  paired z test at level 0.025 (the ratio is reported in the detail).
- ``total_baseline_below_total``: the notes' own form, :math:`R(\tau) - E[R]` has a lower
  variance than :math:`R(\tau)` (the notes: no guarantee, "tends to work reasonably well in
  practice"); same test.

Check: ``exact_gradient_two_ways``: autograd and the policy gradient theorem agree to 1e-10.

Deviations: the constant ``b`` is the exact :math:`J` and the state baseline the exact
:math:`V^\pi` (from the linear solve), not estimates from the same batch, so that no O(1/N) bias
from reusing the episodes enters the unbiasedness test; learned baselines belong to
``rl.reinforce_cartpole`` and ``rl.actor_critic``. The MDP has dense rewards on purpose: with a
single terminal reward and :math:`\gamma = 1` (FrozenLake), the reward-to-go equals the total
return at every step, and the first variance claim would compare an estimator with itself. The
measured ratios depend on the MDP; the state baseline's gain is the smallest (1.05-1.43 at seeds
0-14 of the quick preset) because most of the spread of :math:`G_t` is the random episode
length, which :math:`V^\pi(s_t)` cannot predict. Pure NumPy (float64, CPU) whatever
``--device``: nothing here is trained, so there is no engine loop and no cached fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.rl import policy_gradient as pg
from deepnotes.rl.mdp import TabularMDP, policy_evaluation

ESTIMATORS = pg.ESTIMATORS
CHAIN = (
    ("rtg_below_total", "reward_to_go", "total"),
    ("rtg_baseline_below_rtg", "rtg_baseline", "reward_to_go"),
    ("state_baseline_below_rtg_baseline", "state_baseline", "rtg_baseline"),
    ("total_baseline_below_total", "total_baseline", "total"),
)
"""(claim key, lower-variance estimator, higher-variance estimator)."""
LABELS = {
    "total": "R(τ)",
    "total_baseline": "R(τ) − J",
    "reward_to_go": "G_t",
    "rtg_baseline": "G_t − J",
    "state_baseline": "G_t − V(s_t)",
}
GRADIENT_TOLERANCE = 1e-10
"""Autograd through the Bellman solve and the policy gradient theorem must agree to this."""


@dataclass(frozen=True)
class PGVarianceConfig:
    """REINFORCE estimators on a random tabular MDP at a fixed softmax policy."""

    n_states: int = 6
    """Live (non-terminal) states of the MDP."""
    n_actions: int = 3
    end_prob: float = 0.25
    """Probability that the episode ends at each step."""
    concentration: float = 0.3
    """Dirichlet concentration of the transition rows (small: sparse dynamics)."""
    reward_mean: float = 1.0
    """Mean of the states' reward levels."""
    level_scale: float = 3.0
    """Spread of the states' reward levels."""
    reward_scale: float = 0.5
    """Noise of each transition's reward around its state's level."""
    theta_scale: float = 1.0
    """Standard deviation of the policy's logits."""
    episodes: int = 200_000
    """Sampled episodes (one gradient estimate each, per estimator)."""
    alpha: float = stats.ALPHA_AGREEMENT
    """Family-wise level of each unbiasedness claim (Bonferroni over coordinates)."""

    def __post_init__(self) -> None:
        require(self.n_states >= 1, f"n_states must be >= 1, got {self.n_states}")
        require(self.n_actions >= 2, f"n_actions must be >= 2, got {self.n_actions}")
        require(0 < self.end_prob <= 1, f"end_prob must be in (0, 1], got {self.end_prob}")
        require(self.concentration > 0, f"concentration must be > 0, got {self.concentration}")
        require(self.level_scale >= 0, f"level_scale must be >= 0, got {self.level_scale}")
        require(self.reward_scale >= 0, f"reward_scale must be >= 0, got {self.reward_scale}")
        require(self.theta_scale >= 0, f"theta_scale must be >= 0, got {self.theta_scale}")
        require(self.episodes >= 100, f"episodes must be >= 100, got {self.episodes}")
        require(0 < self.alpha < 0.5, f"alpha must be in (0, 0.5), got {self.alpha}")

    @property
    def coordinates(self) -> int:
        """Gradient coordinates compared with the exact gradient (the live states' logits)."""
        return self.n_states * self.n_actions

    @classmethod
    def quick(cls) -> PGVarianceConfig:
        """50,000 episodes (about 2 s in-process with one thread on the loaded shared CPU)."""
        return cls(episodes=50_000)


@dataclass(frozen=True)
class PGVarianceMeasurements:
    """The exact gradient, and per estimator the Monte Carlo mean and the variance measure."""

    exact: np.ndarray
    """:math:`\\nabla J` by autograd through the Bellman solve, (S, A) with S counting the
    terminal state."""
    theorem: np.ndarray
    """:math:`\\nabla J` by the policy gradient theorem, (S, A)."""
    objective: float
    """:math:`J`, the average return (the constant baseline)."""
    values: np.ndarray
    """:math:`V^\\pi`, (S,) (the state baseline)."""
    mean: dict[str, np.ndarray]
    """Monte Carlo mean gradient per estimator, (S, A)."""
    se: dict[str, np.ndarray]
    """Its standard error, (S, A)."""
    sq_dev: dict[str, np.ndarray]
    """Per episode :math:`\\|\\hat g_i - \\nabla J\\|^2`, (N,) per estimator."""
    trace_cov: dict[str, float]
    """Trace of the sample covariance of the per-episode estimates."""
    live: np.ndarray
    """Non-terminal states, bool (S,)."""
    mean_length: float
    """Mean episode length."""

    def variance(self, name: str) -> tuple[float, float]:
        """The variance measure of ``name`` and its standard error."""
        return stats.mean_se(self.sq_dev[name])

    def z(self, name: str) -> np.ndarray:
        """Standardised deviations of the live coordinates from the exact gradient, (L * A,)."""
        dev = stats.standardized_deviation(self.mean[name], self.se[name], self.exact)
        return dev[self.live].ravel()

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "objective": self.objective,
            "mean_episode_length": self.mean_length,
            "exact_gradient": self.exact.tolist(),
            "gradient_two_ways_max_abs_diff": float(np.max(np.abs(self.exact - self.theorem))),
        }
        for name in ESTIMATORS:
            var, se = self.variance(name)
            out[f"variance_{name}"] = var
            out[f"variance_se_{name}"] = se
            out[f"trace_cov_{name}"] = self.trace_cov[name]
            out[f"max_abs_z_{name}"] = float(np.max(np.abs(self.z(name))))
        for key, low, high in CHAIN:
            out[f"ratio_{key}"] = self.variance(high)[0] / self.variance(low)[0]
        return out


def build(cfg: PGVarianceConfig, ctx: RunContext) -> tuple[TabularMDP, np.ndarray]:
    """The MDP and the policy's logits ``theta`` (S, A) of this run."""
    mdp = pg.random_mdp(
        cfg.n_states,
        cfg.n_actions,
        ctx.numpy_rng("mdp"),
        end_prob=cfg.end_prob,
        concentration=cfg.concentration,
        reward_mean=cfg.reward_mean,
        level_scale=cfg.level_scale,
        reward_scale=cfg.reward_scale,
    )
    theta = cfg.theta_scale * ctx.numpy_rng("theta").standard_normal((mdp.n_states, mdp.n_actions))
    return mdp, theta


def measure(cfg: PGVarianceConfig, ctx: RunContext) -> PGVarianceMeasurements:
    """Exact gradient two ways, then every estimator on the same sampled episodes."""
    mdp, theta = build(cfg, ctx)
    pi = pg.softmax_policy(theta)
    exact = pg.exact_gradient_autograd(mdp, theta)
    objective = pg.exact_objective(mdp, theta)
    values = policy_evaluation(mdp, pi)
    episodes = pg.sample_episodes(mdp, pi, cfg.episodes, ctx.numpy_rng("episodes"))
    baselines = {"state_baseline": values, "total_baseline": objective, "rtg_baseline": objective}
    mean, se, sq_dev, trace_cov = {}, {}, {}, {}
    with ctx.progress(len(ESTIMATORS), "estimators") as bar:
        for name in ESTIMATORS:
            psi = pg.reinforce_weights(episodes, mdp.gamma, name, baselines.get(name))
            grads = pg.per_episode_gradients(episodes, pi, psi)  # (N, S, A)
            mean[name], se[name] = stats.mean_and_se(grads)
            sq_dev[name] = ((grads - exact) ** 2).sum(axis=(1, 2))  # (N,)
            trace_cov[name] = float(grads.reshape(len(grads), -1).var(axis=0, ddof=1).sum())
            ctx.log({"estimator": name, "variance": float(sq_dev[name].mean())})
            bar.advance()
    return PGVarianceMeasurements(
        exact=exact,
        theorem=pg.exact_gradient_theorem(mdp, theta),
        objective=objective,
        values=values,
        mean=mean,
        se=se,
        sq_dev=sq_dev,
        trace_cov=trace_cov,
        live=~mdp.terminal,
        mean_length=float(episodes.lengths.mean()),
    )


def draw(m: PGVarianceMeasurements, cfg: PGVarianceConfig, ctx: RunContext) -> list[Path]:
    fig, (ax_var, ax_mean) = figure(ncols=2, size=(5.2, 4.2))
    order = ("total", "total_baseline", "reward_to_go", "rtg_baseline", "state_baseline")
    colors = {name: f"C{i}" for i, name in enumerate(order)}
    var = np.array([m.variance(name) for name in order])  # (E, 2): value, SE
    x = np.arange(len(order))
    bars = ax_var.bar(x, var[:, 0], yerr=2 * var[:, 1], capsize=4, color=[colors[n] for n in order])
    bars[order.index("total_baseline")].set_hatch("//")  # the notes' form, beside the chain
    for i, (value, se) in enumerate(var):
        ax_var.annotate(
            f"{value:.3g}",
            (i, value + 2 * se),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax_var.set_ylim(var[:, 0].min() / 3, var[:, 0].max() * 4)
    ratios = "\n".join(
        f"{LABELS[high]} / {LABELS[low]}: {m.variance(high)[0] / m.variance(low)[0]:.2f}"
        for _, low, high in CHAIN
    )
    ax_var.text(
        0.98,
        0.98,
        "variance ratios\n" + ratios,
        fontsize=7,
        transform=ax_var.transAxes,
        ha="right",
        va="top",
    )
    ax_var.set_yscale("log")
    ax_var.set_xticks(x, [LABELS[n] for n in order], rotation=20, fontsize=8)
    ax_var.set_ylabel("E‖ĝ − ∇J‖²  (trace of covariance)")
    ax_var.set_title(f"variance per episode (± 2 SE, {cfg.episodes:,} episodes)")
    ax_var.grid(alpha=0.3, axis="y", which="both")
    exact = m.exact[m.live].ravel()
    pad = 0.1 * (exact.max() - exact.min())
    lims = (exact.min() - pad, exact.max() + pad)
    ax_mean.plot(lims, lims, color="grey", lw=1, label="exact = MC")
    offsets = np.linspace(-0.3, 0.3, len(order)) * pad
    for offset, name in zip(offsets, order, strict=True):
        ax_mean.errorbar(
            exact + offset,
            m.mean[name][m.live].ravel(),
            yerr=2 * m.se[name][m.live].ravel(),
            fmt="o",
            ms=3,
            capsize=2,
            color=colors[name],
            label=f"{LABELS[name]} (max |z| {np.max(np.abs(m.z(name))):.1f})",
        )
    ax_mean.set_xlabel("exact ∂J/∂θ (policy gradient theorem = autograd)")
    ax_mean.set_ylabel("Monte Carlo mean (± 2 SE)")
    ax_mean.set_title(f"every estimator is unbiased ({cfg.coordinates} coordinates)")
    ax_mean.legend(fontsize=7)
    ax_mean.grid(alpha=0.3)
    return [ctx.savefig(fig, "policy_gradient_variance")]


def claims(m: PGVarianceMeasurements, cfg: PGVarianceConfig) -> list[Claim]:
    family = int(m.live.sum()) * m.exact.shape[1]
    bound = stats.agreement_bound(family, cfg.alpha)
    setting = f"{cfg.episodes:,} episodes of mean length {m.mean_length:.2f}, J = {m.objective:.4g}"
    out = []
    for name in ESTIMATORS:
        z = m.z(name)
        worst = int(np.nanargmax(np.abs(z))) if not np.all(np.isnan(z)) else 0
        out.append(
            Claim.at_most(
                f"the {LABELS[name]} estimator is unbiased: its mean equals the exact gradient "
                "in every coordinate (max |z|)",
                float(np.max(np.abs(z))),
                bound,
                f"worst coordinate {worst}: MC {m.mean[name][m.live].ravel()[worst]:+.5f} vs "
                f"exact {m.exact[m.live].ravel()[worst]:+.5f}; bound = two-sided Bonferroni "
                f"over {family} coordinates at alpha = {cfg.alpha:g}; {setting}",
                key=f"unbiased_{name}",
            )
        )
    for key, low, high in CHAIN:
        ratio = m.variance(high)[0] / m.variance(low)[0]
        test = stats.paired(m.sq_dev[high], m.sq_dev[low], "greater")
        out.append(
            Claim.from_test(
                f"{LABELS[low]} has a lower variance than {LABELS[high]} "
                "(paired test of E‖ĝ − ∇J‖²)",
                test,
                f"variance ratio {LABELS[high]} / {LABELS[low]} = {ratio:.3f}; {setting}",
                key=key,
            )
        )
    diff = float(np.max(np.abs(m.exact - m.theorem)))
    out.append(
        Claim.at_most(
            "autograd through the Bellman linear solve equals the policy gradient theorem "
            f"(max abs difference <= {GRADIENT_TOLERANCE:g})",
            diff,
            GRADIENT_TOLERANCE,
            f"max |grad J| = {np.max(np.abs(m.exact)):.4g}",
            key="exact_gradient_two_ways",
            kind="check",
        )
    )
    return out


@experiment(
    "rl.policy_gradient_variance",
    topic="rl",
    config=PGVarianceConfig,
    claims=tuple(f"unbiased_{name}" for name in ESTIMATORS) + tuple(key for key, _, _ in CHAIN),
    checks=("exact_gradient_two_ways",),
)
def policy_gradient_variance(cfg: PGVarianceConfig, ctx: RunContext) -> Outcome:
    """Every REINFORCE estimator (total return, reward-to-go, constant and state-dependent
    baselines) has the exact policy gradient as its mean, and each trick lowers the variance."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
