"""One rule for the patient ID, one for non-finite voxels and one for the tumor mask
(gliotype.input.rules), used by the cohort validator, by ``gliotype predict`` and by preprocessing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gliotype.errors import CaseError, GliotypeError
from gliotype.input import (
    KNOWN_LABELS,
    InputRules,
    check_case,
    check_finite,
    check_patient_id,
    check_tumor_mask,
    patient_id_from_name,
    scan_cohort,
    validate_manifest,
)

SHAPE = (16, 16, 12)


@pytest.mark.parametrize("pid, expected", [
    ("P1", "P1"), ("  BraTS2021_00012 ", "BraTS2021_00012"), ("UCSF-PDGM-0004", "UCSF-PDGM-0004"),
    ("TCGA.DU.7294", "TCGA.DU.7294"), ("a" * 64, "a" * 64), (12, "12"), ("patient 1", "patient 1"),
])
def test_valid_patient_ids(pid, expected):
    assert check_patient_id(pid) == expected


@pytest.mark.parametrize("pid", ["", "   ", None, ".", "..", "../x", "a/b", "a\\b", "tab\there", "a" * 65])
def test_invalid_patient_ids_are_one_message(pid):
    with pytest.raises(GliotypeError) as err:
        check_patient_id(pid)
    msg = str(err.value)
    assert msg.startswith("invalid patient id ") and "\n" not in msg
    assert "without '/' or '\\'" in msg and "1 to 64 printable characters" in msg


def _case(root: Path, pid: str, mask: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    img = np.zeros(SHAPE, np.float32)
    img[2:14, 2:14, 2:10] = rng.uniform(100, 200, (12, 12, 8))
    row = {"patient_id": pid, "fa": None, "idh": None}
    for role, suffix in {"t1": "_t1", "t1c": "_t1ce", "t2": "_t2", "flair": "_flair", "mask": "_seg"}.items():
        path = root / f"x{suffix}.nii.gz"
        nib.save(nib.Nifti1Image(mask if role == "mask" else img, np.eye(4)), str(path))
        row[role] = str(path)
    return row


def _tumor(dtype=np.uint8) -> np.ndarray:
    m = np.zeros(SHAPE, dtype)
    m[5:9, 5:9, 4:7] = 2
    m[6:8, 6:8, 5:6] = 1
    return m


def test_the_validator_uses_the_patient_id_rule(tmp_path):
    import pandas as pd

    rows = [_case(tmp_path, pid, _tumor()) for pid in ("ok-1", "a/b", "x" * 65)]
    reports = validate_manifest(pd.DataFrame(rows))
    assert [r.status for r in reports] == ["ok", "rejected", "rejected"]
    for r, pid in zip(reports[1:], ("a/b", "x" * 65)):
        with pytest.raises(GliotypeError) as err:
            check_patient_id(pid)
        assert r.reason == f"input: {err.value}"
    with pytest.raises(CaseError, match="invalid patient id ''"):
        check_case(_case(tmp_path, " ", _tumor()))


def test_predict_uses_the_same_rule():
    from gliotype.prediction import inputs

    assert inputs.check_patient_id is check_patient_id


def test_check_case_returns_the_report_or_raises_one_line(tmp_path):
    rep = check_case(_case(tmp_path, "P7", _tumor()))
    assert rep.status == "ok" and rep.patient_id == "P7"
    assert rep.info["labels"] == [1, 2] and rep.info["tumor_voxels"] == int((_tumor() > 0).sum())
    with pytest.raises(CaseError) as err:
        check_case(_case(tmp_path, "P7", np.zeros(SHAPE, np.uint8)))
    assert str(err.value) == "patient P7 [x_seg.nii.gz]: mask is empty (no tumor voxel)"


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_a_good_mask_gives_uint8_labels(dtype):
    m = _tumor(dtype)
    if np.issubdtype(dtype, np.floating):
        m = m + np.where(m > 0, 1e-4, 0).astype(dtype)  # float noise within the tolerance
    out = check_tumor_mask(m, "P1", "P1_seg.nii.gz")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _tumor())
    np.testing.assert_array_equal(check_tumor_mask(nib.Nifti1Image(m, np.eye(4)), "P1", None), _tumor())


def _mask_with(value, dtype=np.float32):
    m = _tumor(dtype)
    m[5, 5, 5] = value
    return m


@pytest.mark.parametrize("mask, message", [
    (_mask_with(np.nan), "mask has 1 NaN or infinite voxels"),
    (_mask_with(np.inf), "mask has 1 NaN or infinite voxels"),
    (_mask_with(1.5), "mask has non-integer values (expected labels 0, 1, 2, 3, 4)"),
    (_mask_with(7, np.uint8), "mask has unknown label values 7 (expected 0, 1, 2, 3, 4)"),
    (_mask_with(-1, np.int16), "mask has unknown label values -1 (expected 0, 1, 2, 3, 4)"),
    (np.arange(5, 12).reshape(7, 1, 1), "mask has unknown label values 5, 6, 7, 8, 9 ... (expected 0, 1, 2, 3, 4)"),
    (np.zeros(SHAPE, np.float32), "mask is empty (no tumor voxel)"),
    (np.zeros(SHAPE, np.uint8), "mask is empty (no tumor voxel)"),
])
def test_a_bad_mask_is_one_line_naming_patient_and_file(mask, message):
    with pytest.raises(CaseError) as err:
        check_tumor_mask(mask, "P1", Path("/data/secret/P1_seg.nii.gz"))
    assert str(err.value) == f"patient P1 [P1_seg.nii.gz]: {message}"


def test_known_labels_are_the_brats_labels():
    assert KNOWN_LABELS == {0, 1, 2, 3, 4}


def test_the_validator_uses_the_mask_rule(tmp_path):
    import pandas as pd

    rows = []
    for i, mask in enumerate((_mask_with(1.5), _mask_with(7, np.uint8), np.zeros(SHAPE, np.uint8))):
        (tmp_path / str(i)).mkdir()
        rows.append(_case(tmp_path / str(i), f"P{i}", mask))
    reports = validate_manifest(pd.DataFrame(rows))
    for r, mask in zip(reports, (_mask_with(1.5), _mask_with(7, np.uint8), np.zeros(SHAPE, np.uint8))):
        with pytest.raises(CaseError) as err:
            check_tumor_mask(mask, r.patient_id, "x_seg.nii.gz")
        assert r.status == "rejected" and r.reason == str(err.value)


@pytest.mark.parametrize("name, role, expected", [
    ("P1_t1ce.nii.gz", "t1c", "P1"), ("/a/b/BraTS-GLI-00001-000-t1c.nii.gz", "t1c", "BraTS-GLI-00001-000"),
    ("UCSF-PDGM-0004_T1c.nii.gz", "t1c", "UCSF-PDGM-0004"), ("P1_t1.nii.gz", "t1c", None),
    ("P1_t1.nii.gz", None, "P1"), ("scan.nii.gz", None, None), ("P1_seg.mha", "mask", "P1"),
])
def test_patient_id_from_name(name, role, expected):
    assert patient_id_from_name(name, role) == expected


def test_the_scanner_and_patient_id_from_name_agree(tmp_path):
    row = _case(tmp_path, "ignored", _tumor())
    (tmp_path / "x").mkdir()
    for role in ("t1", "t1c", "t2", "flair", "mask"):
        Path(row[role]).rename(tmp_path / "x" / Path(row[role]).name)
    df = scan_cohort(tmp_path / "x")
    assert df["patient_id"].tolist() == [patient_id_from_name(df.loc[0, "t1c"], "t1c")] == ["x"]


# --------------------------------------------------------------------------- non-finite voxels
def _with_nonfinite(dtype=np.float32) -> np.ndarray:
    data = np.arange(24, dtype=dtype).reshape(2, 3, 4) + 1
    data[0, 0, 0], data[0, 1, 1], data[1, 2, 3] = np.nan, np.inf, -np.inf
    return data


NAN_MESSAGE = ("patient P1 [P1_t1.nii.gz]: t1 has 3 NaN or infinite voxels "
               "(preprocess.nonfinite=zero would set them to 0)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_voxels_are_rejected_by_default_and_set_to_zero_on_request(dtype):
    data = _with_nonfinite(dtype)
    with pytest.raises(CaseError) as err:
        check_finite(data, "P1", Path("/secret/P1_t1.nii.gz"), "t1")
    assert str(err.value) == NAN_MESSAGE
    fixed, count = check_finite(data, "P1", "P1_t1.nii.gz", "t1", "zero")
    assert count == 3 and fixed.dtype == dtype and np.isnan(data[0, 0, 0])  # the input is left as it was
    bad = ~np.isfinite(data)
    assert np.all(fixed[bad] == 0) and np.array_equal(fixed[~bad], data[~bad])
    ints = np.arange(24, dtype=np.int16)
    assert check_finite(ints, "P1", None, "t1")[1] == 0


def _nan_case(root: Path) -> dict:
    row = _case(root, "P1", _tumor())
    img = nib.load(row["t1"])
    data = np.asarray(img.dataobj).copy()
    data[3, 3, 3], data[4, 4, 4], data[5, 5, 5] = np.nan, np.inf, -np.inf
    row["t1"] = str(root / "P1_t1.nii.gz")
    nib.save(nib.Nifti1Image(data, img.affine), row["t1"])
    return row


def test_validate_predict_and_preprocessing_give_the_same_message(tmp_path):
    """One rule, one message: the validator, ``predict``'s input check and preprocessing's reader."""
    import pandas as pd

    from gliotype.prediction import check_inputs
    from gliotype.preprocessing.inputs import case_inputs, load_inputs

    row = _nan_case(tmp_path)
    reports = validate_manifest(pd.DataFrame([row]))
    assert reports[0].status == "rejected" and reports[0].reason == NAN_MESSAGE
    with pytest.raises(CaseError) as predicted:
        check_inputs({r: row[r] for r in ("t1", "t1c", "t2", "flair", "mask")}, "P1")
    with pytest.raises(CaseError) as preprocessed:
        load_inputs(case_inputs(row, "P1"), "P1")
    assert str(predicted.value) == str(preprocessed.value) == NAN_MESSAGE


def test_with_nonfinite_zero_every_reader_accepts_and_reports_the_count(tmp_path):
    import pandas as pd

    from gliotype.prediction import check_inputs
    from gliotype.preprocessing.inputs import case_inputs, load_inputs

    row, zero = _nan_case(tmp_path), InputRules(nonfinite="zero")
    report = validate_manifest(pd.DataFrame([row]), rules=zero)[0]
    note = "t1: 3 NaN or infinite voxels set to 0 (preprocess.nonfinite=zero)"
    assert report.status == "ok" and report.warnings == [note]
    checked = check_inputs({r: row[r] for r in ("t1", "t1c", "t2", "flair", "mask")}, "P1", zero)
    assert checked["warnings"] == [note]
    images, repaired = load_inputs(case_inputs(row, "P1"), "P1", zero)
    assert repaired == {"t1": 3} and np.all(np.isfinite(np.asarray(images["t1"].dataobj)))
