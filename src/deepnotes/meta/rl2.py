r"""RL^2 on Bernoulli bandits: a recurrent policy that learns to explore, and two bandit baselines.

Notes: discussion 12, section 3 "Keeping Track of History in Meta-RL" (the training procedure:
sample an MDP, reset the hidden state, collect several trajectories *without* resetting it
between episodes, update with a policy gradient) and its problem 2 ("Resetting the Hidden
State"); Duan et al. (2016), "RL^2: Fast Reinforcement Learning via Slow Reinforcement Learning".

A *trial* is ``episodes`` episodes of ``pulls`` pulls each on the same bandit
(:mod:`deepnotes.data.bandits`). :class:`RL2Policy` is a GRU whose input at every pull is
(previous action one-hot ``(k,)``, previous reward, termination flag): the flag is 1 at the first
pull of every episode (the previous step ended an episode, or nothing happened yet). Its hidden
state starts at zero for every task and, in :func:`rollout`,

- ``reset="task"`` (RL^2): is kept across the episodes of the trial;
- ``reset="episode"``: is set back to its initial value, with the null input (no previous
  action, reward 0, flag 1), at the start of every episode: each episode starts with no memory;
- ``h0=``: starts from a given state instead of zero (carrying a state into a new task).

Training (:func:`train_rl2`) is REINFORCE over whole trials (Williams 1992; Duan et al. use TRPO):
the reward-to-go :math:`G_t` of the trial (:func:`deepnotes.rl.returns.reward_to_go`, discount
``gamma``) minus a time-dependent baseline :math:`b_t` (the mean of :math:`G_t` over the batch's
tasks, a constant per pull: the bandit has no other state to condition on), divided by the
batch's standard deviation, plus an entropy bonus; every batch is fresh tasks, through the
engine's :class:`~deepnotes.core.engine.Loop`.

Baselines (their actions from the same outcome tables, :func:`deepnotes.data.bandits.outcomes`):

- :func:`epsilon_greedy`: pull each arm once (in order), then with probability ``epsilon`` a
  uniformly random arm, else the arm of highest empirical mean (ties to the lowest index);
- :func:`thompson`: Thompson sampling with ``Beta(1, 1)`` priors: draw
  :math:`\theta_a \sim \mathrm{Beta}(\alpha_a, \beta_a)`, pull the arg max, update
  :math:`\alpha_a \mathrel{+}= r`, :math:`\beta_a \mathrel{+}= 1 - r` (:func:`beta_posterior`).

Both are run over all ``n`` pulls of the trial as one long sequence (episode boundaries mean
nothing to them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import ConfigError, DivergenceError
from deepnotes.data.bandits import outcomes, sample_bandits
from deepnotes.rl.returns import reward_to_go

__all__ = [
    "RESETS",
    "RL2Policy",
    "Rollout",
    "beta_posterior",
    "epsilon_greedy",
    "rl2_loss",
    "rollout",
    "thompson",
    "train_rl2",
]

RESETS = ("task", "episode")
"""When :func:`rollout` resets the hidden state: per task (RL^2) or per episode."""


class RL2Policy(nn.Module):
    """A GRU policy over ``arms`` actions reading (previous action, previous reward, flag).

    Example:
        >>> pi = RL2Policy(arms=5, hidden=32)
        >>> h = pi.initial(3)                                  # (3, 32) zeros
        >>> logits, h = pi.step(pi.null_input(3), h)           # (3, 5), (3, 32)
    """

    def __init__(self, arms: int, hidden: int = 32) -> None:
        super().__init__()
        if arms < 2 or hidden < 1:
            raise ConfigError(f"need arms >= 2 and hidden >= 1, got arms={arms}, hidden={hidden}")
        self.arms, self.hidden = arms, hidden
        self.cell = nn.GRUCell(arms + 2, hidden)
        self.head = nn.Linear(hidden, arms)

    def initial(self, batch: int) -> Tensor:
        """The hidden state of a new task: zeros ``(batch, hidden)``."""
        return torch.zeros(batch, self.hidden)

    def null_input(self, batch: int) -> Tensor:
        """The input of a first pull: no previous action, reward 0, flag 1, ``(batch, k + 2)``."""
        x = torch.zeros(batch, self.arms + 2)
        x[:, -1] = 1.0
        return x

    def encode(self, action: Tensor, reward: Tensor, done: Tensor) -> Tensor:
        """Input ``(batch, k + 2)`` from the previous ``action`` ``(batch,)``, ``reward`` and
        termination flag ``done`` (both ``(batch,)``)."""
        one_hot = nn.functional.one_hot(action.long(), self.arms).float()
        return torch.cat([one_hot, reward[:, None].float(), done[:, None].float()], 1)

    def step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """Read input ``x`` ``(batch, k + 2)`` from state ``h``: logits ``(batch, k)`` and the
        new state ``(batch, hidden)``."""
        h = self.cell(x, h)
        return self.head(h), h


@dataclass
class Rollout:
    """One trial per task of :func:`rollout` (``T`` tasks, ``n = episodes * pulls`` pulls)."""

    actions: Tensor
    """``(T, n)`` arms pulled."""
    rewards: Tensor
    """``(T, n)`` rewards received."""
    log_probs: Tensor
    """``(T, n)`` :math:`\\log \\pi(a_t | h_t)` (differentiable when the rollout had grad)."""
    entropy: Tensor
    """``(T, n)`` entropy of the action distribution at each pull."""
    hiddens: Tensor
    """``(T, n, H)`` the state each action was chosen from."""
    final: Tensor
    """``(T, H)`` the state after reading the last pull's action, reward and flag: what a next
    task inherits when the state is carried over."""
    episodes: int

    def episode_returns(self) -> Tensor:
        """Total reward of each episode, ``(T, episodes)``."""
        return self.rewards.reshape(self.rewards.shape[0], self.episodes, -1).sum(-1)


def rollout(
    policy: RL2Policy,
    table: Tensor,
    episodes: int,
    generator: torch.Generator,
    *,
    reset: str = "task",
    h0: Tensor | None = None,
    greedy: bool = False,
) -> Rollout:
    """Run ``policy`` for one trial on each task of the outcome table ``(T, n, k)``.

    Args:
        table: :func:`deepnotes.data.bandits.outcomes` for ``n = episodes * pulls`` pulls.
        episodes: the number of episodes the ``n`` pulls are cut into (equal lengths).
        generator: draws the actions.
        reset: ``"task"`` (keep the state across episodes) or ``"episode"`` (reset it, and the
            input, at the start of every episode).
        h0: the state to start from ``(T, H)`` (default zeros: a fresh task).
        greedy: take the most probable action instead of sampling.

    Raises:
        ConfigError: an unknown ``reset``, or ``n`` not a multiple of ``episodes``.
    """
    if reset not in RESETS:
        raise ConfigError(f"reset must be one of {RESETS}, got {reset!r}")
    tasks, n, arms = table.shape
    if episodes < 1 or n % episodes:
        raise ConfigError(f"{n} pulls cannot be cut into {episodes} equal episodes")
    if arms != policy.arms:
        raise ConfigError(f"the table has {arms} arms, the policy {policy.arms}")
    pulls = n // episodes
    start = policy.initial(tasks) if h0 is None else h0
    h, x = start, policy.null_input(tasks)
    actions, rewards, log_probs, entropy, hiddens = [], [], [], [], []
    for t in range(n):
        new_episode = t % pulls == 0
        if new_episode and t > 0 and reset == "episode":
            h, x = start, policy.null_input(tasks)
        logits, h = policy.step(x, h)
        logp = torch.log_softmax(logits, -1)
        if greedy:
            a = logits.argmax(-1)
        else:
            a = torch.multinomial(logp.detach().exp(), 1, generator=generator)[:, 0]
        r = table[:, t, :].gather(1, a[:, None])[:, 0]
        done = torch.full((tasks,), float((t + 1) % pulls == 0))
        actions.append(a)
        rewards.append(r)
        log_probs.append(logp.gather(1, a[:, None])[:, 0])
        entropy.append(-(logp.exp() * logp).sum(-1))
        hiddens.append(h)
        x = policy.encode(a, r, done)
    # the state a next task inherits has also read the last pull's outcome
    final = policy.cell(x, h)
    return Rollout(
        actions=torch.stack(actions, 1),
        rewards=torch.stack(rewards, 1),
        log_probs=torch.stack(log_probs, 1),
        entropy=torch.stack(entropy, 1),
        hiddens=torch.stack(hiddens, 1),
        final=final,
        episodes=episodes,
    )


def rl2_loss(roll: Rollout, gamma: float, entropy_coef: float) -> Tensor:
    r"""REINFORCE surrogate of a batch of trials: :math:`-\frac{1}{T}\sum_{i,t}
    \log\pi(a_{i,t}|h_{i,t}) A_{i,t} - c\,\frac{1}{T}\sum_{i,t} H_{i,t}`, with
    :math:`A_{i,t} = (G_{i,t} - \bar G_{\cdot,t}) / \mathrm{sd}(G - \bar G)` (time baseline).
    """
    rewards = roll.rewards.detach().cpu().numpy()
    go = np.stack([reward_to_go(row, gamma) for row in rewards])  # (T, n)
    adv = torch.as_tensor(go - go.mean(0, keepdims=True), dtype=torch.float32)
    adv = adv / (adv.std() + 1e-8)
    tasks = rewards.shape[0]
    return -(roll.log_probs * adv).sum() / tasks - entropy_coef * roll.entropy.sum() / tasks


# ------------------------------------------------------------------------------- baselines
def beta_posterior(actions: Tensor, rewards: Tensor, arms: int) -> tuple[Tensor, Tensor]:
    """The ``Beta(1, 1)``-prior posterior after the pulls ``actions`` ``(T, t)`` with rewards
    ``(T, t)`` in {0, 1}: ``alpha = 1 + successes``, ``beta = 1 + failures``, each ``(T, arms)``."""
    one_hot = nn.functional.one_hot(actions.long(), arms).float()  # (T, t, k)
    successes = (one_hot * rewards[..., None].float()).sum(1)
    return 1.0 + successes, 1.0 + one_hot.sum(1) - successes


def thompson(table: Tensor, rng: np.random.Generator) -> Tensor:
    """Thompson sampling (``Beta(1, 1)`` priors) on every task of ``table`` ``(T, n, k)``;
    the arms pulled ``(T, n)``."""
    tasks, n, arms = table.shape
    alpha, beta = np.ones((tasks, arms)), np.ones((tasks, arms))
    rows = np.arange(tasks)
    tab = table.numpy()
    actions = np.empty((tasks, n), dtype=np.int64)
    for t in range(n):
        a = rng.beta(alpha, beta).argmax(1)
        r = tab[rows, t, a]
        alpha[rows, a] += r
        beta[rows, a] += 1.0 - r
        actions[:, t] = a
    return torch.as_tensor(actions)


def epsilon_greedy(table: Tensor, epsilon: float, rng: np.random.Generator) -> Tensor:
    """Epsilon-greedy on every task of ``table`` ``(T, n, k)`` (each arm once first, then a
    random arm with probability ``epsilon``, else the best empirical mean); the arms ``(T, n)``."""
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
    tasks, n, arms = table.shape
    counts, sums = np.zeros((tasks, arms)), np.zeros((tasks, arms))
    rows = np.arange(tasks)
    tab = table.numpy()
    actions = np.empty((tasks, n), dtype=np.int64)
    for t in range(n):
        if t < arms:
            a = np.full(tasks, t)
        else:
            greedy = (sums / counts).argmax(1)
            explore = rng.random(tasks) < epsilon
            a = np.where(explore, rng.integers(0, arms, tasks), greedy)
        r = tab[rows, t, a]
        counts[rows, a] += 1
        sums[rows, a] += r
        actions[:, t] = a
    return torch.as_tensor(actions)


# -------------------------------------------------------------------------------- training
def train_rl2(
    ctx: RunContext,
    policy: RL2Policy,
    *,
    tag: str,
    episodes: int,
    pulls: int,
    batch_tasks: int,
    iterations: int,
    lr: float,
    gamma: float,
    entropy_coef: float,
    every: int,
) -> dict[str, Any]:
    """Train ``policy`` by REINFORCE on fresh bandits (``batch_tasks`` per iteration, each a
    trial of ``episodes`` x ``pulls`` pulls), through :class:`~deepnotes.core.engine.Loop`.

    Tasks and outcomes come from ``ctx.stream("tasks", tag)``, actions from
    ``ctx.stream("act", tag)`` (both tracked by the checkpoint). Returns the curve
    (``iteration``, ``train_return`` = mean trial reward per round), ``diverged`` (the engine's
    message or '') and the policy's final ``state``.
    """
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    data, act = ctx.stream("tasks", tag), ctx.stream("act", tag)
    n = episodes * pulls

    def step(i: int) -> dict[str, float]:
        means = sample_bandits(batch_tasks, policy.arms, data)
        roll = rollout(policy, outcomes(means, n, data), episodes, act, reset="task")
        loss = rl2_loss(roll, gamma, entropy_coef)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"pg_loss": float(loss.detach()), "train_return": float(roll.rewards.sum(1).mean())}

    loop = Loop(
        ctx,
        tag=tag,
        track={"policy": policy, "opt": opt, "data": data, "act": act},
        watch=("pg_loss",),
        explode_factor=None,
        progress=False,
    )
    diverged = ""
    try:
        history = loop.run(step, steps=iterations, every=every).history
    except DivergenceError as err:
        history, diverged = loop.history, str(err)
    return {
        "iteration": [rec["step"] for rec in history],
        "train_return": [rec["train_return"] for rec in history],
        "diverged": diverged,
        "state": {k: v.detach().clone() for k, v in policy.state_dict().items()},
    }
