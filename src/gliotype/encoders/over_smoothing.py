"""Diagnostics of f_B: over-smoothing per layer and the effect size of the tract attention a^E.

Spread ratio of a graph's node embeddings ``h (N, C)``: the root-mean-square distance of
the nodes to their mean, over the norm of the mean, ``sqrt(mean_i |h_i - h_bar|^2) / |h_bar|``.
It falls towards 0 as the layers make every node alike (over-smoothing); what is left
then is a per-patient mean.
"""

from __future__ import annotations

import torch
from torch_geometric.utils import scatter

from gliotype.encoders.brain_network_encoder import BrainNetworkEncoder


def spread_ratio(h: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)`` spread ratio of every graph of ``h (N, C)`` (one graph without ``batch``)."""
    if batch is None:
        batch = torch.zeros(len(h), dtype=torch.long, device=h.device)
    mean = scatter(h, batch, dim=0, reduce="mean")
    spread = scatter((h - mean[batch]).pow(2).sum(-1), batch, dim=0, reduce="mean").sqrt()
    return spread / mean.norm(dim=-1).clamp_min(1e-12)


@torch.no_grad()
def layer_spread_ratios(encoder: BrainNetworkEncoder, x, edge_index, edge_attr, batch=None) -> list[float]:
    """The spread ratio after every layer of ``encoder`` (mean over graphs), no attention."""
    layers = encoder.embed_layers(x, edge_index, edge_attr, None, batch)
    return [float(spread_ratio(h, batch).mean()) for h in layers]


@torch.no_grad()
def edge_attention_effect(encoder: BrainNetworkEncoder, x, edge_index, edge_attr, node: int,
                          value: float = 3.0) -> float:
    """Relative change of the pooled node embedding (mean of e^N) of one graph when the
    tracts of ``node`` get a^E = ``value`` and all others 1, against a^E = 1 everywhere."""
    ones = torch.ones(edge_index.shape[1])
    raised = torch.where((edge_index == node).any(0), torch.full_like(ones, value), ones)
    base = encoder.embed(x, edge_index, edge_attr, ones).mean(0)
    moved = encoder.embed(x, edge_index, edge_attr, raised).mean(0)
    return float((moved - base).norm() / base.norm().clamp_min(1e-12))
