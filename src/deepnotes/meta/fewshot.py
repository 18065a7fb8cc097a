r"""Few-shot classifiers behind one interface: Prototypical Networks, Matching Networks, a
black-box (LSTM) meta-learner, MAML and a fine-tuning baseline. Notes: discussion 12, section 2
"Meta Learning for Supervised Learning" (2.1 black-box, 2.2 non-parametric, 2.3 MAML).

Every learner is the notes' two-stage map: adapt to the task's training set, then predict,

.. math:: \phi = f_{\mathrm{adapt}}(\theta, \mathcal{D}^{tr}), \qquad
          p_\theta(y \mid x, \mathcal{D}^{tr}) = \mathrm{softmax}(\mathrm{logits}_\phi(x)),

exposed as ``logits(support_x, support_y, query_x, ways) -> (Q, ways)``. Meta-training is the
same for all: minimise the query cross-entropy of sampled episodes over theta
(:func:`train_episodes`, one :class:`~deepnotes.core.engine.Loop`).

- :class:`ProtoNet` (Snell, Swersky & Zemel, 2017, https://arxiv.org/abs/1703.05175): the
  prototype :math:`c_y = \frac{1}{N_y}\sum_{k: y_k = y} f(x_k)`; the notes' score
  :math:`c_y^\top f(x)` (``score="dot"``) or the paper's :math:`-\lVert f(x) - c_y\rVert^2`
  (``score="euclidean"``, default).
- :class:`MatchingNet` (Vinyals et al., 2016, https://arxiv.org/abs/1606.04080):
  :math:`p(y \mid x) = \sum_{k: y_k = y} a(x, x_k)`, :math:`a = \mathrm{softmax}_k(s \cdot
  \cos(f(x), g(x_k)))` (the notes write the kernel with a dot product, ``similarity="dot"``).
  Deviation: no full-context embeddings (f = g, one CNN), and a fixed kernel sharpness ``s``
  (cosine similarities lie in [-1, 1]; ``s = 1`` gives a nearly flat kernel).
- :class:`BlackBoxLearner` (the notes' 2.1; Santoro et al., 2016): an LSTM reads the embedded
  support pairs (embedding, one-hot label) in order, then each query (embedding, zero label)
  from the state left by the support; a linear layer maps its output to the ``ways`` logits.
  Queries are read independently (each from the same state), so one query never informs
  another.
- :class:`MAMLLearner` (Finn, Abbeel & Levine, 2017): a CNN with a ``ways``-output head adapted
  by :class:`deepnotes.meta.maml.MAML`; the query logits come from the adapted parameters.
- :class:`FineTuneBaseline`: an embedding pretrained with a softmax over every meta-train
  class (:func:`pretrain_embedding`), frozen; per episode a new linear head is fit on the
  support features alone (``head_steps`` steps of Adam from zero), then applied to the queries.

The embedding is :class:`ConvEmbedding`: the 4 blocks of Vinyals/Snell (3x3 conv, norm, ReLU,
2x2 max-pool) with ``width`` channels. Deviation: GroupNorm instead of BatchNorm, so that a
prediction depends on its own input alone (no batch statistics shared between support and
query, no running averages under MAML's functional parameters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import ConfigError
from deepnotes.core.stats import critical_value, mean_se
from deepnotes.data.episodes import Episode, episode_batch
from deepnotes.meta.maml import MAML

SCORES = ("euclidean", "dot")
"""ProtoNet scores: the paper's negative squared distance, the notes' dot product."""
SIMILARITIES = ("cosine", "dot")
"""Matching Networks' kernels: the paper's cosine, the notes' dot product."""


