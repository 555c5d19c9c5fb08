"""Rendering one patient: a pure function of its phenotype row, its seed and the template.

Order of operations (all float32, scipy.ndimage, no per-voxel Python loops):

1. age-related atrophy of the template tissue maps (GM and periventricular WM -> CSF);
2. one pull-back warp: smooth random deformation (a few mm) + mass effect of the tumour;
3. the tumour on the warped grid: lobulated core (necrosis, non-enhancing, enhancing
   rim), edema spreading preferentially along white matter (BraTS labels 1, 2, 4);
4. the network phenotype outside the mask: infiltration diffusing along white matter
   from the lesion, and disrupted paths: white-matter tubes along straight segments from
   the tumour centre to the centroids of K AAL regions, fading with the distance from
   the lesion (``path_field``);
5. T1/T1c/T2/FLAIR from tissue classes with partial volume, tumour intensities mixed in;
6. site effects (scale, contrast, bias field, Rician noise) on the output grid (MNI or
   the patient's own native grid), int16 like scanners, zero outside the brain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np
from scipy import ndimage as ndi

from gliotype.synthetic.anatomy import CEREBRAL_REGIONS, Anatomy, cerebral_label, load_anatomy, location_atlas

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
#: tumour is suppressed by the T2-FLAIR mismatch (see ``_lesion_values``).
LESION: dict[str, tuple[float, float, float, float]] = {
    "t1": (0.28, 0.56, 0.60, 0.66),
    "t1ce": (0.30, 0.60, 0.62, 0.68),
    "t2": (0.95, 0.78, 0.62, 0.74),
    "flair": (0.50, 0.90, 0.80, 0.95),
}
#: Disrupted-path effect on the white-matter signal at path field 1 (FA: -25 %).
PATH_WM = {"t1": -0.05, "t1ce": -0.05, "t2": 0.10, "flair": 0.10}
PATH_FA = 0.25
#: A path is kept where the patient's white-matter probability exceeds this value and
#: blurred into a tube of this Gaussian sigma (mm).
PATH_WM_THRESHOLD = 0.3
PATH_SIGMA_MM = 2.0
#: Infiltration moves the signal this far towards edema (and lowers FA by half).
INFILTRATION_MIX = 0.4
INFILTRATION_FA = 0.5
#: Intensity (int16 units) of relative level 1.0 before the site scale.
BASE_LEVEL = {"t1": 900.0, "t1ce": 1000.0, "t2": 1400.0, "flair": 1000.0}


def patient_rng(seed: int, key: tuple[int, ...], component: int) -> np.random.Generator:
    """Independent stream ``component`` of the patient with spawn key ``key``.

    ``SeedSequence(seed).spawn(n)[i]`` has spawn key ``(i,)``; its own children are
    ``(i, c)``. Each part of the renderer has its own stream, so changing one latent
    leaves every random field of the patient unchanged.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key) + (component,)))


_DEFORM, _SHAPE, _TEXTURE, _ACQ, _FA, _PATHS = range(6)


@lru_cache(maxsize=2)
def _grid_mm(resolution: int) -> np.ndarray:
    """MNI millimetres of every voxel of the cropped grid, (3, *crop_shape) float32."""
    an = load_anatomy(resolution)
    assert np.allclose(an.affine[:3, :3], np.diag(np.diag(an.affine[:3, :3]))), "template affine must be diagonal"
    axes = [an.affine[j, 3] + an.affine[j, j] * (np.arange(s.start, s.stop, dtype=np.float64))
            for j, s in enumerate(an.crop)]
    g = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    g.setflags(write=False)
    return g


def smooth_field(rng: np.random.Generator, shape, spacing_vox: float, n: int = 1) -> np.ndarray:
    """``n`` smooth random fields on ``shape``: cubic interpolation of white noise on a
    control grid ``spacing_vox`` voxels apart (about unit standard deviation)."""
    coarse = [int(math.ceil(s / spacing_vox)) + 3 for s in shape]
    noise = rng.standard_normal((n, *coarse)).astype(np.float32)
    zoom = [s / c for s, c in zip(shape, coarse)]
    out = np.stack([ndi.zoom(noise[j], zoom, order=3, mode="nearest", grid_mode=False) for j in range(n)])
    assert out.shape[1:] == tuple(shape)
    return out


