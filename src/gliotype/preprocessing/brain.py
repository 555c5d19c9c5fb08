"""Skull stripping (paper section 4.2, FSL BET there): detection and brain masks.

Public data (BraTS, TCGA, UCSF-PDGM) ship skull-stripped volumes whose background
is exactly 0. ``skull_stripped: auto`` calls an image stripped when

- at least ``MIN_ZERO_FRACTION`` (30%) of its voxels are exactly 0 (a head scan has
  noise in the air around the head, rarely exact zeros), and
- what is not 0 (holes filled) is at most ``MAX_BRAIN_ML`` (2,400 ml): a brain is
  1.0-1.9 l, a head with skull and scalp 3-5 l, so a head whose background was
  zeroed is not taken for a brain.

Stripped: the brain mask is the non-zero part of the reference sequence (T1c), holes
filled, largest connected component. Not stripped: no brain-extraction model is
available offline (ANTs' own needs a download, and the template nilearn ships is
brain-only), so the brain mask is the template brain mask warped back onto the patient
after registering the head to the template (see ``register.template_brain_mask``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

MIN_ZERO_FRACTION = 0.3
MAX_BRAIN_ML = 2400.0


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean mask (empty stays empty)."""
    mask = np.asarray(mask, dtype=bool)
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray, slices: bool = False) -> np.ndarray:
    """3D hole filling; with ``slices``, also slice-wise along each axis (holes open on one side in 3D)."""
    out = binary_fill_holes(mask)
    for axis in range(3 if slices else 0):
        out = np.moveaxis(np.stack([binary_fill_holes(s) for s in np.moveaxis(out, axis, 0)]), 0, axis)
    return out


def binary_fill_holes(mask: np.ndarray) -> np.ndarray:
    """:func:`scipy.ndimage.binary_fill_holes` with its default connectivity, from the background's
    connected components: a component that touches no face of the array is a hole. The same mask
    (tested), in half the time on a 240 x 240 x 155 volume (0.18 s against 0.34 s): scipy grows the
    outside from the faces one voxel layer per pass."""
    mask = np.asarray(mask, dtype=bool)
    background, n = ndi.label(~mask)  # the default structure: face connectivity, scipy's too
    inside = np.ones(n + 1, dtype=bool)
    for axis in range(mask.ndim):
        for end in (0, -1):
            inside[np.take(background, end, axis=axis)] = False
    inside[0] = True  # the mask itself
    return inside[background]


def filled_foreground(data: np.ndarray) -> np.ndarray:
    """The non-zero voxels of ``data``, holes filled: what :func:`skull_strip_stats` measures and
    :func:`nonzero_brain_mask` keeps the largest component of (pass it to both: computed once)."""
    return fill_holes(np.asarray(data) != 0)


def skull_strip_stats(data: np.ndarray, voxel_mm3: float, filled: np.ndarray | None = None) -> dict:
    """The numbers :func:`is_skull_stripped` decides on: zero fraction and non-zero volume (ml).
    ``filled``: :func:`filled_foreground` of ``data`` when already computed."""
    data = np.asarray(data)
    filled = filled_foreground(data) if filled is None else filled
    return {"zero_fraction": float(1.0 - (data != 0).mean()),
            "foreground_ml": float(filled.sum() * voxel_mm3 / 1000.0)}


def is_skull_stripped(data: np.ndarray, voxel_mm3: float, stats: dict | None = None) -> bool:
    """True when the volume looks brain-extracted (exact-zero background, brain-sized foreground).
    ``stats``: :func:`skull_strip_stats` of ``data`` when already computed."""
    s = skull_strip_stats(data, voxel_mm3) if stats is None else stats
    return s["zero_fraction"] >= MIN_ZERO_FRACTION and s["foreground_ml"] <= MAX_BRAIN_ML


def nonzero_brain_mask(data: np.ndarray, filled: np.ndarray | None = None) -> np.ndarray:
    """Brain of a skull-stripped volume: non-zero voxels, holes filled, largest component.
    ``filled``: :func:`filled_foreground` of ``data`` when already computed."""
    return largest_component(filled_foreground(data) if filled is None else filled)


def head_mask(data: np.ndarray) -> np.ndarray:
    """Rough head (foreground) mask of a non-stripped volume: Otsu threshold, largest component, filled."""
    from skimage.filters import threshold_otsu

    data = np.asarray(data, dtype=np.float32)
    smooth = ndi.gaussian_filter(data, 1.0)
    values = smooth[np.isfinite(smooth)]
    if values.size == 0 or np.ptp(values) <= 0:
        return np.zeros(data.shape, dtype=bool)
    fg = smooth > threshold_otsu(values)
    fg = ndi.binary_opening(fg, iterations=1)
    return fill_holes(largest_component(fg), slices=True)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


__all__ = ["MAX_BRAIN_ML", "MIN_ZERO_FRACTION", "dice", "fill_holes", "filled_foreground", "head_mask",
           "is_skull_stripped", "largest_component", "nonzero_brain_mask", "skull_strip_stats"]
