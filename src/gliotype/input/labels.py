"""Clinical labels CSV with flexible column names and values (IDH status, age, site).

Cohorts name things differently: ``IDH``, ``idh_status``, ``IDH1/2``, ``IDH mutation``;
``mutant``, ``IDH-mut``, ``1``, ``positive``... :func:`read_labels` maps them onto
``patient_id, idh, age, site, sex`` with ``idh`` in {1 mutant, 0 wild-type, missing} and
``sex`` in {``F``, ``M``, missing} (optional: the population graph's phenotype option).
A value it cannot read is kept as text so that validation rejects that one case
with its value, instead of guessing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.errors import GliotypeError
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

ID_COLUMNS = ("patient_id", "patient", "subject_id", "subject", "case_id", "case", "id", "brats21id",
              "brats_id", "bratsid", "participant_id", "participant", "tcga_id", "sample", "name")
AGE_COLUMNS = ("age", "age_at_diagnosis", "age_at_mri", "age_years", "patient_age", "ageatdiagnosis")
SITE_COLUMNS = ("site", "center", "centre", "institution", "scanner_site", "tss", "source_site")
SEX_COLUMNS = ("sex", "gender", "patient_sex", "sex_at_birth")
#: the clinical columns a labels table may give, in manifest order
CLINICAL = ("idh", "age", "site", "sex")
FEMALE = {"f", "female", "woman", "w"}
MALE = {"m", "male", "man"}  # numeric codes are left unread: 0 / 1 mean either sex in one cohort or another

MUTANT = {"1", "1.0", "mutant", "mutated", "mut", "mutation", "idh-mutant", "idhmutant", "idh-mut", "idhmut",
          "idh mutant", "idh_mutant", "positive", "pos", "+", "yes", "y", "true", "idh1", "idh2",
          "idh1-mutant", "idh2-mutant", "idh1 mutant", "idh2 mutant", "idh1/2 mutant", "idh1_mutant"}
WILDTYPE = {"0", "0.0", "wildtype", "wild-type", "wild type", "wild_type", "wt", "idh-wildtype",
            "idhwildtype", "idh-wt", "idhwt", "idh wildtype", "idh_wildtype", "idh wild-type",
            "negative", "neg", "-", "no", "n", "false", "non-mutant", "not mutated", "unmutated"}
MISSING = {"", "nan", "na", "n/a", "none", "null", "unknown", "not available", "not tested", "?", "nd", "."}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def find_column(columns, candidates, what: str | None = None) -> str | None:
    """The first column whose normalized name is one of ``candidates`` (normalized too)."""
    normalized = {_norm(c): c for c in columns}
    for cand in candidates:
        if _norm(cand) in normalized:
            return normalized[_norm(cand)]
    return None


def find_idh_column(columns) -> str | None:
    """The IDH status column: ``IDH``, ``idh_status``, ``IDH1/2``, ``IDH mutation``...

    Prefers a name that is exactly IDH(1/2)(_status); otherwise any column containing
    ``idh`` that is not a method, date or notes column.
    """
    exact = {"idh", "idh_status", "idh1_2", "idh12", "idh1_idh2", "idh_1_2", "idh_mutation",
             "idh_mutation_status", "idh_status_final", "idh1", "idh_mut", "idh_result", "idh1_2_status"}
    for c in columns:
        if _norm(c) in exact:
            return c
    for c in columns:
        n = _norm(c)
        if "idh" in n and not any(bad in n for bad in ("method", "date", "note", "comment", "codel", "1p19q")):
            return c
    return None


def parse_idh(value) -> float | str:
    """1.0 mutant, 0.0 wild-type, NaN missing; anything else is returned as text (invalid)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, np.integer, float, np.floating)):
        return float(value) if value in (0, 1) else str(value)
    text = str(value).strip().lower()
    if text in MISSING:
        return np.nan
    if text in MUTANT:
        return 1.0
    if text in WILDTYPE:
        return 0.0
    squashed = re.sub(r"[\s_\-/]+", "", text)
    if squashed.startswith("idh") and ("mut" in squashed or squashed.endswith("pos")):
        return 1.0
    if squashed.startswith("idh") and ("wild" in squashed or squashed.endswith("wt") or squashed.endswith("neg")):
        return 0.0
    return str(value).strip()


def id_key(patient_id) -> str:
    """Matching key of a patient ID: case-insensitive, leading zeros of numbers dropped.

    UCSF-PDGM's metadata says ``UCSF-PDGM-004`` where its files say ``UCSF-PDGM-0004``.
    """
    text = str(patient_id).strip().lower()
    return re.sub(r"\d+", lambda m: str(int(m.group(0))), text)


