"""The cohort manifest: one row per patient, the files of the four sequences, the tumor
mask and (optionally) FA, with IDH status, age, site and (optionally) sex.

``gliotype cohort scan`` (:func:`scan_cohort`) finds the files of the usual public layouts
(BraTS 2021, BraTS 2023 GLI, UCSF-PDGM: :mod:`gliotype.input.layouts`), reads a user CSV, a
BIDS dataset (:mod:`gliotype.input.bids`) or converts a folder of DICOM studies
(layout ``dicom``: :mod:`gliotype.input.dicom`). Paths are stored relative to the
manifest's folder when the data sit under it, so a cohort folder can move.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.errors import GliotypeError
from gliotype.input.labels import (
    ID_COLUMNS,
    attach_labels,
    clinical_columns,
    find_column,
    parse_idh,
    parse_sex,
    read_labels,
)
from gliotype.utils.io import write_csv_atomic
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: Image roles of a case, in the order of the method's four input channels.
SEQUENCES = ("t1", "t1c", "t2", "flair")
#: Their names for a person (reports, one-line messages).
SEQUENCE_NAMES = {"t1": "pre-contrast T1", "t1c": "post-contrast T1 (T1c)", "t2": "T2", "flair": "T2-FLAIR"}
IMAGE_COLUMNS = SEQUENCES + ("mask", "fa")
REQUIRED_COLUMNS = ("patient_id",) + SEQUENCES + ("mask",)
MANIFEST_COLUMNS = ("patient_id",) + IMAGE_COLUMNS + ("idh", "age", "site", "sex")
#: Optional columns, written and read back only when a row fills them: a BIDS row's entity
#: prefix (``sub-01_ses-02``) and its dataset folder (a path, relative like the images), see
#: :mod:`gliotype.input.bids`. A manifest without them is read as before.
OPTIONAL_COLUMNS = ("bids", "bids_root")
PATH_COLUMNS = IMAGE_COLUMNS + ("bids_root",)


def manifest_columns(df: pd.DataFrame) -> list[str]:
    """:data:`MANIFEST_COLUMNS`, then the :data:`OPTIONAL_COLUMNS` some row of ``df`` fills."""
    return list(MANIFEST_COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in df and not all(is_blank(v) for v in df[c])]


def is_blank(v) -> bool:
    """An empty manifest cell: None, NaN, pd.NA, whitespace or a "nan"/"None" string."""
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() in ("", "nan", "NaN", "None", "<NA>")
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def has_fa(manifest: pd.DataFrame) -> list[bool]:
    """Which patients of a manifest have an FA map (a non-blank ``fa`` cell): the
    self-supervised set of section 4.1. The one rule; stages downstream record what they read."""
    if "fa" not in manifest:
        return [False] * len(manifest)
    return [not is_blank(v) for v in manifest["fa"]]


#: Accepted column names of a user CSV (normalized: lower case, non-alphanumerics as _).
CSV_COLUMNS = {
    "t1": ("t1", "t1n", "t1w", "t1_native", "t1_pre", "t1_path"),
    "t1c": ("t1c", "t1ce", "t1gd", "t1_gd", "t1_post", "t1_contrast", "t1_ce", "t1c_path", "t1ce_path"),
    "t2": ("t2", "t2w", "t2_path"),
    "flair": ("flair", "t2f", "t2_flair", "t2flair", "flair_path"),
    "mask": ("mask", "seg", "segmentation", "label", "labels", "tumor_mask", "tumor_segmentation", "mask_path",
             "seg_path"),
    "fa": ("fa", "dti_fa", "fa_path"),
}


def read_csv_cohort(path: str | Path) -> pd.DataFrame:
    """A user CSV of file paths (absolute, or relative to the CSV's folder)."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except Exception as exc:
        raise GliotypeError(f"cohort CSV {path.name} is not readable ({type(exc).__name__})") from None
    id_col = find_column(raw.columns, ID_COLUMNS)
    if id_col is None:
        raise GliotypeError(f"cohort CSV {path.name} has no patient ID column; columns are: {', '.join(raw.columns)}")
    df = pd.DataFrame({"patient_id": raw[id_col].astype(str).str.strip()})
    for role, names in CSV_COLUMNS.items():
        col = find_column(raw.columns, names)
        if col is None and role != "fa":
            raise GliotypeError(f"cohort CSV {path.name} has no {role} column (accepted: {', '.join(names)})")
        df[role] = [_resolve(v, path.parent) for v in raw[col]] if col else ""
    return pd.concat([df, clinical_columns(raw)], axis=1)


def _resolve(value, base: Path) -> str:
    if is_blank(value):
        return ""
    text = str(value).strip()
    p = Path(text).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def scan_cohort(root: str | Path, layout: str = "auto", labels: str | Path | None = None, *,
                convert_dir: str | Path | None = None, dicom_overrides: str | Path | None = None,
                single_patient: str | None = None) -> pd.DataFrame:
    """The manifest of a cohort folder (or user CSV), with labels attached when given.

    DICOM studies (layout ``dicom``, detected by ``auto`` when no NIfTI layout fits): the
    chosen series are converted into ``convert_dir`` (``<convert_dir>/<patient_id>/<role>.nii.gz``);
    ``dicom_overrides``: a CSV of roles that win over the heuristic; ``single_patient``: ``root``
    is the folder of this one patient (else one folder per patient under ``root``). The table
    of every series is logged (:func:`gliotype.input.dicom.scan_dicom` returns it too).
    """
    from gliotype.input.layouts import LAYOUT_NAMES, detect_layout, scan_layout

    root = Path(root)
    if layout not in LAYOUT_NAMES:
        raise GliotypeError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUT_NAMES)}")
    if not root.exists():
        raise GliotypeError(f"{root} does not exist")
    if layout == "auto":
        layout = detect_layout(root)
        log.info("layout: %s", layout)
    if dicom_overrides is not None and layout != "dicom":
        raise GliotypeError(f"DICOM overrides apply to DICOM studies only (the layout here is {layout})")
    if layout == "csv":
        if not root.is_file():
            raise GliotypeError("--layout csv needs the path of a CSV file, not a folder")
        df = read_csv_cohort(root)
    elif layout == "dicom":
        from gliotype.input.dicom import scan_dicom

        df = scan_dicom(root, convert_dir, dicom_overrides, single_patient=single_patient).manifest
    else:
        if not root.is_dir():
            raise GliotypeError(f"{root.name} is not a folder (give --layout csv for a CSV of files)")
        from gliotype.input.bids import scan_bids

        df = scan_bids(root) if layout == "bids" else scan_layout(root, layout)
    if labels is not None:
        lab = read_labels(labels)
        df, unmatched = attach_labels(df, lab)
        matched = int(df["idh"].notna().sum())
        log.info("labels: %d of %d patients labelled", matched, len(df))
        if unmatched:
            log.warning("%d label rows match no patient (e.g. %s)", len(unmatched), ", ".join(unmatched[:3]))
    for col in MANIFEST_COLUMNS:  # a scanner that does not know a clinical column (sex...) leaves it empty
        if col not in df:
            df[col] = np.nan
    return df[manifest_columns(df)].reset_index(drop=True)


