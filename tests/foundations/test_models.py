"""The MLP of the foundations topic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepnotes.foundations.models import MLP


def test_mlp_is_the_composition_it_claims() -> None:
    torch.manual_seed(0)
    net = MLP(6, (5, 4), 3, activation="tanh")
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 5), (5, 4), (4, 3)]
    x = torch.randn(7, 6)
    by_hand = linears[2](torch.tanh(linears[1](torch.tanh(linears[0](x)))))
    assert torch.allclose(net(x), by_hand)


def test_mlp_flattens_images_and_without_hidden_is_linear() -> None:
    net = MLP(64, (), 10)
    x = torch.randn(2, 1, 8, 8)
    assert net(x).shape == (2, 10)
    (linear,) = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert torch.allclose(net(x), linear(x.reshape(2, 64)))


def test_dropout_only_in_training_mode() -> None:
    torch.manual_seed(0)
    net = MLP(8, (32,), 2, dropout=0.5)
    x = torch.randn(4, 8)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "swish"}, "activation must be one of"),
        ({"dropout": 1.0}, "dropout must be in"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLP(4, (3,), 2, **kwargs)
