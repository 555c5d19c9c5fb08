"""Which tracts each tumor-surface point crosses (the mapping behind eq. 2, section 3.3).

"The points clouds are projected to the edge atlas. The crossing edges are then
assigned with the boundary attention of the points cloud." A point crosses a tract
when the tract's probability reaches ``threshold`` at a voxel within ``radius_mm`` of
the point (open point 5). Coordinates are the unrotated MNI millimetres of the cloud.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def tract_matrix(voxel_index, probability, n_voxels: int) -> sparse.csr_matrix:
    """Sparse ``(n_voxels, T)`` matrix of tract probabilities from per-tract voxel lists."""
    cols = np.concatenate([np.full(len(v), t) for t, v in enumerate(voxel_index)])
    rows = np.concatenate([np.asarray(v, dtype=np.int64) for v in voxel_index])
    vals = np.concatenate([np.asarray(p, dtype=np.float32) for p in probability])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_voxels, len(voxel_index)))


def _ball_offsets(radius_vox: np.ndarray) -> np.ndarray:
    r = np.ceil(radius_vox).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in r], indexing="ij"), -1).reshape(-1, 3)
    inside = ((grid / np.maximum(radius_vox, 1e-9)) ** 2).sum(1) <= 1.0 + 1e-9
    return grid[inside] if radius_vox.max() > 0 else np.zeros((1, 3), int)


def point_tract_crossing(
    points_mm: np.ndarray,
    matrix: sparse.csr_matrix,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    threshold: float = 0.2,
    radius_mm: float = 2.0,
) -> np.ndarray:
    """``(2, C)`` int64 pairs ``(point index, tract index)`` of every crossing.

    Args:
        points_mm: ``(N, 3)`` world coordinates (MNI millimetres).
        matrix: ``(prod(shape), T)`` tract probabilities (:func:`tract_matrix`).
        shape, affine: the grid of the tract atlas.
    """
    points_mm = np.asarray(points_mm, dtype=np.float64)
    inv = np.linalg.inv(affine)
    vox = np.rint(points_mm @ inv[:3, :3].T + inv[:3, 3]).astype(np.int64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    offsets = _ball_offsets(radius_mm / spacing)
    cand = (vox[:, None, :] + offsets[None]).reshape(-1, 3)
    owner = np.repeat(np.arange(len(points_mm)), len(offsets))
    inside = np.all((cand >= 0) & (cand < np.asarray(shape)), axis=1)
    flat = np.ravel_multi_index(cand[inside].T, shape)
    sub = matrix[flat].tocoo()
    keep = sub.data >= threshold
    pairs = np.unique(np.stack([owner[inside][sub.row[keep]], sub.col[keep]]), axis=1)
    return pairs.astype(np.int64)
