r"""Imitation learning: scripted experts, behaviour cloning and DAgger.

Notes: discussion 8, section 2 ("Imitation Learning"): 2.2 "Behavior Cloning" and 2.3
"DAgger". An expert policy solves the task; the learner :math:`\pi_\theta(a|s)` copies it.

- **Experts** (:data:`EXPERTS`) are scripted controllers, not trained agents (so there is no
  expert file to save or load): CartPole-v1, a linear feedback law on the state
  :math:`a = [k^\top s > 0]` with gains ``(0.1, 0.2, 1.0, 0.5)`` on (cart position, cart
  velocity, pole angle, pole angular velocity), return 500 (the maximum) on every episode
  measured; MountainCar-v0, energy pumping (push in the direction of the velocity), return
  about -120; Acrobot-v1, torque in the direction of the second joint's angular velocity, return
  about -80 (tests/rl/test_imitation.py measures each).
- **Behaviour cloning** maximises the log-likelihood of the expert's actions,
  :math:`\max_\theta \sum_{(s, a) \in \mathcal{D}} \log \pi_\theta(a|s)` (cross-entropy on the
  pairs of :class:`Demonstrations`), through the engine's :class:`~deepnotes.core.engine.Loop`
  (:func:`behaviour_cloning`).
- **DAgger** (Ross, Gordon & Bagnell 2011, "A Reduction of Imitation Learning and Structured
  Prediction to No-Regret Online Learning", https://arxiv.org/abs/1011.0686): roll out the
  current learner (optionally the mixture that executes the expert's action with probability
  :math:`\beta^i` in round ``i``), label the visited states with the expert, aggregate them
  into :math:`\mathcal{D}` and retrain (:func:`dagger`).
- **Distribution shift** (:func:`disagreement`): the fraction of states where the learner's
  greedy action differs from the expert's, measured on states from the expert's distribution
  and on states from the learner's own rollouts (:func:`rollout`).

Deviation: DAgger retrains by continuing from the previous round's weights (warm start) for
``steps_per_round`` steps rather than from scratch; each DAgger round draws its labels
uniformly from the visited states of one learner episode, so that a label budget counts expert
queries, not environment steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import ConfigError
from deepnotes.data.envs import Policy, make_vector_env
from deepnotes.rl.models import CategoricalPolicy, as_input


@dataclass(frozen=True)
class ScriptedExpert:
    """A hand-written controller: observations ``(n, obs_size)`` -> actions ``(n,)``.

    Attributes:
        env_id: the environment it solves.
        description: the control law in words.
        law: the law itself, on a float batch of observations.
        return_floor: the lowest return an episode can have (0 for CartPole, minus the time
            limit for MountainCar and Acrobot): :func:`normalised_return` maps it to 0 and the
            expert's return to 1.
        solved_return: the mean return that counts as solving the task: gymnasium's
            ``reward_threshold`` for CartPole-v1 (475) and Acrobot-v1 (-100); for MountainCar-v0
            reaching the flag before the time limit (-199; gymnasium's -110 asks for more than
            this simple law gives).
    """

    env_id: str
    description: str
    law: Callable[[np.ndarray], np.ndarray]
    return_floor: float
    solved_return: float

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=float)
        if obs.ndim != 2:
            raise ConfigError(f"an expert takes a batch (n, obs_size), got shape {obs.shape}")
        return self.law(obs).astype(np.int64)


CARTPOLE_GAINS = np.array([0.1, 0.2, 1.0, 0.5])
"""Gains on (x, x_dot, theta, theta_dot): push right (action 1) when ``k . s > 0``."""

EXPERTS: dict[str, ScriptedExpert] = {
    "CartPole-v1": ScriptedExpert(
        "CartPole-v1",
        "push right when 0.1 x + 0.2 x_dot + theta + 0.5 theta_dot > 0",
        lambda obs: obs @ CARTPOLE_GAINS > 0,
        0.0,
        475.0,
    ),
    "MountainCar-v0": ScriptedExpert(
        "MountainCar-v0",
        "energy pumping: push in the direction of the velocity (right when v >= 0)",
        lambda obs: np.where(obs[:, 1] >= 0, 2, 0),
        -200.0,
        -199.0,
    ),
    "Acrobot-v1": ScriptedExpert(
        "Acrobot-v1",
        "energy pumping: torque +1 when the second joint's angular velocity is >= 0, else -1",
        lambda obs: np.where(obs[:, 5] >= 0, 2, 0),
        -500.0,
        -100.0,
    ),
}
"""The scripted expert of each imitation environment."""


def expert_for(env_id: str) -> ScriptedExpert:
    """The scripted expert of ``env_id``, or a ConfigError naming the environments that have
    one."""
    if env_id not in EXPERTS:
        raise ConfigError(f"no expert for {env_id!r}; experts exist for {sorted(EXPERTS)}")
    return EXPERTS[env_id]


def normalised_return(returns: np.ndarray, expert_return: float, floor: float) -> np.ndarray:
    r""":math:`(R - R_{floor}) / (R_{expert} - R_{floor})`: 0 at the worst return, 1 at the
    expert's (for CartPole, :math:`R / R_{expert}`)."""
    if expert_return <= floor:
        raise ConfigError(f"the expert's return {expert_return} is not above the floor {floor}")
    return (np.asarray(returns, dtype=float) - floor) / (expert_return - floor)