def _skip_smooth_field(rng: np.random.Generator, shape, spacing_vox: float, n: int = 1) -> None:
    """Advance ``rng`` exactly as ``smooth_field`` would, without computing the field (the
    texture stream keeps the draws of generator version 1, whose remote field used them)."""
    rng.standard_normal((n, *[int(math.ceil(s / spacing_vox)) + 3 for s in shape]))


def _gauss_noise(rng: np.random.Generator, shape, sigma_vox: float) -> np.ndarray:
    """White noise smoothed by a Gaussian, rescaled to unit standard deviation."""
    f = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox, truncate=3.0)
    return f / (float(f.std()) + 1e-6)


def _fibonacci_sphere(n: int = 400) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


@dataclass
class Rendered:
    """One patient on the cropped MNI grid, before acquisition effects."""

    images: dict[str, np.ndarray]  # relative intensities, float32
    seg: np.ndarray  # uint8, BraTS labels
    mask: np.ndarray  # float32 brain mask after deformation
    fa: np.ndarray | None
    infiltration: np.ndarray  # network phenotype outside the mask (for inspection / tests)
    paths: np.ndarray  # disrupted-path field (``path_field``)


def path_targets(row: Mapping, seed: int, key: tuple[int, ...]) -> np.ndarray:
    """(K, 3) MNI mm: centroids of the AAL regions the patient's disrupted paths lead to.

    Candidates are the 90 cerebral AAL regions but the one of the tumour centre
    (``location_region``), in a per-patient random order (stream ``_PATHS``, independent
    of the latent); the first K = ``paths_involved`` are involved, so a larger K involves
    a superset.
    """
    own = cerebral_label(str(row["location_region"]))
    labels = np.array([r for r in CEREBRAL_REGIONS if r != own])
    order = patient_rng(seed, key, _PATHS).permutation(len(labels))
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


