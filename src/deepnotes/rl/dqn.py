r"""Deep Q-learning (DQN): experience replay, target networks, exploration, the TD update.

Notes: discussion 9, section 2.2.1 "Learning with Function Approximation" (the moving target,
target parameters :math:`\bar\phi` frozen for several updates or an exponential moving average,
experience replay) and section 3 "Q-Learning" (the update on replayed batches, epsilon-greedy and
Boltzmann exploration). Mnih et al. (2015), "Human-level control through deep reinforcement
learning", Nature 518; hyperparameters of rl-baselines3-zoo for CartPole-v1.

On a batch of transitions :math:`(s, a, r, s', \text{terminated})` drawn from the replay buffer
:math:`D`, one update takes a gradient step on

.. math::
    L(\phi) = \mathbb{E}_{(s,a,r,s') \sim D}\, \ell\big(Q_\phi(s, a),\;
    r + \gamma (1 - \text{terminated}) \max_{a'} Q_{\bar\phi}(s', a')\big)

with :math:`\ell` the Huber loss (``F.smooth_l1_loss``, as SB3 and the Nature paper's clipped
error) or the squared error. The target is :func:`deepnotes.rl.returns.td_target`: a transition
cut by a time limit (gymnasium's ``truncated``) still bootstraps from :math:`s'`; only
``terminated`` zeroes the future. The target parameters :math:`\bar\phi` are

- ``"frozen"``: copied from :math:`\phi` every ``target_update_interval`` updates;
- ``"ema"``: :math:`\bar\phi \leftarrow (1 - \tau)\bar\phi + \tau\phi` after every update;
- ``"none"``: :math:`\bar\phi = \phi` (no target network: the moving target of the notes).

Without replay (``replay=False``) each transition is used once, in the updates right after it
was collected (a random order, minibatches of ``batch_size``), then discarded: the classic
online Q-learning the notes contrast replay with.

Acting: uniform random actions for the first ``learning_starts`` steps, then epsilon-greedy with
:math:`\epsilon` annealed linearly from ``eps_start`` to ``eps_end`` over ``exploration_steps``
environment steps, or Boltzmann, :math:`\pi(a|s) \propto \exp(Q_\phi(s, a) / T)` with the
temperature annealed the same way.

Training (:func:`train_dqn`) runs through the engine's :class:`~deepnotes.core.engine.Loop`:
one loop step is one *phase*, ``train_freq`` environment steps (transitions stored) followed by
``gradient_steps`` updates (as SB3's ``train_freq``/``gradient_steps``); a round is
``eval_every`` environment steps, after which the greedy policy is evaluated on
``eval_episodes`` episodes, and training stops once the mean reaches ``target_return``. The
checkpoint tracks the Q-network, the target network, the optimiser, the replay buffer, the
action and sampling generators and the counters.

Resume and the environment: a gymnasium environment's state cannot be checkpointed. The
environment runs on across rounds (as SB3's does: episodes are never cut by an evaluation) and is
reset, with a seed derived from the round, when a run starts and when it resumes; a resumed run
therefore restores the networks, optimiser, buffer, generators and counters exactly and restarts
the episodes in progress at the kill, so it continues like an uninterrupted run without being
bitwise equal to it (resetting at every round boundary would make it bitwise, but it cuts
every episode at ``eval_every`` steps, so a 500-step CartPole episode could never be seen
whole when ``eval_every`` is smaller; its effect on learning speed was not measured
conclusively: seed 0 needed 31,744 steps with the cuts and 26,624 without). Vector
environments use gymnasium 1.4's next-step autoreset: the step after an episode's end only
resets that copy and is not stored (and not counted as an environment step).

Example:
    >>> cfg = DQNConfig(total_steps=20_000)
    >>> q_net, run = train_dqn(cfg, ctx, tag="dqn")  # ctx: a RunContext
    >>> run.solved_at  # environment steps when the greedy policy first averaged >= 475
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.data.envs import make_vector_env, observation_size, require_discrete
from deepnotes.rl.models import QNetwork, as_input
from deepnotes.rl.returns import td_target

TargetKind = Literal["frozen", "ema", "none"]
LossKind = Literal["huber", "mse"]
ExplorationKind = Literal["epsilon", "boltzmann"]


# --------------------------------------------------------------------------------- replay buffer
@dataclass
class Transitions:
    """A batch of ``B`` transitions as tensors (observations already network inputs)."""

    obs: torch.Tensor
    """(B, obs_size) float32."""
    actions: torch.Tensor
    """(B,) int64."""
    rewards: torch.Tensor
    """(B,) float32."""
    next_obs: torch.Tensor
    """(B, obs_size) float32."""
    terminated: torch.Tensor
    """(B,) float32: 1 where ``s'`` is terminal (no bootstrap), 0 otherwise (truncation too)."""


