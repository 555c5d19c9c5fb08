"""A preprocessed patient on disk: its files on the template grid, written and read back.

Per patient, under ``WORKDIR/patients/<id>/`` (paths: :class:`gliotype.layout.CaseDir`)::

    preprocessed/t1.nii.gz t1c.nii.gz t2.nii.gz flair.nii.gz   float32, template grid (all zero: missing)
    preprocessed/mask.nii.gz                                   uint8 BraTS labels
    preprocessed/fa.nii.gz                                     float32 (FA cases only)
    preprocessed/brain_mask.nii.gz                             uint8 0/1
    preprocessed/transforms/                                   ANTs files + transforms.json
    preprocessed/qc.json  preprocessed/preprocess.log
    done.json                                                  written last: the cache key

Every file is written atomically. ``done.json`` (:mod:`gliotype.preprocessing.cache`)
marks a preprocessed patient and lists the files of :func:`output_names`;
:func:`load_preprocessed` reads the patient back.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.errors import CaseError
from gliotype.input import SEQUENCES
from gliotype.layout import CaseDir, WorkDir
from gliotype.preprocessing.images import save_nifti

#: Sequence roles in output order (the ``sequences`` axis of :func:`load_preprocessed`).


def output_names(case: CaseDir, has_fa: bool) -> list[str]:
    """The files of a preprocessed patient, relative to ``preprocessed/`` (as ``done.json`` lists them)."""
    files = [case.sequence(s) for s in SEQUENCES] + [case.mask, case.brain_mask]
    files += ([case.fa] if has_fa else []) + [case.transforms.json, case.qc]
    return [case.preprocessed_name(f) for f in files]


def write_volumes(case: CaseDir, affine: np.ndarray, sequences: np.ndarray, mask: np.ndarray, brain: np.ndarray,
                  fa: np.ndarray | None) -> None:
    """The volumes on the template grid: ``sequences`` (4, X, Y, Z) in :data:`SEQUENCES` order, the
    labels, the brain mask and FA (a stale ``fa.nii.gz`` is removed when there is none)."""
    for i, role in enumerate(SEQUENCES):
        save_nifti(sequences[i], affine, case.sequence(role))
    save_nifti(mask, affine, case.mask, np.uint8)
    save_nifti(brain.astype(np.uint8), affine, case.brain_mask, np.uint8)
    if fa is not None:
        save_nifti(fa, affine, case.fa)
    elif case.fa.exists():
        case.fa.unlink()


def load_preprocessed(workdir, patient_id) -> dict:
    """The preprocessed patient on the template grid.

    Returns ``sequences`` (4, X, Y, Z) float32 in the order t1, t1c, t2, flair (a sequence the
    patient lacks is all zero); ``mask`` (X, Y, Z) uint8 BraTS labels; ``fa`` (X, Y, Z) float32 or
    None; ``affine`` (4, 4); ``brain`` (X, Y, Z) bool; ``missing_sequences`` (tuple, in
    :data:`SEQUENCES` order; ``done.json``'s, empty for a folder written before it was recorded). Raises :class:`CaseError` when the patient was not
    (successfully) preprocessed.
    """
    pid = str(patient_id)
    case = WorkDir.of(workdir).case(pid)
    if not case.done.exists():
        raise CaseError(pid, None, f"not preprocessed (no {case.done.name}; run preprocessing first)")
    meta = json.loads(case.done.read_text())

    def read(path: Path, dtype) -> tuple[np.ndarray, np.ndarray]:
        if not path.exists():
            raise CaseError(pid, path, "preprocessed file is missing (rerun preprocessing)")
        img = nib.load(str(path))
        return np.asarray(img.dataobj, dtype=dtype), np.asarray(img.affine, dtype=np.float64)

    seqs = []
    affine = None
    for role in SEQUENCES:
        arr, affine = read(case.sequence(role), np.float32)
        seqs.append(arr)
    mask, _ = read(case.mask, np.uint8)
    brain, _ = read(case.brain_mask, np.uint8)
    fa = read(case.fa, np.float32)[0] if meta.get("has_fa") else None
    return {"sequences": np.stack(seqs).astype(np.float32), "mask": mask, "fa": fa, "affine": affine,
            "brain": brain.astype(bool), "missing_sequences": tuple(meta.get("missing_sequences", ()))}


__all__ = ["SEQUENCES", "load_preprocessed", "output_names", "write_volumes"]
