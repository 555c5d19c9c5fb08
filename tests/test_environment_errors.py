"""Environment errors (issue 14, case 7): a full disk, a read-only or forbidden folder, no memory
left end in one line naming the path and what to do, exit 3, never "internal error ... --debug";
and ``--debug`` shows the traceback of every error, EOFError included."""

from __future__ import annotations

import errno
import os
import pickle
import re

import pytest
from typer.testing import CliRunner

from env_faults import disk_full_under, gliotype_cmd, run_on_tmpfs, run_without_write_permission
from gliotype.cli import app
from gliotype.errors import (
    ENVIRONMENT_EXIT,
    CaseError,
    EnvironmentProblem,
    environment_problem,
    stop_on_environment,
)
from gliotype.utils.io import atomic_path

runner = CliRunner()


@pytest.mark.parametrize("code, words, todo, stops", [
    (errno.ENOSPC, "no space left on device writing /out/x.nii.gz", "free space or choose another output folder", True),
    (errno.EDQUOT, "disk quota exceeded writing /out/x.nii.gz", "free space", True),
    (errno.EROFS, "read-only file system writing /out/x.nii.gz", "choose a writable output folder", True),
    (errno.EACCES, "permission denied writing /out/x.nii.gz", "fix its permissions or choose a writable folder", True),
    (errno.EPERM, "operation not permitted writing /out/x.nii.gz", "fix its permissions", True),
    (errno.EMFILE, "too many open files writing /out/x.nii.gz", "lower --workers", True),
    (errno.ENOMEM, "out of memory", "lower --workers", False),
])
def test_each_environment_error_is_one_line_naming_the_path_and_what_to_do(code, words, todo, stops):
    env = environment_problem(OSError(code, os.strerror(code)), "/out/x.nii.gz", writing=True)
    assert isinstance(env, OSError) and env.errno == code and env.stops_run is stops
    assert str(env).startswith(f"{words}; ") and todo in str(env) and "\n" not in str(env)
    back = pickle.loads(pickle.dumps(env))  # it crosses worker processes
    assert (type(back), str(back), back.stops_run, back.errno) == (EnvironmentProblem, str(env), stops, code)


def test_what_is_not_an_environment_error():
    assert environment_problem(ValueError("bad value")) is None
    assert environment_problem(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None  # the user's path
    assert environment_problem(OSError(errno.EINVAL, "Invalid argument")) is None
    # permission denied on a read: one line for the command, but one input's problem in a cohort
    read = environment_problem(PermissionError(errno.EACCES, "Permission denied", "/data/P1_t1.nii.gz"))
    assert str(read).startswith("permission denied at /data/P1_t1.nii.gz; ") and not read.stops_run
    # a message written for the user is not second-guessed, nor what it was raised from
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied", "/data/P1_t1.nii.gz")
        except PermissionError as exc:
            raise CaseError("P1", "/data/P1_t1.nii.gz", "t1 file is not a readable image") from exc
    except CaseError as exc:
        assert environment_problem(exc) is None
    # out of memory is one line too, but does not stop a cohort (it may be one patient's image)
    mem = environment_problem(MemoryError())
    assert str(mem) == "out of memory; lower --workers or use a machine with more memory" and not mem.stops_run
    stop_on_environment(MemoryError())  # returns
    # native writers (ITK, safetensors) report a full disk in their own exception types
    rust = RuntimeError("Error while serializing: IoError(Os { code: 28, message: \"No space left on device\" })")
    assert str(environment_problem(rust)).startswith("no space left on device; ")
    with pytest.raises(EnvironmentProblem) as info:
        stop_on_environment(rust)
    assert info.value.__cause__ is rust


def test_an_atomic_write_on_a_full_disk_names_its_target_and_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "t1.nii.gz"
    with pytest.raises(EnvironmentProblem) as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a volume")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as the writer gets it from the kernel
    assert str(info.value) == f"no space left on device writing {target}; free space or choose another output folder"
    assert info.value.errno == errno.ENOSPC and isinstance(info.value.__cause__, OSError)
    assert list(target.parent.iterdir()) == []  # no target, no temporary file
    # a source that cannot be read is named itself, and is one file's problem, not the run's
    source = tmp_path / "in" / "t1.nii.gz"
    with pytest.raises(EnvironmentProblem) as info:
        with atomic_path(target):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(source))
    assert str(info.value).startswith(f"permission denied at {source}; ") and not info.value.stops_run
    # a folder that cannot be made is named itself, and stops the run
    with pytest.raises(EnvironmentProblem) as info:
        with atomic_path(target):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path))
    assert str(info.value).startswith(f"permission denied writing {tmp_path}; ") and info.value.stops_run
    # an error that is not the machine's passes unchanged
    with pytest.raises(ValueError, match="^bad$"):
        with atomic_path(target):
            raise ValueError("bad")


