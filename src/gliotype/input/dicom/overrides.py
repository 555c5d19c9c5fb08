"""The user's corrections of the role heuristic (``gliotype cohort scan --dicom-overrides CSV``).

One row per series: ``patient_id``, ``series_number`` or ``series_uid`` (the SeriesInstanceUID,
when two studies of a patient reuse a number), ``role``: one of ``t1``, ``t1c``, ``t2``, ``flair``
or ``skip``. An override wins over the heuristic and over the duplicate rule
(:mod:`gliotype.input.dicom.choose`). A broken CSV is one line naming the file, the row and the
problem; a row matching no series is a warning of the scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gliotype.errors import GliotypeError
from gliotype.input.dicom.series import Series
from gliotype.input.manifest import SEQUENCES

#: The roles an override may give: a sequence, or ``skip`` (never use this series).
OVERRIDE_ROLES = SEQUENCES + ("skip",)


@dataclass(frozen=True)
class Override:
    """One row of the overrides CSV (``row``: its line number in the file, for messages)."""

    patient_id: str
    role: str
    series_number: int | None = None
    series_uid: str | None = None
    row: int = 0

    def matches(self, series: Series) -> bool:
        if self.series_uid:
            return series.uid == self.series_uid
        return self.series_number is not None and series.number == self.series_number

    @property
    def target(self) -> str:
        return f"series {self.series_number}" if self.series_number is not None else "series_uid"


def _cell(raw: pd.DataFrame, column: str | None, i: int) -> str:
    return "" if column is None else str(raw.iloc[i][column]).strip()


def read_overrides(path: str | Path) -> list[Override]:
    """The overrides of the CSV ``path``; a problem is a one-line :class:`GliotypeError`."""
    path = Path(path)
    if not path.is_file():
        raise GliotypeError(f"DICOM overrides {path.name} not found")
    try:
        raw = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except Exception as exc:
        raise GliotypeError(f"DICOM overrides {path.name} is not a readable CSV ({type(exc).__name__})") from None
    columns = {str(c).strip().lower(): c for c in raw.columns}
    if "patient_id" not in columns or "role" not in columns or not ({"series_number", "series_uid"} & set(columns)):
        raise GliotypeError(f"DICOM overrides {path.name} needs the columns patient_id, series_number (or "
                            f"series_uid) and role; it has: {', '.join(map(str, raw.columns))}")
    out = []
    for i in range(len(raw)):
        line = i + 2  # the header is line 1
        pid = _cell(raw, columns["patient_id"], i)
        role = _cell(raw, columns["role"], i).lower()
        number_text = _cell(raw, columns.get("series_number"), i)
        uid = _cell(raw, columns.get("series_uid"), i)
        if not pid:
            raise GliotypeError(f"DICOM overrides {path.name} line {line}: no patient_id")
        if role not in OVERRIDE_ROLES:
            raise GliotypeError(f"DICOM overrides {path.name} line {line}: role {role[:20]!r} is not one of "
                                f"{', '.join(OVERRIDE_ROLES)}")
        number = None
        if number_text:
            try:
                number = int(float(number_text))
            except ValueError:
                raise GliotypeError(f"DICOM overrides {path.name} line {line}: series_number {number_text[:20]!r} "
                                    "is not a number") from None
        if number is None and not uid:
            raise GliotypeError(f"DICOM overrides {path.name} line {line}: give a series_number or a series_uid")
        out.append(Override(pid, role, number, uid or None, line))
    return out


__all__ = ["OVERRIDE_ROLES", "Override", "read_overrides"]
