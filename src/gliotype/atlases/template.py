"""The ICBM152 2009 template (T1, GM, WM, brain mask) shipped inside nilearn.

Paper section 4.2 registers every patient to the MNI152 2 mm template; nilearn
ships the ICBM152 2009 (nonlinear, symmetric) version, which needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import nibabel as nib
import numpy as np


@dataclass(frozen=True)
class Template:
    """Template volumes on one grid (float32 arrays, RAS+ affine in millimetres)."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.t1.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> float:
        return float(abs(self.affine[0, 0]))

    @property
    def csf(self) -> np.ndarray:
        """CSF probability inside the brain mask: what GM and WM leave."""
        return np.clip(self.brain_mask - self.gm - self.wm, 0.0, 1.0).astype(np.float32)

    def image(self, data: np.ndarray, dtype=np.float32) -> nib.Nifti1Image:
        """Wrap an array on this grid as a NIfTI image."""
        return nib.Nifti1Image(np.asarray(data, dtype=dtype), self.affine)


@lru_cache(maxsize=4)
def load_template(resolution: int = 2) -> Template:
    """Load the ICBM152 2009 template at ``resolution`` mm (1 or 2), from nilearn's package data."""
    if resolution not in (1, 2):
        raise ValueError(f"resolution must be 1 or 2 mm, got {resolution}")
    from nilearn import datasets

    def arr(img):
        return np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)

    t1 = datasets.load_mni152_template(resolution=resolution)
    gm = datasets.load_mni152_gm_template(resolution=resolution)
    wm = datasets.load_mni152_wm_template(resolution=resolution)
    mask = datasets.load_mni152_brain_mask(resolution=resolution)
    out = Template(
        t1=arr(t1),
        gm=np.clip(arr(gm), 0, 1),
        wm=np.clip(arr(wm), 0, 1),
        brain_mask=(arr(mask) > 0.5).astype(np.float32),
        affine=np.asarray(t1.affine, dtype=np.float64),
    )
    for a in (out.t1, out.gm, out.wm, out.brain_mask):
        a.setflags(write=False)
    return out
