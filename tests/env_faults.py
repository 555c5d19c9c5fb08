"""Test helper (import as ``env_faults``): a real full disk, a real read-only folder and a folder
the process may not write, for the ``gliotype`` command run in a subprocess; and a full disk
injected at the rename of gliotype's atomic writes for tests that run in this process.

:func:`run_on_tmpfs` runs the command in its own user and mount namespace (``unshare -r -m``:
no root needed where unprivileged user namespaces are allowed) with a tmpfs of the given size,
or read-only, mounted on a folder: the kernel answers ``ENOSPC`` or ``EROFS`` as on a real
disk, and the mount ends with the command. :func:`run_without_write_permission` makes the
folder 0555 and, as root (who writes anyway), drops the capability that lets root ignore it.
Each skips the test, with the reason, where the machine does not allow it.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest

import gliotype

SRC = str(Path(gliotype.__file__).resolve().parents[1])
_MOUNT = 'mount -t tmpfs -o "$1" tmpfs "$2" || exit 97; shift 2; exec "$@"'
_NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def gliotype_cmd(*args) -> list[str]:
    """The command line of ``gliotype ARGS`` with this interpreter and this source tree."""
    return [sys.executable, "-m", "gliotype", *(str(a) for a in args)]


def _env() -> dict:
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "GLIOTYPE_PROGRESS": "0"}


@functools.cache
def _tmpfs_problem() -> str | None:
    if not shutil.which("unshare"):
        return "no unshare command"
    with tempfile.TemporaryDirectory() as d:
        res = subprocess.run(["unshare", "-r", "-m", "sh", "-c", _MOUNT, "sh", "size=16k", d, "true"],
                             capture_output=True, text=True)
    return None if res.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {res.stderr.strip()}"


def run_on_tmpfs(folder: Path, cmd: list[str], size: str = "128k",
                 readonly: bool = False) -> subprocess.CompletedProcess:
    """``cmd`` with a tmpfs of ``size`` (or read-only) mounted on ``folder`` (made if needed)."""
    problem = _tmpfs_problem()
    if problem:
        pytest.skip(problem)
    folder.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    res = subprocess.run(["unshare", "-r", "-m", "sh", "-c", _MOUNT, "sh", opts, str(folder), *cmd],
                         capture_output=True, text=True, env=_env(), timeout=900)
    assert res.returncode != 97, res.stderr
    return res


@functools.cache
def _no_write_wrapper() -> tuple[list[str] | None, str]:
    """The prefix that makes a 0555 folder unwritable for the command, or (None, why not)."""
    if os.geteuid() != 0:
        return [], ""
    if not shutil.which("setpriv"):
        return None, "running as root (who writes into a 0555 folder) and no setpriv to drop that"
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o555)
        res = subprocess.run([*_NO_DAC, "sh", "-c", 'touch "$1/probe"', "sh", d], capture_output=True)
        os.chmod(d, 0o755)
    if res.returncode == 0:
        return None, "running as root and setpriv could not drop CAP_DAC_OVERRIDE"
    return _NO_DAC, ""


def run_without_write_permission(folder: Path, cmd: list[str]) -> subprocess.CompletedProcess:
    """``cmd`` with ``folder`` (made if needed) mode 0555, as a process that cannot ignore it."""
    prefix, why = _no_write_wrapper()
    if prefix is None:
        pytest.skip(why)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o555)
    try:
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, env=_env(), timeout=900)
    finally:
        os.chmod(folder, 0o755)


def disk_full_under(monkeypatch, root: Path) -> None:
    """Every atomic write of gliotype (:func:`gliotype.utils.io.atomic_path`) into ``root`` fails
    as on a full disk: ``OSError(ENOSPC)`` when the finished file is renamed onto its target
    (also in worker processes forked afterwards)."""
    import gliotype.utils.io as io_module

    root = Path(root).resolve()

    def replace(src, dst, *args, **kwargs):
        if Path(dst).resolve().is_relative_to(root):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.replace(src, dst, *args, **kwargs)

    proxy = types.SimpleNamespace(**{name: getattr(os, name) for name in dir(os) if not name.startswith("__")})
    proxy.replace = replace
    monkeypatch.setattr(io_module, "os", proxy)
