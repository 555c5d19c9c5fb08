"""Helpers of the BIDS tests (import as ``bids_helpers``): small real BIDS datasets written with nibabel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from input_helpers import brain, save, tumor

#: role -> the end of its raw BIDS name (t1c with the gadolinium contrast agent).
RAW = {"t1": "T1w", "t1c": "ce-gadolinium_T1w", "t2": "T2w", "flair": "FLAIR"}


def description(root: Path, **extra) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "dataset_description.json"
    path.write_text(json.dumps({"Name": "test", "BIDSVersion": "1.10.0", **extra}))
    return path


def pipeline(root: Path, name: str, generated_by: str | None = None) -> Path:
    """``root/derivatives/<name>/`` with its dataset_description.json (GeneratedBy ``generated_by``)."""
    folder = root / "derivatives" / name
    gen = {"GeneratedBy": [{"Name": generated_by}]} if generated_by else {}
    description(folder, DatasetType="derivative", **gen)
    return folder


def prefix(sub: str, ses: str | None = None) -> str:
    return f"sub-{sub}" + (f"_ses-{ses}" if ses else "")


def folder(root: Path, sub: str, ses: str | None = None, datatype: str = "anat") -> Path:
    return root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / datatype


def add_image(root: Path, sub: str, ses: str | None, tail: str, data=None, seed: int = 0, datatype: str = "anat",
              affine=None) -> Path:
    """``root/sub-<sub>/[ses-<ses>/]<datatype>/sub-<sub>[_ses-<ses>]_<tail>.nii.gz``."""
    data = brain(seed) if data is None else data
    return save(folder(root, sub, ses, datatype) / f"{prefix(sub, ses)}_{tail}.nii.gz", data, affine)


def add_case(root: Path, sub: str, ses: str | None = None, roles=tuple(RAW), seed: int = 0,
             mask: str | None = "desc-tumor_dseg", mask_pipeline: str = "tumorseg", mask_data=None,
             images=None, affine=None) -> dict[str, Path]:
    """The raw images of ``roles`` and a tumour mask in ``derivatives/<mask_pipeline>/``
    (``mask``: the end of its name; None: no mask). ``images``: role -> data (default brain(seed))."""
    paths = {role: add_image(root, sub, ses, RAW[role], None if images is None else images[role], seed, affine=affine)
             for role in roles}
    if mask is not None:
        paths["mask"] = add_image(root / "derivatives" / mask_pipeline, sub, ses, mask,
                                  tumor() if mask_data is None else mask_data, affine=affine)
    return paths


def participants(root: Path, rows: list[dict]) -> Path:
    """``root/participants.tsv`` (tab-separated, ``n/a`` for a missing value)."""
    columns = list(rows[0])
    lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "n/a")) for c in columns) for r in rows]
    path = root / "participants.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def dataset(root: Path) -> Path:
    """The dataset of the scan tests, without sessions::

        sub-01  T1w, ce-gadolinium T1w, two runs of T2w, FLAIR    mask desc-tumor_dseg    IDH mutant
        sub-02  T1w, ce-Gd T1w, T2w (no FLAIR)                     mask label-tumor_mask   IDH wildtype
    """
    description(root)
    pipeline(root, "tumorseg", "manual")
    add_case(root, "01", roles=("t1", "t1c", "flair"))
    add_image(root, "01", None, "run-1_T2w", seed=1)
    add_image(root, "01", None, "run-2_T2w", seed=2)
    paths = add_case(root, "02", roles=("t1", "t2"), mask="label-tumor_mask", seed=3)
    add_image(root, "02", None, "ce-Gd_T1w", seed=4)
    assert "flair" not in paths
    participants(root, [{"participant_id": "sub-01", "age": 45, "sex": "F", "IDH status": "mutant", "site": "A"},
                        {"participant_id": "sub-02", "age": "n/a", "sex": "M", "IDH status": "wildtype",
                         "site": "B"}])
    return root


def with_sessions(root: Path) -> Path:
    """A dataset with sessions: sub-01 ses-pre and ses-post, sub-02 ses-pre; FA (DTI model) in
    derivatives for sub-01 ses-pre; IDH in an ``IDH`` column."""
    description(root)
    pipeline(root, "tumorseg")
    for sub, ses, seed in [("01", "pre", 0), ("01", "post", 1), ("02", "pre", 2)]:
        add_case(root, sub, ses, seed=seed)
    fa = np.clip(brain(5) / 400, 0, 1).astype(np.float32)
    add_image(root / "derivatives" / "dti", "01", "pre", "model-DTI_param-FA_dwimap", fa, datatype="dwi")
    participants(root, [{"participant_id": "sub-01", "IDH": "IDH-wildtype"},
                        {"participant_id": "sub-02", "IDH": "n/a"}])
    return root


__all__ = ["RAW", "add_case", "add_image", "dataset", "description", "folder", "participants", "pipeline", "prefix",
           "with_sessions"]
