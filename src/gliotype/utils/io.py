"""Atomic outputs: a file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from gliotype.errors import environment_problem


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 4 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file keeps the target's suffixes (``.nii.gz``) so writers that
    pick a format from the extension work. On error the temporary file is removed.
    A full disk, a read-only or forbidden folder (while making the folder, writing or
    renaming) raises :class:`~gliotype.errors.EnvironmentProblem` naming ``target``.
    """
    target = Path(target)
    with _environment(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = suffix if suffix is not None else "".join(target.suffixes)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _environment(target):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def _environment(target: Path) -> Iterator[None]:
    """An ``OSError`` that is an environment error, as :class:`~gliotype.errors.EnvironmentProblem`
    naming ``target`` (the temporary file's name would not help the user), or the other file
    the error names (a folder that cannot be made, a source being copied)."""
    try:
        yield
    except OSError as exc:
        name = Path(exc.filename) if isinstance(exc.filename, (str, os.PathLike)) else None
        if name is None or name.parent == target.parent:  # the temporary file or the target
            env = environment_problem(exc, target, writing=True)
        else:  # a folder that cannot be made (the target's or above it), or a source being read
            env = environment_problem(exc, name, writing=name == target or name in target.parents)
        if env is None or env is exc:
            raise
        raise env from exc


def make_folder(folder: str | Path) -> Path:
    """``mkdir -p folder``; a full disk, a read-only or forbidden place raises
    :class:`~gliotype.errors.EnvironmentProblem` naming the folder that could not be made."""
    folder = Path(folder)
    with _environment(folder):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def atomic_write(target: str | Path, data: str | bytes) -> None:
    """Write text or bytes to ``target`` atomically."""
    with atomic_path(target) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)


def write_csv_atomic(df: pd.DataFrame, target: str | Path, **kwargs) -> None:
    """Write a DataFrame as CSV atomically (no index by default)."""
    kwargs.setdefault("index", False)
    with atomic_path(target) as tmp:
        df.to_csv(tmp, **kwargs)
