"""The inputs of the self-supervised stage for one patient (paper section 3.2).

A patient's atlas samples (``patients/<id>/modalities/atlas_samples.npz``: ``node``
(R, 4n), ``tract`` (T, 4n) and, with FA, ``tract_fa`` (T, n)) and, with the work
folder's fixed atlas positions, the tumour flags of every sampled position, read from
the preprocessed tumour mask on the template grid. Also which patients are built and
which of them have FA (the training patients of both models), and the samples as
tensors for the models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from gliotype.errors import GliotypeError
from gliotype.layout import WorkDir


def load_atlas_samples(workdir: str | Path | WorkDir, patient_id: str) -> dict[str, np.ndarray]:
    """``node`` (R, 4n), ``tract`` (T, 4n) and, with FA, ``tract_fa`` (T, n)."""
    with np.load(WorkDir.of(workdir).case(patient_id).atlas_samples, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


#: Sequences (channels) of a node / tract row of anatomical MRI (gliotype.input.SEQUENCES).
MRI_CHANNELS = 4


def tract_positions_or_none(workdir: str | Path | WorkDir):
    """The work folder's fixed atlas positions (``AtlasSampling``), or None when not stored."""
    from gliotype.modalities.build import AtlasSampling

    folder = WorkDir.of(workdir).atlas
    return AtlasSampling.load(folder) if folder.sampling.exists() else None


def tumor_flags(workdir: str | Path | WorkDir, patient_id: str, sampling) -> dict[str, np.ndarray] | None:
    """``node_tumor`` (R, n) and ``tract_tumor`` (T, n): sampled positions inside the tumour mask
    (any label), from the preprocessed mask on the template grid; None without a mask."""
    import nibabel as nib

    from gliotype.atlases import gather

    work = WorkDir.of(workdir)
    path = work.case(patient_id).mask
    if sampling is None or not path.exists():
        return None
    tumor = (np.asarray(nib.load(str(path)).dataobj) > 0).astype(np.float32)
    grid = work.atlas.tract_grid
    if grid.exists() and tuple(json.loads(grid.read_text())["shape"]) != tumor.shape:
        raise GliotypeError(f"patient {patient_id}: the tumour mask is not on the grid of the atlas positions")
    try:
        return {"node_tumor": gather(tumor, sampling.node_positions) > 0.5,
                "tract_tumor": gather(tumor, sampling.tract_positions) > 0.5}
    except ValueError:
        raise GliotypeError(f"patient {patient_id}: the tumour mask is not on the grid of the atlas positions") from None


def patient_inputs(workdir: str | Path | WorkDir, patient_id: str, sampling=None, required: bool = False) -> dict:
    """Atlas samples of one patient and, with ``sampling``, the tumour flags of every position."""
    s = load_atlas_samples(workdir, patient_id)
    try:
        flags = tumor_flags(workdir, patient_id, sampling) if sampling is not None else None
    except GliotypeError:
        if required:
            raise
        flags = None  # only the evidence uses them then
    if flags is None and required:
        raise GliotypeError(f"patient {patient_id}: ssl.tumor=mask needs the preprocessed tumour mask and the atlas "
                            "positions (run preprocessing and modalities first)")
    return {**s, **(flags or {})}


def available_patients(workdir: str | Path | WorkDir) -> list[str]:
    """Patients whose modalities are built, sorted."""
    work = WorkDir.of(workdir)
    return [pid for pid in work.case_ids() if work.case(pid).atlas_samples.exists()]


def fa_patients(workdir: str | Path | WorkDir, patient_ids: list[str]) -> list[str]:
    """Those of ``patient_ids`` that have FA tract samples."""
    work = WorkDir.of(workdir)
    out = []
    for pid in patient_ids:
        with np.load(work.case(pid).atlas_samples, allow_pickle=False) as z:
            if "tract_fa" in z.files:
                out.append(pid)
    return out


def to_tensor(a: np.ndarray, dtype=np.float32) -> torch.Tensor:
    """Atlas samples (or per-row figures) as a contiguous tensor, float32 by default."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))


def flag_tensor(s: dict, kind: str) -> torch.Tensor | None:
    """The ``node`` / ``tract`` tumour flags of a patient's inputs as a bool tensor, None without them."""
    f = s.get(f"{kind}_tumor")
    return None if f is None else torch.from_numpy(np.asarray(f, dtype=bool))
