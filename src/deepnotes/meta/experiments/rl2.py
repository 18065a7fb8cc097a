r"""RL^2 on Bernoulli bandits: a GRU trained across tasks explores a new bandit at least as well
as the hand-made strategies, and its hidden state is what carries the learning. Notes:
discussion 12, section 3 "Keeping Track of History in Meta-RL" and problem 2 "Resetting the
Hidden State"; the setting and anchor are Duan et al. (2016, "RL^2", section 4.1, table 1:
RL^2 comparable to Gittins indices and Thompson sampling, better than epsilon-greedy, on
Bernoulli bandits with arms' means ``U[0, 1]``).

A trial is ``episodes`` episodes of ``pulls`` pulls on one bandit of ``arms`` arms
(:mod:`deepnotes.data.bandits`), ``n = episodes * pulls`` pulls in all (quick and full: 5 arms,
4 episodes of 5 pulls, n = 20, a small setting for the CPU). :class:`~deepnotes.meta.rl2.RL2Policy`
(a GRU of width ``hidden``) is trained by REINFORCE with a time baseline and an entropy bonus on
``iterations`` batches of ``batch_tasks`` fresh bandits, its hidden state kept across the
episodes of a trial (:func:`~deepnotes.meta.rl2.train_rl2`). It is tested on ``test_tasks``
fresh bandits (own stream), each with one pre-drawn outcome table
(:func:`~deepnotes.data.bandits.outcomes`) shared by every method: comparisons are paired.

Claims (fixed before the run; regret = pseudo-regret over the n pulls,
:math:`\sum_t (\mu^* - \mu_{a_t})`, the RL^2 policy sampling its actions):

- ``beats_epsilon_greedy``: RL^2's regret is below epsilon-greedy's (``epsilon`` = 0.1, each arm
  pulled once first), paired one-sided test over the test tasks.
- ``near_thompson``: RL^2's mean regret is at most :data:`THOMPSON_FACTOR` = 1.5 times Thompson
  sampling's (``Beta(1, 1)`` priors); Duan et al. report "comparable".
- ``later_episodes_earn_more`` (problem 2): with the hidden state kept across the episodes,
  the mean return of episodes 2..E exceeds episode 1's (paired test over tasks of the
  per-task difference, the *gain*).
- ``reset_removes_gain``: resetting the state (and the input) at every episode start, the same
  policy on the same outcome tables has a smaller gain than with the state kept (paired test).
- ``reset_gain_zero`` (a check): with the reset every episode starts with the same state, so
  the episodes are exchangeable and the gain is 0 in expectation: its z-score is within the
  house agreement bound (:func:`deepnotes.core.stats.agreement_bound`).
- ``carry_costs``: a state carried from the end of a trial on one bandit into a new bandit costs
  return in the new bandit's first episode, against a fresh (zero) state: paired test over the
  new bandits (same outcome tables) of the fresh minus the carried first-episode return.

Measured at seed 0 (mean regret over 20 pulls): full preset (6,000 iterations, 2,000 test
tasks) RL^2 2.59 +- 0.05, epsilon-greedy 3.48, Thompson 3.80; episode returns with the state
kept 3.03, 3.54, 3.70, 3.76, reset 3.04, 3.01, 3.07, 3.06; a new task's first episode 3.02
fresh, 2.66 carried. The quick preset (1,500 iterations) holds every claim at seeds 0 and 1.
Thompson sampling with a flat prior explores much at n = 20 (its regret is above
epsilon-greedy's here); its advantage is asymptotic.

Deviations: REINFORCE with a time baseline instead of Duan et al.'s TRPO with a GRU value
baseline; n = 20 pulls (Duan et al. test n = 10, 100, 500); the test trials are cut into
episodes (the paper's bandit trials are one episode) so that problem 2 can be measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import agreement_bound, mean_se, one_sample, paired, standardized
from deepnotes.data.bandits import outcomes, pseudo_regret, sample_bandits
from deepnotes.meta.rl2 import RL2Policy, epsilon_greedy, rollout, thompson, train_rl2

THOMPSON_FACTOR = 1.5
"""RL^2's mean regret must be at most this many times Thompson sampling's."""
METHODS = ("rl2", "epsilon_greedy", "thompson")
LABELS = {"rl2": "RL$^2$ (GRU)", "epsilon_greedy": "epsilon-greedy", "thompson": "Thompson"}


@dataclass(frozen=True)
class RL2Config:
    """Train RL^2 on Bernoulli bandits; test it against epsilon-greedy and Thompson sampling."""

    arms: int = 5
    episodes: int = 4
    pulls: int = 5
    """Pulls per episode; a trial has episodes * pulls pulls."""
    hidden: int = 32
    batch_tasks: int = 128
    iterations: int = 6000
    lr: float = 1e-2
    gamma: float = 1.0
    entropy_coef: float = 0.01
    every: int = 250
    epsilon: float = 0.1
    test_tasks: int = 2000

    def __post_init__(self) -> None:
        require(self.arms >= 2, f"arms must be >= 2, got {self.arms}")
        require(self.episodes >= 2, f"episodes must be >= 2 (problem 2), got {self.episodes}")
        require(self.pulls >= 1 and self.hidden >= 1, "pulls and hidden must be >= 1")
        require(self.batch_tasks >= 2, f"batch_tasks must be >= 2, got {self.batch_tasks}")
        require(
            self.iterations >= 1 and 1 <= self.every <= self.iterations,
            "need iterations >= 1 and 1 <= every <= iterations",
        )
        require(self.lr > 0 and 0 < self.gamma <= 1, "need lr > 0 and gamma in (0, 1]")
        require(self.entropy_coef >= 0, f"entropy_coef must be >= 0, got {self.entropy_coef}")
        require(0 <= self.epsilon <= 1, f"epsilon must be in [0, 1], got {self.epsilon}")
        require(self.test_tasks >= 2, f"test_tasks must be >= 2, got {self.test_tasks}")

    @classmethod
    def quick(cls) -> RL2Config:
        """1,500 iterations, 1,000 test tasks (about 30 s on one loaded thread)."""
        return cls(iterations=1500, test_tasks=1000)


@dataclass(frozen=True)
class RL2Measurements:
    """Per test task: regrets, episode returns kept / reset, first-episode returns carried /
    fresh; the training curve and mean cumulative regret curves."""

    regret: dict[str, np.ndarray]
    """Per method in :data:`METHODS`, ``(test_tasks,)``."""
    cumulative: dict[str, np.ndarray]
    """Per method, mean cumulative regret after each pull ``(n,)``."""
    kept: np.ndarray
    """Episode returns with the state kept, ``(test_tasks, episodes)``."""
    reset: np.ndarray
    """Episode returns with the state reset every episode, ``(test_tasks, episodes)``."""
    carried_first: np.ndarray
    """First-episode return on a new bandit from the carried state, ``(test_tasks,)``."""
    fresh_first: np.ndarray
    """The same new bandits' first-episode return from a fresh state, ``(test_tasks,)``."""
    train_iteration: np.ndarray
    train_return: np.ndarray
    diverged: str

    @staticmethod
    def gain(returns: np.ndarray) -> np.ndarray:
        """Mean return of episodes 2..E minus episode 1's, per task."""
        return returns[:, 1:].mean(1) - returns[:, 0]

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for method in METHODS:
            mean, se = mean_se(self.regret[method])
            out[f"regret_{method}"] = [mean, se]
        out["episode_returns_kept"] = self.kept.mean(0).tolist()
        out["episode_returns_reset"] = self.reset.mean(0).tolist()
        out["first_episode_carried"] = float(self.carried_first.mean())
        out["first_episode_fresh"] = float(self.fresh_first.mean())
        out["diverged"] = self.diverged
        return out


