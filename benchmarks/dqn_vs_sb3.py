"""DQN on CartPole-v1: this project's :func:`deepnotes.rl.dqn.train_dqn` vs stable-baselines3.

Run: ``python benchmarks/dqn_vs_sb3.py [--seeds 0 1 2] [--threads 1] [--device cpu]``. Needs
the ``bench`` extra (``pip install -e .[bench]``: stable-baselines3); not part of the test suite
and never imported by the library. On a shared, busy CPU keep ``--threads 1``.

Both agents use rl-baselines3-zoo's CartPole-v1 hyperparameters (``hyperparams/dqn.yml``): Adam
lr 2.3e-3, batch 64, buffer 100k, learning_starts 1000, gamma 0.99, train_freq 256,
gradient_steps 128, target network copied every 10 environment steps (SB3; between two blocks
of 128 updates, which is what ours does with ``target_update_interval=128`` updates),
epsilon 1 -> 0.04 over 0.16 x 50k = 8,000 steps, Huber loss, gradient norm clipped at 10, a
256x256 ReLU Q-network, one environment. The same evaluation for both, in the same process,
the agents interleaved seed by seed: every 1,024 environment steps the greedy policy plays 10
episodes (:func:`deepnotes.rl.dqn.greedy_returns`, the same seeds for both); training stops
when their mean reaches 475 (or after 50k steps). Reported per seed: environment steps and
training wall time (evaluation included, imports excluded) until then; ratio = ours / SB3
(below 1: ours is better), summarised by the geometric mean over seeds.

Differences that remain: the random streams differ, so seed ``k`` of one is not seed ``k`` of
the other; the evaluation episodes are the same.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepnotes.core.context import RunContext
from deepnotes.core.seeding import derive_seed
from deepnotes.core.stats import geometric_mean
from deepnotes.rl.dqn import DQNConfig, greedy_returns, train_dqn

ENV_ID, SOLVED, BUDGET, EVAL_EVERY, EVAL_EPISODES = "CartPole-v1", 475.0, 50_000, 1024, 10
RL_ZOO = {  # rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}


def run_ours(seed: int, device: torch.device) -> tuple[float, float]:
    """(environment steps to 475 or NaN, wall seconds) of :func:`train_dqn`."""
    cfg = DQNConfig(
        total_steps=BUDGET,
        eval_every=EVAL_EVERY,
        eval_episodes=EVAL_EPISODES,
        target_return=SOLVED,
    )
    with tempfile.TemporaryDirectory() as out:
        ctx = RunContext(name="bench.dqn", seed=seed, device=device, out_dir=Path(out))
        _, run = train_dqn(cfg, ctx, tag="dqn", seed=seed)
    return run.solved_at, run.seconds


def run_sb3(seed: int, device: torch.device) -> tuple[float, float]:
    """(environment steps to 475 or NaN, wall seconds) of stable-baselines3's DQN."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    eval_seed = derive_seed(seed, "dqn-eval", seed)  # the evaluation episodes ours plays

    class StopAtSolved(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.solved_at = math.nan

        def _on_step(self) -> bool:
            if self.num_timesteps % EVAL_EVERY:
                return True
            q_net = self.model.q_net  # obs batch (n, 4) -> Q values (n, 2)
            mean = greedy_returns(q_net, ENV_ID, EVAL_EPISODES, eval_seed, device).mean()
            if mean >= SOLVED:
                self.solved_at = float(self.num_timesteps)
                return False
            return True

    t0 = time.perf_counter()
    model = DQN("MlpPolicy", ENV_ID, seed=seed, device=device, verbose=0, **RL_ZOO)
    callback = StopAtSolved()
    model.learn(total_timesteps=BUDGET, callback=callback)
    return callback.solved_at, time.perf_counter() - t0


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not (math.isnan(a) or math.isnan(b)) else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    import stable_baselines3

    print(
        f"torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}, "
        f"{args.device} with {torch.get_num_threads()} thread(s); CartPole-v1, rl-zoo "
        f"hyperparameters, stop at greedy mean >= {SOLVED:g} over {EVAL_EPISODES} episodes "
        f"(evaluated every {EVAL_EVERY} steps, budget {BUDGET:,})"
    )
    rows = []
    for seed in args.seeds:
        ours = run_ours(seed, device)
        sb3 = run_sb3(seed, device)
        rows.append((seed, ours, sb3))
        print(
            f"  seed {seed}: ours {ours[0]:.0f} steps {ours[1]:.1f} s; SB3 {sb3[0]:.0f} steps "
            f"{sb3[1]:.1f} s",
            flush=True,
        )
    print()
    print("| seed | steps, ours | steps, SB3 | ratio | seconds, ours | seconds, SB3 | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    step_ratios, time_ratios = [], []
    for seed, (s_ours, t_ours), (s_sb3, t_sb3) in rows:
        rs, rt = ratio(s_ours, s_sb3), ratio(t_ours, t_sb3)
        step_ratios.append(rs)
        time_ratios.append(rt)
        print(
            f"| {seed} | {s_ours:,.0f} | {s_sb3:,.0f} | {rs:.2f} | {t_ours:.1f} | {t_sb3:.1f} | "
            f"{rt:.2f} |"
        )
    finite = [np.isfinite(step_ratios).all(), np.isfinite(time_ratios).all()]
    gm_steps = geometric_mean(np.array(step_ratios)) if finite[0] else math.nan
    gm_time = geometric_mean(np.array(time_ratios)) if finite[1] else math.nan
    print(f"| geometric mean | | | {gm_steps:.2f} | | | {gm_time:.2f} |")
    print("(NaN: a run did not reach the bar within the budget; ratio = ours / SB3)")


if __name__ == "__main__":
    main()
