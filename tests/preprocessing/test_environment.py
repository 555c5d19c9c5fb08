"""A full disk during preprocessing (issue 14, case 7): the run stops at the first write that
fails, with one line naming the path and what to do; no patient is failed with it (every next
one would fail the same way) and the patients not yet started are not started."""

import re
import shutil

import pandas as pd
import pytest

from env_faults import disk_full_under, gliotype_cmd, run_on_tmpfs
from gliotype.errors import ENVIRONMENT_EXIT, EnvironmentProblem
from gliotype.preprocessing import preprocess_cohort

from pp_helpers import brats_row, config, once, synth

N = 8  # patients: the two rendered ones and copies under other IDs


def _build(folder):
    root = synth(folder / "data", patients=2, fa_cases=0, seed=5)
    for i in range(2, N):
        src = f"SYN-000{i % 2}"
        pid = f"COPY-{i}"
        (root / pid).mkdir()
        for f in (root / src).iterdir():
            shutil.copyfile(f, root / pid / f.name.replace(src, pid))
    rows = [brats_row(p) for p in sorted(root.iterdir()) if p.is_dir()]
    assert len(rows) == N
    return {"rows": rows}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return once(tmp_path_factory, "environment-cohort", _build)[1]["rows"]


def _full_disk_line(text: str, work) -> bool:
    return re.fullmatch(rf"no space left on device writing {re.escape(str(work))}/patients/[\w-]+/preprocessed/"
                        r"\S+; free space or choose another output folder", text) is not None


def test_a_full_disk_stops_the_cohort_instead_of_failing_each_patient(rows, tmp_path, monkeypatch):
    from gliotype.preprocessing import cohort as cohort_module

    work, started = tmp_path / "work", tmp_path / "started"
    real = cohort_module.preprocess_case

    def noting(row, *args, **kwargs):
        with open(started, "a") as fh:
            fh.write(f"{row['patient_id']}\n")
        return real(row, *args, **kwargs)

    monkeypatch.setattr(cohort_module, "preprocess_case", noting)
    disk_full_under(monkeypatch, work)
    with pytest.raises(EnvironmentProblem) as info:
        preprocess_cohort(pd.DataFrame(rows), work, config(), workers=2)
    assert _full_disk_line(str(info.value), work), str(info.value)
    assert len(started.read_text().split()) < N  # stopped: the patients not yet handed to a worker never ran


def test_cli_preprocess_on_a_real_full_disk(rows, tmp_path):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows[:2]).to_csv(manifest, index=False)  # both at once: the second one's error is not shown either
    disk = tmp_path / "small-disk"
    res = run_on_tmpfs(disk, gliotype_cmd("preprocess", manifest, "--out", disk / "work", "--workers", "2",
                                          "--preset", "tiny"), size="128k")
    assert res.returncode == ENVIRONMENT_EXIT, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and _full_disk_line(errors[0].removeprefix("error: "), disk / "work"), res.stderr
    assert "failed" not in res.stderr and "internal error" not in res.stderr and "Traceback" not in res.stderr


def test_an_unreadable_input_fails_only_its_patient(rows, tmp_path, monkeypatch):
    """Permission denied on a read is one input file's problem (the patient fails, the run goes
    on); on a write of gliotype's own folder it is the machine's (tests/test_environment_errors.py)."""
    import errno
    import os

    from gliotype.preprocessing import cache

    real = cache.sha256_file

    def forbidden(path):
        if path.name.startswith("SYN-0001_t2"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path)

    monkeypatch.setattr(cache, "sha256_file", forbidden)
    two = [r for r in rows if r["patient_id"] in ("SYN-0000", "SYN-0001")]
    table = preprocess_cohort(pd.DataFrame(two), tmp_path / "work", config(), workers=1)
    status = dict(zip(table["patient_id"], zip(table["status"], table["reason"])))
    assert status == {"SYN-0000": ("done", ""),
                      "SYN-0001": ("failed", "SYN-0001_t2.nii.gz: t2 file cannot be read (permission denied)")}
