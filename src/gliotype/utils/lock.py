"""An exclusive lock on a run or work folder: two commands never write one folder at once.

``with folder_lock(RunDir(out).lock, "run folder"):`` takes an exclusive ``flock`` on the
folder's lock file (``.gliotype.lock``, named by :mod:`gliotype.layout`) without waiting; when another process holds it, a one-line
:class:`~gliotype.errors.GliotypeError` names the holder's process, host and start time.
The operating system releases the lock when its process ends, however it ends (``kill -9``
included), so a stale lock file never blocks a later run: only a living holder does.
Local file systems only (``flock`` over NFS depends on the server).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gliotype.errors import GliotypeError


@contextmanager
def folder_lock(path: str | Path, what: str = "folder") -> Iterator[Path]:
    """Hold the exclusive lock ``path`` (its folder is created if missing) for the ``with`` block."""
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _holder(fh.read())
            raise GliotypeError(f"{what} {folder.name} is in use by {holder}; wait for it to finish or stop it, "
                                "then rerun (it resumes)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        fh.flush()
        try:
            yield path
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"process {info['pid']} on {info['host']} (since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


__all__ = ["folder_lock"]
