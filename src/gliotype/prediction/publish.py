"""Publishing a prediction's output folder all at once.

Owns the rule "a failed prediction leaves no output": everything is written into a
hidden staging folder beside ``out`` (:func:`staging_folder`) and moved into place only
when the whole prediction succeeded; after a failure (a bad input, a crash, Ctrl-C) the
staging folder is removed and ``out`` is untouched. An existing ``out`` is replaced only
when it holds an earlier prediction (``prediction.json``); any other non-empty folder is
refused before anything is computed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gliotype.errors import GliotypeError


def check_out_dir(out: Path) -> None:
    """``out`` can receive a prediction: absent, empty or holding an earlier prediction."""
    if out.exists() and not out.is_dir():
        raise GliotypeError(f"--out {out.name}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "prediction.json").exists():
        raise GliotypeError(f"--out {out.name}: the folder is not empty and holds no earlier prediction; "
                            "choose a new folder")


@contextmanager
def staging_folder(out: str | Path) -> Iterator[Path]:
    """A hidden folder beside ``out`` to write into; it becomes ``out`` when the block ends
    without an error and is removed otherwise (``out`` checked first, :func:`check_out_dir`)."""
    out = Path(out)
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield staging
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out`` (replacing an earlier prediction there)."""
    os.chmod(staging, 0o777 & ~_umask())
    if out.exists():
        if any(out.iterdir()):
            trash = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, trash)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
            return
        out.rmdir()
    os.replace(staging, out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["check_out_dir", "staging_folder"]
