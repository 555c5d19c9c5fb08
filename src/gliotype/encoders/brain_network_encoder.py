"""f_B: the brain-network encoder with hierarchical attention (paper section 3.3, Fig. 3).

Edge level (eq. 2): the geometric attention of the tumor-surface points is carried
onto the tracts they cross, a^E_{i,j} = (1/K) sum_k a^P_k, and the edge attributes
are weighted by it (x_B' = x_B . a^E). Node level (eq. 3): after the GATConv layers
(64, 128, 128, 256, 256, 256), a^N_i = S(g^N_a(e^N_i), g_T(<u_I, u_P>)) with S the
cosine similarity; the attention weights the nodes in the global pooling, and a
feed-forward network (512, 256, 32) gives u_B.

Departures, each an option whose default is the paper read literally: the convolution
(``graph_conv``), how a^E acts (``edge_attention_mode``), residual connections,
normalisation and jumping knowledge against over-smoothing (docs/design.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GraphNorm, JumpingKnowledge, LayerNorm
from torch_geometric.utils import scatter, softmax

from gliotype.encoders.edge_attention_mode import EDGE_ATTENTION_MODES, attach_edge_attention, edge_scaling
from gliotype.encoders.graph_conv import make_graph_conv
from gliotype.encoders.mlp import MLP

NORMS = ("none", "layer", "graph")
JUMPING_KNOWLEDGE = ("none", "cat", "max")


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
    node_embeddings: torch.Tensor  # e^N (N, embedding_dim)


class BrainNetworkEncoder(nn.Module):
    """u_B = f_B(x_B) with hierarchical attention.

    Args:
        in_channels: node attribute size (16).
        edge_dim: edge attribute size (16).
        gat: graph-convolution output sizes (paper: 64, 128, 128, 256, 256, 256).
        fc: feed-forward sizes (paper: 512, 256, 32).
        attention_head: g^N_a sizes (paper: 16, 32, 64, 128). The paper's first size (16)
            does not match e^N (256-d); the head takes e^N, so its input size is
            ``embedding_dim`` and the remaining sizes are used as printed (open point 6).
        node_pooling: ``softmax`` (attention softmax over the nodes of a graph with
            ``node_temperature``, weighted sum), ``sum`` or ``mean`` of ``a^N . e^N``.
        heads: attention heads (averaged; the paper does not say, 1).
        conv: ``gat`` (paper), ``gatv2``, ``gine`` or ``transformer`` (:mod:`.graph_conv`).
        residual: add each layer's input to its output (a linear map when sizes differ).
        norm: ``none``, ``layer`` (PyG LayerNorm per node) or ``graph`` (PyG GraphNorm)
            after every convolution that is followed by the activation.
        jumping_knowledge: ``none`` (e^N is the last layer), ``cat`` (all layers
            concatenated) or ``max`` (element-wise max, layers mapped linearly to ``gat[-1]``).
        edge_attention_mode: how a^E acts: ``multiply`` (paper), ``message``,
            ``log_attention`` (:mod:`.edge_attention_mode`).

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
        *,
        conv: str = "gat",
        residual: bool = False,
        norm: str = "none",
        jumping_knowledge: str = "none",
        edge_attention_mode: str = "multiply",
    ):
        super().__init__()
        if node_pooling not in ("softmax", "sum", "mean"):
            raise ValueError(f"node_pooling must be softmax, sum or mean, got {node_pooling!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        if jumping_knowledge not in JUMPING_KNOWLEDGE:
            raise ValueError(f"jumping_knowledge must be one of {', '.join(JUMPING_KNOWLEDGE)}; "
                             f"got {jumping_knowledge!r}")
        if edge_attention_mode not in EDGE_ATTENTION_MODES:
            raise ValueError(f"edge_attention_mode must be one of {', '.join(EDGE_ATTENTION_MODES)}; "
                             f"got {edge_attention_mode!r}")
        sizes = [int(c) for c in gat]
        self.convs = nn.ModuleList()
        self.skips = nn.ModuleList() if residual else None
        self.norms = nn.ModuleList() if norm != "none" else None
        c_in = in_channels
        for i, c_out in enumerate(sizes):
            layer = make_graph_conv(conv, c_in, c_out, edge_dim, heads)
            attach_edge_attention(layer, conv, edge_attention_mode)
            self.convs.append(layer)
            if self.skips is not None:
                self.skips.append(nn.Identity() if c_in == c_out else nn.Linear(c_in, c_out, bias=False))
            if self.norms is not None and (i < len(sizes) - 1 or jumping_knowledge != "none"):
                self.norms.append(LayerNorm(c_out, mode="node") if norm == "layer" else GraphNorm(c_out))
            c_in = c_out
        self.jk = JumpingKnowledge(jumping_knowledge) if jumping_knowledge != "none" else None
        self.jk_maps = (
            nn.ModuleList(nn.Identity() if c == sizes[-1] else nn.Linear(c, sizes[-1], bias=False) for c in sizes)
            if jumping_knowledge == "max"
            else None
        )
        self.embedding_dim = sum(sizes) if jumping_knowledge == "cat" else sizes[-1]
        self.edge_attention_mode = edge_attention_mode
        self.node_head = MLP([self.embedding_dim, *list(attention_head)[1:]])  # g^N_a
        self.head = MLP([self.embedding_dim, *fc])
        self.node_pooling, self.node_temperature = node_pooling, node_temperature
        self.latent_dim = int(attention_head[-1])
        self.out_features = int(fc[-1])
        options = {"conv": (conv, "gat"), "residual": (residual, False), "norm": (norm, "none"),
                   "jumping_knowledge": (jumping_knowledge, "none"),
                   "edge_attention_mode": (edge_attention_mode, "multiply")}
        extras = "".join(f", {k}={v!r}" for k, (v, default) in options.items() if v != default)
        self._repr = f"BrainNetworkEncoder({in_channels}, gat={sizes}, fc={list(fc)}{extras})"

    def __repr__(self) -> str:
        return self._repr

    def embed_layers(self, x, edge_index, edge_attr, edge_weight=None, batch=None) -> list[torch.Tensor]:
        """The node embeddings after every layer, over both directions of every tract.

        A layer is ``conv -> norm -> ELU`` (+ its input with ``residual``); the last layer
        has no norm and activation unless jumping knowledge combines the layers.
        """
        weight = None
        if edge_weight is not None:
            if self.edge_attention_mode == "multiply":
                edge_attr = edge_attr * edge_weight.unsqueeze(-1)  # x_B' = x_B . a^E
            else:
                if bool((edge_index[0] == edge_index[1]).any()):
                    raise ValueError(f"edge_attention_mode {self.edge_attention_mode!r} needs a network without "
                                     "self-loop tracts")
                weight = torch.cat([edge_weight, edge_weight])
        ei = torch.cat([edge_index, edge_index.flip(0)], dim=1)
        ea = torch.cat([edge_attr, edge_attr], dim=0)
        h, layers = x, []
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            with edge_scaling(conv, weight):
                out = conv(h, ei, ea)
            if i < last or self.jk is not None:
                if self.norms is not None:
                    out = self.norms[i](out, batch)
                out = F.elu(out)
            if self.skips is not None:
                out = out + self.skips[i](h)
            layers.append(out)
            h = out
        return layers

    def embed(self, x, edge_index, edge_attr, edge_weight=None, batch=None) -> torch.Tensor:
        """e^N = f_B'(x_B'): the last layer, or the layers combined by jumping knowledge."""
        layers = self.embed_layers(x, edge_index, edge_attr, edge_weight, batch)
        if self.jk is None:
            return layers[-1]
        if self.jk_maps is not None:
            layers = [m(h) for m, h in zip(self.jk_maps, layers)]
        return self.jk(layers)

    def forward(self, x, edge_index, edge_attr, batch=None, edge_weight=None, tumor_latent=None) -> BrainNetworkOutput:
        if batch is None:
            batch = torch.zeros(len(x), dtype=torch.long, device=x.device)
        n_graphs = int(batch.max()) + 1
        e = self.embed(x, edge_index, edge_attr, edge_weight, batch)
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
