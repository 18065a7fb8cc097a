"""deepnotes.vision.visualisation: DeepDream's four steps, Gram matrices, style-transfer loss and
optimisation (Adam; L-BFGS, resumed through the engine's Loop)."""

from __future__ import annotations

import itertools
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch import Tensor

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import UsageError
from deepnotes.core.metrics import MetricsLogger
from deepnotes.vision.vgg import random_vgg19
from deepnotes.vision.visualisation import (
    StyleTransferLoss,
    content_loss,
    deep_dream,
    dream_gradient,
    gram_matrix,
    half_squared_norm_gradient,
    octave_shapes,
    style_loss,
    transfer_style,
)

WIDTHS = (3, 4, 4, 4, 4)


def _net(dtype=torch.float32):
    return random_vgg19(WIDTHS, torch.Generator().manual_seed(0), dtype=dtype)


def _image(h=12, w=16, seed=0, dtype=torch.float32):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_gram_matrix_against_a_double_loop():
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    g = gram_matrix(f)
    assert g.shape == (2, 3, 3)
    f = f.numpy()
    for n in range(2):
        for i in range(3):
            for j in range(3):
                expected = (
                    sum(f[n, i, y, x] * f[n, j, y, x] for y in range(4) for x in range(5)) / 20
                )
                assert abs(float(g[n, i, j] - expected)) < 1e-12
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_gram_matrix_invariant_to_permuting_positions():
    f = torch.randn(1, 6, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    perm = torch.randperm(63, generator=torch.Generator().manual_seed(2))
    shuffled = f.reshape(1, 6, 63)[..., perm].reshape(1, 6, 7, 9)
    assert not torch.equal(shuffled, f)
    torch.testing.assert_close(gram_matrix(shuffled), gram_matrix(f), rtol=0, atol=1e-12)
    with pytest.raises(UsageError, match=r"\(N, C, H, W\)"):
        gram_matrix(torch.zeros(3, 4))


def test_dream_gradient_is_jacobian_transpose_times_activation():
    net = _net(torch.float64)
    x = _image(6, 6, dtype=torch.float64)
    grad, norm = dream_gradient(net, x, "relu1_2")
    a = net.activations(x, ["relu1_2"])["relu1_2"]
    jac = torch.autograd.functional.jacobian(
        lambda z: net.activations(z, ["relu1_2"])["relu1_2"], x
    )  # (a's shape, x's shape)
    expected = torch.einsum("abcd,abcdefgh->efgh", a, jac)  # J^T a
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, half_squared_norm_gradient(net, x, "relu1_2"))
    assert abs(float(norm) - float(a.norm())) < 1e-12


def test_octave_shapes():
    assert octave_shapes((100, 140), 3, 2.0) == [(25, 35), (50, 70), (100, 140)]
    assert octave_shapes((8, 8), 1, 1.4) == [(8, 8)]
    with pytest.raises(UsageError, match="octaves"):
        octave_shapes((8, 8), 0, 1.4)


def test_deep_dream_raises_the_norm_stays_in_range_and_uses_the_runner():
    net = _net()
    x = _image(16, 20)
    calls = []

    def run(tag, steps, step, track):
        calls.append((tag, steps, sorted(track)))
        for i in range(1, steps + 1):
            step(i)

    out = deep_dream(
        net,
        x,
        "relu2_1",
        steps=5,
        lr=0.05,
        octaves=2,
        octave_scale=1.5,
        jitter=2,
        generator=torch.Generator().manual_seed(0),
        run=run,
    )
    assert calls == [("octave0", 5, ["image", "jitter"]), ("octave1", 5, ["image", "jitter"])]
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    before = net.activations(x, ["relu2_1"])["relu2_1"].norm()
    after = net.activations(out, ["relu2_1"])["relu2_1"].norm()
    assert after > 1.2 * before
    with pytest.raises(UsageError, match="steps >= 1"):
        deep_dream(net, x, "relu2_1", steps=0, lr=0.1)
    with pytest.raises(UsageError, match=r"\(N, 3, H, W\)"):
        deep_dream(net, x[:, :1], "relu2_1", steps=1, lr=0.1)


def test_losses_are_relative_frobenius_norms():
    f = {"a": torch.ones(1, 2, 2, 2), "b": torch.full((1, 1, 2, 2), 2.0)}
    target = {"a": torch.zeros(1, 2, 2, 2) + 2.0}
    # ||1 - 2|| over 8 entries = sqrt(8); ||2|| over 8 entries = 2 sqrt(8)
    assert abs(float(content_loss(f, target)) - 0.5) < 1e-6
    grams = {"b": torch.full((1, 1, 1), 1.0)}  # gram of b is 4; |4 - 1| / 1
    assert abs(float(style_loss(f, grams)) - 3.0) < 1e-6


