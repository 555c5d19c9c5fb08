"""What the scanner sees: the four sequences and the FA map of one patient, and the site's
acquisition effects.

T1/T1c/T2/FLAIR come from the tissue classes with partial volume, changed by the
network phenotype (disrupted paths, infiltration), with the tumour compartments' own
intensities mixed in by their partial-volume weights (relative units, cropped MNI grid);
the FA map likewise for the self-supervised cases. ``acquire`` then applies the site
effects (scale, contrast, bias field, Rician noise) on the output grid and gives int16
images like scanners, zero outside the brain.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from gliotype.synthetic.anatomy import load_anatomy
from gliotype.synthetic.fields import (
    STREAM_ACQ,
    STREAM_FA,
    STREAM_TEXTURE,
    gauss_noise,
    patient_rng,
    skip_smooth_field,
)
from gliotype.synthetic.lesion import Lesion
from gliotype.synthetic.warp import Tissue

SEQUENCES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
#: Tissue intensities (csf, gm, wm), relative units; T1: WM > GM > CSF, T2: CSF > GM > WM,
#: FLAIR: GM > WM > CSF (suppressed fluid).
TISSUE: dict[str, tuple[float, float, float]] = {
    "t1": (0.30, 0.72, 1.00),
    "t1ce": (0.32, 0.74, 1.00),
    "t2": (1.00, 0.45, 0.32),
    "flair": (0.10, 0.62, 0.48),
}
#: Lesion intensities (necrosis, non-enhancing tumour, enhancing tumour, edema).
#: T1c of the enhancing part is 0.62 + enhancement_gain; FLAIR of the non-enhancing
#: tumour is suppressed by the T2-FLAIR mismatch (see ``contrasts``).
LESION: dict[str, tuple[float, float, float, float]] = {
    "t1": (0.28, 0.56, 0.60, 0.66),
    "t1ce": (0.30, 0.60, 0.62, 0.68),
    "t2": (0.95, 0.78, 0.62, 0.74),
    "flair": (0.50, 0.90, 0.80, 0.95),
}
#: Disrupted-path effect on the white-matter signal at path field 1 (FA: -25 %).
PATH_WM = {"t1": -0.05, "t1ce": -0.05, "t2": 0.10, "flair": 0.10}
PATH_FA = 0.25
#: Infiltration moves the signal this far towards edema (and lowers FA by half).
INFILTRATION_MIX = 0.4
INFILTRATION_FA = 0.5
#: Intensity (int16 units) of relative level 1.0 before the site scale.
BASE_LEVEL = {"t1": 900.0, "t1ce": 1000.0, "t2": 1400.0, "flair": 1000.0}


def contrasts(row: Mapping, seed: int, key: tuple[int, ...], resolution: int, tissue: Tissue,
              lesion: Lesion, infil: np.ndarray, paths: np.ndarray) -> dict[str, np.ndarray]:
    """T1/T1c/T2/FLAIR of the patient on the cropped MNI grid (relative units, float32).

    Healthy signal: tissue classes with partial volume, white matter changed by the
    ``paths`` field, moved towards edema by ``infil``, a fine texture (stream
    ``STREAM_TEXTURE``); the tumour compartments mixed in by their weights, with the
    enhancement gain (T1c) and the T2-FLAIR mismatch of the phenotype; zero outside the mask.
    """
    h = float(resolution)
    shape = load_anatomy(resolution).crop_shape
    csf, gm, wm, mask = tissue.csf, tissue.gm, tissue.wm, tissue.mask
    box, wts, W = lesion.box, lesion.weights, lesion.W
    trng = patient_rng(seed, key, STREAM_TEXTURE)
    skip_smooth_field(trng, shape, 12.0 / h, 1)
    fine = gauss_noise(trng, shape, 1.0)

    images = {}
    mism = float(row["mismatch"])
    gain = float(row["enhancement_gain"])
    rimw = np.clip((lesion.rho - 0.7) / 0.3, 0, 1)
    het = 1 + 0.06 * lesion.heterogeneity
    for q in SEQUENCES:
        C, G, Wm = TISSUE[q]
        base = csf * C + gm * G + wm * Wm * (1 + PATH_WM[q] * paths)
        base += INFILTRATION_MIX * infil * (LESION[q][3] - base)
        base *= 1 + 0.025 * fine
        v_nec, v_solid, v_enh, v_ed = LESION[q]
        if q == "t1ce":
            v_enh = 0.62 + gain
        if q == "flair":
            v_solid = 0.9 * (1 - 0.65 * mism * (1 - rimw))
        if q == "t2":
            v_solid = 0.78 + 0.14 * mism
        tumour = (wts[0] * v_nec + wts[1] * v_solid + wts[2] * v_enh + wts[3] * v_ed) * het
        bb = base[box]
        base[box] = (1 - W) * bb + W * tumour
        base *= mask
        images[q] = base.astype(np.float32)
    return images


def fa_map(seed: int, key: tuple[int, ...], tissue: Tissue, lesion: Lesion, infil: np.ndarray,
           paths: np.ndarray) -> np.ndarray:
    """The FA map of the patient on the cropped MNI grid (float32 in [0, 1], 0 outside the brain).

    Healthy FA from the tissue classes and the warped FA texture, lowered by the ``paths``
    field and by ``infil``; the tumour compartments mixed in; Gaussian noise (stream
    ``STREAM_FA``). ``tissue`` must hold the FA texture (``with_fa``).
    """
    csf, gm, wm, brain, fa_tex = tissue.csf, tissue.gm, tissue.wm, tissue.brain, tissue.fa_texture
    box, wts, W = lesion.box, lesion.weights, lesion.W
    shape = tissue.mask.shape
    frng = patient_rng(seed, key, STREAM_FA)
    wmc = np.clip(wm, 0, 1)
    fa0 = csf * 0.06 + gm * 0.17 + wmc * (0.45 + 0.25 * wmc**2) * np.clip(1 + 0.18 * fa_tex, 0.5, 1.5)
    fa = fa0 * (1 - PATH_FA * paths) * (1 - INFILTRATION_FA * infil)
    tumour = wts[0] * 0.05 + wts[1] * 0.10 + wts[2] * 0.12 + wts[3] * 0.55 * fa0[box]
    fa[box] = (1 - W) * fa[box] + W * tumour
    fa = fa + frng.normal(0.0, 0.015, shape).astype(np.float32)
    return (np.clip(fa, 0.0, 1.0) * brain).astype(np.float32)


def acquire(images: dict[str, np.ndarray], mask: np.ndarray, site: Mapping, seed: int,
            key: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Site effects on the output grid: per-sequence scale and contrast exponent, smooth
    quadratic bias field, Rician noise; int16 with background 0 and the brain >= 1."""
    rng = patient_rng(seed, key, STREAM_ACQ)
    shape = mask.shape
    brain = mask > 0.5
    axes = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    basis = [x, y, z, x * x, y * y, z * z, x * y, y * z, x * z]
    out = {}
    for q in SEQUENCES:
        coef = rng.standard_normal(len(basis)).astype(np.float32)
        poly = sum(cf * b for cf, b in zip(coef, basis))
        poly = np.broadcast_to(poly, shape)
        pb = poly[brain]
        poly = (poly - pb.mean()) / (pb.std() + 1e-6)
        level = BASE_LEVEL[q] * float(site[f"scale_{q}"])
        sigma = float(site["noise"]) * level
        v = np.power(np.clip(images[q], 0, None), float(site[f"gamma_{q}"]), dtype=np.float32)
        v *= np.exp(float(site["bias"]) * poly, dtype=np.float32) * level
        n1 = rng.standard_normal(shape, dtype=np.float32)
        n2 = rng.standard_normal(shape, dtype=np.float32)
        v = np.sqrt((v + sigma * n1) ** 2 + (sigma * n2) ** 2)
        v = np.clip(np.rint(v), 1, 32767)
        v[~brain] = 0
        out[q] = v.astype(np.int16)
    return out


__all__ = [
    "BASE_LEVEL",
    "INFILTRATION_FA",
    "INFILTRATION_MIX",
    "LESION",
    "PATH_FA",
    "PATH_WM",
    "SEQUENCES",
    "TISSUE",
    "acquire",
    "contrasts",
    "fa_map",
]
