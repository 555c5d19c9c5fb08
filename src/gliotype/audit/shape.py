"""Shape of a binary tumour region: surface area, sphericity, lobulation and roughness.

Hand-made, interpretable descriptors of the mask geometry (what the point-cloud
encoder f_P should see, paper section 3.2). The surface is the marching-cubes mesh of
the mask at level 0.5 in millimetres (:func:`gliotype.modalities.point_cloud.surface_mesh`,
the mesh x_P is sampled from), so every value is in template millimetres whatever the
voxel size.

- ``sphericity``: pi^(1/3) (6 V)^(2/3) / A, 1 for a ball, lower for lobulated shapes
  (voxelised balls stay slightly below 1 because of the staircase surface);
- ``lobulation``: standard deviation / mean of the distances from the region's centroid
  to the mesh vertices (0 for a ball);
- ``roughness``: area of the mesh / area of the mesh of the mask smoothed with a Gaussian
  of ``smooth_mm`` (fine margin irregularity; about 1 for smooth shapes).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import mesh_surface_area

from gliotype.modalities.point_cloud import surface_mesh

SHAPE_KEYS = ("surface_mm2", "sphericity", "lobulation", "roughness")


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel edge lengths (mm) of a grid from its affine."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def crop_to(binary: np.ndarray, affine: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box of ``binary`` with ``margin`` voxels around it (zero-padded beyond the
    grid) and the affine of that crop."""
    idx = np.argwhere(binary)
    lo, hi = idx.min(0) - margin, idx.max(0) + margin + 1
    padded = np.pad(binary, margin)
    crop = padded[tuple(slice(a + margin, b + margin) for a, b in zip(lo, hi))]
    out = np.asarray(affine, dtype=np.float64).copy()
    out[:3, 3] = out[:3, :3] @ lo + out[:3, 3]
    return crop, out


def _area(volume: np.ndarray, affine: np.ndarray) -> tuple[float, np.ndarray]:
    verts, faces = surface_mesh(volume, affine)
    return float(mesh_surface_area(verts, faces)), verts


def shape_descriptors(binary: np.ndarray, affine: np.ndarray, smooth_mm: float = 2.0) -> dict[str, float]:
    """Surface area (mm^2), sphericity, lobulation and roughness of a boolean region.

    NaN for every value when the region has fewer than 2 voxels; roughness is NaN when
    the smoothed mask has no surface (a region much thinner than ``smooth_mm``).
    """
    binary = np.asarray(binary, dtype=bool)
    out = dict.fromkeys(SHAPE_KEYS, float("nan"))
    if binary.sum() < 2:
        return out
    spacing = voxel_sizes(affine)
    sigma = smooth_mm / spacing
    crop, crop_affine = crop_to(binary, affine, margin=int(np.ceil(3 * sigma.max())) + 2)
    area, verts = _area(crop, crop_affine)
    volume = float(crop.sum() * np.prod(spacing))
    centroid = np.argwhere(crop).mean(0) @ crop_affine[:3, :3].T + crop_affine[:3, 3]
    radial = np.linalg.norm(verts - centroid, axis=1)
    out["surface_mm2"] = area
    out["sphericity"] = math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area
    out["lobulation"] = float(radial.std() / radial.mean())
    smooth = ndi.gaussian_filter(crop.astype(np.float32), sigma)
    if smooth.max() > 0.5:
        out["roughness"] = area / _area(smooth, crop_affine)[0]
    return out
