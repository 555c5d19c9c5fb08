"""The inputs of one patient: its files by role (a manifest row), read and checked.

Every problem is a :class:`~gliotype.errors.CaseError` naming the patient, the file
and the problem: a role missing from the row, a file that cannot be read or whose
affine ITK cannot represent, a sequence that is all zero, a mask that is empty, not
integer or has labels outside :data:`gliotype.input.KNOWN_LABELS`. Non-finite sequence values are
set to 0.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.errors import CaseError
from gliotype.input import check_tumor_mask
from gliotype.input.manifest import is_blank
from gliotype.preprocessing.images import check_affine
from gliotype.preprocessing.outputs import SEQUENCES

#: Mask labels accepted: BraTS 1 necrotic/non-enhancing core, 2 edema, 4 enhancing,
#: 3 (old BraTS non-enhancing core / BraTS 2023 enhancing). Kept as they are.


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
    uint8 labels (:func:`gliotype.input.check_tumor_mask`, the rule the validator uses); a sequence that is all zero is a CaseError.
    Each image keeps the reader's warnings in ``extra["warnings"]`` (:func:`gliotype.input.volumes.header_warnings`)."""
    images = _read(inputs, pid)
    labels = check_tumor_mask(images["mask"], pid, inputs["mask"])
    images["mask"] = nib.Nifti1Image(labels, images["mask"].affine, extra=images["mask"].extra)
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
            images[role] = nib.Nifti1Image(data, images[role].affine, extra=images[role].extra)
    return images


__all__ = ["case_inputs", "load_inputs"]