def parse_sex(value) -> str | float:
    """``F`` or ``M`` (F / female / woman / w, M / male / man), NaN when missing or unreadable."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    text = str(value).strip().lower()
    return "F" if text in FEMALE else "M" if text in MALE else np.nan


def clinical_columns(raw: pd.DataFrame) -> pd.DataFrame:
    """``idh, age, site, sex`` of a table of text columns, whatever their names (NaN when absent)."""
    out = pd.DataFrame(index=raw.index)
    idh_col = find_idh_column(raw.columns)
    out["idh"] = pd.Series([parse_idh(v) for v in raw[idh_col]], index=raw.index, dtype=object) if idh_col else np.nan
    age_col = find_column(raw.columns, AGE_COLUMNS)
    out["age"] = pd.to_numeric(raw[age_col], errors="coerce") if age_col else np.nan
    site_col = find_column(raw.columns, SITE_COLUMNS)
    out["site"] = raw[site_col].astype(str).str.strip().replace("", np.nan) if site_col else np.nan
    sex_col = find_column(raw.columns, SEX_COLUMNS)
    out["sex"] = pd.Series([parse_sex(v) for v in raw[sex_col]], index=raw.index, dtype=object) if sex_col else np.nan
    return out


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read a labels CSV/TSV/XLSX into ``patient_id, idh, age, site, sex`` (idh as parsed by :func:`parse_idh`)."""
    path = Path(path)
    if not path.is_file():
        raise GliotypeError(f"labels file {path.name} not found")
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            raw = pd.read_excel(path, dtype=str)
        else:
            raw = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except Exception as exc:
        raise GliotypeError(f"labels file {path.name} is not a readable table ({type(exc).__name__})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    id_col = find_column(raw.columns, ID_COLUMNS)
    if id_col is None:
        raise GliotypeError(f"labels file {path.name} has no patient ID column (one of: patient_id, id, "
                            f"subject, case, BraTS21ID...); columns are: {', '.join(raw.columns)}")
    out = pd.DataFrame({"patient_id": raw[id_col].astype(str).str.strip()})
    out = pd.concat([out, clinical_columns(raw.drop(columns=[id_col]))], axis=1)
    out = out[out["patient_id"] != ""]
    return _without_duplicates(out, path.name).reset_index(drop=True)


def _same(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) if (pd.isna(a) or pd.isna(b)) else str(a) == str(b)


def _without_duplicates(labels: pd.DataFrame, name: str) -> pd.DataFrame:
    """The one rule for a patient listed more than once in a labels table: with the same
    ``idh``, ``age``, ``site`` and ``sex`` a warning and one row kept; with different values an error
    naming the patient and both file lines (a wrong label must never train a model silently)."""
    keys = labels["patient_id"].map(id_key)
    keep = []
    first: dict[str, int] = {}
    for i, key in zip(labels.index, keys):
        if key not in first:
            first[key] = i
            keep.append(i)
            continue
        j = first[key]
        a, b = labels.loc[j], labels.loc[i]
        differ = [c for c in CLINICAL if not _same(a[c], b[c])]
        line_a, line_b = j + 2, i + 2  # file lines: the header is line 1
        if differ:
            values = "; ".join(f"{c} {a[c]} on line {line_a}, {b[c]} on line {line_b}" for c in differ)
            raise GliotypeError(f"labels file {name}: patient {a['patient_id']} is listed twice with different "
                                f"values ({values}); keep one row")
        log.warning("labels file %s: patient %s is listed again on line %d with the same values as on line %d; "
                    "used once", name, b["patient_id"], line_b, line_a)
    return labels.loc[keep]


def attach_labels(manifest: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Fill ``idh, age, site, sex`` of ``manifest`` from ``labels`` (matched by :func:`id_key`).

    Returns the manifest and the label IDs that matched no patient.
    """
    by_key: dict[str, dict] = {}
    for row in labels.to_dict(orient="records"):
        by_key.setdefault(id_key(row["patient_id"]), row)
    out = manifest.copy()
    for col in CLINICAL:
        out[col] = out[col].astype(object) if col in out else pd.Series(np.nan, index=out.index, dtype=object)
    used = set()
    for i, pid in enumerate(out["patient_id"]):
        key = id_key(pid)
        row = by_key.get(key)
        if row is None:
            # BraTS-style IDs carry a prefix the clinical table may lack ("BraTS2021_00012" vs "00012")
            tail = re.split(r"[_\-]", key)[-1]
            row = by_key.get(tail) if tail and tail != key else None
            key = tail if row is not None else key
        if row is None:
            continue
        used.add(key)
        for col in CLINICAL:
            value = row.get(col)
            if not (isinstance(value, float) and np.isnan(value)):
                out.at[i, col] = value
    unmatched = [r["patient_id"] for r in labels.to_dict(orient="records") if id_key(r["patient_id"]) not in used]
    return out, unmatched


__all__ = ["attach_labels", "clinical_columns", "find_idh_column", "id_key", "parse_idh", "parse_sex", "read_labels"]
