"""The graph convolution of f_B (paper section 4.3: GATConv), and edge-conditioned alternatives.

``gat`` is the paper's GATConv: the edge attributes only shift the attention logits, the
messages are ``W x_j`` whatever the tract. ``gatv2`` (GATv2Conv) is the same with dynamic
attention. ``gine`` (GINEConv, messages ``ReLU(x_j + W_e e_ij)``) and ``transformer``
(TransformerConv, messages ``alpha_ij (W_v x_j + W_e e_ij)``) put the edge attributes in the
messages, so a tract's features reach its nodes' embeddings even when the nodes are alike.
"""

from __future__ import annotations

from torch import nn
from torch_geometric.nn import GATConv, GATv2Conv, GINEConv, MessagePassing, TransformerConv

GRAPH_CONVS = ("gat", "gatv2", "gine", "transformer")
#: convolutions with a softmax attention over each node's incoming edges (for ``log_attention``)
ATTENTION_CONVS = ("gat", "gatv2", "transformer")


def make_graph_conv(kind: str, in_channels: int, out_channels: int, edge_dim: int, heads: int = 1) -> MessagePassing:
    """One layer ``in_channels -> out_channels`` with ``edge_dim`` edge attributes.

    Attention convolutions average their ``heads`` (``concat=False``); GINE has no heads
    and its update network is ``Linear -> ReLU -> Linear`` (the GIN paper's two layers).
    """
    if kind == "gat":
        return GATConv(in_channels, out_channels, heads=heads, concat=False, edge_dim=edge_dim)
    if kind == "gatv2":
        return GATv2Conv(in_channels, out_channels, heads=heads, concat=False, edge_dim=edge_dim)
    if kind == "gine":
        update = nn.Sequential(nn.Linear(in_channels, out_channels), nn.ReLU(), nn.Linear(out_channels, out_channels))
        return GINEConv(update, edge_dim=edge_dim)
    if kind == "transformer":
        return TransformerConv(in_channels, out_channels, heads=heads, concat=False, edge_dim=edge_dim)
    raise ValueError(f"conv must be one of {', '.join(GRAPH_CONVS)}; got {kind!r}")
