"""f_P's edge-conditioned convolution (PyTorch Geometric's ``NNConv``, section 3.3) without a weight
matrix per edge.

``NNConv`` computes each edge's message as ``x_j @ W(e)``, ``W(e) = reshape(nn(e), (c_in, c_out))``:
a ``c_in x c_out`` matrix per edge, written, read and differentiated for every edge (f_P's edges are
10-16 per point). When the edge network ends in a linear layer ``h(e) -> A h(e) + b`` (f_P's
``MLP([1, edge_hidden, c_in c_out])``), the same message is ``(h(e) (x) x_j) @ A' + x_j @ B``: the
outer product of the edge's hidden features and the point's features times the last layer's weights
rearranged, plus the bias term, with no per-edge matrix. The same function and parameters (the
state dict is ``NNConv``'s), other float rounding (docs/design.md point 59); on one thread f_P's
forward and backward on a batch of 10 clouds took 287 ms with ``NNConv`` and 171-181 ms so.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import NNConv


class EdgeConditionedConv(NNConv):
    """``NNConv(in_channels, out_channels, nn, aggr)`` whose messages are computed through the edge
    network's last linear layer (any other edge network: ``NNConv``'s own messages)."""

    def message(self, x_j: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        layers = list(self.nn) if isinstance(self.nn, nn.Sequential) else []
        if not layers or not isinstance(layers[-1], nn.Linear):
            return super().message(x_j, edge_attr)
        hidden = edge_attr
        for layer in layers[:-1]:
            hidden = layer(hidden)
        last, c_in, c_out = layers[-1], self.in_channels_l, self.out_channels
        k = hidden.shape[1]
        # last.weight[i * c_out + o, k] -> rows k * c_in + i of a (k c_in, c_out) matrix
        weight = last.weight.view(c_in, c_out, k).permute(2, 0, 1).reshape(k * c_in, c_out)
        out = (hidden.unsqueeze(2) * x_j.unsqueeze(1)).reshape(-1, k * c_in) @ weight
        if last.bias is not None:
            out = out + x_j @ last.bias.view(c_in, c_out)
        return out


__all__ = ["EdgeConditionedConv"]
