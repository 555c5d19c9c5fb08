"""The cohort manifest: one row per patient, the files of the four sequences, the tumor
mask and (optionally) FA, with IDH status, age, site and (optionally) sex.

``gliotype cohort scan`` finds the files of the usual public layouts (BraTS 2021,
BraTS 2023 GLI, UCSF-PDGM), reads a user CSV, or converts a folder of DICOM studies
(layout ``dicom``: :mod:`gliotype.input.dicom`). Paths are stored relative to the
manifest's folder when the data sit under it, so a cohort folder can move.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
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
from gliotype.input.volumes import image_suffix
from gliotype.utils.io import write_csv_atomic
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: Image roles of a case, in the order of the method's four input channels.
SEQUENCES = ("t1", "t1c", "t2", "flair")
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


@dataclass(frozen=True)
class Layout:
    """A naming convention: the file-name ending of each role (before ``.nii.gz``)."""

    name: str
    suffixes: dict[str, tuple[str, ...]]
    case_sensitive: bool = False

    def role_of(self, stem: str) -> tuple[str, str] | None:
        """(patient_id, role) when ``stem`` ends with one of the role endings."""
        text = stem if self.case_sensitive else stem.lower()
        for role, endings in self.suffixes.items():
            for end in endings:
                e = end if self.case_sensitive else end.lower()
                if text.endswith(e) and len(text) > len(e):
                    return stem[: len(stem) - len(e)], role
        return None


LAYOUTS: dict[str, Layout] = {
    "brats2021": Layout("brats2021", {
        "t1": ("_t1",), "t1c": ("_t1ce", "_t1gd"), "t2": ("_t2",), "flair": ("_flair",),
        "mask": ("_seg",), "fa": ("_fa",),
    }),
    "brats2023": Layout("brats2023", {
        "t1": ("-t1n",), "t1c": ("-t1c",), "t2": ("-t2w",), "flair": ("-t2f",),
        "mask": ("-seg",), "fa": ("-fa",),
    }),
    "ucsf-pdgm": Layout("ucsf-pdgm", {
        "t1": ("_T1",), "t1c": ("_T1c",), "t2": ("_T2",), "flair": ("_FLAIR",),
        "mask": ("_tumor_segmentation",), "fa": ("_DTI_eddy_FA",),
    }, case_sensitive=True),
}
LAYOUT_NAMES = ("auto", *LAYOUTS, "bids", "csv", "dicom")


def _image_files(root: Path) -> list[Path]:
    """Every supported image under ``root`` (sorted, hidden files and folders skipped)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and image_suffix(name):
                files.append(Path(dirpath) / name)
    return files


def _stem(path: Path) -> str:
    return path.name[: len(path.name) - len(image_suffix(path.name) or "")]


def patient_id_from_name(path: str | Path, role: str | None = None) -> str | None:
    """The patient ID in an image file's name under a known layout (``P1_t1ce.nii.gz`` -> ``P1``)
    when the name is that of ``role`` (any role when None); else None."""
    stem = _stem(Path(str(path)))
    for layout in LAYOUTS.values():
        hit = layout.role_of(stem)
        if hit and (role is None or hit[1] == role):
            return hit[0]
    return None


def _match(files: list[Path], layout: Layout) -> dict[str, dict[str, list[Path]]]:
    found: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for f in files:
        hit = layout.role_of(_stem(f))
        if hit:
            pid, role = hit
            found[pid][role].append(f)
    return found


def _complete(found: dict[str, dict[str, list[Path]]]) -> int:
    return sum(all(r in roles for r in REQUIRED_COLUMNS[1:]) for roles in found.values())


def detect_layout(root: str | Path) -> str:
    """The layout whose naming gives the most complete patients under ``root``; ``dicom`` when
    none does and DICOM files (``DICM`` at byte 128) lie under it."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    from gliotype.input.bids import is_bids

    if is_bids(root):
        return "bids"
    files = _image_files(root)
    scores = {name: _complete(_match(files, lay)) for name, lay in LAYOUTS.items()}
    best = max(scores.values()) if scores else 0
    if best == 0:
        from gliotype.input.dicom.series import holds_dicom

        if root.is_dir() and holds_dicom(root):
            return "dicom"
        raise GliotypeError(
            f"no complete case found under {root.name or root}: expected per patient T1, T1c, T2, FLAIR and a mask "
            "named as in BraTS 2021 (<id>_t1.nii.gz, _t1ce, _t2, _flair, _seg), BraTS 2023 (<id>-t1n.nii.gz, "
            "-t1c, -t2w, -t2f, -seg) or UCSF-PDGM (<id>_T1.nii.gz, _T1c, _T2, _FLAIR, _tumor_segmentation), "
            "or DICOM studies (one folder per patient); a BIDS dataset needs its dataset_description.json "
            "(or --layout bids); for other names give a CSV with --layout csv")
    winners = [n for n, s in scores.items() if s == best]
    if len(winners) > 1:
        raise GliotypeError(f"layout is ambiguous ({' and '.join(winners)} both fit); choose one with --layout")
    return winners[0]


def scan_layout(root: str | Path, layout: str) -> pd.DataFrame:
    """Find the files of every patient under ``root`` named by ``layout``.

    A patient missing a required file is kept with an empty entry (validation then
    rejects it with the reason); two files for one role are reported and the patient
    kept with that role empty.
    """
    root = Path(root)
    found = _match(_image_files(root), LAYOUTS[layout])
    rows = []
    for pid in sorted(found):
        roles = found[pid]
        row: dict = {"patient_id": pid}
        for role in IMAGE_COLUMNS:
            paths = roles.get(role, [])
            if len(paths) > 1:
                log.warning("patient %s: %d %s files (%s); none used", pid, len(paths), role,
                            ", ".join(p.name for p in paths))
                row[role] = ""
            else:
                row[role] = str(paths[0].resolve()) if paths else ""
        missing = [r for r in REQUIRED_COLUMNS[1:] if not row[r]]
        if missing:
            log.warning("patient %s: no %s file found", pid, ", ".join(missing))
        rows.append(row)
    df = pd.DataFrame(rows, columns=["patient_id", *IMAGE_COLUMNS])
    for col in ("idh", "age", "site", "sex"):
        df[col] = np.nan
    return df


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


__all__ = ["IMAGE_COLUMNS", "cohort_summary", "LAYOUTS", "LAYOUT_NAMES", "MANIFEST_COLUMNS", "OPTIONAL_COLUMNS",
           "SEQUENCES", "detect_layout", "has_fa", "is_blank", "patient_id_from_name", "read_csv_cohort",
           "read_manifest", "scan_cohort", "scan_layout", "write_manifest"]
