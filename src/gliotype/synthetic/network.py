"""The network phenotype of one patient, outside the tumour mask.

Two fields on the cropped grid: infiltration diffusing along white matter from the
lesion, and the disrupted paths, white-matter tubes along straight segments from the
tumour centre to the centroids of K AAL regions, fading with the distance from the
lesion (``path_field``). How they change the signal and the FA is up to
``gliotype.synthetic.sequences``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Mapping

import numpy as np
from scipy import ndimage as ndi

from gliotype.synthetic.anatomy import CEREBRAL_REGIONS, cerebral_label, load_anatomy, location_atlas
from gliotype.synthetic.fields import STREAM_PATHS, patient_rng

#: A path is kept where the patient's white-matter probability exceeds this value and
#: blurred into a tube of this Gaussian sigma (mm).
PATH_WM_THRESHOLD = 0.3
PATH_SIGMA_MM = 2.0


def infiltration(row: Mapping, resolution: int, wm: np.ndarray, whole: np.ndarray,
                 outside: np.ndarray) -> np.ndarray:
    """Infiltration on the cropped grid, in [0, ``infiltration_amplitude``].

    The whole-tumour mask ``whole`` (float32) diffuses four times along white matter
    (Gaussian steps of ``infiltration_mm`` / 2, weighted by ``wm`` squared), then the
    field is scaled by ``outside``, 1 - the lesion's partial-volume weight.
    """
    h = float(resolution)
    wmw = np.clip(wm, 0, 1) ** 2
    fld = whole.copy()
    step = float(row["infiltration_mm"]) / h / 2.0
    for _ in range(4):
        fld = np.maximum(whole, ndi.gaussian_filter(fld, step, truncate=3.0) * wmw)
    return (float(row["infiltration_amplitude"]) * fld * outside).astype(np.float32)


def path_targets(row: Mapping, seed: int, key: tuple[int, ...]) -> np.ndarray:
    """(K, 3) MNI mm: centroids of the AAL regions the patient's disrupted paths lead to.

    Candidates are the 90 cerebral AAL regions but the one of the tumour centre
    (``location_region``), in a per-patient random order (stream ``STREAM_PATHS``,
    independent of the latent); the first K = ``paths_involved`` are involved, so a
    larger K involves a superset.
    """
    own = cerebral_label(str(row["location_region"]))
    labels = np.array([r for r in CEREBRAL_REGIONS if r != own])
    order = patient_rng(seed, key, STREAM_PATHS).permutation(len(labels))
    k = int(row["paths_involved"])
    return location_atlas().centroids[labels[order[:k]] - 1]


@lru_cache(maxsize=4)
def _line_centre(sigma_vox: float) -> float:
    """Value at its axis of an infinite one-voxel line blurred by ``gaussian_filter``."""
    r = int(3.0 * sigma_vox + 0.5)
    delta = np.zeros(2 * r + 1)
    delta[r] = 1.0
    return float(ndi.gaussian_filter1d(delta, sigma_vox, truncate=3.0)[r]) ** 2


def path_field(row: Mapping, seed: int, key: tuple[int, ...], resolution: int, wm: np.ndarray,
               lesion: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """The disrupted-path field on the cropped grid, in [0, ``path_amplitude``].

    Each path is the straight segment from the tumour centre to one of ``path_targets``,
    rasterised (voxel value: the segment length it holds), kept where ``wm`` >
    ``PATH_WM_THRESHOLD``, blurred into a tube (Gaussian sigma ``PATH_SIGMA_MM``, divided
    by the blurred axis value of a unit line so its axis is about 1, clipped to [0, 1]);
    paths combine by max. The field is amplitude x tube x wm x fade x ``outside``, where the fade falls
    linearly from 1 at the lesion (``lesion``, the whole-tumour mask) to 0 at
    ``path_extent_mm`` from it (Euclidean distance transform) and ``outside`` is
    1 - the lesion's partial-volume weight.
    """
    an = load_anatomy(resolution)
    h = float(resolution)
    shape = np.array(wm.shape)
    extent = float(row["path_extent_mm"])
    targets = path_targets(row, seed, key)
    out = np.zeros(wm.shape, np.float32)
    if not lesion.any() or len(targets) == 0:
        return out
    sig = PATH_SIGMA_MM / h
    radius = int(3.0 * sig + 0.5)  # of the (cubic, truncated) blur kernel, voxels
    pad = radius + 1
    # A line voxel farther than ``margin`` from the lesion only blurs into voxels beyond the
    # extent (fade 0). The work box holds the lesion and every voxel within extent + margin
    # of it, so the distance transform, computed in the box, is exact where it matters.
    margin = math.sqrt(3.0) * radius * h
    idx = np.argwhere(lesion)
    reach = int(math.ceil((extent + margin) / h)) + 1
    lo = np.maximum(idx.min(0) - reach, 0)
    hi = np.minimum(idx.max(0) + reach + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    dist = ndi.distance_transform_edt(~lesion[box], sampling=h)
    fade = np.clip(1.0 - dist / extent, 0.0, 1.0).astype(np.float32)
    keep_line = (wm[box] > PATH_WM_THRESHOLD) & (dist <= extent + margin)
    tube = np.zeros(fade.shape, np.float32)
    norm = _line_centre(sig)
    c_vox = an.mm_to_crop_voxel([row["centre_x"], row["centre_y"], row["centre_z"]])
    for target in targets:
        # the line as a density: each voxel holds the length of segment (in voxels) it
        # contains, from samples a quarter voxel apart, so its blurred axis is ~1 whatever
        # the direction
        t_vox = an.mm_to_crop_voxel(target)
        n = int(math.ceil(4.0 * np.abs(t_vox - c_vox).max())) + 1
        step = float(np.linalg.norm(t_vox - c_vox)) / max(n - 1, 1)
        pts = np.rint(c_vox[None] + np.linspace(0.0, 1.0, n)[:, None] * (t_vox - c_vox)[None]).astype(np.int64)
        pts -= lo
        pts = pts[np.all((pts >= 0) & (pts < hi - lo), axis=1)]
        if len(pts) == 0:
            continue
        pts = pts[keep_line[tuple(pts.T)]]
        if len(pts) == 0:
            continue
        pts, count = np.unique(pts, axis=0, return_counts=True)
        a = np.maximum(pts.min(0) - pad, 0)
        b = np.minimum(pts.max(0) + pad + 1, hi - lo)
        sub = tuple(slice(int(u), int(v)) for u, v in zip(a, b))
        line = np.zeros(tuple(int(v - u) for u, v in zip(a, b)), np.float32)
        line[tuple((pts - a).T)] = count * step
        blurred = ndi.gaussian_filter(line, sig, truncate=3.0, mode="constant")
        np.maximum(tube[sub], np.clip(blurred / norm, 0.0, 1.0), out=tube[sub])
    out[box] = float(row["path_amplitude"]) * tube * np.clip(wm[box], 0, 1) * fade * outside[box]
    return out


__all__ = ["PATH_SIGMA_MM", "PATH_WM_THRESHOLD", "infiltration", "path_field", "path_targets"]
