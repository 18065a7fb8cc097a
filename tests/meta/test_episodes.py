"""N-way K-shot episodes: shapes, labels, sampling without replacement, errors."""

from __future__ import annotations

import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.data.episodes import Episode, episode_batch, sample_episode


def _pool(classes: int = 8, per_class: int = 6) -> torch.Tensor:
    """(C, M, 2): each example holds (class id, example id)."""
    c = torch.arange(classes)[:, None].expand(classes, per_class)
    m = torch.arange(per_class)[None, :].expand(classes, per_class)
    return torch.stack([c, m], dim=-1).float()


def test_shapes_and_label_layout() -> None:
    ep = sample_episode(_pool(), ways=5, shots=2, queries=3, generator=torch.Generator())
    assert ep.support_x.shape == (10, 2) and ep.query_x.shape == (15, 2)
    assert ep.support_y.dtype == torch.int64 and ep.ways == 5 and ep.shots == 2
    assert ep.queries == 3
    assert sorted(ep.support_y.tolist()) == sorted(list(range(5)) * 2)
    assert sorted(ep.query_y.tolist()) == sorted(list(range(5)) * 3)


def test_one_class_per_label_and_no_example_twice() -> None:
    ep = sample_episode(_pool(), ways=4, shots=2, queries=4, generator=torch.Generator())
    x = torch.cat([ep.support_x, ep.query_x])
    y = torch.cat([ep.support_y, ep.query_y])
    classes = {int(label): set(x[y == label, 0].tolist()) for label in range(4)}
    assert all(len(c) == 1 for c in classes.values())
    assert len({next(iter(c)) for c in classes.values()}) == 4  # distinct classes
    pairs = {tuple(row) for row in x.tolist()}
    assert len(pairs) == x.shape[0]  # without replacement


def test_labels_are_permuted_between_episodes() -> None:
    g = torch.Generator().manual_seed(0)
    pool = _pool(classes=2, per_class=4)
    labels_of_class0 = set()
    for ep in episode_batch(pool, ways=2, shots=1, queries=1, tasks=20, generator=g):
        labels_of_class0.add(int(ep.support_y[ep.support_x[:, 0] == 0][0]))
    assert labels_of_class0 == {0, 1}


def test_batches_are_reproducible_and_independent() -> None:
    a = episode_batch(_pool(), 3, 1, 2, tasks=4, generator=torch.Generator().manual_seed(1))
    b = episode_batch(_pool(), 3, 1, 2, tasks=4, generator=torch.Generator().manual_seed(1))
    assert len(a) == 4
    assert all(torch.equal(x.support_x, y.support_x) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(a[0].support_x, e.support_x) for e in a[1:])


def test_errors_name_both_numbers() -> None:
    g = torch.Generator()
    with pytest.raises(ConfigError, match=r"9 ways.*has 8"):
        sample_episode(_pool(), ways=9, shots=1, queries=1, generator=g)
    with pytest.raises(ConfigError, match=r"= 7 .*has 6"):
        sample_episode(_pool(), ways=2, shots=3, queries=4, generator=g)
    with pytest.raises(ConfigError, match="shots >= 1"):
        sample_episode(_pool(), ways=2, shots=0, queries=1, generator=g)
    with pytest.raises(ConfigError, match="tasks >= 1"):
        episode_batch(_pool(), 2, 1, 1, tasks=0, generator=g)


def test_an_episode_refuses_a_label_outside_the_ways() -> None:
    x = torch.zeros(4, 2)
    with pytest.raises(ConfigError, match=r"0\.\.1 for 2 ways"):
        Episode(x, torch.tensor([0, 1, 2, 0]), x, torch.tensor([0, 1, 0, 1]), ways=2, shots=2)
    with pytest.raises(ConfigError, match="needs 4 labels"):
        Episode(x[:3], torch.tensor([0, 1, 0]), x, torch.tensor([0, 1, 0, 1]), ways=2, shots=2)
