"""The synthetic generator's answer key: one table per cohort of every patient's latents
(z_image, z_shape, z_network, location_group, site, ...) and Bayes posterior.

The one reader of that file: ``gliotype run`` (the Bayes ceiling of the test patients)
and the information audit (``gliotype audit --truth``) take the table from
:func:`read_truth` (a cohort folder; None for a real cohort, which has no truth) or
:func:`read_truth_file` (a truth file named by the user) and never spell the file's
name, which lives here (:data:`TRUTH_FILE`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gliotype.errors import GliotypeError

#: The answer key's file name in a synthetic cohort folder.
TRUTH_FILE = "truth.csv"


def truth_file(cohort: str | Path) -> Path:
    """Where a cohort folder keeps its answer key (it may not exist: a real cohort has none)."""
    return Path(cohort) / TRUTH_FILE


def read_truth(cohort: str | Path | None) -> pd.DataFrame | None:
    """The truth of a cohort folder (:func:`read_truth_file`); None when it has none: a real
    cohort, a cohort given as a CSV file, or no cohort (None)."""
    if cohort is None or not Path(cohort).is_dir():
        return None
    path = truth_file(cohort)
    return read_truth_file(path) if path.is_file() else None


def read_truth_file(path: str | Path) -> pd.DataFrame:
    """A truth file: indexed by ``patient_id`` (as text: ``007`` stays ``007``), one row per patient.

    Raises:
        GliotypeError: the file is missing, unreadable or has no ``patient_id`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise GliotypeError(f"truth file {path.name} not found")
    try:
        truth = pd.read_csv(path, dtype={"patient_id": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise GliotypeError(f"truth file {path.name}: cannot read it ({type(exc).__name__})") from None
    if "patient_id" not in truth:
        raise GliotypeError(f"truth file {path.name} has no patient_id column")
    return truth.drop_duplicates("patient_id").set_index("patient_id")


__all__ = ["TRUTH_FILE", "read_truth", "read_truth_file", "truth_file"]
