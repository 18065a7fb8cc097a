"""Reinforcement and imitation learning (notes, discussions 8-9).

Exact tabular ground truth (:mod:`~deepnotes.rl.mdp`), returns and truncation-aware targets
(:mod:`~deepnotes.rl.returns`), the networks (:mod:`~deepnotes.rl.models`), and one module per
family of methods: tabular TD and Q-learning, policy gradients, REINFORCE, actor-critic, DQN,
imitation. The gymnasium environments are made one way in :mod:`deepnotes.data.envs`.
"""
