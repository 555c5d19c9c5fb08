"""Helpers of the input tests (import as ``input_helpers``): small cases in the public layouts."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from gliotype.input import scan_cohort, validate_manifest

SHAPE = (16, 16, 12)
BRATS21 = {"t1": "_t1", "t1c": "_t1ce", "t2": "_t2", "flair": "_flair", "mask": "_seg"}
BRATS23 = {"t1": "-t1n", "t1c": "-t1c", "t2": "-t2w", "flair": "-t2f", "mask": "-seg"}
UCSF = {"t1": "_T1", "t1c": "_T1c", "t2": "_T2", "flair": "_FLAIR", "mask": "_tumor_segmentation",
        "fa": "_DTI_eddy_FA"}


def brain(seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros(SHAPE, np.float32)
    img[2:14, 2:14, 2:10] = rng.uniform(100, 200, (12, 12, 8))
    return img


def tumor():
    m = np.zeros(SHAPE, np.uint8)
    m[5:9, 5:9, 4:7] = 2
    m[6:8, 6:8, 5:6] = 1
    return m


def save(path: Path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


def make_case(root: Path, pid: str, names=BRATS21, folder: str | None = None, seed=0):
    d = root / (folder if folder is not None else pid)
    paths = {}
    for role, suffix in names.items():
        data = tumor() if role == "mask" else brain(seed)
        paths[role] = save(d / f"{pid}{suffix}.nii.gz", data)
    return paths


def manifest_of(tmp_path: Path, n: int = 1) -> pd.DataFrame:
    for i in range(n):
        make_case(tmp_path / "data", f"P{i}", seed=i)
    return scan_cohort(tmp_path / "data")


def reason_of(df: pd.DataFrame, pid: str = "P0") -> str:
    reports = validate_manifest(df)
    rep = [r for r in reports if r.patient_id == pid][0]
    assert rep.status == "rejected", f"{pid} was accepted"
    assert "\n" not in rep.reason and "Traceback" not in rep.reason
    return rep.reason
