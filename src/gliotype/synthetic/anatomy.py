"""Anatomy for the generator: the ICBM152 2009 template, the AAL regions and the tumour location groups.

The template (``gliotype.atlases.load_template``) gives the tissue probability maps;
the AAL atlas (the 90 cerebral regions the brain network of paper section 3.2 is built
on) gives the region groups the tumour location is drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from gliotype.atlases import aal_names, aal_path, load_template, resample_labels  # noqa: F401  (aal_names re-exported)

#: Location group 1 (IDH-mutant-like): frontal lobe (AAL 1-28) and insula (29, 30).
FRONTAL_INSULAR = tuple(range(1, 31))
#: Location group 0 (wild-type-like): temporal (79-90) with the mesial temporal
#: structures (37-42), parietal (57-70) and deep grey (caudate .. thalamus, 71-78).
TEMPORAL_PARIETAL_DEEP = tuple(range(37, 43)) + tuple(range(57, 91))
#: The 90 cerebral AAL regions (the nodes of the paper's brain network).
CEREBRAL_REGIONS = tuple(range(1, 91))
#: The tumour centre keeps this distance (mm) from the brain surface.
MIN_CENTRE_DEPTH_MM = 15.0
#: The brain is processed in its bounding box padded by this margin (mm).
CROP_MARGIN_MM = 8.0


@dataclass(frozen=True)
class Anatomy:
    """Template maps cropped to the brain bounding box, plus grid helpers (one resolution)."""

    resolution: int
    affine: np.ndarray  # full template grid
    shape: tuple[int, int, int]  # full template grid
    crop: tuple[slice, slice, slice]
    gm: np.ndarray  # cropped, float32
    wm: np.ndarray
    mask: np.ndarray
    t1: np.ndarray
    fa_texture: np.ndarray  # fixed, anatomical FA texture (unit std), cropped

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        return tuple(self.gm.shape)  # type: ignore[return-value]

    @property
    def crop_offset(self) -> np.ndarray:
        return np.array([s.start for s in self.crop], dtype=np.float64)

    def mm_to_crop_voxel(self, mm) -> np.ndarray:
        """MNI millimetres -> (fractional) voxel index in the cropped grid."""
        mm = np.asarray(mm, dtype=np.float64)
        vox = np.linalg.inv(self.affine) @ np.append(mm, 1.0)
        return vox[:3] - self.crop_offset


@lru_cache(maxsize=2)
def load_anatomy(resolution: int = 2) -> Anatomy:
    """Template tissue maps at ``resolution`` mm, cropped to the padded brain bounding box."""
    tpl = load_template(resolution)
    pad = int(np.ceil(CROP_MARGIN_MM / resolution))
    idx = np.argwhere(tpl.brain_mask > 0.5)
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, tpl.shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    mask = tpl.brain_mask[crop].astype(np.float32)
    gm = (tpl.gm[crop] * mask).astype(np.float32)
    wm = (tpl.wm[crop] * mask).astype(np.float32)
    s = gm + wm
    over = s > 1.0
    gm[over] /= s[over]
    wm[over] /= s[over]
    # A fixed (not per-patient) texture of white-matter anisotropy: coherent over ~4 mm.
    rng = np.random.default_rng(20230601)
    tex = ndi.gaussian_filter(rng.standard_normal(mask.shape).astype(np.float32), 4.0 / resolution)
    tex /= float(tex[mask > 0].std()) + 1e-6
    out = Anatomy(resolution, tpl.affine.copy(), tpl.shape, crop, gm, wm, mask,
                  (tpl.t1[crop] * mask).astype(np.float32), tex.astype(np.float32))
    for a in (out.gm, out.wm, out.mask, out.t1, out.fa_texture):
        a.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def _cerebral_label_of_name() -> dict[str, int]:
    names = aal_names()
    return {names[k]: k for k in CEREBRAL_REGIONS}


def cerebral_label(name: str) -> int:
    """AAL label (1 .. 90) of a cerebral region name, e.g. ``"Frontal_Sup_L"`` -> 3."""
    try:
        return _cerebral_label_of_name()[name]
    except KeyError:
        raise ValueError(f"{name!r} is not one of the 90 cerebral AAL regions") from None


@dataclass(frozen=True)
class LocationAtlas:
    """Candidate tumour centres of the two location groups on the 2 mm template grid."""

    affine: np.ndarray
    nearest_label: np.ndarray  # full 2 mm grid: AAL label nearest to each brain voxel (0 outside)
    candidates: dict[int, np.ndarray]  # group -> (n, 3) MNI mm of candidate centres
    depth: dict[int, np.ndarray]  # group -> (n,) distance to the brain surface, mm
    label: dict[int, np.ndarray]  # group -> (n,) AAL label of the candidate
    centroids: np.ndarray  # (90, 3) MNI mm: centroid of the AAL voxels of region 1 .. 90

    def group_of_label(self, label: int) -> int:
        if label in FRONTAL_INSULAR:
            return 1
        if label in TEMPORAL_PARIETAL_DEEP:
            return 0
        return -1

    def label_at_mm(self, mm) -> int:
        """AAL label nearest to the MNI point ``mm`` (0 outside the brain)."""
        vox = np.rint(np.linalg.inv(self.affine) @ np.append(np.asarray(mm, float), 1.0))[:3].astype(int)
        if np.any(vox < 0) or np.any(vox >= self.nearest_label.shape):
            return 0
        return int(self.nearest_label[tuple(vox)])

    def group_at_mm(self, mm) -> int:
        """Location group (1 frontal/insular, 0 temporal/parietal/deep, -1 other) of an MNI point."""
        return self.group_of_label(self.label_at_mm(mm))


@lru_cache(maxsize=1)
def location_atlas() -> LocationAtlas:
    """Every brain voxel takes the label of its nearest AAL region (so white matter belongs to
    the lobe it underlies); centres are voxels at least ``MIN_CENTRE_DEPTH_MM`` deep whose
    nearest region is in one of the two groups. Region centroids (the targets of the
    network phenotype's paths) are those of the AAL voxels themselves. Always on the 2 mm
    grid, so a seed gives the same patients at 1 and 2 mm."""
    tpl = load_template(2)
    aal = resample_labels(nib.load(aal_path()), tpl.shape, tpl.affine)
    brain = tpl.brain_mask > 0.5
    _, inds = ndi.distance_transform_edt(aal == 0, return_indices=True)
    nearest = aal[tuple(inds)].astype(np.int16)
    nearest[~brain] = 0
    depth = ndi.distance_transform_edt(brain, sampling=2.0).astype(np.float32)
    csf = tpl.csf
    ok = brain & (depth >= MIN_CENTRE_DEPTH_MM) & (csf < 0.5)
    cands, depths, labels = {}, {}, {}
    ijk1 = None
    for group, members in ((1, FRONTAL_INSULAR), (0, TEMPORAL_PARIETAL_DEEP)):
        sel = ok & np.isin(nearest, members)
        ijk = np.argwhere(sel)  # C order: deterministic
        ijk1 = np.c_[ijk, np.ones(len(ijk))]
        cands[group] = (ijk1 @ tpl.affine.T)[:, :3].astype(np.float64)
        depths[group] = depth[sel].astype(np.float64)
        labels[group] = nearest[sel].astype(np.int64)
    del ijk1
    com = ndi.center_of_mass(np.ones(aal.shape, np.float32), aal, CEREBRAL_REGIONS)
    centroids = (np.c_[np.asarray(com, np.float64), np.ones(len(com))] @ tpl.affine.T)[:, :3]
    centroids.setflags(write=False)
    return LocationAtlas(tpl.affine.copy(), nearest, cands, depths, labels, centroids)
