"""Assemble multi-modal minibatches from per-patient items (paper section 3.3)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gliotype.multimodal.model import MultiModalBatch


def cloud_pose(centre, scale) -> torch.Tensor:
    """``(4,)`` float32: a cloud's centroid (template mm) and largest radius (mm), f_P's pose input."""
    return torch.tensor([*np.asarray(centre, dtype=np.float64).ravel()[:3], float(scale)], dtype=torch.float32)


def collate(items: Sequence[dict]) -> MultiModalBatch:
    """Stack per-patient dicts into a :class:`MultiModalBatch`.

    Each item may hold ``tumor_image`` (4, D, H, W), ``points`` (n, 3), ``pose`` (4,), ``crossing``
    (2, c) local ``(point, tract)`` pairs, ``node_x`` (R, F), ``edge_index`` (2, T),
    ``edge_attr`` (T, F), ``label`` (), ``patient_id``. Missing modalities stay None.
    """
    out = MultiModalBatch(patient_id=[str(it["patient_id"]) for it in items])
    out.label = torch.stack([torch.as_tensor(it.get("label", -1.0), dtype=torch.float32) for it in items])
    if "tumor_image" in items[0]:
        out.tumor_image = torch.stack([it["tumor_image"] for it in items])
    if "points" in items[0]:
        out.points = torch.cat([it["points"] for it in items])
        out.points_batch = torch.cat([torch.full((len(it["points"]),), b, dtype=torch.long) for b, it in enumerate(items)])
        if "pose" in items[0]:
            out.pose = torch.stack([it["pose"] for it in items])
    if "node_x" in items[0]:
        n_nodes = items[0]["node_x"].shape[0]
        n_tracts = items[0]["edge_index"].shape[1]
        out.n_tracts = n_tracts
        out.node_x = torch.cat([it["node_x"] for it in items])
        out.edge_attr = torch.cat([it["edge_attr"] for it in items])
        out.edge_index = torch.cat([it["edge_index"] + b * n_nodes for b, it in enumerate(items)], dim=1)
        out.node_batch = torch.arange(len(items)).repeat_interleave(n_nodes)
        if "crossing" in items[0] and "points" in items[0]:
            parts, offset = [], 0
            for b, it in enumerate(items):
                cr = it["crossing"]
                parts.append(torch.stack([cr[0] + offset, cr[1] + b * n_tracts]))
                offset += len(it["points"])
            out.crossing = torch.cat(parts, dim=1)
    return out
