"""The per-case cache of preprocessing: what a patient depends on, and its ``done.json``.

A patient's key (:func:`cache_key`) is the sha256 of the sha256 of its input file
bytes (by role), of the ``preprocess`` config section, of :data:`PREPROCESS_VERSION`
and of the ITK thread count when it is not 1. ``done.json`` is written last, once every output is there
(:func:`write_done`); a rerun skips a patient whose key matches and whose outputs all
exist (:func:`is_up_to_date`) and redoes it otherwise, removing ``done.json`` first
(:func:`mark_stale`) so that an interrupted run never looks finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gliotype.errors import CaseError, stop_on_environment
from gliotype.layout import CaseDir
from gliotype.preprocessing.ants_runtime import DEFAULT_ITK_THREADS
from gliotype.preprocessing.images import write_text
from gliotype.preprocessing.outputs import output_names
from gliotype.utils.io import sha256_file

#: Bumped whenever the same inputs and config would give different outputs.
PREPROCESS_VERSION = 2  # 2: ANTs seed + 1 (seed 0 meant the clock), one ITK thread


def input_hashes(inputs: dict[str, Path], pid: str) -> dict[str, str]:
    """role -> sha256 of the input file's bytes; a missing or unreadable file is a CaseError (too
    many open files, the machine's problem, is an :class:`~gliotype.errors.EnvironmentProblem`)."""
    hashes = {}
    for role, path in inputs.items():
        if not path.is_file():
            raise CaseError(pid, path, f"{role} file not found")
        try:
            hashes[role] = sha256_file(path)
        except OSError as exc:
            stop_on_environment(exc)
            raise CaseError(pid, path, f"{role} file cannot be read ({(exc.strerror or type(exc).__name__).lower()})") \
                from None
    return hashes


def cache_key(input_hashes: dict[str, str], config, itk_threads: int = DEFAULT_ITK_THREADS) -> str:
    """sha256 of the input file hashes (by role), the preprocess config section, the version and
    the ITK thread count when it is not the reproducible default (registrations differ with it)."""
    parts = {"version": PREPROCESS_VERSION, "inputs": input_hashes,
             "preprocess": config.preprocess.model_dump(mode="json")}
    if int(itk_threads) != DEFAULT_ITK_THREADS:
        parts["itk_threads"] = int(itk_threads)
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def is_up_to_date(case: CaseDir, key: str) -> bool:
    """True when ``done.json`` holds ``key`` and every output it lists exists."""
    if not case.done.exists():
        return False
    try:
        meta = json.loads(case.done.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("key") == key and all((case.preprocessed / f).exists() for f in meta.get("outputs", ["?"]))


def mark_stale(case: CaseDir) -> None:
    """Remove ``done.json``: the patient is not preprocessed until :func:`write_done` runs again."""
    if case.done.exists():
        case.done.unlink()


def write_done(case: CaseDir, pid: str, key: str, hashes: dict[str, str], config, has_fa: bool,
               seconds: float) -> None:
    """``done.json``: the key, what it covers, the outputs (:func:`output_names`) and the time taken."""
    meta = {"key": key, "patient_id": pid, "version": PREPROCESS_VERSION, "inputs": hashes,
            "preprocess": config.preprocess.model_dump(mode="json"), "outputs": output_names(case, has_fa),
            "has_fa": has_fa, "seconds": seconds}
    write_text(case.done, json.dumps(meta, indent=2))


__all__ = ["PREPROCESS_VERSION", "cache_key", "input_hashes", "is_up_to_date", "mark_stale", "write_done"]
