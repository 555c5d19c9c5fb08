"""f_B: the brain-network encoder with hierarchical attention (paper section 3.3, Fig. 3).

Edge level (eq. 2): the geometric attention of the tumor-surface points is carried
onto the tracts they cross, a^E_{i,j} = (1/K) sum_k a^P_k, and the edge attributes
are weighted by it (x_B' = x_B . a^E). Node level (eq. 3): after the GATConv layers
(64, 128, 128, 256, 256, 256), a^N_i = S(g^N_a(e^N_i), g_T(<u_I, u_P>)) with S the
cosine similarity; the attention weights the nodes in the global pooling, and a
feed-forward network (512, 256, 32) gives u_B.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv
from torch_geometric.utils import scatter, softmax

from gliotype.encoders.mlp import MLP


def edge_attention(
    point_attention: torch.Tensor,
    crossing: torch.Tensor,
    n_edges: int,
    uncrossed: float = 1.0,
) -> torch.Tensor:
    """Eq. 2: the attention of every tract is the mean attention of the points crossing it.

    Args:
        point_attention: ``(M,)`` a^P of the points (any scale; see ``scale_point_attention``).
        crossing: ``(2, C)`` pairs ``(point row, tract index)``; tract indices are global
            over the batch (``graph * T + t``).
        n_edges: number of tracts over the batch (``B * T``).
        uncrossed: the value for tracts crossed by no point (open point 4).

    Returns: ``(n_edges,)``.
    """
    total = scatter(point_attention[crossing[0]], crossing[1], dim=0, dim_size=n_edges, reduce="sum")
    count = torch.bincount(crossing[1], minlength=n_edges).to(total.dtype)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, uncrossed))


def scale_point_attention(attention: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Softmax attention (sums to 1 per graph) rescaled to mean 1 per graph, the scale of
    an unattended edge, so eq. 2 neither shrinks nor inflates attended tracts on average."""
    counts = torch.bincount(batch).to(attention.dtype)
    return attention * counts[batch]


@dataclass
class BrainNetworkOutput:
    features: torch.Tensor  # u_B (B, fc[-1])
    node_attention: torch.Tensor | None  # a^N (N,) or None without attention
    node_embeddings: torch.Tensor  # e^N (N, gat[-1])


class BrainNetworkEncoder(nn.Module):
    """u_B = f_B(x_B) with hierarchical attention.

    Args:
        in_channels: node attribute size (16).
        edge_dim: edge attribute size (16).
        gat: GATConv output sizes (paper: 64, 128, 128, 256, 256, 256).
        fc: feed-forward sizes (paper: 512, 256, 32).
        attention_head: g^N_a sizes (paper: 16, 32, 64, 128). The paper's first size (16)
            does not match e^N (256-d); the head takes e^N, so its input size is
            ``gat[-1]`` and the remaining sizes are used as printed (open point 6).
        node_pooling: ``softmax`` (attention softmax over the nodes of a graph with
            ``node_temperature``, weighted sum), ``sum`` or ``mean`` of ``a^N . e^N``.
        heads: GAT attention heads (averaged; the paper does not say, 1).

    Shapes: ``x (N, in)``, ``edge_index (2, E)`` one direction per tract, ``edge_attr
    (E, edge_dim)``, ``batch (N,)``, ``edge_weight (E,)`` from eq. 2, ``tumor_latent
    (B, attention_head[-1])`` = g_T(<u_I, u_P>) -> :class:`BrainNetworkOutput`.
    Without ``edge_weight``/``tumor_latent`` the encoder runs without attention
    (mean pooling), the "no attention" ablation.
    """

    def __init__(
        self,
        in_channels: int = 16,
        edge_dim: int = 16,
        gat: Sequence[int] = (64, 128, 128, 256, 256, 256),
        fc: Sequence[int] = (512, 256, 32),
        attention_head: Sequence[int] = (16, 32, 64, 128),
        node_pooling: str = "softmax",
        node_temperature: float = 0.1,
        heads: int = 1,
    ):
        super().__init__()
        if node_pooling not in ("softmax", "sum", "mean"):
            raise ValueError(f"node_pooling must be softmax, sum or mean, got {node_pooling!r}")
        self.convs = nn.ModuleList()
        c_in = in_channels
        for c_out in gat:
            self.convs.append(GATConv(c_in, c_out, heads=heads, concat=False, edge_dim=edge_dim))
            c_in = c_out
        self.node_head = MLP([c_in, *list(attention_head)[1:]])  # g^N_a
        self.head = MLP([c_in, *fc])
        self.node_pooling, self.node_temperature = node_pooling, node_temperature
        self.latent_dim = int(attention_head[-1])
        self.out_features = int(fc[-1])
        self._repr = f"BrainNetworkEncoder({in_channels}, gat={list(gat)}, fc={list(fc)})"

    def __repr__(self) -> str:
        return self._repr

    def embed(self, x, edge_index, edge_attr, edge_weight=None) -> torch.Tensor:
        """e^N = f_B'(x_B'): GATConv layers over both directions of every tract."""
        if edge_weight is not None:
            edge_attr = edge_attr * edge_weight.unsqueeze(-1)  # x_B' = x_B . a^E
        ei = torch.cat([edge_index, edge_index.flip(0)], dim=1)
        ea = torch.cat([edge_attr, edge_attr], dim=0)
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h, ei, ea)
            if i < len(self.convs) - 1:
                h = F.elu(h)
        return h

    def forward(self, x, edge_index, edge_attr, batch=None, edge_weight=None, tumor_latent=None) -> BrainNetworkOutput:
        if batch is None:
            batch = torch.zeros(len(x), dtype=torch.long, device=x.device)
        n_graphs = int(batch.max()) + 1
        e = self.embed(x, edge_index, edge_attr, edge_weight)
        if tumor_latent is None:
            pooled = scatter(e, batch, dim=0, dim_size=n_graphs, reduce="mean")
            return BrainNetworkOutput(self.head(pooled), None, e)
        a = F.cosine_similarity(self.node_head(e), tumor_latent[batch], dim=-1)  # eq. 3
        if self.node_pooling == "softmax":
            w = softmax(a / self.node_temperature, batch)
            pooled = scatter(w.unsqueeze(-1) * e, batch, dim=0, dim_size=n_graphs, reduce="sum")
        else:
            pooled = scatter(a.unsqueeze(-1) * e, batch, dim=0, dim_size=n_graphs, reduce=self.node_pooling)
        return BrainNetworkOutput(self.head(pooled), a, e)
