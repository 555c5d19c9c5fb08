"""Grad-CAM on the tumor surface and the geometric attention of f_P (paper section 4.5; Fig. 7E-F).

"To visualize the concordance between points cloud and tumor image, we project the
surface points of the Grad-CAM map overlaid on the tumor image to the corresponding
points cloud." Each surface point (MNI mm) takes the map value at its voxel; the
geometric encoder's attention a^P (the softmax gate of its global attention pooling,
section 3.3) lives on the points that survive farthest point sampling and is carried
to every input point from its nearest surviving point. Their agreement is Spearman's
rank correlation over the points.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy import ndimage as ndi
from scipy.stats import spearmanr

from gliotype.interpretation._common import as_batch, eval_mode
from gliotype.multimodal.model import MultiModalBatch, MultiModalNet


def project_to_points(volume: np.ndarray, affine: np.ndarray, points_mm: np.ndarray, order: int = 0) -> np.ndarray:
    """The value of ``volume`` at every point: ``(N,)`` float32.

    Args:
        volume: ``(X, Y, Z)`` map (e.g. a Grad-CAM on the crop or template grid).
        affine: its voxel -> mm affine.
        points_mm: ``(N, 3)`` points in the same mm space (``point_cloud.npz: points_mm``).
        order: 0 the nearest voxel, 1 trilinear interpolation.

    Points whose nearest voxel is outside the grid get 0 (with ``order=1`` too; inside
    the outer half-voxel, trilinear interpolation uses the edge values).
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D, got shape {volume.shape}")
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    vox = (np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.c_[pts, np.ones(len(pts))].T)[:3].T
    idx = np.rint(vox).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(volume.shape)), axis=1)
    out = np.zeros(len(pts), dtype=np.float32)
    if not inside.any():
        return out
    if order == 0:
        i = idx[inside]
        out[inside] = volume[i[:, 0], i[:, 1], i[:, 2]]
    elif order == 1:
        out[inside] = ndi.map_coordinates(volume, vox[inside].T, order=1, mode="nearest")
    else:
        raise ValueError(f"order must be 0 (nearest) or 1 (trilinear), got {order}")
    return out


@torch.no_grad()
def point_attention(model: MultiModalNet, batch_or_case: MultiModalBatch | Mapping) -> np.ndarray:
    """The geometric attention a^P of f_P for every input point: ``(N,)`` over the batch's points.

    The attention pooling sees only the points kept by farthest point sampling (it sums
    to one over them, per patient); every other input point takes the attention of the
    nearest kept point of the same patient (normalised coordinates). Eval mode.
    """
    batch = as_batch(batch_or_case)
    if model.point_cloud is None:
        raise ValueError("the model has no point-cloud encoder (multimodal.encoders lacks 'point_cloud')")
    if batch.points is None:
        raise ValueError("the batch has no point cloud")
    points = batch.points.float()
    pbatch = batch.points_batch if batch.points_batch is not None else torch.zeros(len(points), dtype=torch.long)
    with eval_mode(model):
        pc = model.point_cloud(points, pbatch, batch.pose)
    out = torch.zeros(len(points))
    for b in torch.unique(pbatch):
        rows = torch.nonzero(pbatch == b).squeeze(1)
        kept = pc.batch == b
        if not kept.any():
            continue
        kept_rows, kept_att = pc.index[kept], pc.attention[kept]
        nearest = torch.cdist(points[rows], points[kept_rows]).argmin(dim=1)
        out[rows] = kept_att[nearest]
    return out.numpy().astype(np.float32)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho between two per-point maps (NaN if either is constant)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps of different sizes: {a.shape} and {b.shape}")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)
