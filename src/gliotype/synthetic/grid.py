"""The grids of the generator: MNI millimetres of the cropped template grid, the patient's
own (native) grid in the scanner, and resampling a rendered volume onto an output grid.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Mapping

import numpy as np
from scipy import ndimage as ndi

from gliotype.synthetic.anatomy import load_anatomy


@lru_cache(maxsize=2)
def grid_mm(resolution: int) -> np.ndarray:
    """MNI millimetres of every voxel of the cropped grid, (3, *crop_shape) float32 (read-only)."""
    an = load_anatomy(resolution)
    assert np.allclose(an.affine[:3, :3], np.diag(np.diag(an.affine[:3, :3]))), "template affine must be diagonal"
    axes = [an.affine[j, 3] + an.affine[j, j] * (np.arange(s.start, s.stop, dtype=np.float64))
            for j, s in enumerate(an.crop)]
    g = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    g.setflags(write=False)
    return g


def rotation_matrix(deg_xyz) -> np.ndarray:
    """Rotation about x, then y, then z (degrees)."""
    ax, ay, az = np.deg2rad(np.asarray(deg_xyz, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def native_grid(row: Mapping, resolution: int) -> tuple[np.ndarray, tuple[int, int, int], np.ndarray]:
    """The patient's own grid: (affine scanner <- voxel, shape, 4x4 cropped-MNI-voxel <- voxel).

    The head sits in the scanner rotated by Q and shifted by t (scanner = Q mni + t); the
    grid is axis-aligned in scanner space with the patient's voxel size, covering the
    brain, stored left-to-right flipped for half of the patients (``native_flip_x``).
    """
    an = load_anatomy(resolution)
    Q = rotation_matrix([row[f"native_rot_{a}_deg"] for a in "xyz"])
    t = np.array([row[f"native_shift_{a}_mm"] for a in "xyz"], dtype=np.float64)
    sp = np.array([row[f"native_spacing_{a}_mm"] for a in "xyz"], dtype=np.float64)
    corners = np.array([[s.start if b == 0 else s.stop - 1 for s, b in zip(an.crop, bits)]
                        for bits in np.ndindex(2, 2, 2)], dtype=np.float64)
    mm = (np.c_[corners, np.ones(8)] @ an.affine.T)[:, :3]
    scan = mm @ Q.T + t
    lo_mm, hi_mm = scan.min(0) - 2.0, scan.max(0) + 2.0
    shape = tuple(int(v) for v in np.ceil((hi_mm - lo_mm) / sp).astype(int) + 1)
    aff = np.eye(4)
    aff[:3, :3] = np.diag(sp)
    aff[:3, 3] = lo_mm
    if int(row["native_flip_x"]):
        aff[0, 0] = -sp[0]
        aff[0, 3] = lo_mm[0] + (shape[0] - 1) * sp[0]
    scan_to_mni = np.eye(4)
    scan_to_mni[:3, :3] = Q.T
    scan_to_mni[:3, 3] = -Q.T @ t
    to_crop = np.linalg.inv(an.affine) @ scan_to_mni @ aff
    to_crop[:3, 3] -= an.crop_offset
    return aff, shape, to_crop


def source_coordinates(to_src: np.ndarray, shape) -> np.ndarray:
    """(3, n) float32 position in the source volume of every voxel of a grid of ``shape``."""
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (to_src[:3, :3].astype(np.float32) @ idx) + to_src[:3, 3:4].astype(np.float32)


def resample_to(vol: np.ndarray, to_src: np.ndarray, shape, order: int,
                src: np.ndarray | None = None) -> np.ndarray:
    """Resample ``vol`` onto a grid of ``shape`` whose voxel v sits at ``to_src @ v`` in ``vol``
    (``src``: the ``source_coordinates`` of that grid, when resampling several volumes)."""
    if src is None:
        src = source_coordinates(to_src, shape)
    out = ndi.map_coordinates(vol, src, order=order, mode="constant", cval=0,
                              output=np.float32 if order else vol.dtype)
    return out.reshape(shape)


__all__ = ["grid_mm", "native_grid", "resample_to", "rotation_matrix", "source_coordinates"]