def write_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the manifest CSV atomically, paths relative to its folder when under it."""
    path = Path(path)
    base = path.resolve().parent
    out = df.copy()
    for col in PATH_COLUMNS:
        if col in out:
            out[col] = [_relative(v, base) for v in out[col]]
    for col in MANIFEST_COLUMNS:
        if col not in out:
            out[col] = np.nan
    out["idh"] = [_label_text(v) for v in out["idh"]]
    write_csv_atomic(out[manifest_columns(out)], path)
    return path


def _label_text(v) -> str:
    if is_blank(v):
        return ""
    if isinstance(v, (int, float, np.integer, np.floating)) and float(v) in (0.0, 1.0):
        return str(int(v))
    return str(v)


def _relative(value, base: Path) -> str:
    if is_blank(value):
        return ""
    p = Path(str(value))
    if not p.is_absolute():
        return str(p)
    try:
        return str(p.relative_to(base))
    except ValueError:
        rel = os.path.relpath(p, base)
        return rel if not rel.startswith(".." + os.sep + "..") else str(p)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest; image paths are resolved against its folder.

    A broken manifest (missing, unreadable, required columns absent, empty) raises
    :class:`GliotypeError`; bad *cases* are left to :func:`validate_manifest`.
    """
    path = Path(path)
    if not path.is_file():
        raise GliotypeError(f"manifest {path.name} not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise GliotypeError(f"manifest {path.name} is not a readable CSV ({type(exc).__name__})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise GliotypeError(f"manifest {path.name} lacks column(s) {', '.join(missing)}; "
                            "write it with `gliotype cohort scan`")
    if df.empty:
        raise GliotypeError(f"manifest {path.name} has no patient")
    base = path.resolve().parent
    for col in IMAGE_COLUMNS:
        if col not in df:
            df[col] = ""
        df[col] = [_resolve(v, base) for v in df[col]]
    if "bids_root" in df:
        df["bids_root"] = [_resolve(v, base) for v in df["bids_root"]]
    df["patient_id"] = df["patient_id"].astype(str).str.strip()
    df["idh"] = [parse_idh(v) for v in df["idh"]] if "idh" in df else np.nan
    df["age"] = pd.to_numeric(df["age"], errors="coerce") if "age" in df else np.nan
    df["site"] = df["site"].replace("", np.nan) if "site" in df else np.nan
    df["sex"] = [parse_sex(v) for v in df["sex"]] if "sex" in df else np.nan  # optional (manifests before it lack it)
    return df[manifest_columns(df)]


def cohort_summary(df: pd.DataFrame) -> str:
    """Cases, IDH balance, FA availability and sites of a manifest, one line each."""
    n = len(df)
    lines = [f"cases: {n}"]
    if "idh" in df:
        idh = df["idh"]
        mutant = int(sum(isinstance(v, (int, float)) and v == 1 for v in idh))
        wild = int(sum(isinstance(v, (int, float)) and v == 0 for v in idh))
        share = f" ({100 * mutant / (mutant + wild):.0f}% mutant)" if mutant + wild else ""
        lines.append(f"IDH: {mutant} mutant, {wild} wild-type, {n - mutant - wild} unknown{share}")
    if "fa" in df:
        lines.append(f"FA maps: {sum(has_fa(df))} of {n}")
    if "site" in df and df["site"].notna().any():
        lines.append(f"sites: {df['site'].nunique()}")
    return "\n".join(lines)


__all__ = ["IMAGE_COLUMNS", "cohort_summary", "MANIFEST_COLUMNS", "OPTIONAL_COLUMNS", "SEQUENCES", "has_fa",
           "is_blank", "read_csv_cohort", "read_manifest", "scan_cohort", "write_manifest"]
