"""Outputs are written atomically: complete or absent."""

import os

import pandas as pd
import pytest

from gliotype.errors import CaseError
from gliotype.utils.io import atomic_path, atomic_write, write_csv_atomic


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b.txt"
    atomic_write(target, "one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "x.nii.gz"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith(".nii.gz")
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]


def test_write_csv_atomic(tmp_path):
    write_csv_atomic(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a", "1", "2"]


def test_case_error_names_patient_and_file_never_the_folder():
    err = CaseError("P01", "/secret/site/P01/P01_t1.nii.gz", "not a NIfTI file")
    assert str(err) == "patient P01 [P01_t1.nii.gz]: not a NIfTI file"
    assert "secret" not in str(err)


def test_atomic_write_gives_the_usual_file_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