def render_patient(row: Mapping, seed: int, key: tuple[int, ...], resolution: int = 2,
                   with_fa: bool = False) -> Rendered:
    """Render the anatomy, tumour and network phenotype of one patient (cropped MNI grid).

    ``row`` holds the phenotype of ``sample_phenotypes`` (latent-derived parameters,
    centre, radius, atrophy); ``(seed, key)`` seed the patient's random fields.
    """
    an: Anatomy = load_anatomy(resolution)
    h = float(resolution)
    shape = an.crop_shape
    X = _grid_mm(resolution)
    c = np.array([row["centre_x"], row["centre_y"], row["centre_z"]], dtype=np.float32)
    r_core = float(row["radius_core_mm"])

    # 1. atrophy: GM and (less) WM next to CSF become CSF, more with age
    gm, wm, mask = an.gm.copy(), an.wm.copy(), an.mask
    a = float(row["atrophy"])
    if a > 0:
        csf0 = np.clip(mask - gm - wm, 0, 1)
        near = np.clip(2.0 * ndi.gaussian_filter(csf0, 1.5 / h, truncate=3.0), 0, 1)
        gm -= a * gm * near
        wm -= 0.3 * a * wm * near

    # 2. pull-back warp: random smooth displacement + radial mass effect
    rng = patient_rng(seed, key, _DEFORM)
    amp = rng.uniform(1.5, 3.0)  # mm, per component
    disp = smooth_field(rng, shape, 20.0 / h, 3) * (amp / h)
    dx = X - c[:, None, None, None]
    r = np.sqrt((dx * dx).sum(0))
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
    brain = mask > 0.5

    # 3. tumour on the warped grid, inside a box whose size ignores the latents
    half = 1.36 * r_core + 3.0 * 2.5 + float(row["edema_margin_mm"]) + 3.0 * 1.5 + 2 * h + 2.0
    cv = an.mm_to_crop_voxel(c)
    lo = np.maximum(np.floor(cv - half / h).astype(int), 0)
    hi = np.minimum(np.ceil(cv + half / h).astype(int) + 1, shape)
    box = tuple(slice(int(a_), int(b_)) for a_, b_ in zip(lo, hi))
    bshape = tuple(int(b_ - a_) for a_, b_ in zip(lo, hi))
    srng = patient_rng(seed, key, _SHAPE)
    dirs = srng.standard_normal((12, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    weights = srng.standard_normal(12)
    g_rough = np.clip(_gauss_noise(srng, bshape, 2.0 / h), -2.5, 2.5)
    g_nec = _gauss_noise(srng, bshape, 3.0 / h)
    g_enh = _gauss_noise(srng, bshape, 3.0 / h)
    g_het = _gauss_noise(srng, bshape, 2.0 / h)
    g_edema = np.clip(_gauss_noise(srng, bshape, 4.0 / h), -2.5, 2.5)

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

    # soft (partial-volume) weights: exactly 1 inside the mask, fading over ~1 voxel outside
    sig = 0.6
    wts = [ndi.gaussian_filter(x.astype(np.float32), sig) for x in (nec, solid, enh, edema)]
    W = np.maximum(ndi.gaussian_filter(whole.astype(np.float32), sig), whole.astype(np.float32))
    W *= bbrain | whole
    wsum = np.maximum(sum(wts), 1e-6)
    wts = [w / wsum for w in wts]
    W_full = np.zeros(shape, np.float32)
    W_full[box] = W

    # 4. network phenotype, outside the mask only
    whole_full = np.zeros(shape, np.float32)
    whole_full[box] = whole
    wmw = np.clip(wm, 0, 1) ** 2
    fld = whole_full.copy()
    step = float(row["infiltration_mm"]) / h / 2.0
    for _ in range(4):
        fld = np.maximum(whole_full, ndi.gaussian_filter(fld, step, truncate=3.0) * wmw)
    infil = (float(row["infiltration_amplitude"]) * fld * (1.0 - W_full)).astype(np.float32)
    del fld, wmw
    paths = path_field(row, seed, key, resolution, wm, whole_full > 0, 1.0 - W_full)
    trng = patient_rng(seed, key, _TEXTURE)
    _skip_smooth_field(trng, shape, 12.0 / h, 1)
    fine = _gauss_noise(trng, shape, 1.0)

    # 5. contrasts
    images = {}
    mism = float(row["mismatch"])
    gain = float(row["enhancement_gain"])
    rimw = np.clip((rho - 0.7) / 0.3, 0, 1)
    het = 1 + 0.06 * g_het
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
        lesion = (wts[0] * v_nec + wts[1] * v_solid + wts[2] * v_enh + wts[3] * v_ed) * het
        bb = base[box]
        base[box] = (1 - W) * bb + W * lesion
        base *= mask
        images[q] = base.astype(np.float32)

    fa = None
    if with_fa:
        frng = patient_rng(seed, key, _FA)
        wmc = np.clip(wm, 0, 1)
        fa0 = csf * 0.06 + gm * 0.17 + wmc * (0.45 + 0.25 * wmc**2) * np.clip(1 + 0.18 * fa_tex, 0.5, 1.5)
        fa = fa0 * (1 - PATH_FA * paths) * (1 - INFILTRATION_FA * infil)
        lesion = wts[0] * 0.05 + wts[1] * 0.10 + wts[2] * 0.12 + wts[3] * 0.55 * fa0[box]
        fa[box] = (1 - W) * fa[box] + W * lesion
        fa = fa + frng.normal(0.0, 0.015, shape).astype(np.float32)
        fa = (np.clip(fa, 0.0, 1.0) * brain).astype(np.float32)
    seg[~brain] = 0
    return Rendered(images, seg, mask.astype(np.float32), fa, infil, paths)


# --------------------------------------------------------------------------- output grid

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


def acquire(images: dict[str, np.ndarray], mask: np.ndarray, site: Mapping, seed: int,
            key: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Site effects on the output grid: per-sequence scale and contrast exponent, smooth
    quadratic bias field, Rician noise; int16 with background 0 and the brain >= 1."""
    rng = patient_rng(seed, key, _ACQ)
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
