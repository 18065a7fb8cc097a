"""The training engine in-process: iteration, records, guard, checkpoints and resume."""

from __future__ import annotations

import math
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from deepnotes.core.checkpoint import CheckpointError
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.core.metrics import MetricsLogger, read_metrics


def make_ctx(tmp_path: Path, resume: bool = False) -> RunContext:
    return RunContext(
        name="engine-test",
        seed=0,
        device=torch.device("cpu"),
        out_dir=tmp_path,
        resume=resume,
        metrics=MetricsLogger(tmp_path / "metrics.jsonl"),
        show_progress=False,
    )


def test_step_mode_rounds_and_records(tmp_path: Path) -> None:
    seen = []
    loop = Loop(make_ctx(tmp_path), tag="steps", progress=False)
    result = loop.run(
        lambda i: seen.append(i) or {"loss": float(i)},
        steps=7,
        every=3,
        evaluate=lambda r: {"eval": 10.0 * r},
    )
    assert seen == list(range(1, 8))
    assert [r["step"] for r in result.history] == [3, 6, 7]
    assert [r["loss"] for r in result.history] == [2.0, 5.0, 7.0]  # mean over the round
    assert [r["eval"] for r in result.history] == [10.0, 20.0, 30.0]
    assert result.steps == 7 and result.rounds == 3 and not result.stopped_early


def test_step_seconds_count_the_steps_and_not_the_evaluation(tmp_path: Path) -> None:
    def step(i: int) -> dict[str, float]:
        time.sleep(0.01)
        return {"loss": 1.0}

    def slow_evaluation(r: int) -> dict[str, float]:
        time.sleep(0.1)
        return {}

    loop = Loop(make_ctx(tmp_path), tag="timed", progress=False)
    result = loop.run(step, steps=6, every=3, evaluate=slow_evaluation)
    assert result.step_seconds >= 0.06  # six steps of at least 10 ms
    assert result.seconds - result.step_seconds >= 0.2  # two evaluations of 100 ms, not counted


def test_epoch_mode_weights_by_n(tmp_path: Path) -> None:
    loop = Loop(make_ctx(tmp_path), tag="epochs", progress=False)
    batches = lambda epoch: [(1.0, 3), (5.0, 1)]  # noqa: E731 - (value, weight)
    result = loop.run(lambda b: {"acc": b[0], "n": b[1]}, epochs=2, batches=batches)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.history[0]["acc"] == pytest.approx((3 * 1.0 + 5.0) / 4)
    assert "n" not in result.history[0]


def test_stop_ends_early_and_is_remembered(tmp_path: Path) -> None:
    loop = Loop(make_ctx(tmp_path), tag="early", progress=False)
    result = loop.run(
        lambda i: {"loss": 1.0}, steps=10, evaluate=lambda r: loop.stop() if r == 4 else None
    )
    assert result.rounds == 4 and result.stopped_early
    again = Loop(make_ctx(tmp_path, resume=True), tag="early", progress=False)
    resumed = again.run(lambda i: pytest.fail("a finished loop must not step"), steps=10)
    assert resumed.rounds == 4 and resumed.restored_rounds == 4 and resumed.stopped_early


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_guard_names_the_loss_and_the_step(tmp_path: Path, bad: float) -> None:
    loop = Loop(make_ctx(tmp_path), tag="guard", progress=False)
    with pytest.raises(DivergenceError) as info:
        loop.run(lambda i: {"loss_a": 1.0, "loss_b": bad if i == 5 else 1.0}, steps=9, every=2)
    message = str(info.value)
    assert f"[guard] loss_b is {bad} at step 5" in message
    assert "guard.pt (after step 4)" in message


def test_guard_in_the_first_round_says_no_checkpoint(tmp_path: Path) -> None:
    loop = Loop(make_ctx(tmp_path), tag="g", progress=False)
    with pytest.raises(DivergenceError, match="no checkpoint was written before it"):
        loop.run(lambda i: {"loss": math.nan}, steps=3)


def test_explosion_and_watch(tmp_path: Path) -> None:
    values = {1: 1.0, 2: -2.0, 3: -2e4}
    loop = Loop(make_ctx(tmp_path), tag="x", progress=False, explode_factor=1e4)
    with pytest.raises(DivergenceError, match=r"critic_loss exploded to -2e\+04.*step 3"):
        loop.run(lambda i: {"critic_loss": values[i]}, steps=3)
    # not watched: a non-loss scalar may be anything; watch= selects explicitly
    free = Loop(make_ctx(tmp_path / "w"), tag="w", progress=False, watch=("objective",))
    free.run(lambda i: {"loss": math.nan, "objective": 1.0}, steps=2)
    with pytest.raises(DivergenceError, match="objective is nan"):
        Loop(make_ctx(tmp_path / "v"), tag="v", progress=False, watch=("objective",)).run(
            lambda i: {"objective": math.nan}, steps=2
        )


