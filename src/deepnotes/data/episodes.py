"""N-way K-shot episodes for few-shot classification (notes, discussion 12).

A meta-learning task is an episode: ``ways`` classes drawn from a pool of classes, ``shots``
labelled examples of each (the support set, the notes' ``D_i^tr``) and ``queries`` more of each
to evaluate on (the query set, ``D_i^ts``). Classes and examples are drawn without replacement,
and the labels ``0..ways-1`` are a fresh random permutation in every episode, so a label means
nothing across episodes: a learner must read it off the support set.

Example:
    >>> import torch
    >>> pool = torch.rand(30, 20, 1, 14, 14)                   # 30 classes x 20 examples
    >>> ep = sample_episode(pool, ways=5, shots=1, queries=15, generator=torch.Generator())
    >>> tuple(ep.support_x.shape), tuple(ep.query_x.shape)
    ((5, 1, 14, 14), (75, 1, 14, 14))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from deepnotes.core.errors import ConfigError

__all__ = ["Episode", "episode_batch", "sample_episode"]


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot task.

    Attributes:
        support_x: ``(ways * shots, ...)`` support examples, grouped by label (label-major).
        support_y: ``(ways * shots,)`` int64 labels in ``0..ways-1``.
        query_x: ``(ways * queries, ...)`` query examples, grouped by label.
        query_y: ``(ways * queries,)`` int64 labels in ``0..ways-1``.
        ways: number of classes ``N``.
        shots: support examples per class ``K``.

    Raises:
        ConfigError: labels outside ``0..ways-1`` or counts that do not match the tensors.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    ways: int
    shots: int

    def __post_init__(self) -> None:
        if self.ways < 1 or self.shots < 1:
            raise ConfigError(
                f"an episode needs ways >= 1 and shots >= 1, got {self.ways} and {self.shots}"
            )
        if self.support_y.shape[0] != self.ways * self.shots:
            raise ConfigError(
                f"support set of {self.ways} ways x {self.shots} shots needs "
                f"{self.ways * self.shots} labels, got {self.support_y.shape[0]}"
            )
        if (
            self.support_x.shape[0] != self.support_y.shape[0]
            or self.query_x.shape[0] != self.query_y.shape[0]
        ):
            raise ConfigError(
                "an episode needs one label per example in the support and query sets"
            )
        for name, labels in (("support", self.support_y), ("query", self.query_y)):
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.ways):
                raise ConfigError(
                    f"{name} labels must be in 0..{self.ways - 1} for {self.ways} ways, "
                    f"got {int(labels.min())}..{int(labels.max())}"
                )

    @property
    def queries(self) -> int:
        """Query examples per class."""
        return self.query_y.shape[0] // self.ways


def sample_episode(
    classes: Tensor, ways: int, shots: int, queries: int, generator: torch.Generator
) -> Episode:
    """Draw one N-way K-shot episode from a pool of classes.

    Args:
        classes: ``(C, M, ...)`` ``M`` examples of each of ``C`` classes.
        ways: classes in the episode (``<= C``).
        shots: support examples per class (``>= 1``).
        queries: query examples per class (``>= 0``; ``shots + queries <= M``).
        generator: the only source of randomness.

    Returns:
        An :class:`Episode`; support and query sets are label-major, labels a random permutation.

    Raises:
        ConfigError: more ways than classes, more shots + queries than examples per class, or a
            count below its minimum.
    """
    if classes.dim() < 2:
        raise ConfigError(f"classes must be (C, M, ...), got shape {tuple(classes.shape)}")
    n_classes, per_class = classes.shape[0], classes.shape[1]
    if ways < 1 or shots < 1 or queries < 0:
        raise ConfigError(
            f"need ways >= 1, shots >= 1, queries >= 0, got {ways}, {shots}, {queries}"
        )
    if ways > n_classes:
        raise ConfigError(
            f"an episode of {ways} ways needs {ways} classes, the pool has {n_classes}"
        )
    if shots + queries > per_class:
        raise ConfigError(
            f"shots + queries = {shots + queries} examples per class needed, "
            f"the pool has {per_class} per class"
        )
    chosen = torch.randperm(n_classes, generator=generator)[:ways]
    labels = torch.randperm(ways, generator=generator)
    picks = torch.stack(
        [torch.randperm(per_class, generator=generator)[: shots + queries] for _ in range(ways)]
    )
    data = classes[chosen[:, None], picks]  # (ways, shots + queries, ...)
    tail = data.shape[2:]
    support_y = labels[:, None].expand(ways, shots).reshape(-1)
    query_y = labels[:, None].expand(ways, queries).reshape(-1)
    return Episode(
        support_x=data[:, :shots].reshape(ways * shots, *tail),
        support_y=support_y.clone(),
        query_x=data[:, shots:].reshape(ways * queries, *tail),
        query_y=query_y.clone(),
        ways=ways,
        shots=shots,
    )


def episode_batch(
    classes: Tensor, ways: int, shots: int, queries: int, tasks: int, generator: torch.Generator
) -> list[Episode]:
    """``tasks`` independent episodes (a meta-batch) from one pool (see :func:`sample_episode`)."""
    if tasks < 1:
        raise ConfigError(f"a meta-batch needs tasks >= 1, got {tasks}")
    return [sample_episode(classes, ways, shots, queries, generator) for _ in range(tasks)]
