"""Multilayer perceptrons: the fully connected stacks and projection heads of the paper."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ReLU between layers.

    Args:
        sizes: input size followed by every layer's output size (at least two values).
        batch_norm: BatchNorm1d after each hidden linear layer.
        dropout: dropout after each hidden activation.
        last_activation: apply the activation after the last layer too.
        init: ``"kaiming"`` (He normal weights, zero biases; default) or ``"pytorch"`` (the
            library default). Deep stacks like the 12-layer node autoencoder of section 4.3
            collapse to the mean under the PyTorch default and weight decay (docs/design.md).

    Shapes: ``(N, sizes[0]) -> (N, sizes[-1])``.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        batch_norm: bool = False,
        dropout: float = 0.0,
        last_activation: bool = False,
        init: str = "kaiming",
    ):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP needs at least an input and an output size, all positive; got {sizes}")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            last = i == len(sizes) - 2
            if not last or last_activation:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(nn.ReLU(inplace=True))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        self.sizes = sizes
        if init == "kaiming":
            for layer in self:
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    nn.init.zeros_(layer.bias)
        elif init != "pytorch":
            raise ValueError(f"MLP init must be 'kaiming' or 'pytorch', got {init!r}")

    def __repr__(self) -> str:
        return f"MLP({' -> '.join(map(str, self.sizes))})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - nn.Sequential forward
        return super().forward(x)
