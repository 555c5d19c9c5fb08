"""Test helper (import as ``multimodal_items``): tiny multi-modal networks and synthetic
patients without files, for the multimodal and interpretation tests."""

from __future__ import annotations

import torch

from gliotype.config import load_config
from gliotype.multimodal import MultiModalNet

R, T, N_POINTS, CROP = 6, 15, 64, 32


def make_items(n=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    pairs = torch.tensor([(a, b) for a in range(R) for b in range(a + 1, R)]).T
    items = []
    for i in range(n):
        pts = torch.nn.functional.normalize(torch.randn(N_POINTS, 3, generator=g), dim=1)
        crossing = torch.stack([torch.arange(N_POINTS), torch.randint(0, T, (N_POINTS,), generator=g)])
        items.append({
            "patient_id": f"P{i}",
            "tumor_image": torch.randn(4, CROP, CROP, CROP, generator=g),
            "points": pts,
            "crossing": crossing,
            "node_x": torch.randn(R, 16, generator=g),
            "edge_index": pairs,
            "edge_attr": torch.randn(T, 16, generator=g),
            "label": torch.tensor(float(i % 2)),
        })
    return items


def make_model(*sets):
    """A tiny-preset :class:`MultiModalNet` in eval mode (``--set`` style overrides)."""
    config = load_config("tiny", overrides=list(sets))
    torch.manual_seed(0)
    return MultiModalNet(config.multimodal, config.modalities.crop_size).eval()
