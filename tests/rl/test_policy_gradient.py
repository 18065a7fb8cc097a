"""rl.policy_gradient: the exact gradient three ways, the sampler, and the REINFORCE estimators
against autograd and against the exact gradient (Monte Carlo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.core import stats
from deepnotes.core.errors import ConfigError
from deepnotes.rl import policy_gradient as pg
from deepnotes.rl.mdp import from_gymnasium, policy_evaluation
from deepnotes.rl.returns import reward_to_go


def setting(gamma: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    mdp = pg.random_mdp(4, 3, rng, end_prob=0.3, level_scale=2.0, gamma=gamma)
    theta = rng.standard_normal((mdp.n_states, mdp.n_actions))
    return mdp, theta


def max_abs_z(grads: np.ndarray, expected: np.ndarray) -> float:
    mean, se = stats.mean_and_se(grads)
    return float(np.max(np.abs(stats.standardized_deviation(mean, se, expected))))


def test_softmax_policy_rows_are_distributions_invariant_to_a_shift() -> None:
    theta = np.random.default_rng(0).standard_normal((5, 4)) * 30
    pi = pg.softmax_policy(theta)
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-15)
    np.testing.assert_allclose(pg.softmax_policy(theta + 7.0), pi, atol=1e-15)
    ref = torch.softmax(torch.tensor(theta), -1).numpy()
    np.testing.assert_allclose(pi, ref, atol=1e-15)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_exact_gradient_autograd_equals_the_policy_gradient_theorem(gamma: float) -> None:
    mdp, theta = setting(gamma)
    auto, theorem = pg.exact_gradient_autograd(mdp, theta), pg.exact_gradient_theorem(mdp, theta)
    assert np.max(np.abs(auto - theorem)) <= 1e-10
    assert np.max(np.abs(auto)) > 0.01  # not trivially zero
    np.testing.assert_array_equal(auto[mdp.terminal], 0.0)  # no action in a terminal state


def test_exact_gradient_on_frozen_lake_and_against_finite_differences() -> None:
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.9, is_slippery=False)
    theta = np.random.default_rng(1).standard_normal((mdp.n_states, mdp.n_actions))
    auto = pg.exact_gradient_autograd(mdp, theta)
    assert np.max(np.abs(auto - pg.exact_gradient_theorem(mdp, theta))) <= 1e-10
    # a third, independent way: central differences of the exact objective
    h, fd = 1e-6, np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[idx] = h
        up, down = pg.exact_objective(mdp, theta + step), pg.exact_objective(mdp, theta - step)
        fd[idx] = (up - down) / (2 * h)
    np.testing.assert_allclose(auto, fd, atol=1e-8)


def test_discounted_visitation_sums_to_the_expected_length() -> None:
    mdp, theta = setting(1.0)
    d = pg.discounted_visitation(mdp, pg.softmax_policy(theta))
    assert d.sum() == pytest.approx(1 / 0.3, abs=1e-12)  # geometric length, end_prob 0.3
    mdp9 = mdp.with_gamma(0.9)  # sum_t gamma^t P(alive at t) = 1 / (1 - 0.9 * 0.7)
    d9 = pg.discounted_visitation(mdp9, pg.softmax_policy(theta))
    assert d9.sum() == pytest.approx(1 / (1 - 0.9 * 0.7), abs=1e-12)


def test_sampled_episodes_match_the_exact_return_length_and_policy() -> None:
    mdp, theta = setting(1.0)
    pi = pg.softmax_policy(theta)
    episodes = pg.sample_episodes(mdp, pi, 20_000, np.random.default_rng(2))
    assert episodes.states.shape == episodes.mask.shape == episodes.rewards.shape
    assert not mdp.terminal[episodes.states[episodes.mask]].any()  # never act in a terminal
    returns = np.where(episodes.mask, episodes.rewards, 0.0).sum(-1)
    mean, se = stats.mean_se(returns)
    assert abs(mean - pg.exact_objective(mdp, theta)) < 4 * se
    mean_len, se_len = stats.mean_se(episodes.lengths.astype(float))
    assert abs(mean_len - 1 / 0.3) < 4 * se_len
    first = episodes.actions[:, 0][episodes.states[:, 0] == 0]  # action frequencies in state 0
    freq = np.bincount(first, minlength=mdp.n_actions) / len(first)
    assert np.max(np.abs(freq - pi[0])) < 4 * np.sqrt(0.25 / len(first))


def test_sampler_refuses_to_cut_episodes() -> None:
    mdp, theta = setting(1.0)
    with pytest.raises(ConfigError, match="did not terminate"):
        pg.sample_episodes(mdp, pg.softmax_policy(theta), 1000, np.random.default_rng(0), 2)


def test_batch_reward_to_go_equals_the_per_episode_one() -> None:
    mdp, theta = setting(0.9)
    episodes = pg.sample_episodes(mdp, pg.softmax_policy(theta), 50, np.random.default_rng(3))
    rtg = pg.batch_reward_to_go(episodes.rewards, episodes.mask, 0.9)
    for i in range(50):
        n = episodes.lengths[i]
        np.testing.assert_allclose(rtg[i, :n], reward_to_go(episodes.rewards[i, :n], 0.9))
        assert (rtg[i, n:] == 0).all()


@pytest.mark.parametrize("estimator", pg.ESTIMATORS)
def test_per_episode_gradients_equal_autograd_of_the_surrogate(estimator: str) -> None:
    mdp, theta = setting(0.9)
    pi = pg.softmax_policy(theta)
    episodes = pg.sample_episodes(mdp, pi, 200, np.random.default_rng(4))
    baseline = policy_evaluation(mdp, pi) if estimator == "state_baseline" else 1.5
    psi = pg.reinforce_weights(episodes, mdp.gamma, estimator, baseline)
    ours = pg.per_episode_gradients(episodes, pi, psi)  # (N, S, A)
    theta_t = torch.tensor(theta, requires_grad=True)
    states, actions = torch.as_tensor(episodes.states), torch.as_tensor(episodes.actions)
    log_probs = torch.log_softmax(theta_t, -1)[states, actions]  # (N, T)
    loss = pg.reinforce_surrogate(log_probs, torch.as_tensor(psi), torch.as_tensor(episodes.mask))
    (grad,) = torch.autograd.grad(loss, theta_t)
    np.testing.assert_allclose(ours.mean(0), -grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_every_estimator_is_unbiased(gamma: float) -> None:
    mdp, theta = setting(gamma, seed=1)
    pi = pg.softmax_policy(theta)
    exact = pg.exact_gradient_autograd(mdp, theta)
    episodes = pg.sample_episodes(mdp, pi, 20_000, np.random.default_rng(5))
    bound = stats.agreement_bound(len(pg.ESTIMATORS) * exact.size)
    for estimator in pg.ESTIMATORS:
        baseline = policy_evaluation(mdp, pi) if estimator == "state_baseline" else 3.0
        psi = pg.reinforce_weights(episodes, gamma, estimator, baseline)
        assert max_abs_z(pg.per_episode_gradients(episodes, pi, psi), exact) < bound, estimator


def test_dropping_the_discount_factor_biases_the_reward_to_go() -> None:
    # the module's Deviation: with gamma < 1 the factor gamma^t is what makes G_t unbiased
    mdp, theta = setting(0.5, seed=1)
    pi = pg.softmax_policy(theta)
    exact = pg.exact_gradient_autograd(mdp, theta)
    episodes = pg.sample_episodes(mdp, pi, 20_000, np.random.default_rng(6))
    psi = pg.reinforce_weights(episodes, 0.5, "reward_to_go")
    undiscounted = np.where(episodes.mask, psi / 0.5 ** np.arange(psi.shape[1]), 0.0)
    assert max_abs_z(pg.per_episode_gradients(episodes, pi, undiscounted), exact) > 6


def test_bad_input_is_named() -> None:
    mdp, theta = setting()
    episodes = pg.sample_episodes(mdp, pg.softmax_policy(theta), 10, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="estimator must be one of"):
        pg.reinforce_weights(episodes, 1.0, "advantage")
    with pytest.raises(ConfigError, match="needs a baseline"):
        pg.reinforce_weights(episodes, 1.0, "state_baseline")
    with pytest.raises(ConfigError, match="table V"):
        pg.reinforce_weights(episodes, 1.0, "state_baseline", np.zeros(2))
    with pytest.raises(ConfigError, match="theta must have shape"):
        pg.exact_gradient_autograd(mdp, np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="same shape"):
        pg.reinforce_surrogate(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ConfigError, match="end_prob"):
        pg.random_mdp(3, 2, np.random.default_rng(0), end_prob=0.0)