class ReplayBuffer:
    """A fixed-capacity ring buffer of transitions in NumPy arrays (the oldest overwritten first).

    Only ``terminated`` is stored as the end-of-episode flag: a truncated transition is an
    ordinary one whose target bootstraps from ``s'``. ``state_dict``/``load_state_dict`` hold
    the filled part, so that the engine checkpoints the buffer with the networks.

    Arguments:
        capacity: the most transitions kept.
        obs_shape: the shape of one observation (``()`` for a ``Discrete`` state index).
        obs_dtype: how observations are stored (float32 for boxes, int64 for indices).
        n_states: for ``Discrete`` observations, the number of states (fed one-hot).

    Example:
        >>> buf = ReplayBuffer(1000, (4,))
        >>> buf.add(obs, actions, rewards, next_obs, terminated)  # (n, 4), (n,), ...
        >>> batch = buf.sample(64, np.random.default_rng(0))
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: Any = np.float32,
        n_states: int | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs_shape = tuple(obs_shape)
        self.n_states = n_states
        self.obs = np.zeros((capacity, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.pos = 0
        """Where the next transition goes."""
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
    ) -> None:
        """Store ``n`` transitions: ``obs`` and ``next_obs`` ``(n, *obs_shape)``, the rest
        ``(n,)``."""
        n = len(actions)
        if obs.shape != (n, *self.obs_shape) or next_obs.shape != obs.shape:
            raise ValueError(
                f"expected observations of shape {(n, *self.obs_shape)}, got {obs.shape} and "
                f"{next_obs.shape}"
            )
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx], self.next_obs[idx] = obs, next_obs
        self.actions[idx], self.rewards[idx], self.terminated[idx] = actions, rewards, terminated
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def clear(self) -> None:
        """Forget every transition."""
        self.pos = self.size = 0

    def take(self, indices: np.ndarray, device: torch.device | str = "cpu") -> Transitions:
        """The transitions at ``indices`` (into the filled part) as tensors on ``device``."""
        if self.size == 0:
            raise ValueError("the replay buffer is empty")
        indices = np.asarray(indices)
        if indices.size and (indices.min() < 0 or indices.max() >= self.size):
            raise ValueError(f"indices must be in [0, {self.size}), got {indices}")
        return Transitions(
            obs=as_input(self.obs[indices], self.n_states).to(device),
            actions=torch.from_numpy(self.actions[indices]).to(device),
            rewards=torch.from_numpy(self.rewards[indices]).to(device),
            next_obs=as_input(self.next_obs[indices], self.n_states).to(device),
            terminated=torch.from_numpy(self.terminated[indices]).float().to(device),
        )

    def sample(
        self, batch_size: int, rng: np.random.Generator, device: torch.device | str = "cpu"
    ) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement with ``rng``."""
        return self.take(rng.integers(0, self.size, batch_size), device)

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "capacity": self.capacity,
            "pos": self.pos,
            "size": n,
            "obs": self.obs[:n].copy(),
            "next_obs": self.next_obs[:n].copy(),
            "actions": self.actions[:n].copy(),
            "rewards": self.rewards[:n].copy(),
            "terminated": self.terminated[:n].copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"replay buffer state has capacity {state['capacity']}, this buffer {self.capacity}"
            )
        n = int(state["size"])
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, name)[:n] = np.asarray(state[name])
        self.pos, self.size = int(state["pos"]), n


