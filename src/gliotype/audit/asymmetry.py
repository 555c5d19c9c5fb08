"""Perilesional white-matter asymmetry: each voxel against its left-right mirror.

A disrupted network shows in conventional MRI as white-matter change around the lesion
(T2/FLAIR prolongation, T1 drop) that the tumour mask does not cover. On the symmetric
ICBM152 2009 template the mirror of MNI (x, y, z) is (-x, y, z), so a patient's own
contralateral hemisphere is the reference: the mean log-ratio of a voxel's intensity to
its mirror voxel's, over template white matter (probability > ``wm_threshold``) in
distance bins outside the whole-tumour mask, in the lesion's hemisphere (the side of the
whole tumour's centroid), cancels site, bias and normalisation (features
``wm_logratio_<sequence>_<lo>_<hi>mm``; > 0: brighter next to the lesion than on the
healthy side).

Voxels of the other hemisphere (their mirror is the lesion side), voxels whose mirror lies
in the tumour or off the grid, and pairs with a non-positive intensity (outside the brain;
z-score normalisation) are left out; a bin without voxels is NaN.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from gliotype.audit.shape import voxel_sizes
from gliotype.input import SEQUENCES

#: Distance bins (mm) outside the whole-tumour mask: lo < distance <= hi.
WM_BINS_MM: tuple[tuple[int, int], ...] = ((0, 10), (10, 25), (25, 50))


def mirror_coordinates(voxels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``(N, 3)`` voxel coordinates (float) of the left-right mirrors of ``(N, 3)`` voxels:
    world x -> -x through the grid's affine."""
    affine = np.asarray(affine, dtype=np.float64)
    world = np.asarray(voxels, dtype=np.float64) @ affine[:3, :3].T + affine[:3, 3]
    world[:, 0] *= -1.0
    return (world - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T


def mirror_index(shape: tuple[int, int, int], affine: np.ndarray, tol: float = 1e-3) -> np.ndarray | None:
    """``i -> i'`` along the first axis when the mirror maps voxels exactly onto voxels of the same
    row (an axis-aligned grid centred on x = 0, such as the template grid); else None."""
    n = shape[0]
    probe = np.stack([np.arange(n), np.zeros(n), np.zeros(n)], axis=1)
    m = mirror_coordinates(probe, affine)
    target = np.rint(m[:, 0])
    exact = (np.abs(m - np.stack([target, probe[:, 1], probe[:, 2]], axis=1)).max() < tol
             and target.min() >= 0 and target.max() <= n - 1)
    return target.astype(np.int64) if exact else None


def mirror_volume(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The volume reflected through x = 0 (world), on the same grid: exact voxel indexing when
    the grid allows it, linear interpolation otherwise (0 off the grid)."""
    idx = mirror_index(volume.shape, affine)
    if idx is not None:
        return np.asarray(volume)[idx]
    grid = np.indices(volume.shape).reshape(3, -1).T
    coords = mirror_coordinates(grid, affine).T
    return ndi.map_coordinates(np.asarray(volume, dtype=np.float32), coords, order=1, mode="constant",
                               cval=0.0).reshape(volume.shape)


def _world_x(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """World x (mm) of every voxel."""
    affine = np.asarray(affine, dtype=np.float64)
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij", sparse=True)
    return affine[0, 0] * i + affine[0, 1] * j + affine[0, 2] * k + affine[0, 3]


def _distance_outside(tumour: np.ndarray, affine: np.ndarray, reach_mm: float) -> np.ndarray:
    """Distance (mm) of every voxel to the nearest tumour voxel, exact up to ``reach_mm``
    (computed in the tumour's bounding box grown by ``reach_mm``; inf beyond)."""
    spacing = voxel_sizes(affine)
    margin = np.ceil(reach_mm / spacing).astype(int) + 1
    idx = np.argwhere(tumour)
    box = tuple(slice(max(lo - m, 0), min(hi + m + 1, n))
                for lo, hi, m, n in zip(idx.min(0), idx.max(0), margin, tumour.shape))
    out = np.full(tumour.shape, np.inf)
    out[box] = ndi.distance_transform_edt(~tumour[box], sampling=spacing)
    return out


def perilesional_asymmetry(
    sequences: dict[str, np.ndarray] | np.ndarray,
    whole_tumour: np.ndarray,
    wm_probability: np.ndarray,
    affine: np.ndarray,
    bins: tuple[tuple[int, int], ...] = WM_BINS_MM,
    wm_threshold: float = 0.5,
    names: tuple[str, ...] = SEQUENCES,
) -> dict[str, float]:
    """Mean log(I / I_mirror) per sequence over white-matter voxels in each distance bin outside
    the tumour (``sequences``: a name -> volume dict or a ``(C, X, Y, Z)`` array named by ``names``)."""
    if not isinstance(sequences, dict):
        sequences = dict(zip(names, np.asarray(sequences)))
    tumour = np.asarray(whole_tumour, dtype=bool)
    out = {f"wm_logratio_{s}_{lo}_{hi}mm": float("nan") for s in sequences for lo, hi in bins}
    if not tumour.any():
        return out
    reach = max(hi for _, hi in bins)
    distance = _distance_outside(tumour, affine, reach)
    mirror_tumour = mirror_volume(tumour.astype(np.float32), affine) > 0.5
    in_grid = mirror_volume(np.ones(tumour.shape, dtype=np.float32), affine) > 0.999
    x_mm = _world_x(tumour.shape, affine)
    side = np.sign(x_mm[tumour].mean())  # the lesion's hemisphere; the mirror side is the reference
    eligible = ((distance > 0) & (distance <= reach) & (np.asarray(wm_probability) > wm_threshold)
                & (np.sign(x_mm) == side) & ~mirror_tumour & in_grid)
    d = distance[eligible]
    for name, vol in sequences.items():
        vol = np.asarray(vol, dtype=np.float32)
        here, there = vol[eligible], mirror_volume(vol, affine)[eligible]
        valid = (here > 0) & (there > 0)
        ratio = np.log(here[valid].astype(np.float64) / there[valid])
        dv = d[valid]
        for lo, hi in bins:
            sel = (dv > lo) & (dv <= hi)
            if sel.any():
                out[f"wm_logratio_{name}_{lo}_{hi}mm"] = float(ratio[sel].mean())
    return out
