"""The per-case cache of preprocessing: what a patient depends on, and its ``done.json``.

A patient's key (:func:`cache_key`) is the sha256 of the sha256 of its input file
bytes (by role), of the ``preprocess`` config section (options added later only away from
their neutral value, :data:`gliotype.config.loader.NEUTRAL_OPTIONS`), of :data:`PREPROCESS_VERSION`
and of the ITK thread count when it is not the default (2). ``done.json`` is written last, once every output is there
(:func:`write_done`) with the size and sha256 of each output (:mod:`gliotype.utils.records`);
a rerun skips a patient whose key matches and whose outputs are unchanged
(:func:`is_up_to_date`; a truncated or edited output is named in a warning) and redoes it
otherwise, removing ``done.json`` first (:func:`mark_stale`) so that an interrupted run
never looks finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gliotype.errors import CaseError, stop_on_environment
from gliotype.layout import CaseDir
from gliotype.preprocessing.ants_runtime import DEFAULT_ITK_THREADS
from gliotype.preprocessing.images import write_text
from gliotype.preprocessing.outputs import SEQUENCES, output_names
from gliotype.utils.io import sha256_file
from gliotype.utils.records import record_text, reusable_record

#: Bumped whenever the same inputs and config would give different outputs.
#: 2: ANTs seed + 1 (seed 0 meant the clock), one ITK thread; 3: the QC's MI over every voxel;
#: 4: the template registration's affine stage on global correlation, two ITK threads (docs/design.md point 57)
PREPROCESS_VERSION = 4


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
    parts = {"version": PREPROCESS_VERSION, "inputs": input_hashes, "preprocess": _preprocess_values(config)}
    if int(itk_threads) != DEFAULT_ITK_THREADS:
        parts["itk_threads"] = int(itk_threads)
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _preprocess_values(config) -> dict:
    """The ``preprocess`` section as hashed: an option added later counts only away from its
    neutral value (:data:`gliotype.config.loader.NEUTRAL_OPTIONS`), so adding it keeps every key."""
    from gliotype.config.loader import hashed_values

    return hashed_values({"preprocess": config.preprocess.model_dump(mode="json")})["preprocess"]


def is_up_to_date(case: CaseDir, key: str) -> bool:
    """True when ``done.json`` holds ``key`` and every output it lists has its recorded size and sha256."""
    return reusable_record(case.done, key, root=case.preprocessed, what=f"patient {case.patient_id}") is not None


def mark_stale(case: CaseDir) -> None:
    """Remove ``done.json``: the patient is not preprocessed until :func:`write_done` runs again."""
    if case.done.exists():
        case.done.unlink()


def write_done(case: CaseDir, pid: str, key: str, hashes: dict[str, str], config, has_fa: bool,
               seconds: float, missing_sequences=()) -> None:
    """``done.json``: the key, what it covers, the outputs (:func:`output_names`), the size and sha256
    of each but ``qc.json`` (a report whose timings change on every run: a patient preprocessed
    again to the same images is the same data downstream), the sequences the patient lacks
    (written as zero volumes; in :data:`SEQUENCES` order) and the time taken."""
    outputs = output_names(case, has_fa)
    data = [f for f in outputs if f != case.preprocessed_name(case.qc)]  # qc.json: a report with timings
    write_text(case.done, record_text(key, data, case.preprocessed, patient_id=pid, version=PREPROCESS_VERSION,
                                      inputs=hashes, preprocess=config.preprocess.model_dump(mode="json"),
                                      outputs=outputs, has_fa=has_fa,
                                      missing_sequences=[s for s in SEQUENCES if s in set(missing_sequences)],
                                      seconds=seconds))


__all__ = ["PREPROCESS_VERSION", "cache_key", "input_hashes", "is_up_to_date", "mark_stale", "write_done"]
