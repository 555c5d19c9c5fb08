"""Point-cloud graph utilities in plain torch (PyG's ``fps``/``radius_graph`` need
pyg-lib, which cannot be installed here): radius graph and farthest point sampling."""

from __future__ import annotations

import fpsample
import numpy as np
import torch


def radius_graph(pos: torch.Tensor, r: float, batch: torch.Tensor | None = None, max_num_neighbors: int = 32) -> torch.Tensor:
    """Edges ``j -> i`` between points of the same graph closer than ``r`` (no self loops).

    Each point keeps at most ``max_num_neighbors`` nearest neighbours, as in PyG.

    Shapes: ``pos (N, 3)``, ``batch (N,)`` sorted graph index -> ``edge_index (2, E)``
    with row 0 the source ``j`` and row 1 the target ``i``.
    """
    if batch is None:
        batch = torch.zeros(len(pos), dtype=torch.long, device=pos.device)
    sources, targets = [], []
    counts = torch.bincount(batch).tolist()
    start = 0
    for n in counts:
        if n == 0:
            continue
        p = pos[start : start + n].detach()
        d = torch.cdist(p, p)
        d.fill_diagonal_(float("inf"))
        k = min(max_num_neighbors, n - 1)
        if k > 0:
            dist, idx = torch.topk(d, k, dim=1, largest=False)
            keep = dist <= r
            tgt = torch.arange(n, device=pos.device).unsqueeze(1).expand(-1, k)[keep]
            sources.append(idx[keep] + start)
            targets.append(tgt + start)
        start += n
    if not sources:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    return torch.stack([torch.cat(sources), torch.cat(targets)])


def farthest_point_sample(pos: torch.Tensor, ratio: float, batch: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of ``ceil(ratio * n)`` farthest-point samples of every graph (``fpsample``).

    Deterministic and rotation invariant: each graph starts at its point farthest from
    its centroid.
    """
    if batch is None:
        batch = torch.zeros(len(pos), dtype=torch.long, device=pos.device)
    if ratio >= 1.0:
        return torch.arange(len(pos), device=pos.device)
    out, start = [], 0
    for n in torch.bincount(batch).tolist():
        if n == 0:
            continue
        p = pos[start : start + n].detach().cpu().numpy().astype(np.float32)
        m = max(1, int(np.ceil(ratio * n)))
        first = int(np.argmax(np.linalg.norm(p - p.mean(0), axis=1)))
        idx = fpsample.fps_sampling(np.ascontiguousarray(p), m, start_idx=first) if m < n else np.arange(n)
        out.append(torch.as_tensor(np.sort(np.asarray(idx, dtype=np.int64)), device=pos.device) + start)
        start += n
    return torch.cat(out)
