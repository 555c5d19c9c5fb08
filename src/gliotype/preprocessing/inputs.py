"""The inputs of one patient: its files by role (a manifest row), read and checked.

Every problem is a :class:`~gliotype.errors.CaseError` naming the patient, the file
and the problem: a role missing from the row (a sequence may be missing when
``input.missing_sequences`` allows it: :func:`gliotype.input.present_sequences`), a file that cannot be read, is over the
voxel limit or whose affine ITK cannot represent, NaN or infinite values (unless
``preprocess.nonfinite: zero`` sets them to 0), a sequence that is all zeros, a mask that
is empty, not integer or has labels outside :data:`gliotype.input.KNOWN_LABELS`. The rules
are the validator's (:mod:`gliotype.input.rules`).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.errors import CaseError
from gliotype.input import InputRules, check_finite, check_tumor_mask, load_volume, present_sequences
from gliotype.input.manifest import is_blank
from gliotype.preprocessing.images import check_affine
from gliotype.preprocessing.outputs import SEQUENCES


def case_inputs(row: dict, pid: str, allowed_missing: int = 0) -> dict[str, Path]:
    """role -> input path (fa only when given; a sequence only when given, at most
    ``allowed_missing`` missing: ``input.missing_sequences``); a missing required role is a CaseError."""
    present_sequences(row, pid, allowed_missing)  # at most allowed_missing sequences missing
    out: dict[str, Path] = {}
    for role in (*SEQUENCES, "mask", "fa"):
        value = row.get(role)
        if is_blank(value):
            if role == "mask":
                raise CaseError(pid, None, "no mask file given in the manifest")
            continue  # fa, or a sequence the rule lets the case lack
        out[role] = Path(str(value))
    return out


def load_inputs(inputs: dict[str, Path], pid: str,
                rules: InputRules = InputRules()) -> tuple[dict[str, nib.Nifti1Image], dict[str, int]]:
    """role -> image, read and checked under ``rules`` role by role as the validator does, and
    role -> voxels set to 0 (``preprocess.nonfinite: zero``; empty otherwise). Each image keeps the
    reader's warnings in ``extra["warnings"]`` (:func:`gliotype.input.volumes.header_warnings`).

    Sequences and FA: :func:`gliotype.input.check_finite`, then float32; a sequence that is
    all zero is a CaseError. The mask: uint8 labels (:func:`gliotype.input.check_tumor_mask`).
    """
    images, repaired = {}, {}
    for role, path in inputs.items():
        img = load_volume(path, pid, role, max_voxels=rules.max_voxels)
        problem = check_affine(img.affine)
        if problem:
            raise CaseError(pid, path, f"{role} {problem}")
        if role == "mask":
            images[role] = nib.Nifti1Image(check_tumor_mask(img, pid, path), img.affine, extra=img.extra)
            continue
        data, count = check_finite(np.asanyarray(img.dataobj), pid, path, role, rules.nonfinite)
        if count:
            repaired[role] = count
        if role != "fa" and not np.any(data):
            raise CaseError(pid, path, f"{role} image is all zeros")
        images[role] = nib.Nifti1Image(data.astype(np.float32), img.affine, extra=img.extra)
    return images, repaired


__all__ = ["case_inputs", "load_inputs"]
