"""How the tract attention a^E of eq. 2 acts on the brain-network convolution.

- ``multiply`` (the paper read literally): ``x_B' = x_B . a^E``, the edge attributes are
  scaled. On z-scored (signed) attributes a larger a^E can lower a tract's influence.
- ``message``: every message along a tract is multiplied by a^E (its self-loop by 1), so
  more attention always means more weight; the edge attributes are left as they are.
- ``log_attention``: ``log a^E`` is added to the attention logits of an attention
  convolution, i.e. ``alpha'_ij = a^E_ij alpha_ij / sum_k a^E_ik alpha_ik`` over the
  incoming edges of node i: the tract's share of its node's attention grows with a^E.

``message`` and ``log_attention`` act through PyG's public message-passing hooks
(``register_message_forward_hook``, ``register_edge_update_forward_hook``); a hook reads the
per-edge weights that :func:`edge_scaling` lends the layer for one call. Messages are
ordered as the layer sees them: ``[edges given, self-loops the layer adds (weight 1)]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

EDGE_ATTENTION_MODES = ("multiply", "message", "log_attention")
_ATTR = "_edge_attention_weight"
_TINY = 1e-12


def _per_message(module: MessagePassing, n_messages: int) -> torch.Tensor | None:
    """The weight of every message: the lent weights, then 1 for the layer's own self-loops."""
    w = getattr(module, _ATTR, None)
    if w is None:
        return None
    if n_messages < len(w):
        raise ValueError(f"{n_messages} messages for {len(w)} weighted edges: the layer dropped edges")
    return torch.cat([w, w.new_ones(n_messages - len(w))])


def _scale_messages(module, inputs, out):
    """``message`` mode: each message times the weight of its edge."""
    w = _per_message(module, out.shape[0])
    if w is None:
        return None
    return out * w.view(-1, *[1] * (out.dim() - 1))


def _reweight(alpha: torch.Tensor, w: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``softmax(logit + log w)`` from ``alpha = softmax(logit)`` over the edges into each node."""
    a = alpha * w.view(-1, *[1] * (alpha.dim() - 1))
    return a / scatter(a, index, dim=0, reduce="sum").clamp_min(_TINY)[index]


def _log_attention_gat(module, inputs, alpha):
    """``log_attention`` for GATConv / GATv2Conv: the softmax of ``edge_update`` re-weighted."""
    w = _per_message(module, alpha.shape[0])
    if w is None:
        return None
    edge_index = inputs[0]
    return _reweight(alpha, w, edge_index[1])


def _log_attention_transformer(module, inputs, out):
    """``log_attention`` for TransformerConv: messages ``alpha_ij m_ij`` re-weighted in place."""
    w = _per_message(module, out.shape[0])
    if w is None:
        return None
    alpha = module._alpha  # the softmax of this call (TransformerConv keeps it for return_attention_weights)
    if module.dropout > 0:
        raise ValueError("log_attention needs TransformerConv without attention dropout")
    index = inputs[0]["index"]
    z = scatter(alpha * w.unsqueeze(-1), index, dim=0, reduce="sum").clamp_min(_TINY)
    return out * (w.unsqueeze(-1) / z[index]).unsqueeze(-1)  # alpha_ij w_ij / z_i times m_ij


def attach_edge_attention(conv: MessagePassing, kind: str, mode: str) -> None:
    """Register on ``conv`` (a layer of type ``kind``) the hook that applies a^E in ``mode``."""
    if mode not in EDGE_ATTENTION_MODES:
        raise ValueError(f"edge_attention_mode must be one of {', '.join(EDGE_ATTENTION_MODES)}; got {mode!r}")
    setattr(conv, _ATTR, None)
    if mode == "message":
        conv.register_message_forward_hook(_scale_messages)
    elif mode == "log_attention":
        if kind in ("gat", "gatv2"):
            if conv.dropout > 0:
                raise ValueError("log_attention needs a GAT layer without attention dropout")
            conv.register_edge_update_forward_hook(_log_attention_gat)
        elif kind == "transformer":
            conv.register_message_forward_hook(_log_attention_transformer)
        else:
            raise ValueError(f"edge_attention_mode 'log_attention' needs an attention convolution, not {kind!r}")


@contextlib.contextmanager
def edge_scaling(conv: MessagePassing, weight: torch.Tensor | None) -> Iterator[None]:
    """Within the block, the hooks of ``conv`` weight the edges given to it by ``weight`` ``(E,)``."""
    setattr(conv, _ATTR, weight)
    try:
        yield
    finally:
        setattr(conv, _ATTR, None)