def _fit(cfg: RL2Config, ctx: RunContext) -> dict[str, Any]:
    with ctx.seeded("init"):
        policy = RL2Policy(cfg.arms, cfg.hidden)
    return train_rl2(
        ctx,
        policy,
        tag="rl2",
        episodes=cfg.episodes,
        pulls=cfg.pulls,
        batch_tasks=cfg.batch_tasks,
        iterations=cfg.iterations,
        lr=cfg.lr,
        gamma=cfg.gamma,
        entropy_coef=cfg.entropy_coef,
        every=cfg.every,
    )


def _cumulative(means: torch.Tensor, actions: torch.Tensor) -> np.ndarray:
    per_pull = means.max(1, keepdim=True).values - means.gather(1, actions.long())
    return per_pull.cumsum(1).mean(0).numpy()


def measure(cfg: RL2Config, ctx: RunContext) -> RL2Measurements:
    """Train RL^2 (cached), then run every method on the same test tasks and outcome tables."""
    key = {f: getattr(cfg, f) for f in cfg.__dataclass_fields__ if f not in ("test_tasks",)}
    fit = ctx.cached("fit", key, lambda: _fit(cfg, ctx))
    policy = RL2Policy(cfg.arms, cfg.hidden)
    policy.load_state_dict(fit["state"])
    n = cfg.episodes * cfg.pulls
    test = ctx.stream("test")
    means = sample_bandits(cfg.test_tasks, cfg.arms, test)
    table = outcomes(means, n, test)
    new_means = sample_bandits(cfg.test_tasks, cfg.arms, test)
    new_table = outcomes(new_means, n, test)
    rng = ctx.numpy_rng("baselines")
    with torch.no_grad():
        kept = rollout(policy, table, cfg.episodes, ctx.stream("act", "kept"), reset="task")
        reset = rollout(policy, table, cfg.episodes, ctx.stream("act", "reset"), reset="episode")
        carried = rollout(
            policy, new_table, cfg.episodes, ctx.stream("act", "carried"), h0=kept.final
        )
        fresh = rollout(policy, new_table, cfg.episodes, ctx.stream("act", "fresh"))
    actions = {
        "rl2": kept.actions,
        "epsilon_greedy": epsilon_greedy(table, cfg.epsilon, rng),
        "thompson": thompson(table, rng),
    }
    return RL2Measurements(
        regret={m: pseudo_regret(means, a).numpy() for m, a in actions.items()},
        cumulative={m: _cumulative(means, a) for m, a in actions.items()},
        kept=kept.episode_returns().numpy(),
        reset=reset.episode_returns().numpy(),
        carried_first=carried.episode_returns()[:, 0].numpy(),
        fresh_first=fresh.episode_returns()[:, 0].numpy(),
        train_iteration=np.asarray(fit["iteration"], dtype=float),
        train_return=np.asarray(fit["train_return"], dtype=float),
        diverged=fit["diverged"],
    )


