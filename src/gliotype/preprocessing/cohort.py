"""Running preprocessing: one patient safely (:func:`preprocess_case`) and a cohort (:func:`preprocess_cohort`).

:func:`preprocess_case` wraps the steps of :func:`gliotype.preprocessing.case.run_case`
with the per-case cache (:mod:`gliotype.preprocessing.cache`), the patient's
``preprocess.log`` and ``qc.json``, and never raises for a bad case: it returns a
:class:`CaseResult`, ``failed`` with a one-line reason naming the file and the problem.
:func:`preprocess_cohort` runs every manifest row (in worker processes for ``workers > 1``,
through :func:`gliotype.utils.parallel.parallel_map`: a crashed worker costs its case after
one retry, not the run) and writes the status table ``WORKDIR/preprocessing.csv``. Both
take ``itk_threads``, the ITK threads of each process that registers
(:mod:`gliotype.preprocessing.ants_runtime`).
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd

from gliotype.errors import CaseError, GliotypeError, one_line, stop_on_environment
from gliotype.input import check_patient_id
from gliotype.layout import WorkDir
from gliotype.preprocessing.ants_runtime import DEFAULT_ITK_THREADS, use_itk_threads
from gliotype.preprocessing.cache import (
    PREPROCESS_VERSION,
    cache_key,
    input_hashes,
    is_up_to_date,
    mark_stale,
    write_done,
)
from gliotype.preprocessing.case import run_case
from gliotype.preprocessing.images import write_text
from gliotype.preprocessing.inputs import case_inputs
from gliotype.utils.io import make_folder
from gliotype.utils.logging import get_logger
from gliotype.utils.parallel import parallel_map

log = get_logger("preprocessing")

#: The columns of ``preprocessing.csv``.
STATUS_COLUMNS = ["patient_id", "status", "reason", "seconds"]


@dataclass
class CaseResult:
    """Outcome of one patient: ``done``, ``skipped`` (cache hit) or ``failed`` (with a one-line reason)."""

    patient_id: str
    status: str
    reason: str = ""
    info: dict = field(default_factory=dict)


class _CaseLog:
    """Lines of one patient's run, written to ``preprocess.log`` at the end (also sent to the logger)."""

    def __init__(self, pid: str):
        self.pid = pid
        self.t0 = time.perf_counter()
        self.lines: list[str] = []

    def __call__(self, msg: str, level: int = logging.INFO) -> None:
        self.lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} +{time.perf_counter() - self.t0:7.2f}s "
                          f"{logging.getLevelName(level):7s} {msg}")
        log.debug("patient %s: %s", self.pid, msg)  # the cohort summary warns about failures

    def write(self, path: Path) -> None:
        write_text(path, "\n".join(self.lines) + "\n")


def preprocess_case(row, workdir, config, itk_threads: int = DEFAULT_ITK_THREADS,
                    helper: bool = False) -> CaseResult:
    """Preprocess one patient (a manifest row: patient_id, t1, t1c, t2, flair, mask, [fa]).

    Never raises for a bad case: returns ``failed`` with a one-line reason (the
    traceback of an unexpected error goes to the patient's ``preprocess.log``). An
    environment error every next patient would hit too (a full disk, a read-only work
    folder) is no bad case: it raises :class:`~gliotype.errors.EnvironmentProblem`.
    ``itk_threads``: ITK threads of this process (default 2; the registrations are the same bytes on a
    fixed count, each count its own: it is in the cache key unless the default);
    it takes effect only before ANTs first runs in the process
    (:func:`~gliotype.preprocessing.ants_runtime.use_itk_threads`). ``helper``: make the tumour's metric
    mask, normalise and warp the sequences the registration does not move in a second process beside it
    (:mod:`~gliotype.preprocessing.helper`; one patient on an idle core, as ``gliotype predict`` does):
    the same outputs, in no cache key.
    """
    use_itk_threads(itk_threads)
    row = dict(row)
    t0 = time.perf_counter()
    try:
        pid = check_patient_id(row.get("patient_id"))
    except GliotypeError as exc:
        return CaseResult(str(row.get("patient_id", "") or "").strip(), "failed", str(exc), {"seconds": 0.0})
    case = WorkDir.of(workdir).case(pid)
    say = _CaseLog(pid)
    qc: dict = {}
    try:
        inputs = case_inputs(row, pid, config.input.missing_sequences)
        hashes = input_hashes(inputs, pid)
        key = cache_key(hashes, config, itk_threads)
        if is_up_to_date(case, key):
            return CaseResult(pid, "skipped", "", {"seconds": round(time.perf_counter() - t0, 3)})
        mark_stale(case)
        make_folder(case.preprocessed)
        say(f"preprocessing {pid} (gliotype preprocessing v{PREPROCESS_VERSION}); config "
            f"{json.dumps(config.preprocess.model_dump(mode='json'), sort_keys=True)}")
        for role, path in inputs.items():
            say(f"input {role}: {path.name} sha256 {hashes[role][:16]}")
        run_case(pid, inputs, case, config, say, qc, itk_threads if helper else None)
        seconds = round(time.perf_counter() - t0, 3)
        qc["seconds"] = seconds
        write_text(case.qc, json.dumps(qc, indent=2))
        say(f"done in {seconds:.1f}s")
        say.write(case.preprocess_log)
        write_done(case, pid, key, hashes, config, "fa" in inputs, seconds, qc["missing_sequences"])  # last
        return CaseResult(pid, "done", "", {"seconds": seconds, "qc": qc})
    except CaseError as exc:
        reason = f"{exc.file}: {exc.problem}" if exc.file else exc.problem
        qc = qc or {"patient_id": pid}
    except Exception as exc:  # never a traceback for the user; it goes to the log
        stop_on_environment(exc)  # a full disk or a read-only folder is no patient's problem: stop
        reason = f"unexpected error: {type(exc).__name__}: {one_line(exc)}"
        say(traceback.format_exc(), logging.DEBUG)
    seconds = round(time.perf_counter() - t0, 3)
    say(f"failed after {seconds:.1f}s: {reason}", logging.WARNING)
    try:
        if case.preprocessed.exists() or qc:
            qc = {**qc, "passed": False, "reason": reason, "seconds": seconds}
            write_text(case.qc, json.dumps(qc, indent=2))
            say.write(case.preprocess_log)
    except OSError:
        pass
    return CaseResult(pid, "failed", reason, {"seconds": seconds, "qc": qc})


