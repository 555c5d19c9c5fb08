"""The patient's healthy tissue before the tumour is drawn: age-related atrophy of the
template tissue maps and the one pull-back warp (smooth random deformation of a few mm
plus the mass effect of the tumour), on the cropped MNI grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import ndimage as ndi

from gliotype.synthetic.anatomy import load_anatomy
from gliotype.synthetic.fields import STREAM_DEFORM, patient_rng, smooth_field


@dataclass
class Tissue:
    """Tissue maps of one patient on the cropped MNI grid, after atrophy and warp (float32)."""

    gm: np.ndarray
    wm: np.ndarray
    mask: np.ndarray  # brain mask (soft, after the warp)
    csf: np.ndarray  # mask - gm - wm, clipped to [0, 1]
    brain: np.ndarray  # bool, mask > 0.5
    fa_texture: np.ndarray | None  # the template's FA texture, warped (FA cases only)


def warped_tissue(row: Mapping, seed: int, key: tuple[int, ...], resolution: int, dx: np.ndarray,
                  r: np.ndarray, with_fa: bool = False) -> Tissue:
    """Atrophy then warp the template tissue maps for the patient of ``row``.

    ``dx`` (3, *crop_shape) is the MNI offset (mm) of every voxel from the tumour centre
    and ``r`` its norm: the mass effect pushes the tissue radially away from the centre.
    The random displacement comes from stream ``STREAM_DEFORM``.
    """
    an = load_anatomy(resolution)
    h = float(resolution)
    shape = an.crop_shape
    r_core = float(row["radius_core_mm"])

    # atrophy: GM and (less) WM next to CSF become CSF, more with age
    gm, wm, mask = an.gm.copy(), an.wm.copy(), an.mask
    a = float(row["atrophy"])
    if a > 0:
        csf0 = np.clip(mask - gm - wm, 0, 1)
        near = np.clip(2.0 * ndi.gaussian_filter(csf0, 1.5 / h, truncate=3.0), 0, 1)
        gm -= a * gm * near
        wm -= 0.3 * a * wm * near

    # pull-back warp: random smooth displacement + radial mass effect
    rng = patient_rng(seed, key, STREAM_DEFORM)
    amp = rng.uniform(1.5, 3.0)  # mm, per component
    disp = smooth_field(rng, shape, 20.0 / h, 3) * (amp / h)
    m = 0.3 * r_core
    L = r_core + 10.0
    push = (m / h) * np.tanh(r / (0.5 * r_core)) * np.exp(-0.5 * (r / L) ** 2) / np.maximum(r, 1e-3)
    coords = np.indices(shape, dtype=np.float32)
    coords -= disp
    coords -= push[None] * dx
    del disp, push

    def warp(vol):
        return ndi.map_coordinates(vol, coords, order=1, mode="constant", cval=0.0, output=np.float32)

    gm, wm, mask = warp(gm), warp(wm), warp(mask)
    fa_tex = warp(an.fa_texture) if with_fa else None
    del coords
    csf = np.clip(mask - gm - wm, 0, 1)
    return Tissue(gm, wm, mask, csf, mask > 0.5, fa_tex)


__all__ = ["Tissue", "warped_tissue"]
