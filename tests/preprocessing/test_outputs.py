"""A preprocessed patient on disk (gliotype.preprocessing.outputs): the file list, writing the
volumes of a case folder and reading them back, on tiny synthetic volumes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from gliotype.errors import CaseError
from gliotype.layout import WorkDir
from gliotype.preprocessing.outputs import SEQUENCES, load_preprocessed, output_names, write_volumes

PID = "P-3"
SHAPE = (6, 7, 5)
AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
BASE = ["t1.nii.gz", "t1c.nii.gz", "t2.nii.gz", "flair.nii.gz", "mask.nii.gz", "brain_mask.nii.gz"]
TAIL = ["transforms/transforms.json", "qc.json"]


def _volumes(seed: int = 0):
    rng = np.random.default_rng(seed)
    seqs = rng.standard_normal((4, *SHAPE)).astype(np.float32) + np.arange(4, dtype=np.float32)[:, None, None, None] * 10
    mask = rng.choice(np.array([0, 1, 2, 4], np.uint8), size=SHAPE)
    brain = rng.random(SHAPE) > 0.3
    fa = rng.random(SHAPE).astype(np.float32)
    return seqs, mask, brain, fa


def _mark_done(case, has_fa: bool) -> None:
    """What preprocessing's ``done.json`` carries for the reader (``has_fa``) and the outputs."""
    case.done.write_text(json.dumps({"has_fa": has_fa, "outputs": output_names(case, has_fa)}))


def test_output_names_with_and_without_fa(tmp_path):
    case = WorkDir(tmp_path).case(PID)
    assert SEQUENCES == ("t1", "t1c", "t2", "flair")
    assert output_names(case, has_fa=False) == BASE + TAIL
    assert output_names(case, has_fa=True) == BASE + ["fa.nii.gz"] + TAIL
    # the names are relative to preprocessed/ and point at the layout's files
    paths = [case.preprocessed / f for f in output_names(case, has_fa=True)]
    assert paths == [*(case.sequence(s) for s in SEQUENCES), case.mask, case.brain_mask, case.fa,
                     case.transforms.json, case.qc]


def test_written_volumes_read_back(tmp_path):
    case = WorkDir(tmp_path).case(PID)
    seqs, mask, brain, fa = _volumes()
    write_volumes(case, AFFINE, seqs, mask, brain, fa)
    for name in BASE + ["fa.nii.gz"]:  # every volume of output_names(has_fa=True) is written
        assert (case.preprocessed / name).is_file()
    # on-disk types: float32 images, uint8 labels and brain mask, the template affine
    for role, dtype in [("t1", np.float32), ("flair", np.float32)]:
        assert nib.load(str(case.sequence(role))).get_data_dtype() == dtype
    assert nib.load(str(case.mask)).get_data_dtype() == np.uint8
    assert nib.load(str(case.brain_mask)).get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(nib.load(str(case.sequence("t2"))).dataobj), seqs[2])

    _mark_done(case, has_fa=True)
    out = load_preprocessed(tmp_path, PID)
    assert set(out) == {"sequences", "mask", "fa", "affine", "brain", "missing_sequences"}
    assert out["missing_sequences"] == ()  # a done.json without the field: all four
    assert out["sequences"].shape == (4, *SHAPE) and out["sequences"].dtype == np.float32
    np.testing.assert_array_equal(out["sequences"], seqs)  # in SEQUENCES order
    assert out["mask"].dtype == np.uint8 and out["brain"].dtype == bool and out["fa"].dtype == np.float32
    np.testing.assert_array_equal(out["mask"], mask)
    np.testing.assert_array_equal(out["brain"], brain)
    np.testing.assert_array_equal(out["fa"], fa)
    np.testing.assert_allclose(out["affine"], AFFINE)
    assert out["affine"].dtype == np.float64


def test_no_fa_removes_a_stale_one_and_reads_none(tmp_path):
    case = WorkDir(tmp_path).case(PID)
    seqs, mask, brain, fa = _volumes()
    write_volumes(case, AFFINE, seqs, mask, brain, fa)
    assert case.fa.exists()
    write_volumes(case, AFFINE, seqs + 1, mask, brain, None)  # rerun without FA
    assert not case.fa.exists()
    _mark_done(case, has_fa=False)
    out = load_preprocessed(tmp_path, PID)
    assert out["fa"] is None
    np.testing.assert_array_equal(out["sequences"], seqs + 1)  # the rerun overwrote the volumes


def test_fa_file_is_ignored_unless_done_says_so(tmp_path):
    case = WorkDir(tmp_path).case(PID)
    write_volumes(case, AFFINE, *_volumes())
    _mark_done(case, has_fa=False)
    assert load_preprocessed(str(tmp_path), PID)["fa"] is None  # the workdir may be a str


def test_not_preprocessed_and_missing_files_name_the_patient(tmp_path):
    case = WorkDir(tmp_path).case(PID)
    with pytest.raises(CaseError) as err:
        load_preprocessed(tmp_path, PID)
    assert str(err.value) == "patient P-3: not preprocessed (no done.json; run preprocessing first)"

    seqs, mask, brain, _ = _volumes()
    write_volumes(case, AFFINE, seqs, mask, brain, None)
    _mark_done(case, has_fa=True)  # done.json promises FA, but there is none
    with pytest.raises(CaseError) as err:
        load_preprocessed(tmp_path, PID)
    assert str(err.value) == "patient P-3 [fa.nii.gz]: preprocessed file is missing (rerun preprocessing)"

    _mark_done(case, has_fa=False)
    case.sequence("t2").unlink()
    with pytest.raises(CaseError, match=r"patient P-3 \[t2.nii.gz\]: preprocessed file is missing"):
        load_preprocessed(tmp_path, PID)


def test_brain_is_stored_as_zero_one(tmp_path):
    case = WorkDir(tmp_path).case(PID)
    seqs, mask, _, _ = _volumes()
    brain = np.zeros(SHAPE, np.float32)
    brain[1:4, 2:5, 1:3] = 0.7  # any non-zero counts as brain
    write_volumes(case, AFFINE, seqs, mask, brain > 0, None)
    stored = np.asarray(nib.load(str(case.brain_mask)).dataobj)
    assert stored.dtype == np.uint8 and set(np.unique(stored)) == {0, 1} and stored.sum() == 18
