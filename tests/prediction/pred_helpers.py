"""Helpers of the prediction tests (import as ``pred_helpers``)."""

from __future__ import annotations

from pathlib import Path


def case_inputs(cohort: Path, pid: str) -> dict[str, Path]:
    """The five input files of a synthetic patient (BraTS 2021 names)."""
    base = Path(cohort) / pid / pid
    return {"t1": Path(f"{base}_t1.nii.gz"), "t1c": Path(f"{base}_t1ce.nii.gz"), "t2": Path(f"{base}_t2.nii.gz"),
            "flair": Path(f"{base}_flair.nii.gz"), "mask": Path(f"{base}_seg.nii.gz")}


def split_ids(run: Path, split: str = "test") -> list[str]:
    import pandas as pd

    s = pd.read_csv(Path(run) / "splits.csv", dtype={"patient_id": str})
    return s.loc[s["split"] == split, "patient_id"].tolist()
