"""Fixed voxel positions of every region and tract, and gathering patient voxels at them (section 4.3).

The self-supervised node and edge models take a fixed-length vector per region / tract:
"all input node voxels are sampled to the dimension of 4,000" (1,000 positions x 4
sequences) and the edge voxels likewise (anatomical 4,000, FA 1,000). The positions are
drawn once (per seed) on the 2 mm template grid and shared by every patient, so input
``k`` of a region always reads the same voxel.

Each region / tract draws from its own random stream (``SeedSequence([seed, kind, ...])``),
so its positions do not depend on which other regions or tracts the atlas has. Positions
are returned sorted (C order), which keeps the gather cache-friendly.
"""

from __future__ import annotations

import numpy as np

from gliotype.atlases.nodes import NodeAtlas
from gliotype.atlases.tracts import TractAtlas
from gliotype.errors import GliotypeError


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) for k in key]]))


def sample_node_positions(node_atlas: NodeAtlas, n: int = 1000, seed: int = 0) -> np.ndarray:
    """``(R, n)`` int64 flat (C order) voxel indices of every region, in ``node_atlas.regions`` order.

    Uniform over the region's voxels, without replacement when the region has at least
    ``n`` voxels, with replacement otherwise (every voxel drawn at least once then).
    """
    if n < 1:
        raise GliotypeError(f"node positions must be >= 1, got {n}")
    out = np.empty((len(node_atlas.regions), n), dtype=np.int64)
    for r, (label, vox) in enumerate(zip(node_atlas.regions, node_atlas.region_voxels())):
        if not len(vox):
            raise GliotypeError(f"region {label} of the node atlas has no voxel")
        rng = _rng(seed, 0, label)
        if len(vox) >= n:
            pick = rng.choice(vox, size=n, replace=False)
        else:  # all voxels, then the remainder drawn with replacement
            pick = np.concatenate([vox, rng.choice(vox, size=n - len(vox), replace=True)])
        out[r] = np.sort(pick)
    return out


def sample_tract_positions(tract_atlas: TractAtlas, n: int = 1000, seed: int = 0) -> np.ndarray:
    """``(T, n)`` int64 flat voxel indices of every tract, drawn (with replacement) with
    probability proportional to the tract probability."""
    if n < 1:
        raise GliotypeError(f"edge positions must be >= 1, got {n}")
    out = np.empty((len(tract_atlas), n), dtype=np.int64)
    seen: dict[tuple[int, int], int] = {}
    for t in range(len(tract_atlas)):
        idx, prob = tract_atlas.tract(t)
        a, b = (int(x) for x in tract_atlas.pairs[t])
        k = seen.get((a, b), 0)  # several tracts may join the same pair
        seen[(a, b)] = k + 1
        p = np.asarray(prob, dtype=np.float64)
        total = p.sum()
        if not len(idx) or total <= 0:
            raise GliotypeError(f"tract {t} ({a}-{b}) of the tract atlas is empty")
        out[t] = np.sort(_rng(seed, 1, a, b, k).choice(idx, size=n, replace=True, p=p / total))
    return out


def gather(volumes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Voxel values at fixed positions: ``(C, X, Y, Z)`` volumes, ``(K, n)`` flat indices ->
    ``(K, C * n)`` float32, channel-major (all ``n`` values of channel 0, then channel 1, ...).

    A single ``(X, Y, Z)`` volume counts as one channel.
    """
    vol = np.asarray(volumes)
    if vol.ndim == 3:
        vol = vol[None]
    if vol.ndim != 4:
        raise ValueError(f"volumes must be (C, X, Y, Z), got shape {vol.shape}")
    pos = np.asarray(positions, dtype=np.int64)
    if pos.ndim != 2:
        raise ValueError(f"positions must be (K, n), got shape {pos.shape}")
    c = vol.shape[0]
    flat = vol.reshape(c, -1)
    if pos.size and (pos.min() < 0 or pos.max() >= flat.shape[1]):
        raise ValueError(f"positions out of range for volumes of shape {vol.shape[1:]}")
    out = flat[:, pos]  # (C, K, n)
    return np.ascontiguousarray(out.transpose(1, 0, 2).reshape(pos.shape[0], c * pos.shape[1]), dtype=np.float32)
