"""A second process for the preprocessing of one patient: its steps that need not wait for each other
run beside each other.

``gliotype predict`` preprocesses its one patient while the networks load (``prediction.ahead``);
the registration holds the cores for most of that time, so the tumour's metric mask is made and
the other sequences are normalised, and later warped, beside it, in this second process
(:func:`~gliotype.preprocessing.case.run_case` with a helper). Each function runs on the same number
of ITK threads in either process (:mod:`~gliotype.preprocessing.ants_runtime`), so the volumes are
the same to the byte with or without the helper (tested); a cohort's workers take the cores
instead and have no helper. :func:`~gliotype.preprocessing.register.one_itk_thread` starts one on
one ITK thread for the rigid co-registrations.

The protocol is two pipes, in order: :meth:`CaseHelper.submit` sends a module-level function and
its arguments (at once, from the calling thread: ANTs holds the interpreter lock while it
registers, so nothing is left for a background thread to send; the helper reads every job as it
comes), the helper runs the jobs one after the other and answers each on the other pipe. Values
stay in the helper under a name: the ``state`` it starts with (forked, the arrays are not even
copied) and the results of jobs sent with ``keep=NAME`` (a normalised sequence stays where it will
be warped); a job's argument :class:`Kept` ``(NAME)`` stands for one. An answer larger than the
pipe's buffer waits until the parent reads it, and the helper's next job with it: keep large
results and ask for them together when they are needed. A job's error is raised again by
:meth:`CaseHelper.result`; a helper that died raises :class:`RuntimeError` there (the patient then
fails like any unexpected error).
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from queue import Queue


@dataclass(frozen=True)
class Kept:
    """An argument of :meth:`CaseHelper.submit`: the value kept in the helper under ``name`` (from its
    ``state``, or the result of an earlier job with ``keep=name``)."""

    name: str


def _answer(value):
    """What the helper sends back: ``(True, value)`` or ``(False, exception)`` (one that pickles)."""
    if isinstance(value, BaseException):
        try:
            pickle.loads(pickle.dumps(value))
        except Exception:
            value = RuntimeError(f"{type(value).__name__}: {value}")
        return False, value
    return True, value


def _serve(jobs, answers, parents: tuple, itk_threads: int, state: dict) -> None:
    """The helper process: run each job received, in order, until the parent's end closes. A thread
    reads the jobs as they come, so the parent never waits to send one while this process waits
    to send it a large answer. ``parents``: the parent's ends of the pipes, closed here at once (a
    forked copy would keep the pipe open after the parent died, and this process waiting)."""
    from gliotype.preprocessing.ants_runtime import use_itk_threads

    for end in parents:
        end.close()
    use_itk_threads(itk_threads)
    queue: Queue = Queue()

    def read() -> None:
        while True:
            try:
                job = jobs.recv()
            except (EOFError, OSError):
                job = None
            queue.put(job)
            if job is None:
                return

    threading.Thread(target=read, name="gliotype-case-helper-jobs", daemon=True).start()
    kept = dict(state)
    while (job := queue.get()) is not None:
        fn, args, keep = job
        try:
            value = fn(*[kept[a.name] if isinstance(a, Kept) else a for a in args])
            if keep is not None:
                kept[keep], value = value, None
        except BaseException as exc:  # noqa: BLE001 (sent back, raised there)
            value = exc
        try:
            answers.send(_answer(value))
        except (BrokenPipeError, OSError):  # the parent closed its end: nobody waits for the answer
            return


class CaseHelper:
    """The parent's end of the helper process (:func:`case_helper`)."""

    def __init__(self, itk_threads: int, state: dict | None = None, start_method: str | None = None):
        # fork while ITK has not started here (cheap: nothing to import again, ``state`` not copied), else spawn
        if start_method is None:
            fork = "ants" not in sys.modules and "fork" in mp.get_all_start_methods()
            start_method = "fork" if fork else "spawn"
        ctx = mp.get_context(start_method)
        jobs, self._jobs = ctx.Pipe(duplex=False)
        self._answers_in, answers = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_serve, name="gliotype-case-helper", daemon=True,
                                    args=(jobs, answers, (self._jobs, self._answers_in), int(itk_threads),
                                          dict(state or {})))
        self._process.start()
        jobs.close()
        answers.close()
        self._sent = 0
        self._answers: dict[int, tuple[bool, object]] = {}
        self._read = 0

    def submit(self, fn: Callable, *args, keep: str | None = None) -> int:
        """Send ``fn(*args)`` (``fn`` a module-level function; a :class:`Kept` argument is an earlier
        result); returns the job's number for :meth:`result`. With ``keep`` the helper keeps the
        result and answers ``None``."""
        try:
            self._jobs.send((fn, args, keep))
        except (BrokenPipeError, OSError) as exc:
            raise RuntimeError(f"the preprocessing helper process ended ({exc})") from None
        self._sent += 1
        return self._sent - 1

    def result(self, job: int):
        """The answer of job ``job`` (its error raised here)."""
        while self._read <= job:
            try:
                self._answers[self._read] = self._answers_in.recv()
            except (EOFError, OSError):
                raise RuntimeError(f"the preprocessing helper process ended (exit code {self._process.exitcode})") \
                    from None
            self._read += 1
        ok, value = self._answers.pop(job)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """End the helper (its unanswered jobs are dropped)."""
        self._answers_in.close()  # first: a helper waiting to send an answer stops
        try:
            self._jobs.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._jobs.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()


@contextmanager
def case_helper(itk_threads: int, state: dict | None = None, start_method: str | None = None) -> Iterator[CaseHelper]:
    """A :class:`CaseHelper` on ``itk_threads`` ITK threads for the block, ended on leaving it;
    ``state``: name -> value, what :class:`Kept` arguments may name from the start. The helper is
    forked while this process has not started ANTs (ITK's threads), else spawned (``start_method``
    chooses)."""
    helper = CaseHelper(itk_threads, state, start_method)
    try:
        yield helper
    finally:
        helper.close()


__all__ = ["CaseHelper", "Kept", "case_helper"]
