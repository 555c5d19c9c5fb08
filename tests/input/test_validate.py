"""Validation of every case before any processing: bad cases rejected in one line, the CLI, a real case."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from input_helpers import SHAPE, brain, manifest_of, reason_of, save, tumor
from typer.testing import CliRunner

from real_data import REAL_DATA, requires_real_case
from gliotype.cli import app
from gliotype.errors import CaseError
from gliotype.input import load_volume, scan_cohort, validate_manifest, validation_table


# --------------------------------------------------------------------------- bad inputs
def test_good_cases_pass(tmp_path):
    reports = validate_manifest(manifest_of(tmp_path, 2))
    assert [r.status for r in reports] == ["ok", "ok"]
    assert reports[0].info["tumor_voxels"] == int((tumor() > 0).sum())


def test_truncated_gzip(tmp_path):
    df = manifest_of(tmp_path)
    p = Path(df.loc[0, "t2"])
    p.write_bytes(p.read_bytes()[:200])
    reason = reason_of(df)
    assert "P0_t2.nii.gz" in reason and "truncated" in reason
    assert str(tmp_path) not in reason


def test_random_bytes_named_nifti(tmp_path):
    df = manifest_of(tmp_path)
    p = Path(df.loc[0, "flair"])
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    reason = reason_of(df)
    assert "P0_flair.nii.gz" in reason and ("not a valid gzip" in reason or "not a readable image" in reason)


def test_uncompressed_garbage_named_nii(tmp_path):
    df = manifest_of(tmp_path)
    p = Path(df.loc[0, "t1"]).with_name("P0_t1.nii")
    p.write_bytes(b"\x00" * 100)
    df.loc[0, "t1"] = str(p)
    assert "not a readable image" in reason_of(df)


def test_4d_multi_volume_rejected_single_volume_squeezed(tmp_path):
    df = manifest_of(tmp_path)
    save(Path(df.loc[0, "t1"]), np.stack([brain(), brain(1)], -1))
    assert "4D with 2 volumes" in reason_of(df)
    save(Path(df.loc[0, "t1"]), brain()[..., None])
    assert validate_manifest(df)[0].status == "ok"
    assert load_volume(df.loc[0, "t1"]).shape == SHAPE


def test_nan_voxels(tmp_path):
    df = manifest_of(tmp_path)
    img = brain()
    img[3, 3, 3] = np.nan
    img[4, 4, 4] = np.inf
    save(Path(df.loc[0, "t1c"]), img)
    reason = reason_of(df)
    assert "2 NaN or infinite voxels" in reason and "P0_t1ce.nii.gz" in reason


def test_empty_mask(tmp_path):
    df = manifest_of(tmp_path)
    save(Path(df.loc[0, "mask"]), np.zeros(SHAPE, np.uint8))
    assert "mask is empty" in reason_of(df)


def test_mask_on_a_different_grid(tmp_path):
    df = manifest_of(tmp_path)
    far = np.eye(4)
    far[:3, 3] = 500.0  # the mask's field of view does not meet the images'
    save(Path(df.loc[0, "mask"]), tumor(), far)
    reason = reason_of(df)
    assert "another grid" in reason and "P0_seg.nii.gz" in reason
    # a finer grid over the same field of view is resampleable: accepted with a warning
    fine = np.diag([0.5, 0.5, 0.5, 1.0])
    save(Path(df.loc[0, "mask"]), np.kron(tumor(), np.ones((2, 2, 2), np.uint8)), fine)
    rep = validate_manifest(df)[0]
    assert rep.status == "ok" and any("resampled" in w for w in rep.warnings)


def test_mask_outside_the_image(tmp_path):
    df = manifest_of(tmp_path)
    m = np.zeros(SHAPE, np.uint8)
    m[0:2, 0:2, 0:2] = 2  # background corner, where the image is zero
    save(Path(df.loc[0, "mask"]), m)
    assert "outside the image" in reason_of(df)


def test_missing_file(tmp_path):
    df = manifest_of(tmp_path)
    Path(df.loc[0, "t1"]).unlink()
    reason = reason_of(df)
    assert reason == "patient P0 [P0_t1.nii.gz]: t1 file not found"


def test_unknown_label_values(tmp_path):
    df = manifest_of(tmp_path)
    m = tumor()
    m[5, 5, 5] = 7
    save(Path(df.loc[0, "mask"]), m)
    assert "unknown label values 7" in reason_of(df)


def test_invalid_idh_value(tmp_path):
    df = manifest_of(tmp_path)
    df["idh"] = df["idh"].astype(object)
    df.loc[0, "idh"] = "maybe"
    assert "IDH value 'maybe'" in reason_of(df)


def test_duplicated_patient_ids(tmp_path):
    df = manifest_of(tmp_path, 2)
    df.loc[1, "patient_id"] = "P0"
    reports = validate_manifest(df)
    assert [r.status for r in reports] == ["rejected", "rejected"]
    assert "appears 2 times" in reports[0].reason


def test_mha_and_nrrd_through_simpleitk_keep_world_coordinates(tmp_path):
    import SimpleITK as sitk

    data = brain()
    img = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)))
    img.SetSpacing((1.0, 1.5, 2.0))
    img.SetOrigin((10.0, 20.0, 30.0))
    for suffix in (".mha", ".nrrd"):
        path = tmp_path / f"x{suffix}"
        sitk.WriteImage(img, str(path))
        out = load_volume(path)
        assert np.allclose(np.asarray(out.dataobj), data)
        # LPS (ITK) -> RAS (NIfTI): x and y flip sign
        assert np.allclose(out.affine[:3, 3], [-10.0, -20.0, 30.0])
        assert np.allclose(np.abs(np.diag(out.affine)[:3]), [1.0, 1.5, 2.0])


def test_load_volume_error_is_case_error_with_file_name_only(tmp_path):
    p = tmp_path / "deep" / "x_t1.nii.gz"
    p.parent.mkdir()
    p.write_bytes(gzip.compress(b"not nifti"))
    with pytest.raises(CaseError) as err:
        load_volume(p, "PX", "t1")
    assert str(err.value).startswith("patient PX [x_t1.nii.gz]: t1 file is not a readable image")
    assert "deep" not in str(err.value)


def test_one_bad_case_does_not_stop_a_parallel_run(tmp_path):
    df = manifest_of(tmp_path, 3)
    Path(df.loc[1, "mask"]).write_bytes(b"junk")
    reports = validate_manifest(df, workers=2)
    assert [r.status for r in reports] == ["ok", "rejected", "ok"]
    table = validation_table(reports)
    assert "P1" in table and "REJECTED" in table and "2 of 3 cases usable" in table


# --------------------------------------------------------------------------- CLI
def test_cli_scan_and_validate_exit_codes(tmp_path):
    manifest_of(tmp_path, 2)
    runner = CliRunner()
    m = tmp_path / "manifest.csv"
    res = runner.invoke(app, ["cohort", "scan", str(tmp_path / "data"), "--out", str(m)])
    assert res.exit_code == 0, res.output
    assert "2 patients found" in res.output
    res = runner.invoke(app, ["cohort", "validate", str(m)])
    assert res.exit_code == 0 and "2 of 2 cases usable" in res.output
    for p in (tmp_path / "data").glob("*/*_seg.nii.gz"):
        p.write_bytes(b"junk")
    res = runner.invoke(app, ["cohort", "validate", str(m)])
    assert res.exit_code != 0 and "0 of 2 cases usable" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["cohort", "validate", str(tmp_path / "nope.csv")])
    assert res.exit_code == 2 and "not found" in res.output


# --------------------------------------------------------------------------- real case
@requires_real_case
def test_real_case_scans_and_validates():
    df = scan_cohort(REAL_DATA)
    assert list(df["patient_id"]) == ["TCGA-DU-7294"]
    for role in ("t1", "t1c", "t2", "flair", "mask"):
        assert Path(df.loc[0, role]).is_file()
    rep = validate_manifest(df)[0]
    assert rep.status == "ok", rep.reason
    assert rep.info["shape"] == [240, 240, 155] and rep.info["labels"] == [1, 2]
