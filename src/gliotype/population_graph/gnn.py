"""The population-graph GNN node classifier (section 3.4, Fig. 5; section 4.3).

"GATConv ... layers (dimension: 64, 128, 128, 128) followed by pooling layers and a
classification layer": for node classification the classification layer is applied
to every node (no graph pooling; open point 10). Edge weights r enter GATConv as a
one-dimensional edge attribute.

Options not in the paper (defaults off, the paper's reading): ``residual`` adds
GATConv's root term, a linear map of the node's own input added to each layer's
aggregated messages (PyG ``GATConv(residual=True)``), so a node's own features are not
diluted by dozens of neighbours on a heterophilous graph; ``dropout`` acts on the input
features, the attention coefficients and each layer's output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv


class PopulationGNN(nn.Module):
    """Logit of IDH mutation for every node of a population graph.

    Shapes: ``x (N, in_channels)``, ``edge_index (2, E)``, ``edge_weight (E,)`` -> ``(N,)``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: Sequence[int] = (64, 128, 128, 128),
        dropout: float = 0.0,
        residual: bool = False,
    ):
        super().__init__()
        self.convs = nn.ModuleList()
        c = in_channels
        for h in hidden:
            self.convs.append(GATConv(c, h, heads=1, edge_dim=1, fill_value=1.0, dropout=dropout,
                                      residual=residual))
            c = h
        self.classifier = nn.Linear(c, 1)
        self.in_channels, self.hidden = int(in_channels), [int(h) for h in hidden]
        self.dropout = dropout
        self.residual = residual
        self._repr = f"PopulationGNN({in_channels}, hidden={list(hidden)}" + (", residual" if residual else "") + ")"

    def __repr__(self) -> str:
        return self._repr

    def sizes(self) -> dict:
        """What rebuilds this network before its weights are loaded (stored beside them as JSON)."""
        return {"in_channels": self.in_channels, "gat": list(self.hidden), "dropout": self.dropout,
                "residual": self.residual}

    @classmethod
    def from_sizes(cls, sizes: Mapping) -> PopulationGNN:
        """The network :meth:`sizes` describes (untrained: load its weights next)."""
        return cls(int(sizes["in_channels"]), sizes["gat"], float(sizes["dropout"]), bool(sizes["residual"]))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        attr = None if edge_weight is None else edge_weight.view(-1, 1)
        if self.dropout > 0:
            x = F.dropout(x, self.dropout, self.training)
        for conv in self.convs:
            x = F.elu(conv(x, edge_index, attr))
            x = F.dropout(x, self.dropout, self.training)
        return self.classifier(x).squeeze(-1)
