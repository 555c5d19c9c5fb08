"""Completion records: a stage's cache key with the size and sha256 of every file it wrote.

A stage writes its record last (:func:`write_record`), once its files are complete. On a
rerun it reuses them only when :func:`reusable_record` finds the same key and every
listed file with its recorded size and hash: a file truncated, edited or deleted since
is named in one warning and the stage builds it again, instead of trusting it by name
(issue 14, case 5). A record written before files were recorded is never reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from gliotype.utils.io import atomic_write, sha256_file
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

FILES = "files"  # the record's field: relative name -> {"bytes", "sha256"}


def file_entries(root: str | Path, names: Iterable[str]) -> dict[str, dict]:
    """name (relative to ``root``, with ``/``) -> its size in bytes and sha256, in name order."""
    root = Path(root)
    return {n: {"bytes": (root / n).stat().st_size, "sha256": sha256_file(root / n)} for n in sorted(set(names))}


def changed_files(root: str | Path, entries: Mapping[str, Mapping]) -> dict[str, str]:
    """name -> what is wrong (missing, size or content), for every listed file that no longer matches."""
    root, bad = Path(root), {}
    for name, rec in entries.items():
        path = root / name
        if not path.is_file():
            bad[name] = "missing"
        elif path.stat().st_size != rec.get("bytes"):
            bad[name] = f"{path.stat().st_size} bytes, recorded {rec.get('bytes')}"
        elif sha256_file(path) != rec.get("sha256"):
            bad[name] = "content differs from the recorded sha256"
    return bad


def record_text(key: str, files: Iterable[str], root: str | Path, **fields) -> str:
    """The JSON text of a record (``key``, the other ``fields``, then the files' entries)."""
    return json.dumps({"key": key, **fields, FILES: file_entries(root, files)}, indent=2)


def write_record(path: str | Path, key: str, files: Iterable[str] = (), root: str | Path | None = None,
                 **fields) -> None:
    """Write the record atomically; ``files`` are relative to ``root`` (default: the record's folder)."""
    path = Path(path)
    atomic_write(path, record_text(key, files, path.parent if root is None else root, **fields))


def holds_key(path: str | Path, key: str) -> bool:
    """Whether the JSON record at ``path`` holds ``key`` (its files are not checked: that is
    :func:`reusable_record`'s job when it is read); False when it is missing or unreadable."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("key") == key


def reusable_record(path: str | Path, key: str, root: str | Path | None = None, what: str = "") -> dict | None:
    """The record at ``path`` when it holds ``key`` and every file it lists is unchanged, else None.

    A matching key with a changed file logs one warning naming ``what`` (e.g. ``patient
    P1``) and the file; the caller then rebuilds.
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get(FILES), dict):
        return None
    bad = changed_files(path.parent if root is None else root, meta[FILES])
    if bad:
        name, problem = next(iter(bad.items()))
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        log.warning("%scached file %s changed since it was written (%s)%s; building it again",
                    f"{what}: " if what else "", name, problem, more)
        return None
    return meta


def record_digest(path: str | Path) -> str:
    """sha256 of what a record says about its stage: its key and its files' sizes and hashes
    (not its timings); ``absent`` when there is no readable record. A downstream stage puts
    this in its own key, so any change upstream, of settings or of content, reaches it."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return "absent"
    text = json.dumps([meta.get("key"), meta.get(FILES)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def records_key(paths: Iterable[str | Path]) -> str:
    """One sha256 over the :func:`record_digest` of every record in ``paths`` (in order)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(record_digest(p).encode())
    return h.hexdigest()


__all__ = ["changed_files", "file_entries", "holds_key", "record_digest", "record_text", "records_key",
           "reusable_record", "write_record"]