def draw(m: RL2Measurements, cfg: RL2Config, ctx: RunContext) -> list[Path]:
    fig, axes = figure(ncols=3, size=(4.8, 4.0))
    ax = axes[0]
    ax.plot(m.train_iteration, m.train_return, color="C0")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"mean trial reward ({cfg.episodes * cfg.pulls} pulls)")
    ax.set_title("RL$^2$ training (REINFORCE)")
    ax.grid(alpha=0.3)
    ax = axes[1]
    pulls = np.arange(1, cfg.episodes * cfg.pulls + 1)
    for i, method in enumerate(METHODS):
        mean = m.regret[method].mean()
        ax.plot(pulls, m.cumulative[method], color=f"C{i}", label=f"{LABELS[method]} ({mean:.2f})")
    for e in range(1, cfg.episodes):
        ax.axvline(e * cfg.pulls + 0.5, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("pull")
    ax.set_ylabel("mean cumulative regret")
    ax.set_title(f"{cfg.arms} arms, {len(m.regret['rl2'])} test tasks")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    episode = np.arange(1, cfg.episodes + 1)
    ax.plot(episode, m.kept.mean(0), "o-", color="C0", label="state kept across episodes")
    ax.plot(episode, m.reset.mean(0), "s--", color="C3", label="state reset every episode")
    ax.plot([1], [m.fresh_first.mean()], "^", color="C2", ms=9, label="new task, fresh state")
    ax.plot([1], [m.carried_first.mean()], "v", color="C1", ms=9, label="new task, carried state")
    ax.set_xticks(episode)
    ax.set_xlabel("episode of the trial")
    ax.set_ylabel(f"mean episode return ({cfg.pulls} pulls)")
    ax.set_title("problem 2: what the hidden state carries")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return [ctx.savefig(fig, "rl2_bandits")]


def claims(m: RL2Measurements, cfg: RL2Config) -> list[Claim]:
    rl2, eps, ts = (m.regret[k] for k in METHODS)
    ratio = float(rl2.mean() / ts.mean())
    keep_gain, reset_gain = m.gain(m.kept), m.gain(m.reset)
    reset_z = standardized(*mean_se(reset_gain))
    note = f"; training diverged: {m.diverged}" if m.diverged else ""
    return [
        Claim.from_test(
            f"RL^2's regret over {len(m.cumulative['rl2'])} pulls is below epsilon-greedy's "
            f"(epsilon {cfg.epsilon:g}), paired over test tasks",
            paired(eps, rl2, "greater"),
            f"regret RL^2 {rl2.mean():.3f}, epsilon-greedy {eps.mean():.3f}" + note,
            key="beats_epsilon_greedy",
        ),
        Claim.at_most(
            f"RL^2's mean regret is at most {THOMPSON_FACTOR:g} x Thompson sampling's",
            ratio,
            THOMPSON_FACTOR,
            f"regret RL^2 {rl2.mean():.3f}, Thompson {ts.mean():.3f}" + note,
            key="near_thompson",
        ),
        Claim.from_test(
            "with the hidden state kept, episodes 2..E of a task earn more than the first",
            one_sample(keep_gain, "greater"),
            f"mean episode returns {np.round(m.kept.mean(0), 3).tolist()}",
            key="later_episodes_earn_more",
        ),
        Claim.from_test(
            "resetting the hidden state between episodes removes that gain (gain kept > reset)",
            paired(keep_gain, reset_gain, "greater"),
            f"mean episode returns with resets {np.round(m.reset.mean(0), 3).tolist()}",
            key="reset_removes_gain",
        ),
        Claim.at_most(
            "with resets the episodes are exchangeable: |z| of the gain within the agreement bound",
            abs(reset_z),
            agreement_bound(),
            f"gain with resets {reset_gain.mean():.4f} (z = {reset_z:.2f})",
            key="reset_gain_zero",
            kind="check",
        ),
        Claim.from_test(
            "a hidden state carried into a new task costs return in its first episode",
            paired(m.fresh_first, m.carried_first, "greater"),
            f"first-episode return fresh {m.fresh_first.mean():.3f}, "
            f"carried {m.carried_first.mean():.3f}",
            key="carry_costs",
        ),
    ]


@experiment(
    "meta.rl2",
    topic="meta",
    config=RL2Config,
    claims=(
        "beats_epsilon_greedy",
        "near_thompson",
        "later_episodes_earn_more",
        "reset_removes_gain",
        "carry_costs",
    ),
    checks=("reset_gain_zero",),
)
def rl2(cfg: RL2Config, ctx: RunContext) -> Outcome:
    """A GRU policy trained by policy gradient across Bernoulli bandits explores a new bandit
    better than epsilon-greedy and close to Thompson sampling, and what it learned in a task
    lives in the hidden state it keeps across that task's episodes."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
