"""deepnotes.meta.fewshot: prototype scores against brute force, the matching kernel, the
black-box learner's use of labels, the baseline's support-only head, and bad episodes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError
from deepnotes.data.episodes import Episode
from deepnotes.meta import fewshot as fs

WAYS, SHOTS, Q, D = 5, 3, 7, 6


class Flat(nn.Module):
    """The identity embedding of flat vectors (an ``out_features`` like ConvEmbedding's)."""

    def __init__(self, features: int = D) -> None:
        super().__init__()
        self.out_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def episode(seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    sx = torch.randn(WAYS * SHOTS, D, generator=g, dtype=dtype)
    sy = torch.arange(WAYS).repeat_interleave(SHOTS)[torch.randperm(WAYS * SHOTS, generator=g)]
    qx = torch.randn(Q, D, generator=g, dtype=dtype)
    return sx, sy, qx


@pytest.mark.parametrize("score", fs.SCORES)
def test_prototype_scores_match_brute_force(score: str) -> None:
    sx, sy, qx = episode()
    got = fs.ProtoNet(Flat(), score=score).logits(sx, sy, qx, WAYS)
    want = torch.empty(Q, WAYS, dtype=torch.float64)
    for y in range(WAYS):
        members = [sx[k] for k in range(len(sy)) if sy[k] == y]
        c = sum(members) / len(members)
        for j in range(Q):
            if score == "dot":  # the notes: c_y^T f(x)
                want[j, y] = sum(c[d] * qx[j, d] for d in range(D))
            else:  # Snell et al.: -||f(x) - c_y||^2
                want[j, y] = -sum((qx[j, d] - c[d]) ** 2 for d in range(D))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_prototypes_are_class_means() -> None:
    sx, sy, _ = episode()
    protos = fs.prototypes(sx, sy, WAYS)
    for y in range(WAYS):
        torch.testing.assert_close(protos[y], sx[sy == y].mean(0))


def test_matching_attention_sums_to_one_and_a_sharp_kernel_picks_the_nearest() -> None:
    sx, sy, qx = episode()
    net = fs.MatchingNet(Flat(), "cosine", sharpness=1.0)
    a = net.attention(sx, qx)
    assert a.shape == (Q, WAYS * SHOTS)
    torch.testing.assert_close(a.sum(1), torch.ones(Q, dtype=torch.float64))
    assert bool((a > 0).all())
    sharp = fs.MatchingNet(Flat(), "cosine", sharpness=1e4)
    nearest = (F.normalize(qx, dim=1) @ F.normalize(sx, dim=1).T).argmax(1)
    a = sharp.attention(sx, qx)
    torch.testing.assert_close(a, F.one_hot(nearest, WAYS * SHOTS).double(), atol=1e-6, rtol=0)
    # the class probabilities put (almost) all mass on the nearest item's label
    probs = sharp.logits(sx, sy, qx, WAYS).exp()
    assert bool((probs.argmax(1) == sy[nearest]).all())
    torch.testing.assert_close(probs.sum(1), torch.ones(Q, dtype=torch.float64))


def test_matching_dot_kernel_is_the_notes_exp_g_dot_f() -> None:
    sx, _, qx = episode()
    a = fs.MatchingNet(Flat(), "dot", sharpness=1.0).attention(sx, qx)
    weights = torch.exp(qx @ sx.T)
    torch.testing.assert_close(a, weights / weights.sum(1, keepdim=True))


def black_box(seed: int = 0) -> fs.BlackBoxLearner:
    torch.manual_seed(seed)
    return fs.BlackBoxLearner(Flat(), WAYS, hidden=16).double()


def test_black_box_reads_queries_independently() -> None:
    sx, sy, qx = episode()
    net = black_box()
    out = net.logits(sx, sy, qx, WAYS)
    perm = torch.randperm(Q, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net.logits(sx, sy, qx[perm], WAYS), out[perm])
    torch.testing.assert_close(net.logits(sx, sy, qx[:1], WAYS), out[:1])


def test_black_box_knows_the_classes_only_through_the_labels() -> None:
    sx, sy, qx = episode()
    net = black_box()
    out = net.logits(sx, sy, qx, WAYS)
    relabel = torch.tensor([1, 2, 3, 4, 0])  # the same support, its classes renamed
    changed = net.logits(sx, relabel[sy], qx, WAYS)
    assert (changed - out).abs().max() > 1e-6
    # same images and labels in the same order: same outputs (no hidden per-class state)
    torch.testing.assert_close(net.logits(sx.clone(), sy.clone(), qx, WAYS), out)


def test_baseline_head_is_fit_on_the_support_only() -> None:
    sx, sy, qx = episode(dtype=torch.float32)
    base = fs.FineTuneBaseline(Flat(), head_steps=200, head_lr=0.1)
    head = base.fit_head(sx, sy, WAYS)
    # it fits the support (separable in 6 dimensions with 15 points)
    assert bool((head(sx).argmax(1) == sy).all())
    # the queries' logits are that head applied to them, whatever other queries come along
    out = base.logits(sx, sy, qx, WAYS)
    torch.testing.assert_close(out, head(qx))
    other = torch.cat([qx[:2], torch.randn(5, D)])
    torch.testing.assert_close(base.logits(sx, sy, other, WAYS)[:2], out[:2])
    # the embedding stays frozen: no gradient reaches it from the head's fit
    net = nn.Linear(D, D)
    net.out_features = D
    fs.FineTuneBaseline(net, head_steps=3).logits(sx, sy, qx, WAYS)
    assert net.weight.grad is None


def test_baseline_head_fit_equals_torch_adam_with_autograd() -> None:
    sx, sy, _ = episode()
    got = fs.FineTuneBaseline(Flat(), head_steps=25, head_lr=0.05).fit_head(sx, sy, WAYS)
    head = nn.Linear(D, WAYS).double()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(25):
        opt.zero_grad()
        F.cross_entropy(head(sx), sy).backward()
        opt.step()
    torch.testing.assert_close(got.weight, head.weight.detach(), rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(got.bias, head.bias.detach(), rtol=1e-7, atol=1e-9)


def test_maml_learner_adapts_under_no_grad_and_trains_with_it() -> None:
    torch.manual_seed(0)
    sx, sy, qx = episode(dtype=torch.float32)
    net = fs.MAMLLearner(Flat(), WAYS, inner_lr=0.5, inner_steps=2)
    with torch.no_grad():
        out = net.logits(sx, sy, qx, WAYS)
    assert out.shape == (Q, WAYS) and not out.requires_grad
    loss = F.cross_entropy(net.logits(sx, sy, qx, WAYS), torch.zeros(Q, dtype=torch.long))
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    # the adapted head scores the support better than the initial one
    before = F.cross_entropy(net.maml.forward(net.maml.params(), sx), sy)
    after = F.cross_entropy(net.maml.forward(net.maml.adapt(sx, sy), sx), sy)
    assert after < before


def test_maml_learner_one_step_from_the_zero_head_is_the_class_sum_classifier() -> None:
    sx, sy, qx = episode()
    alpha = 0.4
    net = fs.MAMLLearner(Flat(), WAYS, inner_lr=alpha, inner_steps=1).double()
    # w_y = alpha/S sum_k (1[y_k = y] - 1/N) x_k, b_y = alpha/S sum_k (1[y_k = y] - 1/N)
    centred = F.one_hot(sy, WAYS).double() - 1.0 / WAYS  # (S, N)
    w = alpha / len(sy) * centred.T @ sx  # (N, D)
    b = alpha / len(sy) * centred.sum(0)  # (N,)
    torch.testing.assert_close(net.logits(sx, sy, qx, WAYS), qx @ w.T + b)


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_meta_gradient_reaches_the_support_only_at_second_order(first_order: bool) -> None:
    # the adapted head is built from the support's embeddings: second-order MAML differentiates
    # through that, first-order MAML does not (its inner gradient is a constant)
    sx, sy, qx = episode()
    sx.requires_grad_()
    net = fs.MAMLLearner(Flat(), WAYS, inner_lr=0.4, first_order=first_order).double()
    loss = F.cross_entropy(net.logits(sx, sy, qx, WAYS), torch.zeros(Q, dtype=torch.long))
    (g,) = torch.autograd.grad(loss, sx, allow_unused=True)
    if first_order:
        assert g is None or float(g.abs().max()) == 0.0
    else:
        assert g is not None and float(g.abs().max()) > 1e-3


def learners() -> list[fs.FewShotLearner]:
    return [
        fs.ProtoNet(Flat()),
        fs.MatchingNet(Flat()),
        fs.BlackBoxLearner(Flat(), WAYS, 8),
        fs.MAMLLearner(Flat(), WAYS),
        fs.FineTuneBaseline(Flat(), head_steps=1),
    ]


@pytest.mark.parametrize("learner", learners(), ids=lambda m: type(m).__name__)
def test_a_label_outside_the_ways_is_refused(learner: fs.FewShotLearner) -> None:
    sx, sy, qx = episode(dtype=torch.float32)
    with pytest.raises(ConfigError, match=r"0\.\.4"):
        learner.logits(sx, torch.where(sy == 0, 5, sy), qx, WAYS)
    with pytest.raises(ConfigError, match=r"0\.\.4"):
        learner.logits(sx, torch.where(sy == 0, -1, sy), qx, WAYS)
    with pytest.raises(ConfigError, match="none for labels"):
        learner.logits(sx[sy != 2], torch.where(sy[sy != 2] == 4, 3, sy[sy != 2]), qx, WAYS)
    with pytest.raises(ConfigError, match="integer"):
        learner.logits(sx, sy.float(), qx, WAYS)
    with pytest.raises(ConfigError, match="examples"):
        learner.logits(sx[:-1], sy, qx, WAYS)


def test_fewer_shots_keeps_the_first_support_example_of_each_class() -> None:
    sx, sy, qx = episode(dtype=torch.float32)
    e = Episode(sx, sy, qx, torch.zeros(Q, dtype=torch.long), WAYS, SHOTS)
    one = fs.fewer_shots(e, 1)
    assert one.shots == 1 and sorted(one.support_y.tolist()) == list(range(WAYS))
    for y in range(WAYS):
        first = int(torch.nonzero(sy == y)[0])
        torch.testing.assert_close(one.support_x[one.support_y == y][0], sx[first])
    assert one.query_x is e.query_x
    with pytest.raises(ConfigError, match="shots"):
        fs.fewer_shots(e, SHOTS + 1)


def test_the_episode_loop_lowers_the_query_loss(tmp_path) -> None:
    ctx = RunContext(name="t", seed=0, device=torch.device("cpu"), out_dir=tmp_path)
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(20, 1, D, generator=g)
    classes = centres + torch.randn(20, 8, D, generator=g)  # (C, M, D): 20 Gaussian classes
    torch.manual_seed(0)
    learner = fs.ProtoNet(nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, 8)))
    history = fs.train_episodes(
        learner,
        classes,
        ctx,
        tag="proto",
        ways=WAYS,
        shots=(1, 3),
        queries=3,
        tasks=2,
        steps=60,
        lr=1e-2,
        every=20,
        data=torch.Generator().manual_seed(1),
    )
    assert len(history) == 3 and history[-1]["loss"] < history[0]["loss"]
    assert (tmp_path / "checkpoints" / "proto.pt").exists()


def test_conv_embedding_shapes_and_bad_sides() -> None:
    emb = fs.ConvEmbedding(1, 16, 4, side=16)
    assert emb.out_features == 16 and emb(torch.rand(3, 1, 16, 16)).shape == (3, 16)
    assert fs.ConvEmbedding(1, 8, 4, side=28).out_features == 8
    with pytest.raises(ConfigError, match="side"):
        fs.ConvEmbedding(1, 8, 4, side=8)
