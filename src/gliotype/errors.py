"""Errors that end in one clear line for the user, never a traceback."""

from __future__ import annotations

from pathlib import Path


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when empty), at most ``limit`` characters.

    The one formatter behind every "patient X: problem" line and the CLI's error line.
    """
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


class GliotypeError(Exception):
    """A problem the user can fix (bad argument, broken manifest, bad config)."""


class CaseError(GliotypeError):
    """A problem with one patient's input: names the patient, the file and the problem.

    Only the file *name* is kept, never its directory, so the message can go into
    shared reports without leaking local paths.
    """

    def __init__(self, patient_id: str | None, file: str | Path | None, problem: str):
        self.patient_id = patient_id
        self.file = Path(file).name if file else None
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        who = f"patient {self.patient_id}" if self.patient_id else "input"
        where = f" [{self.file}]" if self.file else ""
        return f"{who}{where}: {self.problem}"