def check_episode(support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> None:
    """Validate one episode's inputs.

    Raises:
        ConfigError: ``ways < 2``; ``support_y`` not a 1-D integer tensor as long as
            ``support_x``; a support label outside ``0..ways-1``; a class with no support
            example; support and query inputs of different shapes.
    """
    if ways < 2:
        raise ConfigError(f"ways must be >= 2, got {ways}")
    if support_y.ndim != 1 or support_y.dtype.is_floating_point or support_y.dtype == torch.bool:
        raise ConfigError(
            f"support_y must be a 1-D integer tensor of labels, got dtype {support_y.dtype} "
            f"shape {tuple(support_y.shape)}"
        )
    if support_x.shape[0] != support_y.shape[0]:
        raise ConfigError(
            f"support_x holds {support_x.shape[0]} examples but support_y {support_y.shape[0]}"
        )
    if support_x.shape[1:] != query_x.shape[1:]:
        raise ConfigError(
            f"support and query examples differ in shape: {tuple(support_x.shape[1:])} vs "
            f"{tuple(query_x.shape[1:])}"
        )
    low, high = int(support_y.min()), int(support_y.max())
    if low < 0 or high >= ways:
        raise ConfigError(
            f"support labels must lie in 0..{ways - 1} for {ways} ways, got values in "
            f"[{low}, {high}]"
        )
    counts = torch.bincount(support_y, minlength=ways)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ConfigError(f"every class needs a support example; none for labels {missing}")


class ConvEmbedding(nn.Module):
    """``blocks`` x (3x3 conv with ``width`` channels, GroupNorm, ReLU, 2x2 max-pool), flattened.

    Arguments:
        in_channels: image channels.
        width: channels of every block (64 in Vinyals et al. and Snell et al.).
        blocks: how many blocks (4 in the papers).
        side: the input images' side, so that ``out_features`` is known up front.
        groups: GroupNorm's groups (a divisor of ``width``).

    Shapes: ``(B, in_channels, side, side) -> (B, out_features)``,
    ``out_features = width * (side // 2**blocks)**2``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 64,
        blocks: int = 4,
        side: int = 28,
        groups: int = 8,
    ) -> None:
        super().__init__()
        if side // 2**blocks < 1:
            raise ConfigError(
                f"{blocks} pooling blocks need images of side >= {2**blocks}, got {side}"
            )
        if width % groups:
            raise ConfigError(f"width {width} must be a multiple of groups {groups}")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(blocks):
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.GroupNorm(groups, width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.body = nn.Sequential(*layers)
        self.out_features = width * (side // 2**blocks) ** 2

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).flatten(1)  # (B, width * s * s)


class FewShotLearner(nn.Module):
    """The interface every learner implements: ``logits(support_x, support_y, query_x, ways)``.

    ``support_x`` (S, ...), ``support_y`` (S,) in ``0..ways-1`` (every class present),
    ``query_x`` (Q, ...) -> logits (Q, ways). Inputs are checked by :func:`check_episode`.
    """

    def logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        check_episode(support_x, support_y, query_x, ways)
        return self._logits(support_x, support_y, query_x, ways)

    def _logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        raise NotImplementedError

    def forward(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        return self.logits(support_x, support_y, query_x, ways)


def prototypes(embedded: Tensor, labels: Tensor, ways: int) -> Tensor:
    r"""Class means :math:`c_y = \frac{1}{N_y}\sum_{k: y_k = y} e_k`: (S, D), (S,) -> (ways, D)."""
    onehot = F.one_hot(labels, ways).to(embedded.dtype)  # (S, ways)
    return onehot.T @ embedded / onehot.sum(0).unsqueeze(1)  # (ways, D)


def prototype_scores(query: Tensor, protos: Tensor, score: str) -> Tensor:
    r"""(Q, D), (ways, D) -> (Q, ways): :math:`c_y^\top f(x)` (``"dot"``, the notes) or
    :math:`-\lVert f(x) - c_y\rVert^2` (``"euclidean"``, Snell et al.)."""
    if score == "dot":
        return query @ protos.T
    if score == "euclidean":
        # -||q||^2 + 2 q.c - ||c||^2, (Q, ways)
        return -(query.pow(2).sum(1, keepdim=True) - 2 * query @ protos.T + protos.pow(2).sum(1))
    raise ConfigError(f"score must be one of {SCORES}, got {score!r}")


class ProtoNet(FewShotLearner):
    """Prototypical Networks (see the module docstring); ``score`` in :data:`SCORES`.

    Example:
        >>> net = ProtoNet(ConvEmbedding(width=32, side=16), score="euclidean")
        >>> net.logits(torch.rand(10, 1, 16, 16), torch.arange(5).repeat(2),
        ...            torch.rand(7, 1, 16, 16), ways=5).shape
        torch.Size([7, 5])
    """

    def __init__(self, embedding: nn.Module, score: str = "euclidean") -> None:
        super().__init__()
        if score not in SCORES:
            raise ConfigError(f"score must be one of {SCORES}, got {score!r}")
        self.embedding = embedding
        self.score = score

    def _logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        protos = prototypes(self.embedding(support_x), support_y, ways)  # (ways, D)
        return prototype_scores(self.embedding(query_x), protos, self.score)  # (Q, ways)


class MatchingNet(FewShotLearner):
    """Matching Networks without full-context embeddings (see the module docstring).

    Arguments:
        embedding: f = g, the CNN for support and query.
        similarity: ``"cosine"`` (the paper) or ``"dot"`` (the notes' kernel).
        sharpness: the factor ``s`` multiplying the similarity inside the softmax.
    """

    def __init__(
        self, embedding: nn.Module, similarity: str = "cosine", sharpness: float = 10.0
    ) -> None:
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ConfigError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if sharpness <= 0:
            raise ConfigError(f"sharpness must be > 0, got {sharpness}")
        self.embedding = embedding
        self.similarity = similarity
        self.sharpness = sharpness

    def attention(self, support_x: Tensor, query_x: Tensor) -> Tensor:
        """The kernel :math:`a(x_j, x_k)`: (S, ...), (Q, ...) -> (Q, S), rows summing to 1."""
        g = self.embedding(support_x)  # (S, D)
        f = self.embedding(query_x)  # (Q, D)
        if self.similarity == "cosine":
            g, f = F.normalize(g, dim=1), F.normalize(f, dim=1)
        return torch.softmax(self.sharpness * f @ g.T, dim=1)  # (Q, S)

    def _logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        a = self.attention(support_x, query_x)  # (Q, S)
        p = a @ F.one_hot(support_y, ways).to(a.dtype)  # (Q, ways): sum of a over each class
        return torch.log(p.clamp_min(1e-12))  # log-probabilities as logits


class BlackBoxLearner(FewShotLearner):
    """The LSTM meta-learner of the module docstring.

    Arguments:
        embedding: the CNN embedding each image (``out_features`` attribute).
        ways: the number of classes it is built for (its one-hot inputs and outputs).
        hidden: the LSTM's width.
    """

    def __init__(self, embedding: nn.Module, ways: int, hidden: int = 128) -> None:
        super().__init__()
        self.embedding = embedding
        self.ways = ways
        self.lstm = nn.LSTM(embedding.out_features + ways, hidden, batch_first=True)
        self.head = nn.Linear(hidden, ways)

    def _logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        if ways != self.ways:
            raise ConfigError(f"this black-box learner was built for {self.ways} ways, got {ways}")
        e_s = self.embedding(support_x)  # (S, D)
        e_q = self.embedding(query_x)  # (Q, D)
        pairs = torch.cat([e_s, F.one_hot(support_y, ways).to(e_s.dtype)], dim=1)  # (S, D + N)
        _, (h, c) = self.lstm(pairs.unsqueeze(0))  # read the support: h, c (1, 1, H)
        queries = torch.cat([e_q, e_q.new_zeros(len(e_q), ways)], dim=1).unsqueeze(1)  # (Q, 1, D+N)
        q = len(e_q)
        out, _ = self.lstm(
            queries, (h.expand(1, q, -1).contiguous(), c.expand(1, q, -1).contiguous())
        )
        return self.head(out[:, 0])  # (Q, ways)


class MAMLLearner(FewShotLearner):
    r"""MAML on images: ``embedding`` plus a linear ``ways``-way head, adapted on the support set
    by :class:`deepnotes.meta.maml.MAML` (``inner_steps`` steps of ``inner_lr``), the queries
    scored with the adapted parameters. Adaptation runs with gradients enabled even under
    ``torch.no_grad()`` (evaluation), since it is gradient descent.

    Deviation: the head starts at zero. One inner step from a zero head gives the rows
    :math:`w_y = \frac{\alpha}{S}\sum_k (1[y_k = y] - \tfrac{1}{N}) f(x_k)`: class sums of
    embeddings, a prototype classifier (Triantafillou et al., 2020, "Proto-MAML"), so that
    meta-training starts from a useful adaptation. Those rows are built from the support's
    embeddings, so the meta-gradient reaches the embedding through the support set only with
    second-order MAML (``first_order=False``); first-order MAML treats the inner gradient as a
    constant and trains the embedding through the queries alone (at the few-shot experiment's
    quick preset: 40-42% against 71-77% for second order).
    """

    def __init__(
        self,
        embedding: nn.Module,
        ways: int,
        *,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        first_order: bool = False,
    ) -> None:
        super().__init__()
        self.ways = ways
        head = nn.Linear(embedding.out_features, ways)
        nn.init.zeros_(head.weight)  # see the class docstring
        nn.init.zeros_(head.bias)
        self.maml = MAML(
            nn.Sequential(embedding, head),
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            first_order=first_order,
            loss_fn=F.cross_entropy,
        )

    def _logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        if ways != self.ways:
            raise ConfigError(f"this MAML learner was built for {self.ways} ways, got {ways}")
        training = torch.is_grad_enabled()
        with torch.enable_grad():
            params = self.maml.adapt(support_x, support_y)
        if not training:
            params = {k: v.detach() for k, v in params.items()}
        return self.maml.forward(params, query_x)  # (Q, ways)


class FineTuneBaseline(FewShotLearner):
    """A frozen pretrained embedding and a new linear head fit on the support per episode.

    Arguments:
        embedding: the embedding, pretrained by :func:`pretrain_embedding` (kept frozen here).
        head_steps: Adam steps on the support cross-entropy, from a zero head.
        head_lr: their learning rate.
    """

    def __init__(self, embedding: nn.Module, *, head_steps: int = 50, head_lr: float = 0.1) -> None:
        super().__init__()
        if head_steps < 1 or head_lr <= 0:
            raise ConfigError(f"need head_steps >= 1 and head_lr > 0, got {head_steps}, {head_lr}")
        self.embedding = embedding
        self.head_steps = head_steps
        self.head_lr = head_lr

    def fit_head(self, support_x: Tensor, support_y: Tensor, ways: int) -> nn.Linear:
        r"""The new head, fit on the support features and labels alone.

        ``head_steps`` steps of Adam (torch's defaults besides ``head_lr``) on the mean support
        cross-entropy from a zero head, with its closed-form gradient
        :math:`\nabla_{[W, b]} = \frac{1}{S}(\mathrm{softmax}(XW^\top + b) - Y)^\top [X, 1]`
        instead of autograd (the head is refit for every test episode, and autograd's overhead
        dominated; the test compares it with ``torch.optim.Adam``).
        """
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        with torch.no_grad():
            features = self.embedding(support_x)  # (S, D)
            x = torch.cat([features, features.new_ones(len(features), 1)], dim=1)  # (S, D + 1)
            y = F.one_hot(support_y, ways).to(x.dtype)  # (S, ways)
            theta = x.new_zeros(ways, x.shape[1])  # [W, b], (ways, D + 1)
            m, v = torch.zeros_like(theta), torch.zeros_like(theta)
            for t in range(1, self.head_steps + 1):
                grad = (torch.softmax(x @ theta.T, dim=1) - y).T @ x / len(x)  # (ways, D + 1)
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = self.head_lr / (1 - beta1**t)
                theta.addcdiv_(m, (v / (1 - beta2**t)).sqrt_().add_(eps), value=-step)
        head = nn.Linear(x.shape[1] - 1, ways).to(x)
        with torch.no_grad():
            head.weight.copy_(theta[:, :-1])
            head.bias.copy_(theta[:, -1])
        return head.requires_grad_(False)

    def _logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        head = self.fit_head(support_x, support_y, ways)
        with torch.no_grad():
            return head(self.embedding(query_x))  # (Q, ways)


# ---------------------------------------------------------------------------------------------
# Training and evaluation


def episode_loss(learner: FewShotLearner, episodes: Sequence[Episode]) -> tuple[Tensor, float]:
    """Mean query cross-entropy over ``episodes`` (differentiable) and the query accuracy."""
    losses, correct, total = [], 0, 0
    for e in episodes:
        logits = learner.logits(e.support_x, e.support_y, e.query_x, e.ways)  # (Q, ways)
        losses.append(F.cross_entropy(logits, e.query_y))
        correct += int((logits.argmax(1) == e.query_y).sum())
        total += len(e.query_y)
    return torch.stack(losses).mean(), correct / total


def train_episodes(
    learner: FewShotLearner,
    classes: Tensor,
    ctx: RunContext,
    *,
    tag: str,
    ways: int,
    shots: Sequence[int],
    queries: int,
    tasks: int,
    steps: int,
    lr: float,
    every: int,
    data: torch.Generator,
    evaluate: Callable[[int], dict[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Meta-train ``learner`` on episodes of ``classes`` (C, M, ...) through the engine's Loop.

    Step ``i`` draws ``tasks`` episodes with ``shots[(i - 1) % len(shots)]`` shots and
    ``queries`` queries per class from ``data``, and takes one Adam step (``lr``) on their mean
    query cross-entropy (for MAML, the meta-loss: its gradient is the meta-gradient).

    Returns the loop's history (a record every ``every`` steps: ``loss``, ``acc``).
    """
    opt = torch.optim.Adam(learner.parameters(), lr=lr)
    learner.train()

    def step(i: int) -> dict[str, float]:
        k = shots[(i - 1) % len(shots)]
        loss, acc = episode_loss(learner, episode_batch(classes, ways, k, queries, tasks, data))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "acc": acc}

    loop = Loop(ctx, tag=tag, track={"learner": learner, "opt": opt, "data": data}, progress=False)
    return loop.run(step, steps=steps, every=every, evaluate=evaluate).history


def pretrain_embedding(
    embedding: nn.Module,
    classes: Tensor,
    ctx: RunContext,
    *,
    tag: str,
    steps: int,
    batch: int,
    lr: float,
    every: int,
    data: torch.Generator,
) -> list[dict[str, Any]]:
    """The fine-tuning baseline's pretraining: a softmax over all C classes of ``classes``
    (C, M, ...) on top of ``embedding``, ``steps`` Adam steps on batches of ``batch`` examples
    drawn from ``data``, through the engine's Loop. The head is discarded afterwards.

    Returns the loop's history (``loss``, ``acc`` every ``every`` steps).
    """
    count, per_class = classes.shape[:2]
    head = nn.Linear(embedding.out_features, count).to(classes.device)
    opt = torch.optim.Adam([*embedding.parameters(), *head.parameters()], lr=lr)
    embedding.train()

    def step(_: int) -> dict[str, float]:
        c = torch.randint(count, (batch,), generator=data)
        m = torch.randint(per_class, (batch,), generator=data)
        logits = head(embedding(classes[c, m]))  # (B, C)
        loss = F.cross_entropy(logits, c.to(logits.device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = float((logits.argmax(1) == c.to(logits.device)).float().mean())
        return {"loss": float(loss.detach()), "acc": acc}

    track = {"embedding": embedding, "head": head, "opt": opt, "data": data}
    return (
        Loop(ctx, tag=tag, track=track, progress=False).run(step, steps=steps, every=every).history
    )


def fewer_shots(episode: Episode, shots: int) -> Episode:
    """The same episode with only the first ``shots`` support examples of each class (support
    order kept) and the same queries: paired comparisons across shot counts.

    Raises:
        ConfigError: ``shots`` outside ``1..episode.shots``.
    """
    if not 1 <= shots <= episode.shots:
        raise ConfigError(f"shots must be in 1..{episode.shots} for this episode, got {shots}")
    y = episode.support_y
    onehot = F.one_hot(y, episode.ways)  # (S, ways)
    rank = (onehot.cumsum(0) * onehot).sum(1)  # 1 for the first example of its class, 2, ...
    keep = rank <= shots
    return dataclasses.replace(
        episode, support_x=episode.support_x[keep], support_y=y[keep], shots=shots
    )


def episode_accuracy(learner: FewShotLearner, episodes: Sequence[Episode]) -> np.ndarray:
    """Query accuracy of ``learner`` on each episode, (E,), in evaluation mode, no meta-gradient
    (MAML and the baseline still take their inner gradient steps)."""
    learner.eval()
    out = np.empty(len(episodes))
    with torch.no_grad():
        for i, e in enumerate(episodes):
            logits = learner.logits(e.support_x, e.support_y, e.query_x, e.ways)
            out[i] = float((logits.argmax(1) == e.query_y).float().mean())
    learner.train()
    return out


def interval95(accuracies: np.ndarray) -> tuple[float, float]:
    """Mean accuracy over episodes and the half-width of its 95% normal interval (1.96 SE)."""
    mean, se = mean_se(accuracies)
    return mean, critical_value(0.025) * se