# --------------------------------------------------------------------------- cohort


def _worker_init(itk_threads: int) -> None:
    """Each worker process: ``itk_threads`` ITK threads (set before ants is imported in the worker)
    and one OpenMP thread unless ``OMP_NUM_THREADS`` says otherwise."""
    use_itk_threads(itk_threads)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _run_case(row: dict, workdir: WorkDir, config, itk_threads: int) -> CaseResult:
    """:func:`preprocess_case`, with an error that escapes it turned into a failed case."""
    try:
        return preprocess_case(row, workdir, config, itk_threads)
    except Exception as exc:
        stop_on_environment(exc)
        return CaseResult(str(row.get("patient_id", "")), "failed", f"unexpected error: {one_line(exc)}")


def _crashed(row: dict) -> CaseResult:
    """The result of a case whose worker process died twice."""
    return CaseResult(str(row.get("patient_id", "")), "failed", "the worker process crashed (out of memory?)")


def _check_config(config) -> None:
    cfg = config.preprocess
    if int(round(cfg.spacing_mm)) not in (1, 2) or abs(cfg.spacing_mm - round(cfg.spacing_mm)) > 1e-6:
        raise GliotypeError(f"preprocess.spacing_mm must be 1 or 2 (the template grids), got {cfg.spacing_mm}")
    if cfg.registration == "SyN" and not cfg.reg_iterations:
        raise GliotypeError("preprocess.reg_iterations must not be empty for SyN")


def preprocess_cohort(df: pd.DataFrame, workdir, config, workers: int = 1,
                      itk_threads: int = DEFAULT_ITK_THREADS) -> pd.DataFrame:
    """Preprocess every manifest row; one bad case never stops the run (a full disk or a
    read-only work folder does: :class:`~gliotype.errors.EnvironmentProblem`, one line naming the path).

    Returns a DataFrame (patient_id, status, reason, seconds) in manifest order, also
    written to ``WORKDIR/preprocessing.csv``. ``workers > 1`` runs cases in separate
    processes with ``itk_threads`` ITK threads each (default 2: :mod:`~gliotype.preprocessing.ants_runtime`).
    """
    _check_config(config)
    work = WorkDir.of(workdir)
    work.root.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in df.to_dict("records")]
    results: dict[int, CaseResult] = {}
    seen: set[str] = set()
    todo: list[int] = []
    for i, r in enumerate(rows):
        pid = str(r.get("patient_id", "")).strip()
        if pid in seen:
            results[i] = CaseResult(pid, "failed", "duplicate patient id in the manifest")
        else:
            seen.add(pid)
            todo.append(i)

    # fork (Linux) like the other stages: no re-import of the caller's main module and no
    # start-up cost; ants is imported lazily, so ITK reads the thread count in the worker
    done = parallel_map(partial(_run_case, workdir=work, config=config, itk_threads=itk_threads),
                        [rows[i] for i in todo], workers, desc="preprocessing", start="fork",
                        initializer=partial(_worker_init, itk_threads), on_crash=_crashed)
    results.update(zip(todo, done))

    table = pd.DataFrame([{"patient_id": results[i].patient_id, "status": results[i].status,
                           "reason": results[i].reason, "seconds": results[i].info.get("seconds", 0.0)}
                          for i in range(len(rows))], columns=STATUS_COLUMNS)
    write_text(work.preprocessing_status, table.to_csv(index=False))
    counts = table["status"].value_counts().to_dict()
    log.info("preprocessing: %s", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no patient")
    for r in table[table["status"] == "failed"].itertuples():
        log.warning("patient %s: preprocessing failed: %s", r.patient_id, r.reason)
    return table


__all__ = ["CaseResult", "STATUS_COLUMNS", "preprocess_case", "preprocess_cohort"]