# --------------------------------------------------------------------------------- exploration
def linear_schedule(step: int, start: float, end: float, duration: int) -> float:
    """``start`` moving linearly to ``end`` over ``duration`` steps, then ``end``."""
    if step >= duration:
        return end
    return start + (end - start) * step / duration


def epsilon_greedy(q: torch.Tensor, epsilon: float, generator: torch.Generator) -> torch.Tensor:
    """With probability ``epsilon`` a uniform random action, else ``argmax_a Q(s, a)``.

    ``q`` is ``(n, A)`` on the CPU; returns ``(n,)`` int64 (random draws from ``generator``).
    """
    n, A = q.shape
    explore = torch.rand(n, generator=generator) < epsilon
    random = torch.randint(A, (n,), generator=generator)
    return torch.where(explore, random, q.argmax(-1))


def boltzmann(q: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Sample :math:`a \\sim \\pi(a|s) \\propto \\exp(Q(s, a) / T)`; ``q`` ``(n, A)`` on the
    CPU, returns ``(n,)`` int64."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    probs = torch.softmax(q / temperature, -1)  # (n, A)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


# --------------------------------------------------------------------------------- the update
@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, tau: float = 1.0) -> None:
    """:math:`\\bar\\phi \\leftarrow (1 - \\tau)\\bar\\phi + \\tau\\phi` (``tau = 1``: a copy)."""
    for p_target, p in zip(target.parameters(), online.parameters(), strict=True):
        p_target.lerp_(p, tau)


def dqn_loss(
    q_net: nn.Module,
    target_net: nn.Module,
    batch: Transitions,
    gamma: float,
    loss: LossKind = "huber",
) -> torch.Tensor:
    """:math:`\\ell(Q_\\phi(s, a), r + \\gamma (1 - \\text{terminated}) \\max_{a'}
    Q_{\\bar\\phi}(s', a'))`, averaged over the batch; no gradient flows through the target.
    Pass ``target_net=q_net`` for no target network."""
    q = q_net(batch.obs).gather(1, batch.actions[:, None])[:, 0]  # Q_phi(s, a), (B,)
    with torch.no_grad():
        next_q = target_net(batch.next_obs).max(-1).values  # max_a' Q_phibar(s', a'), (B,)
        y = td_target(batch.rewards, next_q, batch.terminated, gamma)  # (B,)
    if loss == "huber":
        return F.smooth_l1_loss(q, y)
    if loss == "mse":
        return F.mse_loss(q, y)
    raise ValueError(f"loss must be 'huber' or 'mse', got {loss!r}")


