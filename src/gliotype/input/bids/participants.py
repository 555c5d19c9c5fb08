"""The clinical columns of a BIDS dataset's ``participants.tsv``: IDH status, age, site.

Read by :func:`gliotype.input.read_labels`, so the column names and IDH spellings the
labels CSV accepts work here too (``IDH status`` with ``mutant`` / ``wildtype``, ``age``,
``site``...; ``n/a`` is unknown). Its ``participant_id`` (``sub-01``) is matched to every
case of that subject (``sub-01`` or each ``sub-01_ses-02``): its label as written, else
case-insensitively with leading zeros ignored (:func:`gliotype.input.id_key`). Other
columns (``sex``...) are not used by the method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.input.labels import id_key, read_labels
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

PARTICIPANTS = "participants.tsv"
CLINICAL = ("idh", "age", "site")


def _subject(participant_id: str) -> str:
    text = str(participant_id).strip()
    return text[4:] if text.startswith("sub-") else text


def attach_participants(df: pd.DataFrame, root: str | Path, subjects: list[str]) -> pd.DataFrame:
    """``df`` (one row per case, ``subjects`` its subject labels) with ``idh, age, site`` from
    ``ROOT/participants.tsv`` when the dataset has one (unchanged otherwise)."""
    path = Path(root) / PARTICIPANTS
    out = df.copy()
    for col in CLINICAL:
        out[col] = out[col].astype(object) if col in out else np.nan
    if not path.is_file():
        return out
    table = read_labels(path)
    exact = {_subject(pid): row for pid, row in zip(table["patient_id"], table.to_dict(orient="records"))}
    loose = {}
    for label, row in exact.items():
        loose.setdefault(id_key(label), row)
    used = set()
    for i, subject in enumerate(subjects):
        row = exact.get(subject) or loose.get(id_key(subject))
        if row is None:
            continue
        used.add(_subject(row["patient_id"]))
        for col in CLINICAL:
            value = row.get(col)
            if not (isinstance(value, float) and np.isnan(value)):
                out.at[out.index[i], col] = value
    unused = [pid for pid in table["patient_id"] if _subject(pid) not in used]
    labelled = int(sum(v is not None and not (isinstance(v, float) and np.isnan(v)) for v in out["idh"]))
    log.info("%s: %d of %d cases labelled", PARTICIPANTS, labelled, len(out))
    if unused:
        log.info("%s: %d participants have no images scanned (e.g. %s)", PARTICIPANTS, len(unused),
                 ", ".join(unused[:3]))
    return out


__all__ = ["PARTICIPANTS", "attach_participants"]
