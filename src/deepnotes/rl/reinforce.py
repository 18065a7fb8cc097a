r"""REINFORCE: the Monte Carlo policy gradient, with reward-to-go and a learned baseline.

Notes: discussion 9, "Policy gradients" (REINFORCE, reward-to-go, baselines, discounting);
Williams (1992), "Simple statistical gradient-following algorithms for connectionist
reinforcement learning". For a batch of :math:`N` episodes of a policy :math:`\pi_\theta`,

.. math::
    \hat g = \frac{1}{N} \sum_{i=1}^{N} \sum_{t} \nabla_\theta \log \pi_\theta(a_{i,t}|s_{i,t})
    \, \big(\Psi_{i,t} - b(s_{i,t})\big),

with :math:`\Psi_{i,t} = \sum_{t'} \gamma^{t'} r_{i,t'}` (the total return, ``"total"``) or
:math:`\Psi_{i,t} = G_{i,t} = \sum_{t' \ge t} \gamma^{t'-t} r_{i,t'}` (reward-to-go,
``"reward_to_go"``), and :math:`b = 0` (no baseline) or :math:`b = V_\phi(s)`, a
:class:`~deepnotes.rl.models.ValueNet` fitted by mean squared error to the same :math:`\Psi`
(``value_steps`` Adam steps per batch, before the policy step, so the baseline of a batch is
fitted on that batch: it depends on the batch's returns, a small bias the notes' derivation
ignores; it is the practice of Spinning Up's VPG).

Batches are whole episodes collected from a vectorised environment
(:func:`~deepnotes.data.envs.make_vector_env`, ``num_envs`` copies): each copy runs until its first
episode ends, and everything it does afterwards is discarded, so gymnasium 1.4's next-step
autoreset (the step after a ``done`` returns the reset observation with reward 0) never reaches
a learner. The environments are reset from a seed per batch, so a resumed run collects the
same batches.

Truncation: CartPole-v1 ends at 500 steps (``truncated``). A Monte Carlo return has nothing to
bootstrap: a truncated episode's return is the sum of the rewards it received, exactly the
objective of the time-limited task. The policy does not see the time, so the rewards after the
limit that an infinite-horizon return would add are a (bounded) bias of the reward-to-go near
the end; the actor-critic (:mod:`deepnotes.rl.actor_critic`) bootstraps from :math:`V(s')` there.

Deviations (stated): the reward-to-go drops the :math:`\gamma^{t}` factor of the discounted
objective's exact gradient (as the notes and every practical implementation do); with
``normalize=True`` the advantages are divided by their batch standard deviation, *not* centred,
so that "no baseline" stays without any baseline (centring would subtract the batch mean, a
constant baseline).

Observations go through an :class:`ObservationView` (the full state, CartPole with its velocities
hidden, or the last ``k`` hidden-velocity observations stacked: a memory for the partially
observed problem, see ``rl.partial_observation``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import ConfigError, DivergenceError
from deepnotes.data.envs import make_vector_env, observation_size, require_discrete
from deepnotes.rl.models import CategoricalPolicy, ValueNet
from deepnotes.rl.returns import reward_to_go

RETURNS = ("total", "reward_to_go")
"""What multiplies :math:`\\nabla \\log \\pi`: the episode's total return or the reward-to-go."""

VIEWS = ("full", "hidden_velocities", "stacked")
"""What the policy sees: CartPole's state, (position, angle), or the last ``k`` of those."""


