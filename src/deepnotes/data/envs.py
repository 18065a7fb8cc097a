"""Gymnasium environments made one way for the whole RL room, checked, seeded and evaluated.

Every experiment makes its environments with :func:`make_env` (one environment) or
:func:`make_vector_env` (``n`` copies stepped together, numpy-vectorised where gymnasium has
a vector entry point, as for CartPole), so that an unknown id or an unsupported action space
is a clear error (exit 2) naming what was expected, and seeding is uniform: an environment
seeded with ``seed`` resets to the same states, and its action space samples the same actions.

Episodes end as gymnasium defines it: ``terminated`` (the MDP reached a terminal state: no
future reward, a value target does not bootstrap) or ``truncated`` (a time limit cut the
episode: the state still has a value, a target bootstraps from ``V(s')``). See
:func:`deepnotes.rl.returns.td_target`.

:func:`evaluate` runs a policy for whole episodes and returns the undiscounted returns;
:class:`HiddenVelocities` turns CartPole into the notes' partially observed problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from deepnotes.core.errors import ConfigError

SUPPORTED = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "FrozenLake-v1",
    "CliffWalking-v1",
    "Taxi-v3",
    "LunarLander-v3",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
)
"""Environment ids the room accepts (Box2D ones need ``gymnasium[box2d]``)."""

Policy = Callable[[np.ndarray], np.ndarray]
"""Observations ``(n, *obs_shape)`` -> actions ``(n,)`` (one per environment)."""


def _check_id(env_id: str) -> None:
    if env_id not in SUPPORTED:
        raise ConfigError(f"unknown environment {env_id!r}; supported: {', '.join(SUPPORTED)}")


def make_env(env_id: str, seed: int | None = None, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)``, reset once with ``seed`` (and its action space
    seeded too). An id outside :data:`SUPPORTED` raises a ConfigError listing them."""
    _check_id(env_id)
    try:
        env = gym.make(env_id, **kwargs)
    except (gym.error.Error, ImportError) as err:
        raise ConfigError(f"cannot make {env_id!r}: {err}") from err
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def make_vector_env(env_id: str, num_envs: int, seed: int | None = None) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` stepped together, autoresetting after each episode
    (gymnasium's next-step autoreset: the step after a ``done`` returns the reset observation
    with reward 0 and should be skipped by learners; :func:`evaluate` handles it). Uses the
    environment's numpy-vectorised entry point when it has one, else a synchronous wrapper."""
    _check_id(env_id)
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    try:
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    except (gym.error.Error, ValueError, TypeError):
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def require_discrete(space: gym.Space, who: str) -> int:
    """The number of actions of a ``Discrete`` space, or a ConfigError naming ``who`` needs it."""
    if not isinstance(space, gym.spaces.Discrete):
        raise ConfigError(
            f"{who} needs a discrete action space (gymnasium.spaces.Discrete), got {space}"
        )
    return int(space.n)


def observation_size(space: gym.Space) -> int:
    """Length of a flat observation: the size of a ``Box``, or ``n`` for a ``Discrete`` space
    (observed one-hot by the room's networks)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise ConfigError(f"unsupported observation space {space}; expected Box or Discrete")


def evaluate(
    policy: Policy, env_id: str, episodes: int, seed: int, num_envs: int = 8, **kwargs: Any
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` whole episodes of ``policy``, shape ``(episodes,)``.

    Episodes run ``num_envs`` at a time in separate environments seeded from ``seed``; each
    episode ends at termination or truncation (the time limit), the first ``episodes`` to
    finish are returned in a deterministic order. ``kwargs`` go to ``gymnasium.make``.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    returns: list[float] = []
    batch = 0
    while len(returns) < episodes:
        n = min(num_envs, episodes - len(returns))
        envs = [make_env(env_id, **kwargs) for _ in range(n)]
        first = seed + batch * num_envs
        obs = np.stack([env.reset(seed=first + i)[0] for i, env in enumerate(envs)])
        total, live = np.zeros(n), np.ones(n, dtype=bool)
        while live.any():
            actions = np.asarray(policy(obs))
            for i in np.flatnonzero(live):
                o, r, terminated, truncated, _ = envs[i].step(actions[i].item())
                obs[i] = o
                total[i] += r
                live[i] = not (terminated or truncated)
        returns.extend(total.tolist())
        for env in envs:
            env.close()
        batch += 1
    return np.asarray(returns[:episodes])


class HiddenVelocities(gym.ObservationWrapper):
    """CartPole with its two velocities removed: the observation is (cart position, pole angle).

    The state is no longer observed: a memoryless policy sees the same observation for states
    that need opposite actions (the notes' partially observed MDP); a policy with memory (a
    recurrent state, or the last few observations stacked) can recover the velocities.
    """

    KEEP = (0, 2)

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        box = env.observation_space
        if not isinstance(box, gym.spaces.Box) or box.shape != (4,):
            raise ConfigError(f"HiddenVelocities wraps CartPole's Box(4,), got {box}")
        idx = list(self.KEEP)
        self.observation_space = gym.spaces.Box(box.low[idx], box.high[idx], dtype=box.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[list(self.KEEP)]
