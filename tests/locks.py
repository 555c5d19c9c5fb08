"""Test helper (import as ``locks``): an exclusive file lock, so pytest-xdist workers
build a shared fixture (a cohort, a trained model) once and the others wait for it."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def shared_once(tmp_path_factory, name: str, done: str, build) -> Path:
    """``BASE/name``, built by ``build(root)`` once per test run unless ``root/done`` exists;
    under pytest-xdist every worker shares the run's base folder and waits on the lock."""
    import os

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by the workers (a fresh one every run)
    root = base / name
    with locked(base / f"{name}.lock"):
        if not (root / done).exists():
            build(root)
    return root