# --------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class DQNConfig:
    """DQN's knobs; the defaults are rl-baselines3-zoo's for CartPole-v1 (``dqn.yml``)."""

    env_id: str = "CartPole-v1"
    total_steps: int = 50_000
    """Environment steps (transitions) at most."""
    num_envs: int = 1
    """Copies of the environment stepped together (gymnasium vector env)."""
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 2.3e-3
    """Adam's learning rate."""
    batch_size: int = 64
    buffer_size: int = 100_000
    learning_starts: int = 1000
    """Uniform random actions and no update before this many environment steps."""
    gamma: float = 0.99
    train_freq: int = 256
    """Environment steps per phase (collected before each block of updates)."""
    gradient_steps: int = 128
    """Updates per phase (with replay)."""
    target: TargetKind = "frozen"
    target_update_interval: int = 128
    """Updates between two copies of a frozen target (128: once per phase, as SB3's 10
    environment steps amount to with ``train_freq`` 256)."""
    tau: float = 0.005
    """EMA rate of an ``"ema"`` target."""
    replay: bool = True
    """False: each transition is used once, right after it was collected (online Q-learning)."""
    loss: LossKind = "huber"
    max_grad_norm: float = 10.0
    exploration: ExplorationKind = "epsilon"
    eps_start: float = 1.0
    eps_end: float = 0.04
    temperature_start: float = 1.0
    temperature_end: float = 0.05
    exploration_steps: int = 8000
    """Environment steps over which epsilon (or the temperature) is annealed (SB3: 0.16 of
    rl-zoo's 50k)."""
    eval_every: int = 1024
    """Environment steps per round (a multiple of ``train_freq``)."""
    eval_episodes: int = 10
    target_return: float | None = 475.0
    """Stop once the greedy evaluation mean reaches it (None: train for ``total_steps``)."""

    def __post_init__(self) -> None:
        require(self.total_steps >= 1, f"total_steps must be >= 1, got {self.total_steps}")
        require(self.num_envs >= 1, f"num_envs must be >= 1, got {self.num_envs}")
        require(all(h >= 1 for h in self.hidden), f"hidden widths must be >= 1: {self.hidden}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(
            self.buffer_size >= self.train_freq,
            f"buffer_size must be >= train_freq = {self.train_freq}, got {self.buffer_size}",
        )
        require(0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}")
        require(
            self.train_freq >= 1 and self.train_freq % self.num_envs == 0,
            f"train_freq must be a positive multiple of num_envs = {self.num_envs}, "
            f"got {self.train_freq}",
        )
        require(self.gradient_steps >= 1, "gradient_steps must be >= 1")
        require(self.target_update_interval >= 1, "target_update_interval must be >= 1")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        require(
            0.0 <= self.eps_end <= self.eps_start <= 1.0,
            f"need 0 <= eps_end <= eps_start <= 1, got {self.eps_end}, {self.eps_start}",
        )
        require(
            0.0 < self.temperature_end <= self.temperature_start,
            "need 0 < temperature_end <= temperature_start, got "
            f"{self.temperature_end}, {self.temperature_start}",
        )
        require(self.exploration_steps >= 0, "exploration_steps must be >= 0")
        require(
            self.eval_every >= self.train_freq and self.eval_every % self.train_freq == 0,
            f"eval_every must be a multiple of train_freq = {self.train_freq}, "
            f"got {self.eval_every}",
        )
        require(
            self.learning_starts < self.eval_every,
            f"learning_starts ({self.learning_starts}) must be below eval_every "
            f"({self.eval_every}): the first round must train",
        )
        require(self.eval_episodes >= 1, f"eval_episodes must be >= 1, got {self.eval_episodes}")

    @property
    def phases(self) -> int:
        """Loop steps: phases of ``train_freq`` environment steps."""
        return math.ceil(self.total_steps / self.train_freq)

    @property
    def phases_per_round(self) -> int:
        return self.eval_every // self.train_freq


@dataclass
class DQNRun:
    """What one training run measured."""

    eval_steps: np.ndarray
    """Environment steps at each evaluation, (K,)."""
    eval_returns: np.ndarray
    """Greedy evaluation mean return at each evaluation, (K,)."""
    losses: np.ndarray
    """Mean TD loss of each round's updates, (K,)."""
    episode_returns: np.ndarray
    """Return of every finished training episode, (E,)."""
    episode_ends: np.ndarray
    """Environment step at which each training episode ended, (E,)."""
    solved_at: float
    """Environment steps at the first evaluation reaching ``target_return`` (NaN if never)."""
    env_steps: int
    updates: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "eval_steps": self.eval_steps,
            "eval_returns": self.eval_returns,
            "losses": self.losses,
            "episode_returns": self.episode_returns,
            "episode_ends": self.episode_ends,
            "solved_at": self.solved_at,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DQNRun:
        return cls(
            eval_steps=np.asarray(d["eval_steps"]),
            eval_returns=np.asarray(d["eval_returns"], dtype=float),
            losses=np.asarray(d["losses"], dtype=float),
            episode_returns=np.asarray(d["episode_returns"], dtype=float),
            episode_ends=np.asarray(d["episode_ends"]),
            solved_at=float(d["solved_at"]),
            env_steps=int(d["env_steps"]),
            updates=int(d["updates"]),
            seconds=float(d["seconds"]),
        )


