"""Running preprocessing: one patient safely (:func:`preprocess_case`) and a cohort (:func:`preprocess_cohort`).

:func:`preprocess_case` wraps the steps of :func:`gliotype.preprocessing.case.run_case`
with the per-case cache (:mod:`gliotype.preprocessing.cache`), the patient's
``preprocess.log`` and ``qc.json``, and never raises for a bad case: it returns a
:class:`CaseResult`, ``failed`` with a one-line reason naming the file and the problem.
:func:`preprocess_cohort` runs every manifest row (in a process pool for ``workers > 1``;
a crashed worker costs its case, not the run) and writes the status table
``WORKDIR/preprocessing.csv``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gliotype.errors import CaseError, GliotypeError
from gliotype.layout import WorkDir
from gliotype.preprocessing.cache import (
    PREPROCESS_VERSION,
    cache_key,
    input_hashes,
    is_up_to_date,
    mark_stale,
    write_done,
)
from gliotype.errors import one_line
from gliotype.preprocessing.case import run_case
from gliotype.preprocessing.images import write_text
from gliotype.preprocessing.inputs import case_inputs
from gliotype.utils.logging import get_logger
from gliotype.utils.progress import progress

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


def preprocess_case(row, workdir, config) -> CaseResult:
    """Preprocess one patient (a manifest row: patient_id, t1, t1c, t2, flair, mask, [fa]).

    Never raises for a bad case: returns ``failed`` with a one-line reason (the
    traceback of an unexpected error goes to the patient's ``preprocess.log``).
    """
    row = dict(row)
    pid = str(row.get("patient_id", "")).strip()
    t0 = time.perf_counter()
    if not pid or pid in (".", "..") or any(c in pid for c in "/\\") or pid != os.path.basename(pid):
        return CaseResult(pid, "failed", f"invalid patient id {pid!r}", {"seconds": 0.0})
    case = WorkDir.of(workdir).case(pid)
    say = _CaseLog(pid)
    qc: dict = {}
    try:
        inputs = case_inputs(row, pid)
        hashes = input_hashes(inputs, pid)
        key = cache_key(hashes, config)
        if is_up_to_date(case, key):
            return CaseResult(pid, "skipped", "", {"seconds": round(time.perf_counter() - t0, 3)})
        mark_stale(case)
        case.preprocessed.mkdir(parents=True, exist_ok=True)
        say(f"preprocessing {pid} (gliotype preprocessing v{PREPROCESS_VERSION}); config "
            f"{json.dumps(config.preprocess.model_dump(mode='json'), sort_keys=True)}")
        for role, path in inputs.items():
            say(f"input {role}: {path.name} sha256 {hashes[role][:16]}")
        run_case(pid, inputs, case, config, say, qc)
        seconds = round(time.perf_counter() - t0, 3)
        qc["seconds"] = seconds
        write_text(case.qc, json.dumps(qc, indent=2))
        say(f"done in {seconds:.1f}s")
        say.write(case.preprocess_log)
        write_done(case, pid, key, hashes, config, "fa" in inputs, seconds)  # last
        return CaseResult(pid, "done", "", {"seconds": seconds, "qc": qc})
    except CaseError as exc:
        reason = f"{exc.file}: {exc.problem}" if exc.file else exc.problem
        qc = qc or {"patient_id": pid}
    except Exception as exc:  # never a traceback for the user; it goes to the log
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


def _worker_init() -> None:
    """One ITK thread per worker process (set before ants is imported in the worker)."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _worker(row: dict, workdir: WorkDir, config) -> CaseResult:
    return preprocess_case(row, workdir, config)


def _check_config(config) -> None:
    cfg = config.preprocess
    if int(round(cfg.spacing_mm)) not in (1, 2) or abs(cfg.spacing_mm - round(cfg.spacing_mm)) > 1e-6:
        raise GliotypeError(f"preprocess.spacing_mm must be 1 or 2 (the template grids), got {cfg.spacing_mm}")
    if cfg.registration == "SyN" and not cfg.reg_iterations:
        raise GliotypeError("preprocess.reg_iterations must not be empty for SyN")


def preprocess_cohort(df: pd.DataFrame, workdir, config, workers: int = 1) -> pd.DataFrame:
    """Preprocess every manifest row; one bad case never stops the run.

    Returns a DataFrame (patient_id, status, reason, seconds) in manifest order, also
    written to ``WORKDIR/preprocessing.csv``. ``workers > 1`` runs cases in separate
    processes with one ITK thread each.
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

    workers = max(1, min(int(workers or 1), len(todo)))
    if workers == 1:
        for i in progress(todo, "preprocessing", total=len(todo)):
            results[i] = preprocess_case(rows[i], work, config)
    else:
        _parallel(rows, todo, work, config, workers, results)

    table = pd.DataFrame([{"patient_id": results[i].patient_id, "status": results[i].status,
                           "reason": results[i].reason, "seconds": results[i].info.get("seconds", 0.0)}
                          for i in range(len(rows))], columns=STATUS_COLUMNS)
    write_text(work.preprocessing_status, table.to_csv(index=False))
    counts = table["status"].value_counts().to_dict()
    log.info("preprocessing: %s", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no patient")
    for r in table[table["status"] == "failed"].itertuples():
        log.warning("patient %s: preprocessing failed: %s", r.patient_id, r.reason)
    return table


def _parallel(rows, todo, workdir, config, workers, results) -> None:
    """Run ``todo`` in a process pool; a crashed worker costs its case (after one retry), not the run."""
    import multiprocessing as mp

    attempts = {i: 0 for i in todo}
    pending = list(todo)
    bar = progress(range(len(todo)), "preprocessing", total=len(todo))
    bar_iter = iter(bar)
    # fork (Linux) like the other stages: no re-import of the caller's main module and no
    # start-up cost; ants is imported lazily, so ITK reads the one-thread setting in the child
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    while pending:
        ctx = mp.get_context(method)
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx,
                                 initializer=_worker_init) as pool:
            futures = {}
            for i in pending:
                attempts[i] += 1
                futures[pool.submit(_worker, rows[i], workdir, config)] = i
            pending = []
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except BrokenProcessPool:
                    if attempts[i] >= 2:
                        pid = str(rows[i].get("patient_id", ""))
                        results[i] = CaseResult(pid, "failed", "the worker process crashed (out of memory?)")
                    else:
                        pending.append(i)
                        continue
                except Exception as exc:
                    pid = str(rows[i].get("patient_id", ""))
                    results[i] = CaseResult(pid, "failed", f"unexpected error: {one_line(exc)}")
                next(bar_iter, None)
    if hasattr(bar, "close"):
        bar.close()


__all__ = ["CaseResult", "STATUS_COLUMNS", "preprocess_case", "preprocess_cohort"]
