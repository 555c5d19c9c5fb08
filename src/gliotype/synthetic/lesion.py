"""The tumour of one patient on its warped grid: geometry and compartments.

A lobulated, rough core around the tumour centre holds necrosis (inside), non-enhancing
tumour and an enhancing rim; edema spreads around it, farther along white matter (BraTS
labels 1, 2, 4). Everything is drawn inside a box around the centre whose size ignores
the latents, from stream ``STREAM_SHAPE``; the compartments also get soft
(partial-volume) weights that the sequences mix with the healthy tissue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import ndimage as ndi

from gliotype.synthetic.anatomy import load_anatomy
from gliotype.synthetic.fields import STREAM_SHAPE, gauss_noise, patient_rng
from gliotype.synthetic.warp import Tissue


def _fibonacci_sphere(n: int = 400) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


@dataclass
class Lesion:
    """The tumour of one patient: labels on the cropped grid, weights inside ``box``."""

    box: tuple[slice, ...]  # the part of the cropped grid the tumour is drawn in
    seg: np.ndarray  # uint8 BraTS labels on the cropped grid, 0 outside the brain
    weights: list[np.ndarray]  # in the box: shares of necrosis, non-enhancing, enhancing, edema (sum 1)
    W: np.ndarray  # in the box: partial-volume weight of the whole tumour (1 inside the mask)
    W_full: np.ndarray  # ``W`` on the cropped grid (0 outside the box)
    whole: np.ndarray  # float32 on the cropped grid: 1 in the whole tumour (core and edema)
    rho: np.ndarray  # in the box: distance to the centre / local core radius
    heterogeneity: np.ndarray  # in the box: unit smooth noise of the tumour intensities


def draw_lesion(row: Mapping, seed: int, key: tuple[int, ...], resolution: int, tissue: Tissue,
                dx: np.ndarray, r: np.ndarray) -> Lesion:
    """The tumour of the patient of ``row`` on the warped ``tissue``.

    ``dx`` (3, *crop_shape) is the MNI offset (mm) of every voxel from the tumour centre
    and ``r`` its norm (on the unwarped grid, like the mass effect).
    """
    an = load_anatomy(resolution)
    h = float(resolution)
    shape = an.crop_shape
    c = np.array([row["centre_x"], row["centre_y"], row["centre_z"]], dtype=np.float32)
    r_core = float(row["radius_core_mm"])
    brain, wm, csf = tissue.brain, tissue.wm, tissue.csf

    # the box, whose size ignores the latents
    half = 1.36 * r_core + 3.0 * 2.5 + float(row["edema_margin_mm"]) + 3.0 * 1.5 + 2 * h + 2.0
    cv = an.mm_to_crop_voxel(c)
    lo = np.maximum(np.floor(cv - half / h).astype(int), 0)
    hi = np.minimum(np.ceil(cv + half / h).astype(int) + 1, shape)
    box = tuple(slice(int(a_), int(b_)) for a_, b_ in zip(lo, hi))
    bshape = tuple(int(b_ - a_) for a_, b_ in zip(lo, hi))
    srng = patient_rng(seed, key, STREAM_SHAPE)
    dirs = srng.standard_normal((12, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    weights = srng.standard_normal(12)
    g_rough = np.clip(gauss_noise(srng, bshape, 2.0 / h), -2.5, 2.5)
    g_nec = gauss_noise(srng, bshape, 3.0 / h)
    g_enh = gauss_noise(srng, bshape, 3.0 / h)
    g_het = gauss_noise(srng, bshape, 2.0 / h)
    g_edema = np.clip(gauss_noise(srng, bshape, 4.0 / h), -2.5, 2.5)

    # lobulated, rough core: von Mises-Fisher lobes on the sphere of directions
    bdx = dx[(slice(None),) + box]
    bd = r[box]
    unit = bdx / np.maximum(bd, 1e-3)
    kappa = float(row["lobule_sharpness"])
    sphere = _fibonacci_sphere()
    f_ref = (weights * np.exp(kappa * (sphere @ dirs.T - 1))).sum(1)
    f = np.tensordot(weights, np.exp(kappa * (np.tensordot(dirs, unit, axes=(1, 0)) - 1)), axes=(0, 0))
    f = (f - f_ref.mean()) / (f_ref.std() + 1e-6)
    surf = r_core * (1 + float(row["lobulation"]) * np.tanh(f)) + float(row["roughness_mm"]) * g_rough
    surf = np.maximum(surf, 0.35 * r_core).astype(np.float32)
    bbrain = brain[box]
    core = (bd < surf) & bbrain
    ci = tuple(np.clip(np.rint(cv).astype(int) - lo, 0, np.array(bshape) - 1))
    if not core.any():  # cannot happen with radius >= 8 mm inside the brain; keep one voxel anyway
        core[ci] = True

    # compartments: necrosis inside, enhancing patches of the rim, non-enhancing rest; edema
    rho = bd / surf
    nec = core & (rho < float(row["necrosis_fraction"]) * (1 + 0.15 * g_nec))
    rim = core & ~nec
    enh = np.zeros_like(rim)
    if rim.any():
        thr = np.quantile(g_enh[rim], 1.0 - float(row["enhancing_fraction"]))
        enh = rim & (g_enh > thr)
    solid = rim & ~enh
    dist = ndi.distance_transform_edt(~core, sampling=h).astype(np.float32)
    bwm = wm[box]
    reach = float(row["edema_margin_mm"]) * (0.3 + 0.7 * np.clip(bwm * 1.2, 0, 1)) + 1.5 * g_edema
    edema = ~core & bbrain & (csf[box] < 0.6) & (dist < reach)
    whole = core | edema

    seg = np.zeros(shape, dtype=np.uint8)
    bseg = np.zeros(bshape, dtype=np.uint8)
    bseg[edema] = 2
    bseg[nec | solid] = 1
    bseg[enh] = 4
    seg[box] = bseg
    seg[~brain] = 0

    # soft (partial-volume) weights: exactly 1 inside the mask, fading over ~1 voxel outside
    sig = 0.6
    wts = [ndi.gaussian_filter(x.astype(np.float32), sig) for x in (nec, solid, enh, edema)]
    W = np.maximum(ndi.gaussian_filter(whole.astype(np.float32), sig), whole.astype(np.float32))
    W *= bbrain | whole
    wsum = np.maximum(sum(wts), 1e-6)
    wts = [w / wsum for w in wts]
    W_full = np.zeros(shape, np.float32)
    W_full[box] = W
    whole_full = np.zeros(shape, np.float32)
    whole_full[box] = whole
    return Lesion(box, seg, wts, W, W_full, whole_full, rho, g_het)


__all__ = ["Lesion", "draw_lesion"]
