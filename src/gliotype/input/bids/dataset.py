"""Where a BIDS dataset is and how its cases are named.

A folder is a BIDS dataset when it holds ``dataset_description.json``; one of its subject
folders (``sub-01``) or session folders (``sub-01/ses-02``) stands for that subject or
session of the dataset (``gliotype predict --case DATASET/sub-01``). A case is one subject,
or one session of a subject when the dataset has sessions; its patient ID is its entity
prefix, ``sub-01`` or ``sub-01_ses-02``, the start of every BIDS file name of that case.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from gliotype.errors import GliotypeError

DESCRIPTION = "dataset_description.json"
#: A BIDS label: letters and digits only (the ``sub-`` and ``ses-`` values).
_LABEL = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class BidsLocation:
    """A BIDS dataset folder, and the one subject (and session) a path selected in it (None: all)."""

    root: Path
    subject: str | None = None
    session: str | None = None


def _entity_folder(path: Path, key: str) -> str | None:
    """The label of a ``<key>-<label>`` folder name, else None."""
    name = path.name
    label = name[len(key) + 1:]
    return label if name.startswith(f"{key}-") and _LABEL.fullmatch(label) else None


def locate(path: str | Path) -> BidsLocation | None:
    """The BIDS dataset of ``path``: the dataset folder itself, one of its subject folders or
    one of their session folders (each selects that subject / session); None otherwise."""
    p = Path(path).absolute()
    if (p / DESCRIPTION).is_file():
        return BidsLocation(p)
    subject = _entity_folder(p, "sub")
    if subject is not None and (p.parent / DESCRIPTION).is_file():
        return BidsLocation(p.parent, subject)
    session = _entity_folder(p, "ses")
    subject = _entity_folder(p.parent, "sub")
    if session is not None and subject is not None and (p.parent.parent / DESCRIPTION).is_file():
        return BidsLocation(p.parent.parent, subject, session)
    return None


def is_bids(path: str | Path) -> bool:
    """``path`` is a BIDS dataset folder, or a subject or session folder of one (:func:`locate`)."""
    return Path(path).is_dir() and locate(path) is not None


def description(root: str | Path) -> dict:
    """The dataset's ``dataset_description.json`` ({} when absent or not a JSON object)."""
    path = Path(root) / DESCRIPTION
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_raw(root: str | Path) -> None:
    """A :class:`GliotypeError` when ``root`` is a derivative dataset (its images are outputs, not inputs)."""
    if str(description(root).get("DatasetType", "")).strip().lower() == "derivative":
        raise GliotypeError(f"{Path(root).name} is a BIDS derivative dataset (DatasetType 'derivative' in its "
                            f"{DESCRIPTION}); scan the raw dataset it derives from")


def case_prefix(subject: str, session: str | None = None) -> str:
    """The entity prefix (and patient ID) of a case: ``sub-01`` or ``sub-01_ses-02``."""
    return f"sub-{subject}" + (f"_ses-{session}" if session else "")


def parse_prefix(prefix: str) -> tuple[str, str | None]:
    """(subject, session) of an entity prefix written by :func:`case_prefix`; a
    :class:`GliotypeError` for anything else (the manifest's ``bids`` column holds only these)."""
    m = re.fullmatch(r"sub-([A-Za-z0-9]+)(?:_ses-([A-Za-z0-9]+))?", str(prefix).strip())
    if m is None:
        raise GliotypeError(f"BIDS prefix {str(prefix)[:40]!r} is not sub-<label> or sub-<label>_ses-<label>")
    return m.group(1), m.group(2)


def case_folder(prefix: str) -> Path:
    """The folder of a case relative to a dataset: ``sub-01`` or ``sub-01/ses-02``."""
    subject, session = parse_prefix(prefix)
    return Path(f"sub-{subject}") / (f"ses-{session}" if session else "")


__all__ = ["BidsLocation", "DESCRIPTION", "case_folder", "case_prefix", "check_raw", "description", "is_bids",
           "locate", "parse_prefix"]
