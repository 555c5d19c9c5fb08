"""The inputs of one patient: its files by role (a manifest row), read and checked.

Every problem is a :class:`~gliotype.errors.CaseError` naming the patient, the file
and the problem: a role missing from the row, a file that cannot be read or whose
affine ITK cannot represent, a sequence that is all zero, a mask that is empty, not
integer or has labels outside :data:`KNOWN_LABELS`. Non-finite sequence values are
set to 0.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.errors import CaseError
from gliotype.input.manifest import is_blank
from gliotype.preprocessing.images import check_affine
from gliotype.preprocessing.outputs import SEQUENCES

#: Mask labels accepted: BraTS 1 necrotic/non-enhancing core, 2 edema, 4 enhancing,
#: 3 (old BraTS non-enhancing core / BraTS 2023 enhancing). Kept as they are.
KNOWN_LABELS = (0, 1, 2, 3, 4)


def case_inputs(row: dict, pid: str) -> dict[str, Path]:
    """role -> input path (fa only when given); a missing required role is a CaseError."""
    out: dict[str, Path] = {}
    for role in (*SEQUENCES, "mask", "fa"):
        value = row.get(role)
        if is_blank(value):
            if role == "fa":
                continue
            raise CaseError(pid, None, f"no {role} file given in the manifest")
        out[role] = Path(str(value))
    return out


def load_inputs(inputs: dict[str, Path], pid: str) -> dict[str, nib.Nifti1Image]:
    """role -> image, checked: sequences and FA as float32 (non-finite values set to 0), the mask as
    uint8 labels (:func:`check_mask`); a sequence that is all zero is a CaseError."""
    images = _read(inputs, pid)
    labels = check_mask(images["mask"], pid, inputs["mask"])
    images["mask"] = nib.Nifti1Image(labels, images["mask"].affine)
    for role in SEQUENCES:
        if not np.any(np.asarray(images[role].dataobj)):
            raise CaseError(pid, inputs[role], f"{role} image is all zero")
    return images


def _read(inputs: dict[str, Path], pid: str) -> dict[str, nib.Nifti1Image]:
    from gliotype.input.volumes import load_volume

    images = {}
    for role, path in inputs.items():
        img = load_volume(path, pid, role)
        problem = check_affine(img.affine)
        if problem:
            raise CaseError(pid, path, f"{role} {problem}")
        images[role] = img
    for role in (*SEQUENCES, "fa"):
        if role in images:
            data = np.asarray(images[role].dataobj, dtype=np.float32)
            if not np.all(np.isfinite(data)):
                data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
            images[role] = nib.Nifti1Image(data, images[role].affine)
    return images


def check_mask(img: nib.Nifti1Image, pid: str, path: Path) -> np.ndarray:
    """The mask as uint8 labels; empty, non-integer or unknown labels are a CaseError."""
    raw = np.asarray(img.dataobj)
    if not np.all(np.isfinite(raw)):
        raise CaseError(pid, path, "mask has NaN or infinite values")
    rounded = np.rint(raw)
    if np.any(np.abs(raw - rounded) > 1e-3):
        raise CaseError(pid, path, "mask has non-integer values (expected labels 0, 1, 2, 3, 4)")
    labels = np.unique(rounded).astype(np.int64)
    unknown = [int(v) for v in labels if v not in KNOWN_LABELS]
    if unknown:
        shown = ", ".join(str(v) for v in unknown[:5])
        raise CaseError(pid, path, f"mask has unknown label values {shown} (expected 0, 1, 2, 3, 4)")
    if not np.any(rounded > 0):
        raise CaseError(pid, path, "mask is empty (no tumor voxel)")
    return rounded.astype(np.uint8)


__all__ = ["KNOWN_LABELS", "case_inputs", "check_mask", "load_inputs"]