def _one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in output and "internal error" not in output, output
    return lines[0]


def test_cli_disk_full_is_one_line_exit_3_not_an_internal_error(tmp_path, monkeypatch):
    out = tmp_path / "cohort"
    disk_full_under(monkeypatch, out)
    result = runner.invoke(app, ["synth", "--out", str(out), "--patients", "2", "--fa-cases", "0", "--workers", "1"])
    assert result.exit_code == ENVIRONMENT_EXIT, result.output
    line = _one_error_line(result.output)
    assert re.fullmatch(rf"error: no space left on device writing {re.escape(str(out))}/\S+; "
                        r"free space or choose another output folder", line), line
    # with --debug: the traceback, as for any error
    debug = runner.invoke(app, ["--debug", "synth", "--out", str(out), "--patients", "2", "--fa-cases", "0",
                                "--workers", "1"])
    assert isinstance(debug.exception, EnvironmentProblem)


def test_cli_on_a_real_full_disk(tmp_path):
    """A tmpfs of 512 kB: the first patient's T1 fits, the next file does not (2 workers: the
    pool stops at the first error)."""
    folder = tmp_path / "small-disk"
    res = run_on_tmpfs(folder, gliotype_cmd("synth", "--out", folder / "cohort", "--patients", "3",
                                            "--fa-cases", "0", "--workers", "2"), size="512k")
    assert res.returncode == ENVIRONMENT_EXIT, res.stderr
    line = _one_error_line(res.stderr)
    assert re.fullmatch(rf"error: no space left on device writing {re.escape(str(folder))}/cohort/SYN-000\d/"
                        r"SYN-000\d_\w+\.nii\.gz; free space or choose another output folder", line), line


def test_cli_on_a_real_read_only_file_system(tmp_path):
    folder = tmp_path / "read-only"
    res = run_on_tmpfs(folder, gliotype_cmd("synth", "--out", folder / "cohort", "--patients", "2"), readonly=True)
    assert res.returncode == ENVIRONMENT_EXIT, res.stderr
    assert _one_error_line(res.stderr) == (f"error: read-only file system at {folder}/cohort; "
                                           "choose a writable output folder")


def test_cli_in_a_folder_without_write_permission(tmp_path):
    folder = tmp_path / "not-mine"
    res = run_without_write_permission(folder, gliotype_cmd("synth", "--out", folder / "cohort", "--patients", "2"))
    assert res.returncode == ENVIRONMENT_EXIT, res.stderr
    assert _one_error_line(res.stderr) == (f"error: permission denied at {folder}/cohort; "
                                           "fix its permissions or choose a writable folder")


def test_cli_out_of_memory_is_one_line_exit_3(monkeypatch):
    import gliotype.config

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(gliotype.config, "load_config", no_memory)
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == ENVIRONMENT_EXIT
    assert _one_error_line(result.output) == "error: out of memory; lower --workers or use a machine with more memory"