# ------------------------------------------------------------------------------------ views
class ObservationView:
    """What the agent observes of each environment's observation, with memory if it needs it.

    ``reset(obs)`` is called on the first observations of a batch of environments ``(n, D)``
    and ``step(obs)`` on each next one; both return the agent's inputs ``(n, size)``.
    """

    size: int

    def reset(self, obs: np.ndarray) -> np.ndarray:
        return self.step(obs)

    def step(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class FullState(ObservationView):
    """The environment's observation as it is, flattened to ``(n, D)``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def step(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)


class HiddenVelocityView(ObservationView):
    """CartPole seen without its velocities: (cart position, pole angle), ``(n, 2)``; the
    vectorised counterpart of :class:`deepnotes.data.envs.HiddenVelocities`."""

    KEEP = (0, 2)
    size = 2

    def step(self, obs: np.ndarray) -> np.ndarray:
        if obs.ndim != 2 or obs.shape[1] != 4:
            raise ConfigError(
                f"HiddenVelocityView expects CartPole observations (n, 4), got {obs.shape}"
            )
        return np.asarray(obs[:, list(self.KEEP)], dtype=np.float32)


class StackedHistory(ObservationView):
    r"""The last ``k`` observations of ``inner``, ``(n, k * size)``: the newest one, then the
    differences of consecutive ones divided by ``scale``
    :math:`[o_t, (o_t - o_{t-1})/\Delta, \ldots, (o_{t-k+2} - o_{t-k+1})/\Delta]`.

    The differences are an invertible linear map of the plain stack :math:`[o_t, \ldots,
    o_{t-k+1}]` (the same information, the same memory); they only put the motion on the
    scale of the observations (CartPole moves by ``velocity * 0.02`` per step: in the plain
    stack the velocities are differences of nearly equal inputs, which a tanh network of this
    size did not learn to read within 60 batches of REINFORCE in a pilot). At a reset the
    history is the first observation repeated (no motion seen yet: differences 0).
    """

    def __init__(self, inner: ObservationView, k: int, scale: float = 1.0) -> None:
        if k < 1:
            raise ConfigError(f"history length k must be >= 1, got {k}")
        if scale <= 0:
            raise ConfigError(f"scale must be > 0, got {scale}")
        self.inner, self.k, self.scale = inner, k, scale
        self.size = inner.size * k
        self._frames: np.ndarray | None = None  # (n, k, size), newest first

    def _features(self) -> np.ndarray:
        assert self._frames is not None
        f = self._frames
        diffs = (f[:, :-1] - f[:, 1:]) / self.scale  # (n, k - 1, size)
        return np.concatenate([f[:, :1], diffs], axis=1).reshape(len(f), -1).astype(np.float32)

    def reset(self, obs: np.ndarray) -> np.ndarray:
        first = self.inner.reset(obs)
        self._frames = np.repeat(first[:, None, :], self.k, axis=1)
        return self._features()

    def step(self, obs: np.ndarray) -> np.ndarray:
        if self._frames is None:
            raise RuntimeError("StackedHistory.step before reset")
        new = self.inner.step(obs)
        self._frames = np.concatenate([new[:, None, :], self._frames[:, :-1]], axis=1)
        return self._features()


CARTPOLE_TAU = 0.02
"""CartPole's time step in seconds: position changes by velocity * tau per step."""


def make_view(kind: str, obs_size: int, k: int = 2) -> ObservationView:
    """The view named ``kind`` in :data:`VIEWS` (``k`` frames for ``"stacked"``, differences
    scaled by :data:`CARTPOLE_TAU`)."""
    if kind == "full":
        return FullState(obs_size)
    if kind == "hidden_velocities":
        return HiddenVelocityView()
    if kind == "stacked":
        return StackedHistory(HiddenVelocityView(), k, scale=CARTPOLE_TAU)
    raise ConfigError(f"view must be one of {VIEWS}, got {kind!r}")


# ------------------------------------------------------------------------------ collection
@dataclass
class EpisodeBatch:
    """Whole episodes, their steps concatenated episode after episode (``M`` steps in all).

    ``obs`` and ``next_obs`` are the agent's inputs (after the view) ``(M, size)``; ``actions``,
    ``rewards``, ``terminated``, ``truncated`` are ``(M,)``; ``episode`` gives each step's
    episode index in ``0..N-1``. ``returns`` and ``lengths`` are per episode ``(N,)``.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    episode: torch.Tensor
    returns: np.ndarray
    lengths: np.ndarray

    @property
    def episodes(self) -> int:
        return len(self.returns)

    def select(self, episodes: np.ndarray) -> EpisodeBatch:
        """The sub-batch of the given episode indices (renumbered in that order)."""
        parts = [torch.nonzero(self.episode == int(e))[:, 0] for e in episodes]
        idx = torch.cat(parts)
        renumber = torch.cat([torch.full((len(p),), j) for j, p in enumerate(parts)])
        return EpisodeBatch(
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.terminated[idx],
            self.truncated[idx],
            renumber.to(self.episode.device),
            self.returns[np.asarray(episodes)],
            self.lengths[np.asarray(episodes)],
        )


ActFn = Callable[[torch.Tensor], torch.Tensor]
"""Agent inputs ``(n, size)`` on the device -> actions ``(n,)`` (any device)."""


@torch.no_grad()
def collect_episodes(
    act: ActFn,
    env_id: str,
    episodes: int,
    seed: int,
    view: ObservationView,
    device: torch.device | str = "cpu",
) -> EpisodeBatch:
    """One episode from each of ``episodes`` copies of ``env_id`` (reset with ``seed``).

    Each copy steps until its first episode ends (terminated or truncated); its later steps
    (gymnasium's next-step autoreset) are dropped. Returns the steps episode by episode.
    """
    env = make_vector_env(env_id, episodes, seed=None)
    raw, _ = env.reset(seed=seed)
    x = view.reset(np.asarray(raw))
    live = np.ones(episodes, dtype=bool)
    steps: list[tuple[np.ndarray, ...]] = []
    while live.any():
        a = act(torch.as_tensor(x, device=device)).cpu().numpy()
        raw, r, term, trunc, _ = env.step(a)
        x_next = view.step(np.asarray(raw))
        steps.append((x, a, np.asarray(r, np.float32), x_next, term, trunc, live.copy()))
        live &= ~(term | trunc)
        x = x_next
    env.close()
    # (T, n, ...) -> episode-major (n, T, ...), then keep each copy's live steps
    obs, act_, rew, nxt, term, trunc, mask = (np.stack(c, axis=1) for c in zip(*steps, strict=True))
    keep = mask.reshape(-1)

    def flat(a: np.ndarray) -> np.ndarray:
        return a.reshape(episodes * a.shape[1], *a.shape[2:])[keep]

    episode_of = np.repeat(np.arange(episodes), mask.shape[1])[keep]
    lengths = mask.sum(1)
    rewards = flat(rew)

    def tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype, device=device)

    return EpisodeBatch(
        obs=tensor(flat(obs), torch.float32),
        actions=tensor(flat(act_), torch.long),
        rewards=tensor(rewards, torch.float32),
        next_obs=tensor(flat(nxt), torch.float32),
        terminated=tensor(flat(term), torch.bool),
        truncated=tensor(flat(trunc), torch.bool),
        episode=tensor(episode_of, torch.long),
        returns=np.bincount(episode_of, weights=rewards, minlength=episodes),
        lengths=lengths,
    )


def sampler(policy: CategoricalPolicy, generator: torch.Generator) -> ActFn:
    """Sample from ``policy`` with ``generator`` (a CPU generator: probabilities go to the CPU)."""

    def act(x: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(policy.logits(x), -1).cpu()
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return act


def greedy_return(
    policy: CategoricalPolicy,
    env_id: str,
    episodes: int,
    seed: int,
    view: ObservationView,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes of the greedy policy (the most probable
    action), one per copy of a vectorised environment reset with ``seed``, ``(episodes,)``."""
    return collect_episodes(policy.greedy, env_id, episodes, seed, view, device).returns


# ------------------------------------------------------------------------------ estimator
def returns_per_step(batch: EpisodeBatch, gamma: float, kind: str) -> torch.Tensor:
    """:math:`\\Psi_t` for every step ``(M,)``: the episode's discounted total return repeated
    (``"total"``) or the discounted reward-to-go (``"reward_to_go"``)."""
    if kind not in RETURNS:
        raise ConfigError(f"returns must be one of {RETURNS}, got {kind!r}")
    rewards = batch.rewards.cpu().numpy()
    bounds = np.concatenate([[0], np.cumsum(batch.lengths)])
    out = np.empty_like(rewards, dtype=np.float64)
    for i in range(batch.episodes):
        r = rewards[bounds[i] : bounds[i + 1]]
        go = reward_to_go(r, gamma)
        out[bounds[i] : bounds[i + 1]] = go[0] if kind == "total" else go
    return torch.as_tensor(out, dtype=torch.float32, device=batch.rewards.device)


def surrogate(
    policy: CategoricalPolicy, batch: EpisodeBatch, advantages: torch.Tensor
) -> torch.Tensor:
    """:math:`-\\frac{1}{N} \\sum_{i,t} \\log\\pi(a_{i,t}|s_{i,t}) A_{i,t}`, whose gradient is
    minus the policy-gradient estimate (``advantages`` are constants)."""
    log_prob = policy.log_prob(batch.obs, batch.actions)  # (M,)
    return -(log_prob * advantages.detach()).sum() / batch.episodes


def flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """The gradient of ``loss`` with respect to ``params``, concatenated ``(P,)``."""
    grads = torch.autograd.grad(loss, params)
    return torch.cat([g.reshape(-1) for g in grads])


@dataclass(frozen=True)
class ReinforceSettings:
    """The knobs of one REINFORCE agent."""

    returns: str = "reward_to_go"
    baseline: bool = True
    """Subtract a learned V(s) fitted by MSE on the returns."""
    gamma: float = 0.99
    normalize: bool = True
    """Divide the advantages by their batch standard deviation (not centred)."""
    lr: float = 1e-2
    value_lr: float = 1e-2
    value_steps: int = 5
    hidden: tuple[int, ...] = (32,)

    def __post_init__(self) -> None:
        if self.returns not in RETURNS:
            raise ConfigError(f"returns must be one of {RETURNS}, got {self.returns!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.lr <= 0 or self.value_lr <= 0 or self.value_steps < 1:
            raise ConfigError("lr and value_lr must be > 0 and value_steps >= 1")


class Reinforce:
    """A REINFORCE agent: a categorical policy, an optional value baseline and their optimisers.

    Arguments:
        obs_size: the size of the agent's inputs (after the view).
        n_actions: number of discrete actions.
        settings: :class:`ReinforceSettings`.
        device: where the networks live.

    Example:
        >>> agent = Reinforce(4, 2, ReinforceSettings())
        >>> batch = collect_episodes(sampler(agent.policy, g), "CartPole-v1", 16, 0, FullState(4))
        >>> stats = agent.update(batch)  # {"pg_loss": ..., "value_loss": ...}
    """

    def __init__(
        self,
        obs_size: int,
        n_actions: int,
        settings: ReinforceSettings,
        device: torch.device | str = "cpu",
    ) -> None:
        self.settings = settings
        self.policy = CategoricalPolicy(obs_size, n_actions, settings.hidden).to(device)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=settings.lr)
        self.value: ValueNet | None = None
        self.value_opt: torch.optim.Optimizer | None = None
        if settings.baseline:
            self.value = ValueNet(obs_size, settings.hidden).to(device)
            self.value_opt = torch.optim.Adam(self.value.parameters(), lr=settings.value_lr)

    def track(self) -> dict[str, object]:
        """What a checkpoint must hold to resume this agent."""
        out: dict[str, object] = {"policy": self.policy, "opt": self.opt}
        if self.value is not None:
            out |= {"value": self.value, "value_opt": self.value_opt}
        return out

    def fit_value(self, batch: EpisodeBatch, targets: torch.Tensor) -> float:
        """``value_steps`` Adam steps of MSE between V(s_t) and ``targets``; the last loss."""
        assert self.value is not None and self.value_opt is not None
        loss = torch.zeros(())
        for _ in range(self.settings.value_steps):
            loss = (self.value(batch.obs) - targets).pow(2).mean()
            self.value_opt.zero_grad()
            loss.backward()
            self.value_opt.step()
        return float(loss.detach())

    def advantages(self, batch: EpisodeBatch) -> tuple[torch.Tensor, float]:
        """:math:`\\Psi_t - b(s_t)` (scaled when ``normalize``) ``(M,)`` and the value loss
        (NaN without a baseline); fits the baseline first."""
        psi = returns_per_step(batch, self.settings.gamma, self.settings.returns)
        value_loss = float("nan")
        adv = psi
        if self.value is not None:
            value_loss = self.fit_value(batch, psi)
            with torch.no_grad():
                adv = psi - self.value(batch.obs)
        if self.settings.normalize:
            adv = adv / (adv.std() + 1e-8)
        return adv, value_loss

    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        """One policy-gradient step on ``batch`` (after the baseline's fit)."""
        adv, value_loss = self.advantages(batch)
        loss = surrogate(self.policy, batch, adv)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        out = {"pg_loss": float(loss.detach())}
        if self.value is not None:
            out["value_loss"] = value_loss
        return out


def agent_for(
    env_id: str, view: ObservationView, settings: ReinforceSettings, device: torch.device | str
) -> Reinforce:
    """A :class:`Reinforce` agent sized for ``env_id`` seen through ``view``."""
    env = make_vector_env(env_id, 1)
    n_actions = require_discrete(env.single_action_space, "REINFORCE")
    observation_size(env.single_observation_space)  # a clear error for an unsupported space
    env.close()
    return Reinforce(view.size, n_actions, settings, device)


# ------------------------------------------------------------------------------ training
class Agent(Protocol):
    """What :func:`train` needs of an agent (REINFORCE or actor-critic)."""

    policy: CategoricalPolicy

    def update(self, batch: EpisodeBatch) -> dict[str, float]: ...

    def track(self) -> dict[str, object]: ...


def train(
    ctx: RunContext,
    agent: Agent,
    *,
    tag: str,
    env_id: str,
    view: ObservationView,
    batch_episodes: int,
    max_batches: int,
    eval_every: int,
    eval_episodes: int,
    target: float,
    keys: tuple[int | str, ...],
) -> dict[str, Any]:
    """Train ``agent`` on batches of ``batch_episodes`` episodes through the engine's
    :class:`~deepnotes.core.engine.Loop` until the greedy policy's mean return over
    ``eval_episodes`` evaluation episodes reaches ``target`` (checked every ``eval_every``
    batches; the loop stops there) or ``max_batches`` batches were used.

    Batch ``i`` is collected from environments reset with ``ctx.seed_for("env", *keys, i)``
    and actions sampled from ``ctx.stream("act", *keys)`` (tracked); evaluation round ``r``
    uses ``ctx.seed_for("eval", *keys, r)``, so a resumed run repeats every batch.

    Returns the curves (``episodes``, ``eval_mean``, ``train_return`` per round), ``reached``
    (episodes used when ``target`` was first reached, -1 if never: censored), ``diverged``
    (the engine's message or '') and the final networks' states (``policy``, ``value`` when
    the agent has one).
    """
    generator = ctx.stream("act", *keys)
    counters = {"episodes": 0.0, "reached": -1.0}
    act = sampler(agent.policy, generator)

    def step(i: int) -> dict[str, float]:
        batch = collect_episodes(
            act, env_id, batch_episodes, ctx.seed_for("env", *keys, i), view, ctx.device
        )
        counters["episodes"] += batch.episodes
        out = agent.update(batch)
        return {**out, "train_return": float(batch.returns.mean())}

    def evaluate(r: int) -> dict[str, float]:
        returns = greedy_return(
            agent.policy, env_id, eval_episodes, ctx.seed_for("eval", *keys, r), view, ctx.device
        )
        mean = float(returns.mean())
        if mean >= target and counters["reached"] < 0:
            counters["reached"] = counters["episodes"]
            loop.stop()
        return {"eval_mean": mean, "episodes": counters["episodes"]}

    loop = Loop(
        ctx,
        tag=tag,
        track={**agent.track(), "generator": generator, "counters": counters},
        watch=("pg_loss", "value_loss"),
        explode_factor=None,
        progress=False,
    )
    diverged = ""
    try:
        history = loop.run(step, steps=max_batches, every=eval_every, evaluate=evaluate).history
    except DivergenceError as err:
        history, diverged = loop.history, str(err)
    out: dict[str, Any] = {
        "episodes": [rec["episodes"] for rec in history],
        "eval_mean": [rec["eval_mean"] for rec in history],
        "train_return": [rec["train_return"] for rec in history],
        "reached": int(counters["reached"]),
        "diverged": diverged,
        "policy": {k: v.detach().cpu() for k, v in agent.policy.state_dict().items()},
    }
    value = getattr(agent, "value", None)
    if value is not None:
        out["value"] = {k: v.detach().cpu() for k, v in value.state_dict().items()}
    return out
