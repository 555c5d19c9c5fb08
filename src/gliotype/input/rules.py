"""The rules every patient's input obeys, wherever it is read: the patient ID and the tumor mask.

One function each, one message each, used by the cohort validator
(:func:`gliotype.input.validate_case`), by ``gliotype predict`` and by preprocessing:

- :func:`check_patient_id`: the ID names the patient's folders, so it must be a
  usable folder name;
- :func:`check_tumor_mask`: finite, integer, known labels (:data:`KNOWN_LABELS`), not
  empty; returns the labels as uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gliotype.errors import CaseError, GliotypeError

#: Tumor mask labels: BraTS 1 necrotic/non-enhancing core, 2 edema, 4 enhancing
#: (3 is the enhancing label of BraTS 2023 and the old non-enhancing label). Kept as they are.
KNOWN_LABELS = frozenset({0, 1, 2, 3, 4})
#: Longest patient ID (it names folders and appears in every table and report).
MAX_ID_LENGTH = 64
#: A mask voxel farther than this from an integer is not a label.
LABEL_TOLERANCE = 1e-3


def check_patient_id(patient_id) -> str:
    """The patient ID, stripped of surrounding spaces, when it can name the patient's folder.

    It must be non-empty, printable, at most :data:`MAX_ID_LENGTH` characters, without
    ``/`` or ``\\`` and not ``.`` or ``..``; otherwise a :class:`GliotypeError`
    (``invalid patient id ...``).
    """
    pid = "" if patient_id is None else str(patient_id).strip()
    if (not pid or pid in (".", "..") or any(c in pid for c in "/\\") or not pid.isprintable()
            or len(pid) > MAX_ID_LENGTH):
        raise GliotypeError(f"invalid patient id {pid[:MAX_ID_LENGTH]!r}: it names the patient's folder, so use "
                            f"1 to {MAX_ID_LENGTH} printable characters without '/' or '\\' (not '.' or '..'), "
                            "e.g. letters, digits, '-', '_' and '.'")
    return pid


def check_tumor_mask(mask, patient_id: str | None, path: str | Path | None) -> np.ndarray:
    """The tumor mask as uint8 labels, or a one-line :class:`CaseError` naming the patient and ``path``.

    ``mask``: the voxels (an array) or a nibabel image. A problem: NaN or infinite
    values, values farther than :data:`LABEL_TOLERANCE` from an integer, labels outside
    :data:`KNOWN_LABELS`, no tumor voxel.
    """
    raw = np.asanyarray(mask.dataobj if hasattr(mask, "dataobj") else mask)
    if np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_:
        rounded = raw
    else:
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        if bad:
            raise CaseError(patient_id, path, f"mask has {bad} NaN or infinite voxels")
        rounded = np.rint(raw)
        if np.any(np.abs(raw - rounded) > LABEL_TOLERANCE):
            raise CaseError(patient_id, path, "mask has non-integer values (expected labels 0, 1, 2, 3, 4)")
    values = np.unique(rounded).astype(np.int64)
    unknown = [int(v) for v in values if v not in KNOWN_LABELS]
    if unknown:
        shown = ", ".join(str(v) for v in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise CaseError(patient_id, path, f"mask has unknown label values {shown} (expected 0, 1, 2, 3, 4)")
    if not np.any(values > 0):
        raise CaseError(patient_id, path, "mask is empty (no tumor voxel)")
    return rounded.astype(np.uint8)


__all__ = ["KNOWN_LABELS", "MAX_ID_LENGTH", "check_patient_id", "check_tumor_mask"]