def test_style_transfer_loss_terms_vanish_at_their_targets_and_fall():
    net = _net()
    p, a = _image(16, 16, seed=1), _image(16, 16, seed=2) ** 3
    loss = StyleTransferLoss(
        net, p, a, k=2.0, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1")
    )
    with torch.no_grad():
        total, c, s = loss(p)
        assert float(c) == 0.0 and float(s) > 0 and abs(float(total - 2.0 * s)) < 1e-6
        assert float(loss(a)[2]) < 1e-6
    seen = {}

    def run(tag, steps, step, track):
        seen.update(tag=tag, track=sorted(track))
        seen["first"] = step(1)
        for i in range(2, steps + 1):
            seen["last"] = step(i)

    x = transfer_style(loss, p, steps=20, lr=0.05, run=run)
    assert seen["tag"] == "style" and seen["track"] == ["image", "opt", "schedule"]
    assert seen["first"]["evaluations"] == 1.0 and seen["first"]["content_term"] == 0.0
    assert seen["last"]["style_term"] < 0.5 * seen["first"]["style_term"]
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    with pytest.raises(UsageError, match="k > 0"):
        StyleTransferLoss(net, p, a, k=0.0)
    with pytest.raises(UsageError, match="lr > 0"):
        transfer_style(loss, p, steps=1, lr=-1.0)
    with pytest.raises(UsageError, match="optimiser must be one of"):
        transfer_style(loss, p, steps=1, optimiser="sgd")
    with pytest.raises(UsageError, match="inner >= 1"):
        transfer_style(loss, p, steps=1, optimiser="lbfgs", inner=0)


def _lbfgs_problem():
    net = _net()
    p, a = _image(16, 16, seed=1), _image(16, 16, seed=2) ** 3
    p[..., :4, :4] = 1.0  # saturated pixels: the start is clipped to [eps, 1 - eps]
    loss = StyleTransferLoss(
        net, p, a, k=2.0, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1")
    )
    return loss, p


def test_lbfgs_lowers_the_loss_and_keeps_the_image_in_range():
    loss, p = _lbfgs_problem()
    records = []

    def run(tag, steps, step, track):
        assert tag == "style" and sorted(track) == ["angles", "opt"]
        assert isinstance(track["opt"], torch.optim.LBFGS)
        records.extend(step(i) for i in range(1, steps + 1))

    x = transfer_style(loss, p, steps=4, optimiser="lbfgs", inner=5, run=run)
    assert x.shape == p.shape and float(x.min()) >= 0 and float(x.max()) <= 1
    # the start is p up to the clip (content term ~0), each step up to 5 iterations
    assert records[0]["content_term"] < 1e-3
    assert all(1 <= r["evaluations"] <= 7 for r in records)  # max_eval = 1.25 max_iter
    losses = [r["loss"] for r in records]
    assert all(b < a for a, b in itertools.pairwise(losses))
    with torch.no_grad():
        final = float(loss(x)[0])
        assert final < losses[-1] < 0.5 * losses[0]
    assert torch.equal(x, transfer_style(loss, p, steps=4, optimiser="lbfgs", inner=5))


def _ctx(path: Path, resume: bool) -> RunContext:
    return RunContext(
        name="style-test",
        seed=0,
        device=torch.device("cpu"),
        out_dir=path,
        resume=resume,
        metrics=MetricsLogger(path / "metrics.jsonl"),
        show_progress=False,
    )


def _engine_run(path: Path, resume: bool = False) -> tuple[Tensor, list[dict]]:
    loss, p = _lbfgs_problem()
    history: list[dict] = []

    def run(tag, steps, step, track):
        loop = Loop(_ctx(path, resume), tag=tag, track=track, progress=False)
        history.extend(loop.run(step, steps=steps, every=1).history)

    return transfer_style(loss, p, steps=4, optimiser="lbfgs", inner=3, run=run), history


def test_lbfgs_resumed_through_the_loop_equals_the_uninterrupted_run(tmp_path: Path):
    whole, whole_history = _engine_run(tmp_path / "whole")
    original, saves = Loop._save, []

    def crash(self, *args):
        original(self, *args)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt  # killed right after the second checkpoint

    with mock.patch.object(Loop, "_save", crash), pytest.raises(KeyboardInterrupt):
        _engine_run(tmp_path / "killed")
    resumed, history = _engine_run(tmp_path / "killed", resume=True)
    assert torch.equal(resumed, whole)  # L-BFGS's history and line-search state restored
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(history) == strip(whole_history) and len(history) == 4
