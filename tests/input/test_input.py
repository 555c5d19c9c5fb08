"""Cohort input: layouts, labels, manifest round trip and validation of bad cases."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from real_data import REAL_DATA, requires_real_case
from gliotype.cli import app
from gliotype.errors import CaseError, GliotypeError
from gliotype.input import (
    attach_labels,
    detect_layout,
    load_volume,
    parse_idh,
    read_labels,
    read_manifest,
    scan_cohort,
    validate_manifest,
    validation_table,
    write_manifest,
)

SHAPE = (16, 16, 12)
BRATS21 = {"t1": "_t1", "t1c": "_t1ce", "t2": "_t2", "flair": "_flair", "mask": "_seg"}
BRATS23 = {"t1": "-t1n", "t1c": "-t1c", "t2": "-t2w", "flair": "-t2f", "mask": "-seg"}
UCSF = {"t1": "_T1", "t1c": "_T1c", "t2": "_T2", "flair": "_FLAIR", "mask": "_tumor_segmentation",
        "fa": "_DTI_eddy_FA"}


def brain(seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros(SHAPE, np.float32)
    img[2:14, 2:14, 2:10] = rng.uniform(100, 200, (12, 12, 8))
    return img


def tumor():
    m = np.zeros(SHAPE, np.uint8)
    m[5:9, 5:9, 4:7] = 2
    m[6:8, 6:8, 5:6] = 1
    return m


def save(path: Path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


def make_case(root: Path, pid: str, names=BRATS21, folder: str | None = None, seed=0):
    d = root / (folder if folder is not None else pid)
    paths = {}
    for role, suffix in names.items():
        data = tumor() if role == "mask" else brain(seed)
        paths[role] = save(d / f"{pid}{suffix}.nii.gz", data)
    return paths


def manifest_of(tmp_path: Path, n: int = 1) -> pd.DataFrame:
    for i in range(n):
        make_case(tmp_path / "data", f"P{i}", seed=i)
    return scan_cohort(tmp_path / "data")


def reason_of(df: pd.DataFrame, pid: str = "P0") -> str:
    reports = validate_manifest(df)
    rep = [r for r in reports if r.patient_id == pid][0]
    assert rep.status == "rejected", f"{pid} was accepted"
    assert "\n" not in rep.reason and "Traceback" not in rep.reason
    return rep.reason


# --------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("names,layout,folder", [
    (BRATS21, "brats2021", None), (BRATS23, "brats2023", None), (UCSF, "ucsf-pdgm", "{pid}_nifti"),
])
def test_scan_detects_each_layout(tmp_path, names, layout, folder):
    for i, pid in enumerate(["A-001", "A-002"]):
        make_case(tmp_path, pid, names, folder.format(pid=pid) if folder else None, seed=i)
    if layout == "ucsf-pdgm":  # distractors of the real UCSF-PDGM release
        save(tmp_path / "A-001_nifti" / "A-001_T1c_bias.nii.gz", brain())
        save(tmp_path / "A-001_nifti" / "A-001_brain_segmentation.nii.gz", tumor())
    assert detect_layout(tmp_path) == layout
    df = scan_cohort(tmp_path)
    assert list(df["patient_id"]) == ["A-001", "A-002"]
    for role, suffix in names.items():
        assert df.loc[0, role].endswith(f"A-001{suffix}.nii.gz")
    assert (df["fa"] != "").all() == ("fa" in names)


def test_scan_flat_folder_and_incomplete_case_is_kept_for_validation(tmp_path):
    make_case(tmp_path, "X1", folder="")
    paths = make_case(tmp_path, "X2", folder="")
    paths["t2"].unlink()
    df = scan_cohort(tmp_path, layout="brats2021")
    assert list(df["patient_id"]) == ["X1", "X2"]
    reports = validate_manifest(df)
    assert [r.status for r in reports] == ["ok", "rejected"]
    assert "no t2 file" in reports[1].reason and "X2" in reports[1].reason


def test_scan_without_any_case_says_which_names_it_expects(tmp_path):
    save(tmp_path / "a" / "scan.nii.gz", brain())
    with pytest.raises(GliotypeError, match="BraTS 2021"):
        scan_cohort(tmp_path)


def test_user_csv_with_relative_paths_and_flexible_columns(tmp_path):
    paths = make_case(tmp_path / "imgs", "C1")
    csv = tmp_path / "cohort.csv"
    rows = {"Subject": ["C1"], "T1": [str(paths["t1"].relative_to(tmp_path))], "T1Gd": [str(paths["t1c"])],
            "T2": [str(paths["t2"])], "FLAIR": [str(paths["flair"])], "Segmentation": [str(paths["mask"])],
            "IDH status": ["IDH-mutant"], "Age": ["41"]}
    pd.DataFrame(rows).to_csv(csv, index=False)
    df = scan_cohort(csv)
    assert df.loc[0, "t1"] == str(paths["t1"].resolve())
    assert df.loc[0, "idh"] == 1.0 and df.loc[0, "age"] == 41
    assert validate_manifest(df)[0].status == "ok"


# --------------------------------------------------------------------------- labels
@pytest.mark.parametrize("text,value", [
    ("mutant", 1.0), ("IDH-mutant", 1.0), ("Mutated", 1.0), ("1", 1.0), ("positive", 1.0), ("IDH1 R132H mut", 1.0),
    ("wildtype", 0.0), ("Wild-type", 0.0), ("0", 0.0), ("negative", 0.0), ("IDH-wt", 0.0), ("WT", 0.0),
    ("", None), ("NA", None), ("unknown", None),
])
def test_parse_idh_values(text, value):
    got = parse_idh(text)
    if value is None:
        assert isinstance(got, float) and np.isnan(got)
    else:
        assert got == value


def test_parse_idh_keeps_unreadable_text_for_validation():
    assert parse_idh("maybe") == "maybe"
    assert parse_idh(2) == "2"


@pytest.mark.parametrize("idh_col", ["IDH", "idh_status", "IDH1/2", "IDH mutation"])
def test_labels_with_flexible_columns_match_ids_with_other_zero_padding(tmp_path, idh_col):
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"ID": ["UCSF-PDGM-004", "UCSF-PDGM-010", "other"], idh_col: ["mutant", "wildtype", "1"],
                  "Age at MRI": ["50", "61", "70"]}).to_csv(csv, index=False)
    lab = read_labels(csv)
    manifest = pd.DataFrame({"patient_id": ["UCSF-PDGM-0004", "UCSF-PDGM-0010", "UCSF-PDGM-0011"]})
    out, unmatched = attach_labels(manifest, lab)
    assert list(out["idh"].iloc[:2]) == [1.0, 0.0] and np.isnan(out["idh"].iloc[2])
    assert list(out["age"].iloc[:2]) == ["50", "61"] or list(out["age"].iloc[:2]) == [50, 61]
    assert unmatched == ["other"]


def test_labels_without_id_column_is_a_clear_error(tmp_path):
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"foo": ["a"], "IDH": ["1"]}).to_csv(csv, index=False)
    with pytest.raises(GliotypeError, match="no patient ID column"):
        read_labels(csv)


# --------------------------------------------------------------------------- manifest
def test_manifest_round_trip_with_relative_paths(tmp_path):
    df = manifest_of(tmp_path, 2)
    df.loc[0, "idh"] = 1.0
    out = write_manifest(df, tmp_path / "data" / "manifest.csv")
    text = out.read_text()
    assert str(tmp_path) not in text  # relative to the manifest's folder: the cohort can move
    moved = tmp_path / "moved"
    (tmp_path / "data").rename(moved)
    back = read_manifest(moved / "manifest.csv")
    assert Path(back.loc[0, "t1"]).is_file()
    assert back.loc[0, "idh"] == 1.0 and np.isnan(back.loc[1, "idh"])


@pytest.mark.parametrize("content,match", [
    (None, "not found"), ("patient_id,t1\nA,a.nii\n", "lacks column"),
    ("patient_id,t1,t1c,t2,flair,mask\n", "no patient"),
])
def test_broken_manifest_is_one_clear_error(tmp_path, content, match):
    path = tmp_path / "m.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(GliotypeError, match=match):
        read_manifest(path)


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