def test_resume_restores_every_kind_of_tracked_state(tmp_path: Path) -> None:
    def build(resume: bool):
        ctx = make_ctx(tmp_path / "run", resume=resume)
        torch.manual_seed(0)
        net = torch.nn.Linear(2, 1)
        optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3)
        state = {"count": 0, "seen": torch.zeros(0)}
        gen, rng = ctx.stream("torch"), ctx.numpy_rng("numpy")
        track = {"net": net, "opt": optimizer, "sched": scheduler, "state": state, "gen": gen}
        track["rng"] = rng
        loop = Loop(ctx, tag="all", track=track, progress=False)

        def step(i: int) -> dict[str, float]:
            x = torch.randn(4, 2, generator=gen) + float(rng.standard_normal())
            loss = net(x).pow(2).mean() + torch.rand(()).item()  # the global RNG too
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            state["count"] += 1
            state["seen"] = torch.cat([state["seen"], x[:, 0]])
            return {"loss": loss}

        return loop, step, net, state

    loop, step, net, state = build(False)
    whole = loop.run(step, steps=12, every=2)
    weights = net.weight.detach().clone()
    seen = state["seen"].clone()
    (tmp_path / "run" / "checkpoints" / "all.pt").unlink()
    loop, step, net, state = build(False)
    original = Loop._save
    calls = []

    def crash(self, *args):
        original(self, *args)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with mock.patch.object(Loop, "_save", crash), pytest.raises(KeyboardInterrupt):
        loop.run(step, steps=12, every=2)
    loop, step, net, state = build(True)
    resumed = loop.run(step, steps=12, every=2)
    assert resumed.restored_rounds == 3
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)
    assert torch.equal(net.weight, weights) and torch.equal(state["seen"], seen)
    assert state["count"] == 12
    logged = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in logged][-6:] == [2, 4, 6, 8, 10, 12]


def test_a_checkpoint_of_another_loop_is_refused(tmp_path: Path) -> None:
    Loop(make_ctx(tmp_path), tag="a", progress=False).run(lambda i: {"loss": 1.0}, steps=2)
    (tmp_path / "checkpoints" / "a.pt").rename(tmp_path / "checkpoints" / "b.pt")
    other = Loop(make_ctx(tmp_path, resume=True), tag="b", track={"x": {}}, progress=False)
    with pytest.raises(CheckpointError, match="belongs to another loop"):
        other.run(lambda i: {"loss": 1.0}, steps=2)


def test_bad_arguments() -> None:
    ctx = make_ctx(Path("/nonexistent"))
    with pytest.raises(TypeError, match="cannot track 'f'"):
        Loop(ctx, track={"f": lambda: 0})
    with pytest.raises(ValueError, match="plain name"):
        Loop(ctx, tag="../x")
    loop = Loop(ctx, checkpoint=False, progress=False, log=False)
    with pytest.raises(ValueError, match="exactly one of"):
        loop.run(lambda i: {}, steps=2, epochs=2)
    with pytest.raises(ValueError, match="needs batches"):
        loop.run(lambda b: {}, epochs=2)
    with pytest.raises(TypeError, match="dict of scalars"):
        loop.run(lambda i: 1.0, steps=1)
    with pytest.raises(TypeError, match="must be a scalar"):
        loop.run(lambda i: {"loss": torch.ones(2)}, steps=1)
    with pytest.raises(ValueError, match="already uses"):
        loop.run(lambda i: {"loss": 1.0}, steps=1, evaluate=lambda r: {"loss": 2.0})


def test_cached_sub_results(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"acc": np.array([0.5, 0.75]), "n": 2, "w": torch.ones(2)}

    first = ctx.cached("fit", {"r": 0, "lr": 0.1}, compute)
    again = ctx.cached("fit", {"lr": 0.1, "r": 0}, compute)  # key order does not matter
    other = ctx.cached("fit", {"r": 1, "lr": 0.1}, compute)
    assert len(calls) == 2
    np.testing.assert_array_equal(again["acc"], first["acc"])
    assert torch.equal(other["w"], torch.ones(2))
    assert len(list((tmp_path / "cache").glob("fit-*.pt"))) == 2
    with pytest.raises(ValueError, match="plain name"):
        ctx.cached("../fit", {}, compute)


def test_streams_are_stable_and_distinct(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    a = torch.rand(3, generator=ctx.stream("data", 1))
    assert torch.equal(a, torch.rand(3, generator=ctx.stream("data", 1)))
    assert not torch.equal(a, torch.rand(3, generator=ctx.stream("data", 2)))
    assert ctx.seed_for("x") != ctx.child("y").seed_for("x")
    before = torch.get_rng_state()
    with ctx.seeded("init", 3):
        w1 = torch.nn.Linear(2, 2).weight.detach().clone()
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is untouched
    torch.rand(5)  # whatever ran before does not change the next block
    with ctx.seeded("init", 3):
        assert torch.equal(torch.nn.Linear(2, 2).weight, w1)
    with pytest.raises(TypeError, match="ints or strings"):
        ctx.seed_for(1.5)
