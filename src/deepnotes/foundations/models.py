"""Small models of the foundations topic."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class MLP(nn.Module):
    """A multilayer perceptron: ``[Linear -> activation -> Dropout] * len(hidden) -> Linear``.

    Arguments:
        in_features: input size D.
        hidden: widths of the hidden layers (empty: logistic/linear regression).
        out_features: number of outputs (classes for classification).
        activation: "relu", "tanh", "sigmoid" or "gelu".
        dropout: dropout probability after every hidden activation (0 disables it).

    Example:
        >>> net = MLP(64, (256, 128), 10, dropout=0.1)
        >>> net(torch.randn(32, 64)).shape
        torch.Size([32, 10])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, D) -> (B, out_features); images are flattened first
        return self.net(x.flatten(1))
