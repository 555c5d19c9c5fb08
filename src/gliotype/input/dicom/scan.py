"""A folder of DICOM studies as manifest rows (``gliotype cohort scan`` with the ``dicom`` layout).

One folder per patient directly under the root (its name is the patient ID, under
:func:`gliotype.input.check_patient_id`), the DICOM files anywhere below it, in any number of
sub-folders. Per patient: the series are read (:mod:`~gliotype.input.dicom.series`), each gets a
role or a reason to skip it (:mod:`~gliotype.input.dicom.choose`), each chosen series is
converted to ``<convert_dir>/<patient_id>/<role>.nii.gz`` (:mod:`~gliotype.input.dicom.convert`),
and the tumour mask is a NIfTI file in the patient's folder whose name holds ``seg``, ``mask``
or ``label`` (:func:`find_mask`; none: the mask cell stays empty), copied there as
``mask.nii.gz`` with its header's free text cleared: the manifest names no input path.

A patient missing a role, or whose conversion failed, is kept with that cell empty (the cohort
validator rejects it with its reason); one bad patient never stops the others. The table of
every series (:data:`SERIES_COLUMNS`: number, description, images, role or ``skipped``, reason)
is logged per patient and returned (:class:`DicomScan`). Only the patient ID, the series
numbers and descriptions reach it; nothing of the headers reaches the manifest or the
conversion folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.errors import GliotypeError, one_line, stop_on_environment
from gliotype.input.dicom.choose import choose_roles
from gliotype.input.dicom.convert import ConversionError, convert_series, copy_nifti
from gliotype.input.dicom.overrides import Override, read_overrides
from gliotype.input.dicom.series import holds_dicom, is_dicom, read_series
from gliotype.input.manifest import IMAGE_COLUMNS, SEQUENCES
from gliotype.input.rules import check_patient_id
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: Columns of the series table.
SERIES_COLUMNS = ("patient_id", "series", "description", "images", "role", "reason")
#: Words that make a NIfTI file in a patient's DICOM folder its tumour mask.
MASK_WORDS = ("seg", "mask", "label")
#: ...unless its name also holds one of these (a brain mask is not a tumour mask).
NOT_MASK_WORDS = ("brain",)
#: Characters of a description shown in the table.
DESCRIPTION_WIDTH = 40
_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s'\"]+")


@dataclass
class DicomScan:
    """What :func:`scan_dicom` found: the manifest rows (``patient_id``, the image columns as
    absolute paths, empty ``idh``, ``age``, ``site``) and the table of every series
    (:data:`SERIES_COLUMNS`)."""

    manifest: pd.DataFrame
    series: pd.DataFrame


def shown(description: str) -> str:
    """A description as the table shows it: printable, one line, at most :data:`DESCRIPTION_WIDTH` characters."""
    text = " ".join("".join(c if c.isprintable() else " " for c in description).split())
    return text if len(text) <= DESCRIPTION_WIDTH else text[: DESCRIPTION_WIDTH - 3] + "..."


def _nifti(name: str) -> bool:
    return name.lower().endswith((".nii", ".nii.gz"))


def find_mask(folder: str | Path) -> tuple[Path | None, int]:
    """The tumour mask in a patient's folder (any depth) and the number of candidates: a NIfTI
    file whose name holds one of :data:`MASK_WORDS` and none of :data:`NOT_MASK_WORDS`.
    None unless exactly one."""
    found = []
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel) or not p.is_file() or not _nifti(p.name):
            continue
        name = p.name.lower()
        if any(w in name for w in MASK_WORDS) and not any(w in name for w in NOT_MASK_WORDS):
            found.append(p)
    return (found[0] if len(found) == 1 else None), len(found)


def patient_folders(root: str | Path, single_patient: str | None = None) -> list[tuple[str, Path]]:
    """(patient ID, folder) of every patient: ``root`` itself named ``single_patient`` when given,
    else each non-hidden folder directly under ``root`` that holds a DICOM file."""
    root = Path(root)
    if single_patient is not None:
        return [(str(single_patient).strip(), root)]
    loose = sum(1 for p in root.iterdir() if p.is_file() and is_dicom(p))
    if loose:
        log.warning("%d DICOM file(s) lie directly in the cohort folder, outside any patient folder: ignored "
                    "(one folder per patient, named by the patient ID)", loose)
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if holds_dicom(d):
            out.append((d.name, d))
        else:
            log.info("folder %s holds no DICOM file: not a patient", d.name)
    return out


def _row(pid: str) -> dict:
    return {"patient_id": pid, **{c: "" for c in IMAGE_COLUMNS}}


def scan_patient(pid: str, folder: Path, convert_dir: Path, overrides: Sequence[Override] = ()) -> tuple[dict, list]:
    """The manifest row of one patient and the rows of its series table."""
    row = _row(pid)
    series, unreadable = read_series(folder)
    if unreadable:
        log.warning("patient %s: %d DICOM file(s) unreadable or without a series UID: left out", pid, unreadable)
    mine = [o for o in overrides if o.patient_id == pid]
    decisions = choose_roles(series, mine)
    for o in mine:
        hits = [s for s in series if o.matches(s)]
        if not hits:
            log.warning("patient %s: the override of line %d (%s) matches no series", pid, o.row, o.target)
        elif len(hits) > 1:
            log.warning("patient %s: the override of line %d matches %d series (%s); give series_uid to pick one",
                        pid, o.row, len(hits), o.target)
    table = []
    for s, d in zip(series, decisions):
        reason = d.reason
        if d.role is not None:
            try:
                reused = convert_series(s, convert_dir / pid / f"{d.role}.nii.gz", folder)
                row[d.role] = str((convert_dir / pid / f"{d.role}.nii.gz").resolve())
                reason += "; converted earlier, reused" if reused else ""
            except ConversionError as exc:
                log.warning("patient %s: %s (%s): %s", pid, s.label, d.role, exc)
                reason += f"; conversion failed: {exc}"
        table.append({"patient_id": pid, "series": s.number, "description": shown(s.description),
                      "images": s.slices, "role": d.role or "skipped", "reason": reason})
    mask, candidates = find_mask(folder)
    if mask is not None:
        target = convert_dir / pid / "mask.nii.gz"
        try:
            copy_nifti(mask, target, folder)
            row["mask"] = str(target.resolve())
        except ConversionError as exc:
            log.warning("patient %s: its tumour mask (NIfTI): %s", pid, exc)
    elif candidates > 1:
        log.warning("patient %s: %d NIfTI files named like a mask (seg, mask, label); none used", pid, candidates)
    _drop_stale(convert_dir / pid, {r for r in (*SEQUENCES, "mask") if row[r]})
    log.info("patient %s: %d DICOM series\n%s", pid, len(table),
             series_table(pd.DataFrame(table, columns=list(SERIES_COLUMNS))))
    missing = [r for r in SEQUENCES if not row[r]]
    if missing:
        log.warning("patient %s: no %s series found", pid, ", ".join(missing))
    if not row["mask"] and candidates <= 1:
        log.info("patient %s: no tumour mask (a NIfTI file named *seg*, *mask* or *label*)", pid)
    return row, table


def _drop_stale(folder: Path, kept: set[str]) -> None:
    """Remove the conversions of roles this scan did not produce (an earlier choice)."""
    if not folder.is_dir():
        return
    for role in (*SEQUENCES, "mask"):
        if role not in kept:
            for name in (f"{role}.nii.gz", f"{role}.json"):
                (folder / name).unlink(missing_ok=True)


def series_table(table: pd.DataFrame) -> str:
    """The series table of one patient as text (the scan logs it)."""
    if table.empty:
        return "  (no DICOM series)"
    width = max(len("description"), *(len(str(d)) for d in table["description"]))
    lines = [f"  {'series':>6}  {'description':<{width}}  {'images':>6}  {'role':<7}  reason"]
    for r in table.itertuples():
        number = "?" if pd.isna(r.series) else str(int(r.series))
        lines.append(f"  {number:>6}  {r.description:<{width}}  {r.images:>6}  {r.role:<7}  {r.reason}")
    return "\n".join(lines)


def _safe(exc: BaseException) -> str:
    """An unforeseen error in one line, without paths."""
    return f"{type(exc).__name__}: {_PATH.sub('<file>', one_line(exc, 160))}"


def scan_dicom(root: str | Path, convert_dir: str | Path | None,
               overrides: str | Path | Sequence[Override] | None = None,
               single_patient: str | None = None) -> DicomScan:
    """Scan the DICOM studies under ``root`` (one folder per patient; ``single_patient``: ``root``
    is the folder of this one patient) and convert the chosen series into ``convert_dir``.

    ``overrides``: the overrides CSV (:func:`~gliotype.input.dicom.overrides.read_overrides`) or
    its rows. The manifest has the columns of a scanned layout (``idh``, ``age``, ``site`` empty).
    """
    if convert_dir is None:
        raise GliotypeError("DICOM studies are converted to NIfTI: give a folder for the conversions (convert_dir; "
                            "`gliotype cohort scan` uses dicom_nifti/ beside the manifest)")
    root, convert_dir = Path(root), Path(convert_dir)
    if not root.is_dir():
        raise GliotypeError(f"{root.name} is not a folder (DICOM studies: one folder per patient)")
    if overrides is None:
        overrides = ()
    elif isinstance(overrides, (str, Path)):
        overrides = read_overrides(overrides)
    rows, tables = [], []
    folders = patient_folders(root, single_patient)
    if not folders:
        raise GliotypeError(f"no DICOM study found under {root.name or root}: expected one folder per patient "
                            "holding its DICOM files")
    for pid, folder in folders:
        try:
            check_patient_id(pid)
        except GliotypeError as exc:
            log.warning("patient folder kept without images: %s", exc)
            rows.append(_row(pid))
            continue
        try:
            row, table = scan_patient(pid, folder, convert_dir, overrides)
        except Exception as exc:
            stop_on_environment(exc)
            log.warning("patient %s: DICOM scan failed (%s); kept without images", pid, _safe(exc))
            row, table = _row(pid), []
        rows.append(row)
        tables += table
    known = {pid for pid, _ in folders}
    unknown = sorted({o.patient_id for o in overrides} - known)
    if unknown:
        log.warning("DICOM overrides name %d patient(s) not found (e.g. %s)", len(unknown), ", ".join(unknown[:3]))
    manifest = pd.DataFrame(rows, columns=["patient_id", *IMAGE_COLUMNS])
    for col in ("idh", "age", "site"):
        manifest[col] = np.nan
    return DicomScan(manifest, pd.DataFrame(tables, columns=list(SERIES_COLUMNS)))


__all__ = ["DicomScan", "MASK_WORDS", "SERIES_COLUMNS", "find_mask", "patient_folders", "scan_dicom", "scan_patient",
           "series_table", "shown"]
