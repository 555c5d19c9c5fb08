"""The inputs of one prediction: the five files of a patient and the patient's ID (a sequence
may be missing when the model's ``input.missing_sequences``, or ``--allow-missing``, allows it).

Owns finding them (:func:`inputs_from_case`: a case folder in any layout the cohort
scanner knows, through its manifest row :func:`case_row`; DICOM studies included, converted for the
prediction by :func:`case_folder_inputs`; :func:`patient_id_from_files`: the ID in the T1c file name) and checking
them (:func:`check_inputs`: the cohort validator's checks, :func:`gliotype.input.check_case`;
the ID rule, :func:`gliotype.input.check_patient_id`, is the cohort's too). Every
problem is one line naming the patient, the file name and the problem.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from gliotype.errors import CaseError, GliotypeError, one_line
from gliotype.input import (
    SEQUENCES,
    InputRules,
    check_case,
    check_patient_id,
    detect_layout,
    is_blank,
    patient_id_from_name,
    present_sequences,
    scan_cohort,
)

if TYPE_CHECKING:
    from gliotype.config import GliotypeConfig

#: The files of a prediction: the four sequences and the tumor mask (no FA).
ROLES = SEQUENCES + ("mask",)


def patient_id_from_files(inputs: Mapping[str, str | Path]) -> str:
    """The patient ID in the T1c file name under a known layout (``<id>_t1ce.nii.gz``...), else ``patient``."""
    t1c = inputs.get("t1c")
    pid = patient_id_from_name(t1c, "t1c") if t1c else None
    return pid if pid is not None else "patient"


def case_row(case_dir: str | Path, patient_id: str | None = None, convert_dir: str | Path | None = None,
             optional: tuple[str, ...] = ()) -> dict:
    """The manifest row of the one patient in ``case_dir`` (any layout :func:`gliotype.input.scan_cohort`
    knows; a BIDS subject or session folder, or a BIDS dataset with ``patient_id``).

    A folder of DICOM studies is the folder of one patient (its name the ID, unless
    ``patient_id``): its series are converted into ``convert_dir`` (:func:`case_folder_inputs` gives a
    temporary one). The roles in ``optional`` (``mask`` when a segmenter is given) may be missing.
    """
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise GliotypeError(f"--case {case_dir.name or case_dir}: not a folder")
    layout = _layout(case_dir, optional)
    if layout == "dicom":
        if convert_dir is None:
            raise GliotypeError(f"--case {case_dir.name}: DICOM studies need a folder for their conversion")
        pid = check_patient_id(patient_id if patient_id is not None else case_dir.name)
        df = scan_cohort(case_dir, "dicom", convert_dir=convert_dir, single_patient=pid)
    else:
        df = scan_cohort(case_dir, layout)
    ids = df["patient_id"].astype(str).tolist()
    if len(ids) > 1:
        if patient_id is None or str(patient_id) not in ids:
            raise GliotypeError(f"--case {case_dir.name}: {len(ids)} patients found ({', '.join(ids[:4])}"
                                f"{' ...' if len(ids) > 4 else ''}); give one patient's folder or --patient-id")
        row = df[df["patient_id"].astype(str) == str(patient_id)].iloc[0]
    else:
        row = df.iloc[0]
    return row.to_dict()


def row_inputs(row: Mapping, optional: tuple[str, ...] = ()) -> tuple[str, dict[str, Path]]:
    """The patient ID and the files of a manifest row: a blank sequence is left out (:func:`check_inputs`
    applies the model's ``input.missing_sequences``); a missing mask is a one-line CaseError unless
    ``optional`` holds ``"mask"`` (a segmenter makes it)."""
    pid = str(row["patient_id"])
    inputs = {r: Path(str(row[r])) for r in ROLES if not is_blank(row.get(r))}
    if "mask" not in inputs and "mask" not in optional:  # a missing sequence: check_inputs applies the model's rule
        raise CaseError(pid, None, "no mask file found in the case folder")
    return pid, inputs


def inputs_from_case(case_dir: str | Path, patient_id: str | None = None, convert_dir: str | Path | None = None,
                     optional: tuple[str, ...] = ()) -> tuple[str, dict[str, Path]]:
    """The files of the one patient in ``case_dir`` (:func:`case_row`, :func:`row_inputs`)."""
    return row_inputs(case_row(case_dir, patient_id, convert_dir, optional), optional)


@contextmanager
def case_folder_row(case_dir: str | Path, patient_id: str | None = None,
                    optional: tuple[str, ...] = ()) -> Iterator[dict]:
    """:func:`case_row` for the length of a prediction: DICOM series are converted into a
    temporary folder, removed on leaving."""
    with tempfile.TemporaryDirectory(prefix="gliotype-predict-dicom-") as tmp:
        yield case_row(case_dir, patient_id, convert_dir=tmp, optional=optional)


@contextmanager
def case_folder_inputs(case_dir: str | Path, patient_id: str | None = None,
                       optional: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Path]]]:
    """:func:`inputs_from_case` for the length of a prediction (:func:`case_folder_row`)."""
    with case_folder_row(case_dir, patient_id, optional) as row:
        yield row_inputs(row, optional)


def _layout(case_dir: Path, optional: tuple[str, ...]) -> str:
    """The case folder's layout (:func:`gliotype.input.detect_layout`); when no layout finds a complete
    case, the first finding the roles that are not ``optional`` (a case without its mask, for a segmenter)."""
    try:
        return detect_layout(case_dir)
    except GliotypeError:
        if not optional:
            raise
        from gliotype.input.layouts import LAYOUTS, scan_layout

        need = [r for r in ROLES if r not in optional]
        for name in LAYOUTS:
            rows = scan_layout(case_dir, name)[need].itertuples(index=False)
            if any(all(not is_blank(v) for v in row) for row in rows):
                return name
        raise


def check_inputs(inputs: Mapping[str, str | Path], pid: str, rules: InputRules = InputRules()) -> dict:
    """Validate the five input files as the cohort validator does, under ``rules`` (the model's:
    ``InputRules.of(model.config)``; a sequence may be missing when ``rules.missing_sequences``
    allows it); a problem is a one-line CaseError.

    Returns the validator's information (grid, spacing, labels, tumor voxels, missing sequences) and warnings.
    """
    present_sequences(inputs, pid, rules.missing_sequences, given="given",
                      hint="; the model's setting, --allow-missing N overrides it")
    if not inputs.get("mask"):
        raise CaseError(pid, None, "no mask file given")
    row = {"patient_id": pid, **{r: str(inputs[r]) if inputs.get(r) else None for r in ROLES}, "fa": None,
           "idh": None}
    try:
        report = check_case(row, rules=rules)
    except CaseError:
        raise
    except MemoryError:
        raise CaseError(pid, None, "out of memory while reading the images") from None
    except Exception as exc:
        raise CaseError(pid, None, f"unexpected problem while checking the inputs ({type(exc).__name__}: "
                                   f"{one_line(exc, 120)})") from None
    return {"info": report.info, "warnings": list(report.warnings)}


def prediction_row(patient_id: str | None, inputs: Mapping[str, str | Path | None]) -> dict:
    """The manifest row a prediction preprocesses: the checked patient ID (default: from the T1c file
    name) and the file of each role (None: not given; other roles ignored; no FA)."""
    files = {r: str(Path(str(p))) for r, p in inputs.items() if p is not None and str(p) != "" and r in ROLES}
    pid = check_patient_id(patient_id if patient_id is not None else patient_id_from_files(
        {r: Path(p) for r, p in files.items()}))
    return {"patient_id": pid, **{r: files.get(r) for r in ROLES}, "fa": None}


def row_paths(row: Mapping) -> dict[str, Path]:
    """The files of a :func:`prediction_row` by role (the roles given)."""
    return {r: Path(row[r]) for r in ROLES if row[r] is not None}


def prediction_config(config: GliotypeConfig, allow_missing: int | None = None) -> GliotypeConfig:
    """The model's configuration with the user's ``allow_missing`` override of its ``input.missing_sequences``
    (it changes which inputs are accepted, no computation)."""
    if allow_missing is None:
        return config
    config = config.model_copy(deep=True)
    config.input.missing_sequences = int(allow_missing)
    return config


__all__ = ["ROLES", "case_folder_inputs", "case_folder_row", "case_row", "check_inputs", "check_patient_id", "inputs_from_case",
           "patient_id_from_files", "prediction_config", "prediction_row", "row_inputs", "row_paths"]
