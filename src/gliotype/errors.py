"""Errors that end in one clear line for the user, never a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when empty), at most ``limit`` characters.

    The one formatter behind every "patient X: problem" line and the CLI's error line.
    """
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def validation_problem(exc) -> str:
    """The first problem of a pydantic ``ValidationError``, as ``key: message`` (the message
    alone for a problem of the whole model), without pydantic's "Value error, " prefix."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


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


# --------------------------------------------------------------------------- environment errors

#: Exit code of the CLI for an environment error (0 success, 1 a bug, 2 a user error, 3 the machine).
ENVIRONMENT_EXIT = 3

#: errno -> (what happened, what to do).
_ERRNO_ADVICE = {
    errno.ENOSPC: ("no space left on device", "free space or choose another output folder"),
    errno.EDQUOT: ("disk quota exceeded", "free space or choose another output folder"),
    errno.EROFS: ("read-only file system", "choose a writable output folder"),
    errno.EACCES: ("permission denied", "fix its permissions or choose a writable folder"),
    errno.EPERM: ("operation not permitted", "fix its permissions or choose a writable folder"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or lower --workers"),
    errno.ENFILE: ("too many open files in the system", "raise the limit or lower --workers"),
    errno.ENOMEM: ("out of memory", "lower --workers or use a machine with more memory"),
}
#: The errors also recognised in the message of a non-``OSError`` (by the system's words).
_IN_WORDS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_MEMORY = ("out of memory", "lower --workers or use a machine with more memory")


class EnvironmentProblem(OSError):
    """The machine, not the input and not gliotype: a full disk, a read-only or forbidden folder,
    too many open files, no memory left. One line naming the path and what to do; the CLI exits
    with :data:`ENVIRONMENT_EXIT`. An ``OSError`` (Python's ``EnvironmentError``) with the
    original ``errno``, so code that tolerates a failed write (an optional cache) still does.

    ``stops_run``: every next patient would hit it too (full disk, read-only output folder), so
    a per-patient stage stops instead of failing each patient with it (out of memory does not
    stop a run: it may be one patient's large image). The message names the path on the user's
    own terminal; it is never written into a report or a run folder.
    """

    def __init__(self, message: str, stops_run: bool = True, code: int | None = None):
        super().__init__(code, message)
        self.message, self.stops_run = message, stops_run

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # across worker processes
        return type(self), (self.message, self.stops_run, self.errno)


def _causes(exc: BaseException):
    """``exc`` and the exceptions it was raised from or during (at most 10), up to a
    :class:`GliotypeError` (whose own message already says what to do)."""
    for _ in range(10):
        if exc is None or isinstance(exc, GliotypeError):
            return
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def environment_problem(exc: BaseException, path: str | Path | None = None,
                        writing: bool = False) -> EnvironmentProblem | None:
    """``exc`` as an :class:`EnvironmentProblem` when it (or an exception it was raised from) is
    one, else None. The one place that tells an environment error from a bug or a bad input.

    ``path``: the file concerned when known (else the error's own file name); ``writing``: the
    error happened writing ``path`` (gliotype's output). A permission error stops a run only on
    a write (:func:`gliotype.utils.io.atomic_path`, :func:`~gliotype.utils.io.make_folder`): on a
    read it is one input file's problem.
    """
    for e in _causes(exc):
        if isinstance(e, EnvironmentProblem):
            return e
        if isinstance(e, MemoryError):
            what, todo = _MEMORY
            return EnvironmentProblem(f"{what}; {todo}", stops_run=False, code=errno.ENOMEM)
        if isinstance(e, OSError) and e.errno in _ERRNO_ADVICE:
            what, todo = _ERRNO_ADVICE[e.errno]
            where = path if path is not None else (e.filename if e.filename not in (None, "") else None)
            if where is not None and e.errno != errno.ENOMEM:  # memory is no path's: the line may go in a report
                what += f" {'writing' if writing else 'at'} {where}"
            stops = e.errno != errno.ENOMEM and (writing or e.errno not in (errno.EACCES, errno.EPERM))
            return EnvironmentProblem(f"{what}; {todo}", stops_run=stops, code=e.errno)
        text = str(e)  # native writers (ITK, safetensors) raise their own types with the system's words
        for code in _IN_WORDS:
            if os.strerror(code) in text:
                what, todo = _ERRNO_ADVICE[code]
                return EnvironmentProblem(f"{what}{f' writing {path}' if path and writing else ''}; {todo}",
                                          code=code)
    return None


def stop_on_environment(exc: BaseException) -> None:
    """Raise ``exc`` as an :class:`EnvironmentProblem` when it is one that stops a run (a full
    disk, a read-only output folder): a per-patient stage calls it before it records a patient's
    failure, so a full disk is never reported as that patient's problem."""
    env = environment_problem(exc)
    if env is not None and env.stops_run:
        if env is exc:
            raise env
        raise env from exc
