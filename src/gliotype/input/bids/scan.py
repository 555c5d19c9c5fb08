"""Scanning a BIDS dataset into manifest rows, with pybids.

One row per case (a subject, or each session of a subject: :mod:`.dataset`): the four
sequences from the raw dataset, the tumour mask (and FA) from its ``derivatives/``
folders, the roles as :mod:`.roles` names them. IDH status, age and site come from
``participants.tsv`` (:mod:`.participants`). The row also remembers where it came from:
``bids`` (its entity prefix) and ``bids_root`` (the dataset folder), which the BIDS
derivative outputs of ``gliotype preprocess`` and ``predict`` need (:mod:`.derivatives`).

A case missing a role is kept with that role empty and a warning (validation rejects it
with one line); a case with several files for a role keeps one (:func:`.roles.choose`)
and warns naming them by their BIDS names. Image paths are absolute and not resolved
through symbolic links (a DataLad dataset's files keep their BIDS names).
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.errors import GliotypeError, one_line
from gliotype.input.bids.dataset import BidsLocation, case_prefix, check_raw, description, locate
from gliotype.input.bids.participants import attach_participants
from gliotype.input.bids.roles import NIFTI, Candidate, choose, is_fa, mask_rank, sequence_role
from gliotype.input.manifest import IMAGE_COLUMNS, REQUIRED_COLUMNS, SEQUENCES
from gliotype.input.rules import check_patient_id
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: The folder of gliotype's own derivative outputs (:mod:`.derivatives`): never read as input.
PIPELINE = "gliotype"
_WHAT = {"mask": "mask (derivatives/*/: *_desc-tumor_dseg, *_label-tumor_mask or *_dseg)",
         "t1": "t1 (*_T1w)", "t1c": "t1c (*_ce-<agent>_T1w)", "t2": "t2 (*_T2w)", "flair": "flair (*_FLAIR)"}

Key = tuple[str, "str | None"]  # (subject, session)


def _layout(root: Path, derivative: bool = False):
    """A pybids layout of ``root`` (not validated: real datasets rarely pass the validator)."""
    from bids import BIDSLayout

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return BIDSLayout(root, validate=False, is_derivative=derivative)
    except Exception as exc:
        raise GliotypeError(f"BIDS dataset {root.name}: pybids cannot index it ({type(exc).__name__}: "
                            f"{one_line(exc, 120)})") from None


def _files(layout) -> list[tuple[str, str, dict]]:
    """(absolute path, file name, entities) of every NIfTI file of a layout."""
    return [(str(Path(f.path)), f.filename, f.get_entities()) for f in
            layout.get(extension=list(NIFTI), return_type="object")]


def _key(entities: dict) -> Key | None:
    subject = entities.get("subject")
    return None if subject is None else (str(subject), None if entities.get("session") is None
                                         else str(entities["session"]))


def _pipelines(root: Path) -> list[tuple[tuple[str, ...], Path]]:
    """(names: folder and ``GeneratedBy`` names, folder) of every derivative dataset under
    ``derivatives/`` but gliotype's own."""
    folder = root / "derivatives"
    if not folder.is_dir():
        return []
    found = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        generated = description(d).get("GeneratedBy")
        names = [str(g.get("Name", "")) for g in generated if isinstance(g, dict)] if isinstance(generated, list) else []
        if d.name.lower() == PIPELINE or PIPELINE in (n.lower() for n in names):
            continue
        found.append(((d.name, *names), d))
    return found


def _wanted(location: BidsLocation, key: Key) -> bool:
    return ((location.subject is None or key[0] == location.subject)
            and (location.session is None or key[1] == location.session))


def find_files(location: BidsLocation) -> tuple[dict[Key, dict[str, list[Candidate]]], set[Key]]:
    """The candidate files of every role per case, and the cases of the raw dataset with any file."""
    found: dict[Key, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    raw = _layout(location.root)
    cases: set[Key] = set()
    for subject in raw.get_subjects():
        sessions = raw.get_sessions(subject=subject) or [None]
        cases.update((str(subject), None if s is None else str(s)) for s in sessions)
    for path, name, ents in _files(raw):
        key = _key(ents)
        if key is None or not _wanted(location, key):
            continue
        role = sequence_role(ents) or ("fa" if ents.get("datatype") == "dwi" and is_fa(name, ents) else None)
        if role:
            found[key][role].append(Candidate(path, name, ents))
    for pipeline, folder in _pipelines(location.root):
        for path, name, ents in _files(_layout(folder, derivative=True)):
            key = _key(ents)
            if key is None or not _wanted(location, key):
                continue
            rank = mask_rank(ents, pipeline)
            if rank is not None:
                found[key]["mask"].append(Candidate(path, name, ents, rank))
            elif is_fa(name, ents):
                found[key]["fa"].append(Candidate(path, name, ents))
    return found, {k for k in cases if _wanted(location, k)}


def _pick(pid: str, role: str, candidates: list[Candidate]) -> str:
    if not candidates:
        return ""
    kept, others = choose(candidates)
    if others:
        why = "a tumour-named mask first, then " if role == "mask" else ""
        log.warning("patient %s: %d %s files (%s); kept %s (%sthe highest run, then the first name)", pid,
                    len(candidates), role, ", ".join(sorted(c.name for c in candidates)), kept.name, why)
    return kept.path


def scan_bids(path: str | Path) -> pd.DataFrame:
    """The manifest rows of the BIDS dataset at ``path`` (or of the one subject / session of
    it that ``path`` is the folder of): ``patient_id``, the six roles, ``idh, age, site``,
    ``bids`` and ``bids_root``."""
    path = Path(path)
    location = locate(path) or BidsLocation(path.absolute())  # --layout bids: a dataset without its description
    check_raw(location.root)
    found, cases = find_files(location)  # derivative files of no raw case are ignored
    rows, subjects = [], []
    for key in sorted(cases, key=lambda k: (k[0], k[1] or "")):
        pid = case_prefix(*key)
        roles = found.get(key, {})
        if not any(roles.get(r) for r in SEQUENCES):
            log.warning("patient %s: no anatomical image (T1w, T2w, FLAIR) found; left out", pid)
            continue
        try:
            check_patient_id(pid)
        except GliotypeError as exc:
            log.warning("patient %s: %s", pid[:64], exc)  # kept: validation rejects it with this line
        row = {"patient_id": pid, **{role: _pick(pid, role, roles.get(role, [])) for role in IMAGE_COLUMNS}}
        missing = [_WHAT[r] for r in REQUIRED_COLUMNS[1:] if not row[r]]
        if missing:
            log.warning("patient %s: no %s file found", pid, ", ".join(missing))
        rows.append({**row, "bids": pid, "bids_root": os.fspath(location.root)})
        subjects.append(key[0])
    if not rows:
        where = f"sub-{location.subject}" if location.subject else location.root.name
        raise GliotypeError(f"BIDS dataset {where}: no subject with anatomical images (anat/*_T1w, *_T2w, *_FLAIR)")
    df = pd.DataFrame(rows, columns=["patient_id", *IMAGE_COLUMNS, "bids", "bids_root"])
    for col in ("idh", "age", "site"):
        df[col] = np.nan
    return attach_participants(df, location.root, subjects)


__all__ = ["PIPELINE", "find_files", "scan_bids"]
