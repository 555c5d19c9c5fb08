"""Sanity checks of an automatic tumour mask, each one clear line.

An automatic mask is refused (a :class:`~gliotype.errors.CaseError` naming the patient and
the segmenter) when:

- it is empty: "the segmenter found no tumour";
- its tumour is smaller than :data:`MIN_TUMOR_ML` (0.5 ml: a few voxels of noise, not a
  glioma; the smallest BraTS whole tumours are a few ml);
- its tumour is larger than :data:`MAX_TUMOR_ML` (300 ml: above the largest BraTS whole
  tumours, ~250 ml) or than :data:`MAX_BRAIN_FRACTION` (50%) of the brain (the non-zero
  part of a skull-stripped T1c, else its head mask): a segmenter that labelled the brain.

It is kept with a warning when it has edema only (no necrotic core and no enhancing
tumour: the segmenter found no core at all) or a core without enhancing tumour (usual in
lower-grade gliomas, so only worth a look). :func:`mask_volumes` counts the labels for
``prediction.json``.
"""

from __future__ import annotations

import numpy as np

from gliotype.errors import CaseError
from gliotype.segmentation.labels import EDEMA, NECROTIC

#: Smallest automatic tumour accepted (ml).
MIN_TUMOR_ML = 0.5
#: Largest automatic tumour accepted (ml).
MAX_TUMOR_ML = 300.0
#: Largest share of the brain an automatic tumour may take.
MAX_BRAIN_FRACTION = 0.5
#: The names of the labels in ``volumes_ml`` (3 and 4 are both enhancing tumour).
LABEL_NAMES = {NECROTIC: "necrotic_core", EDEMA: "edema", 3: "enhancing", 4: "enhancing"}


def mask_volumes(labels: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Volume (ml) of each label and of the whole tumour, 3 decimals."""
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=5)
    out = {name: 0.0 for name in ("necrotic_core", "edema", "enhancing")}
    for label, name in LABEL_NAMES.items():
        out[name] += float(counts[label]) * voxel_ml
    out["whole_tumor"] = float(counts[1:].sum()) * voxel_ml
    return {k: round(v, 3) for k, v in out.items()}


def check_mask(labels: np.ndarray, voxel_ml: float, brain_ml: float | None, patient_id: str,
               segmenter: str) -> list[str]:
    """Refuse an absurd automatic mask (module doc); returns the warnings of a kept one."""
    labels = np.asarray(labels)
    tumor_ml = float(np.count_nonzero(labels)) * voxel_ml
    who = f"segmenter {segmenter}"
    if tumor_ml == 0:
        raise CaseError(patient_id, None, f"the segmenter found no tumour ({who}); check the images or give --mask")
    if tumor_ml < MIN_TUMOR_ML:
        raise CaseError(patient_id, None, f"the segmenter found only {tumor_ml:.2f} ml of tumour, below "
                                          f"{MIN_TUMOR_ML:g} ml ({who}); check the images or give --mask")
    if tumor_ml > MAX_TUMOR_ML:
        raise CaseError(patient_id, None, f"the segmenter found {tumor_ml:.0f} ml of tumour, above {MAX_TUMOR_ML:g} ml "
                                          f"({who}); check the images or give --mask")
    if brain_ml and tumor_ml > MAX_BRAIN_FRACTION * brain_ml:
        raise CaseError(patient_id, None, f"the segmenter labelled {100 * tumor_ml / brain_ml:.0f}% of the brain as "
                                          f"tumour, above {100 * MAX_BRAIN_FRACTION:.0f}% ({who}); check the images "
                                          "or give --mask")
    present = set(np.unique(labels).tolist())
    enhancing = bool(present & {3, 4})
    warnings = []
    if not enhancing and NECROTIC not in present:
        warnings.append(f"the segmenter found edema only: no necrotic core and no enhancing tumour ({who}); "
                        "check the mask")
    elif not enhancing:
        warnings.append(f"the segmenter found no enhancing tumour ({who}); usual in lower-grade gliomas, "
                        "check the mask")
    return warnings


__all__ = ["LABEL_NAMES", "MAX_BRAIN_FRACTION", "MAX_TUMOR_ML", "MIN_TUMOR_ML", "check_mask", "mask_volumes"]