@dataclass(frozen=True)
class Rollout:
    """The states visited by whole episodes of a policy, and their returns.

    Attributes:
        states: every state at which an action was taken, ``(N, obs_size)``, episode by episode.
        episode: the episode index of each state, ``(N,)``.
        returns: undiscounted return of each episode, ``(episodes,)``.
    """

    states: np.ndarray
    episode: np.ndarray
    returns: np.ndarray


def rollout(
    policy: Policy,
    env_id: str,
    episodes: int,
    seed: int,
    *,
    max_steps: int | None = None,
    expert: Policy | None = None,
    beta: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Rollout:
    """Run ``episodes`` episodes of ``policy`` side by side in one vector environment reset
    with ``seed`` (:func:`~deepnotes.data.envs.make_vector_env`), each until termination,
    truncation or ``max_steps`` steps.

    With ``expert`` and ``beta > 0`` the executed action is the expert's with probability
    ``beta`` at each step (DAgger's mixture policy, drawn with ``rng``); the states recorded are
    those visited either way. The vector environment's next-step autoreset is never reached for
    an episode already finished: its later steps are not recorded.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if beta > 0 and (expert is None or rng is None):
        raise ConfigError("a mixture with beta > 0 needs the expert and an rng")
    env = make_vector_env(env_id, episodes, seed)
    obs, _ = env.reset(seed=seed)
    live = np.ones(episodes, dtype=bool)
    totals = np.zeros(episodes)
    states, owners = [], []
    t = 0
    while live.any() and (max_steps is None or t < max_steps):
        actions = np.asarray(policy(obs))
        if beta > 0:
            take_expert = rng.random(episodes) < beta
            actions = np.where(take_expert, expert(obs), actions)
        states.append(obs[live].copy())
        owners.append(np.flatnonzero(live))
        obs, reward, terminated, truncated, _ = env.step(actions)
        totals[live] += reward[live]
        live &= ~(terminated | truncated)
        t += 1
    env.close()
    order = np.argsort(np.concatenate(owners), kind="stable")  # episode by episode
    return Rollout(
        states=np.concatenate(states)[order].astype(np.float32),
        episode=np.concatenate(owners)[order],
        returns=totals,
    )


def greedy(policy: CategoricalPolicy, device: torch.device | str = "cpu") -> Policy:
    """The learner's most probable action as an environment policy (numpy in, numpy out)."""

    def act(obs: np.ndarray) -> np.ndarray:
        return policy.greedy(as_input(obs).to(device)).cpu().numpy()

    return act


def disagreement(learner: Policy, expert: Policy, states: np.ndarray) -> float:
    """Fraction of ``states`` ``(N, obs_size)`` where the two policies choose different
    actions (NaN for no states)."""
    states = np.asarray(states)
    if len(states) == 0:
        return float("nan")
    return float(np.mean(np.asarray(learner(states)) != np.asarray(expert(states))))


class Demonstrations:
    """The aggregated dataset :math:`\\mathcal{D}` of (state, expert action) pairs.

    Has ``state_dict``/``load_state_dict`` so that the engine's checkpoint holds it (a resumed
    DAgger run continues with the labels already collected).
    """

    def __init__(self, obs_size: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.states = torch.zeros(0, obs_size, device=self.device)
        self.actions = torch.zeros(0, dtype=torch.long, device=self.device)

    def __len__(self) -> int:
        return self.states.shape[0]

    def add(self, states: np.ndarray, actions: np.ndarray) -> None:
        """Append ``states`` ``(n, obs_size)`` labelled with ``actions`` ``(n,)``."""
        s = torch.as_tensor(np.asarray(states), dtype=torch.float32, device=self.device)
        a = torch.as_tensor(np.asarray(actions), dtype=torch.long, device=self.device)
        if s.ndim != 2 or s.shape[1] != self.states.shape[1] or a.shape != (s.shape[0],):
            raise ConfigError(
                f"need states (n, {self.states.shape[1]}) and actions (n,), got "
                f"{tuple(s.shape)} and {tuple(a.shape)}"
            )
        self.states = torch.cat([self.states, s])
        self.actions = torch.cat([self.actions, a])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"states": self.states.clone(), "actions": self.actions.clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.states = state["states"].to(self.device)
        self.actions = state["actions"].to(self.device)


def bc_loss(policy: CategoricalPolicy, data: Demonstrations) -> torch.Tensor:
    r"""The behaviour cloning objective as a loss: :math:`-\frac{1}{|\mathcal{D}|}
    \sum_{(s, a) \in \mathcal{D}} \log \pi_\theta(a|s)` (cross-entropy with the expert's
    actions)."""
    if len(data) == 0:
        raise ConfigError("behaviour cloning needs at least one labelled state")
    return -policy.log_prob(data.states, data.actions).mean()


def behaviour_cloning(
    policy: CategoricalPolicy,
    data: Demonstrations,
    ctx: RunContext,
    *,
    tag: str,
    steps: int,
    lr: float,
    every: int | None = None,
) -> list[dict[str, Any]]:
    """Maximise the log-likelihood of ``data`` by full-batch Adam for ``steps`` steps through
    the engine's Loop (tag ``tag``); returns its records (``loss`` every ``every`` steps)."""
    opt = torch.optim.Adam(policy.parameters(), lr=lr)

    def step(_: int) -> dict[str, float]:
        loss = bc_loss(policy, data)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    loop = Loop(ctx, tag=tag, track={"policy": policy, "opt": opt, "data": data}, progress=False)
    return loop.run(step, steps=steps, every=every or steps).history


def dagger(
    policy: CategoricalPolicy,
    expert: ScriptedExpert,
    data: Demonstrations,
    ctx: RunContext,
    *,
    tag: str,
    rounds: int,
    labels_per_round: int,
    steps_per_round: int,
    lr: float,
    seed: int,
    beta: float = 0.0,
) -> list[dict[str, Any]]:
    """DAgger from the initial dataset ``data`` (the expert's demonstrations).

    Round ``i = 1..rounds``: train on :math:`\\mathcal{D}` for ``steps_per_round`` steps; then,
    unless it is the last round, roll out one episode of the learner (the expert's action
    executed with probability ``beta**i``), draw ``labels_per_round`` of its states uniformly,
    label them with the expert and add them to :math:`\\mathcal{D}`. Environments are seeded
    ``seed + i``; the draws come from a generator seeded ``seed`` and held in the checkpoint.
    Returns the Loop's records (``loss``, ``labels``: the size of :math:`\\mathcal{D}`).
    """
    if rounds < 1 or labels_per_round < 1 or steps_per_round < 1:
        raise ConfigError("rounds, labels_per_round and steps_per_round must be >= 1")
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"beta must be in [0, 1], got {beta}")
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    draws = np.random.default_rng(seed)
    act = greedy(policy, data.device)

    def step(_: int) -> dict[str, float]:
        loss = bc_loss(policy, data)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    def aggregate(i: int) -> dict[str, float]:
        if i < rounds:
            run = rollout(act, expert.env_id, 1, seed + i, expert=expert, beta=beta**i, rng=draws)
            n = len(run.states)
            pick = draws.choice(n, labels_per_round, replace=n < labels_per_round)
            data.add(run.states[pick], expert(run.states[pick]))
        return {"labels": float(len(data))}

    loop = Loop(
        ctx,
        tag=tag,
        track={"policy": policy, "opt": opt, "data": data, "draws": draws},
        progress=False,
    )
    return loop.run(
        step, steps=rounds * steps_per_round, every=steps_per_round, evaluate=aggregate
    ).history