def greedy_returns(
    q_net: nn.Module,
    env_id: str,
    episodes: int,
    seed: int,
    device: torch.device | str = "cpu",
    n_states: int | None = None,
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes of ``argmax_a Q(s, a)``, ``(episodes,)``:
    the first episode of each of ``episodes`` vectorised copies seeded from ``seed`` (one
    forward pass per step for all of them)."""
    env = make_vector_env(env_id, episodes, seed=seed)
    obs, _ = env.reset(seed=seed)
    total, live = np.zeros(episodes), np.ones(episodes, dtype=bool)
    with torch.no_grad():
        while live.any():
            actions = q_net(as_input(obs, n_states).to(device)).argmax(-1).cpu().numpy()
            obs, rewards, terminated, truncated, _ = env.step(actions)
            total += np.where(live, rewards, 0.0)
            live &= ~(terminated | truncated)
    env.close()
    return total


def _spaces(env: gym.vector.VectorEnv) -> tuple[int, int, tuple[int, ...], Any, int | None]:
    """(obs_size, n_actions, obs_shape, obs_dtype, n_states) of a vector env."""
    n_actions = require_discrete(env.single_action_space, "DQN")
    space = env.single_observation_space
    obs_size = observation_size(space)
    if isinstance(space, gym.spaces.Discrete):
        return obs_size, n_actions, (), np.int64, obs_size
    return obs_size, n_actions, tuple(space.shape), np.float32, None


def train_dqn(
    cfg: DQNConfig, ctx: RunContext, tag: str = "dqn", seed: int | str = 0
) -> tuple[nn.Module, DQNRun]:
    """Train a DQN agent through the engine's Loop (see the module docstring).

    Arguments:
        cfg: the hyperparameters.
        ctx: the run context (device, checkpoints, resume, seed streams).
        tag: the loop's tag (its checkpoint name); distinct for every run of one experiment.
        seed: the replicate: initial weights, environment resets, action and minibatch draws
            all come from streams keyed by it (not by ``tag``), so that runs with the same
            ``seed`` and different settings are paired.

    Returns:
        The trained Q-network and the run's measurements.

    Raises:
        ConfigError: the environment is unknown or its action space is not discrete.
    """
    env = make_vector_env(cfg.env_id, cfg.num_envs, seed=ctx.seed_for("dqn-env", seed))
    obs_size, n_actions, obs_shape, obs_dtype, n_states = _spaces(env)
    device = ctx.device
    with ctx.seeded("dqn-init", seed):
        q_net = QNetwork(obs_size, n_actions, cfg.hidden).to(device)
    target_net = copy.deepcopy(q_net).requires_grad_(False)
    bootstrap_net = q_net if cfg.target == "none" else target_net
    # the fused kernel: one call for every parameter (about 3x faster than foreach on a CPU)
    opt = torch.optim.Adam(q_net.parameters(), lr=cfg.lr, fused=device.type in ("cpu", "cuda"))
    buffer = ReplayBuffer(
        cfg.buffer_size if cfg.replay else cfg.train_freq, obs_shape, obs_dtype, n_states
    )
    act_gen = ctx.stream("dqn-act", seed)
    sample_rng = ctx.numpy_rng("dqn-sample", seed)
    counters: dict[str, Any] = {"env_steps": 0, "updates": 0, "returns": [], "ends": []}
    eval_seed = ctx.seed_for("dqn-eval", seed)
    n = cfg.num_envs
    live: dict[str, Any] = {}  # the environment's running state; not checkpointable

    def reset(r: int) -> None:
        obs, _ = env.reset(seed=ctx.seed_for("dqn-env", seed, r))
        live.update(obs=obs, skip=np.zeros(n, dtype=bool), running=np.zeros(n))

    def act(obs: np.ndarray, t: int) -> np.ndarray:
        if t < cfg.learning_starts:
            return torch.randint(n_actions, (n,), generator=act_gen).numpy()
        with torch.no_grad():
            q = q_net(as_input(obs, n_states).to(device)).cpu()  # (n, A)
        if cfg.exploration == "boltzmann":
            temp = linear_schedule(
                t, cfg.temperature_start, cfg.temperature_end, cfg.exploration_steps
            )
            return boltzmann(q, temp, act_gen).numpy()
        eps = linear_schedule(t, cfg.eps_start, cfg.eps_end, cfg.exploration_steps)
        return epsilon_greedy(q, eps, act_gen).numpy()

    def collect() -> None:
        """Step the environments until ``train_freq`` transitions are stored (with several
        copies, up to ``num_envs - 1`` more)."""
        stored = 0
        while stored < cfg.train_freq:
            obs, skip = live["obs"], live["skip"]
            actions = act(obs, counters["env_steps"])
            next_obs, rewards, terminated, truncated, _ = env.step(actions)
            keep = ~skip  # the step after a done only reset that copy (next-step autoreset)
            if keep.any():
                buffer.add(
                    obs[keep], actions[keep], rewards[keep], next_obs[keep], terminated[keep]
                )
            k = int(keep.sum())
            stored += k
            counters["env_steps"] += k
            live["running"] += np.where(keep, rewards, 0.0)
            done = (terminated | truncated) & keep
            for j in np.flatnonzero(done):
                counters["returns"].append(float(live["running"][j]))
                counters["ends"].append(counters["env_steps"])
                live["running"][j] = 0.0
            live.update(obs=next_obs, skip=done)

    def update(batch: Transitions) -> float:
        if cfg.target == "frozen" and counters["updates"] % cfg.target_update_interval == 0:
            update_target(target_net, q_net)
        loss = dqn_loss(q_net, bootstrap_net, batch, cfg.gamma, cfg.loss)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(q_net.parameters(), cfg.max_grad_norm)
        opt.step()
        if cfg.target == "ema":
            update_target(target_net, q_net, cfg.tau)
        counters["updates"] += 1
        return float(loss.detach())

    def step(i: int) -> dict[str, float]:
        if not live:  # the first phase of this process: a fresh run or a resume
            reset((i - 1) // cfg.phases_per_round + 1)
        collect()
        if counters["env_steps"] <= cfg.learning_starts:
            return {"n": 0.0}
        if cfg.replay:
            losses = [
                update(buffer.sample(cfg.batch_size, sample_rng, device))
                for _ in range(cfg.gradient_steps)
            ]
        else:  # each stored transition once, in a random order, then forgotten
            order = sample_rng.permutation(len(buffer))
            losses = [
                update(buffer.take(order[k : k + cfg.batch_size], device))
                for k in range(0, len(order), cfg.batch_size)
            ]
            buffer.clear()
        return {"loss": float(np.mean(losses)), "n": float(len(losses))}

    def evaluate_greedy(_: int) -> dict[str, float]:
        returns = greedy_returns(q_net, cfg.env_id, cfg.eval_episodes, eval_seed, device, n_states)
        mean = float(returns.mean())
        if cfg.target_return is not None and mean >= cfg.target_return:
            loop.stop()
        return {"eval_return": mean, "env_steps": float(counters["env_steps"])}

    loop = Loop(
        ctx,
        tag=tag,
        track={
            "q_net": q_net,
            "target_net": target_net,
            "opt": opt,
            "buffer": buffer,
            "act_gen": act_gen,
            "sample_rng": sample_rng,
            "counters": counters,
        },
        progress=False,
    )
    t0 = time.perf_counter()
    result = loop.run(step, steps=cfg.phases, every=cfg.phases_per_round, evaluate=evaluate_greedy)
    env.close()
    history = result.history
    eval_steps = np.array([rec["env_steps"] for rec in history], dtype=np.int64)
    eval_returns = np.array([rec["eval_return"] for rec in history], dtype=float)
    reached = (
        np.flatnonzero(eval_returns >= cfg.target_return)
        if cfg.target_return is not None
        else np.array([], dtype=int)
    )
    run = DQNRun(
        eval_steps=eval_steps,
        eval_returns=eval_returns,
        losses=np.array([rec.get("loss", math.nan) for rec in history], dtype=float),
        episode_returns=np.asarray(counters["returns"], dtype=float),
        episode_ends=np.asarray(counters["ends"], dtype=np.int64),
        solved_at=float(eval_steps[reached[0]]) if reached.size else math.nan,
        env_steps=int(counters["env_steps"]),
        updates=int(counters["updates"]),
        seconds=time.perf_counter() - t0,
    )
    return q_net, run
