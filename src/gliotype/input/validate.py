"""Checking every case of a manifest before any processing (``gliotype cohort validate``).

Each case is OK or rejected with one line naming the file and the problem: the ID is
valid (:func:`~gliotype.input.rules.check_patient_id`) and unique, every sequence is given
(or at most ``input.missing_sequences`` are missing, each named in a warning:
:func:`~gliotype.input.rules.present_sequences`), files exist and are
readable 3D images within the voxel limit (:func:`~gliotype.input.load_volume`), values
are finite (:func:`~gliotype.input.rules.check_finite`), the sequences and the mask share the grid
of the reference sequence (t1c, or the first present of
:data:`~gliotype.input.rules.REFERENCE_ORDER`) or overlap it enough to be resampled, the mask passes
:func:`~gliotype.input.rules.check_tumor_mask` (finite, integer, known labels, not
empty) and lies inside the image, the IDH value is valid. One bad case never stops the
others. :func:`check_case` is the check of one case that raises (``gliotype predict``
uses it), :func:`validate_case` the one that reports. Each takes the user's
:class:`~gliotype.input.rules.InputRules` (voxel limit, non-finite rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial

import nibabel as nib
import numpy as np
import pandas as pd

from gliotype.errors import CaseError, GliotypeError, one_line, stop_on_environment
from gliotype.input.manifest import is_blank
from gliotype.input.rules import (
    KNOWN_LABELS,
    InputRules,
    check_finite,
    check_patient_id,
    check_tumor_mask,
    nonfinite_note,
    present_sequences,
    reference_sequence,
)
from gliotype.input.volumes import load_volume
from gliotype.utils.parallel import parallel_map

#: Below this fraction of the reference field of view, another grid is not resampleable.
MIN_OVERLAP = 0.5
#: A mask with less than this fraction of its voxels on non-zero image is outside the image.
MIN_MASK_INSIDE = 0.5
AFFINE_TOL_MM = 1e-3


@dataclass
class CaseReport:
    """Result of validating one case."""

    patient_id: str
    status: str  # ok | rejected
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _world_box(img) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array(list(np.ndindex(2, 2, 2)), dtype=float) * (np.array(img.shape[:3]) - 1)
    mm = (np.c_[corners, np.ones(8)] @ img.affine.T)[:, :3]
    return mm.min(0), mm.max(0)


def _overlap(img, ref) -> float:
    """Fraction of ``ref``'s world bounding box covered by ``img``'s."""
    lo1, hi1 = _world_box(img)
    lo2, hi2 = _world_box(ref)
    inter = np.clip(np.minimum(hi1, hi2) - np.maximum(lo1, lo2), 0, None).prod()
    vol = np.clip(hi2 - lo2, 1e-6, None).prod()
    return float(inter / vol)


def same_grid(a, b) -> bool:
    return a.shape[:3] == b.shape[:3] and np.allclose(a.affine, b.affine, atol=AFFINE_TOL_MM)


def validate_case(row: dict, rules: InputRules = InputRules()) -> CaseReport:
    """Validate one manifest row; never raises (a problem is a ``rejected`` report with one line)."""
    pid = str(row.get("patient_id", "")).strip()
    report = CaseReport(pid, "ok")
    try:
        check_case(row, report, rules)
    except CaseError as exc:
        report.status, report.reason = "rejected", str(exc)
    except MemoryError:
        report.status, report.reason = "rejected", f"patient {pid}: out of memory while reading the images"
    except Exception as exc:  # a check we did not foresee: still one line, still the next case
        stop_on_environment(exc)  # unless the machine stops every case (too many open files)
        report.status = "rejected"
        report.reason = f"patient {pid}: unexpected problem ({type(exc).__name__}: {one_line(exc, 120)})"
    return report


def check_case(row: dict, report: CaseReport | None = None, rules: InputRules = InputRules()) -> CaseReport:
    """Check one manifest row (``patient_id``, the five files, optional ``fa`` and ``idh``) under ``rules``.

    Returns the ``ok`` report (its ``info``: grid, spacing, labels, tumor voxels, the missing
    sequences and the reference sequence whose grid the others are compared to; its
    ``warnings``: a missing sequence the rules allow (``input.missing_sequences``), grids to
    resample, non-finite voxels to set to 0, a sform and qform that disagree); a problem raises a one-line :class:`CaseError` naming the patient, the file name
    and the problem. ``report``: filled in as the checks go (a rejected case keeps the warnings
    found before its problem).
    """
    try:
        pid = check_patient_id(row.get("patient_id"))
    except GliotypeError as exc:
        raise CaseError(None, None, str(exc)) from None
    report = report if report is not None else CaseReport(pid, "ok")
    idh = row.get("idh")
    if not is_blank(idh) and not (isinstance(idh, (int, float, np.integer, np.floating)) and float(idh) in (0, 1)):
        raise CaseError(pid, None, f"IDH value {idh!r} is not understood (use mutant/wildtype, 1/0 or leave empty)")
    present, missing = present_sequences(row, pid, rules.missing_sequences)
    if is_blank(row.get("mask")):
        raise CaseError(pid, None, "no mask file in the manifest")
    report.warnings += [missing_note(s) for s in missing]
    roles = list(present) + ["mask"] + ([] if is_blank(row.get("fa")) else ["fa"])
    images = {}
    for role in roles:
        img = load_volume(row[role], pid, role, max_voxels=rules.max_voxels)
        images[role] = img
        report.warnings += [_without_patient(w, pid) for w in img.extra.get("warnings", [])]
        data = np.asanyarray(img.dataobj)
        if role == "mask":
            labels = check_tumor_mask(data, pid, row[role])
            continue
        data, repaired = check_finite(data, pid, row[role], role, rules.nonfinite)
        if repaired:
            report.warnings.append(nonfinite_note(role, repaired))
            images[role] = nib.Nifti1Image(data, img.affine)
        if not np.any(data) and role != "fa":
            raise CaseError(pid, row[role], f"{role} image is all zeros")
    reference = reference_sequence(present)
    ref = images[reference]
    for role, img in images.items():
        if role == reference or same_grid(img, ref):
            continue
        cover = _overlap(img, ref)
        if cover < MIN_OVERLAP:
            raise CaseError(pid, row[role], f"{role} is on another grid than {reference} and covers only "
                                            f"{100 * cover:.0f}% of its field of view (affines disagree)")
        report.warnings.append(f"{role} is on another grid than {reference} (shape {img.shape}); "
                               "it will be resampled")
    values = set(np.unique(labels).tolist())
    tumor = labels > 0
    if same_grid(images["mask"], ref):
        inside = float(np.count_nonzero(np.asanyarray(ref.dataobj)[tumor] != 0)) / max(int(tumor.sum()), 1)
        if inside < MIN_MASK_INSIDE:
            raise CaseError(pid, row["mask"], f"mask lies outside the image: only {100 * inside:.0f}% of its "
                                              f"voxels are on non-zero {reference}")
    report.info = {"tumor_voxels": int(tumor.sum()), "labels": sorted(values - {0}), "shape": list(ref.shape),
                   "spacing_mm": [round(float(s), 3) for s in ref.header.get_zooms()[:3]], "has_fa": "fa" in images,
                   "missing_sequences": list(missing), "reference_sequence": reference}
    return report


def missing_note(sequence: str) -> str:
    """The warning for a sequence the case lacks and the rules allow (``input.missing_sequences``)."""
    return f"missing {sequence}: the case goes on without it (input.missing_sequences)"


def _without_patient(line: str, pid: str) -> str:
    """``patient P [file]: problem`` as ``file: problem`` (the table's row names the patient)."""
    line = line.removeprefix(f"patient {pid}").lstrip()
    return re.sub(r"^\[([^\]]*)\]:", r"\1:", line).removeprefix(": ")


def _duplicates(df: pd.DataFrame) -> dict[str, int]:
    counts = df["patient_id"].astype(str).str.strip().value_counts()
    return {pid: int(n) for pid, n in counts.items() if n > 1 and pid}


def _crashed(row: dict) -> CaseReport:
    pid = str(row.get("patient_id", "")).strip()
    return CaseReport(pid, "rejected", f"patient {pid}: checking the case killed its worker process (out of memory?)")


def validate_manifest(df: pd.DataFrame, workers: int = 1, rules: InputRules = InputRules()) -> list[CaseReport]:
    """Validate every row under ``rules`` (in parallel with ``workers`` processes); one report per
    row, manifest order.

    Every row of a duplicated patient ID is rejected: which one is right cannot be told.
    """
    rows = df.to_dict(orient="records")
    dup = _duplicates(df)
    todo = [i for i, r in enumerate(rows) if str(r["patient_id"]).strip() not in dup]
    reports: dict[int, CaseReport] = {}
    for i, r in enumerate(rows):
        pid = str(r["patient_id"]).strip()
        if pid in dup:
            reports[i] = CaseReport(pid, "rejected", f"patient {pid}: ID appears {dup[pid]} times in the manifest")
    results = parallel_map(partial(validate_case, rules=rules), [rows[i] for i in todo], workers, desc="validate",
                           on_crash=_crashed)
    reports.update(zip(todo, results))
    return [reports[i] for i in range(len(rows))]


def validation_table(reports: list[CaseReport]) -> str:
    """One line per case (OK or rejected with the reason), then the counts."""
    width = max([len("patient"), *(len(r.patient_id) for r in reports)])
    lines = [f"{'patient':<{width}}  status    detail", f"{'-' * width}  --------  ------"]
    for r in reports:
        if r.status == "ok":
            detail = "; ".join(r.warnings)
            lines.append(f"{r.patient_id:<{width}}  OK        {detail}".rstrip())
        else:
            reason = _without_patient(r.reason, r.patient_id)
            lines.append(f"{r.patient_id:<{width}}  REJECTED  {reason}")
    ok = sum(r.status == "ok" for r in reports)
    lines.append(f"{ok} of {len(reports)} cases usable, {len(reports) - ok} rejected")
    return "\n".join(lines)


__all__ = ["CaseReport", "KNOWN_LABELS", "check_case", "missing_note", "same_grid", "validate_case", "validate_manifest",
           "validation_table"]
