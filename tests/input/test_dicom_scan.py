"""DICOM input (issue 15): a folder of real DICOM studies (written by pydicom) scanned into a
manifest through the real dcm2niix, the series table, the skip and duplicate rules, overrides,
one failed conversion, the cache, and no byte of the headers' patient data in any output."""

from __future__ import annotations

import logging
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from dicom_helpers import AFFINE, BIRTH_DATE, CANARY, SEQUENCE_TAGS, leaks, volume, write_series, write_study
from typer.testing import CliRunner

from gliotype import stages
from gliotype.cli import app
from gliotype.errors import GliotypeError
from gliotype.input import detect_layout, read_manifest, scan_cohort, validate_manifest
from gliotype.input.dicom import scan_dicom
from gliotype.input.dicom.convert import TEXT_FIELDS


def _mask(path):
    m = np.zeros((16, 16, 12), np.uint8)
    m[5:9, 5:9, 4:7] = 2
    m[6:8, 6:8, 5:6] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(m, AFFINE), str(path))
    return path


def _canonical(img):
    c = nib.as_closest_canonical(img)
    return np.asarray(c.dataobj), c.affine


def _table(scan, pid):
    t = scan.series[scan.series["patient_id"] == pid].set_index("series")
    return t


def test_a_study_is_scanned_converted_and_validated(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gliotype")
    sources = write_study(tmp_path / "dicom" / "P001")
    _mask(tmp_path / "dicom" / "P001" / "tumour_seg.nii.gz")
    assert detect_layout(tmp_path / "dicom") == "dicom"
    manifest = tmp_path / "out" / "manifest.csv"
    stages.scan(tmp_path / "dicom", manifest)

    df = read_manifest(manifest)
    assert list(df["patient_id"]) == ["P001"]
    cache = tmp_path / "out" / "dicom_nifti" / "P001"
    for role, (number, data) in sources.items():
        assert df.loc[0, role] == str((cache / f"{role}.nii.gz").resolve())
        img = nib.load(df.loc[0, role])
        got, affine = _canonical(img)
        want, want_affine = _canonical(nib.Nifti1Image(data, AFFINE))
        assert np.array_equal(got, want), role  # the very voxels, in the same orientation
        assert np.allclose(affine, want_affine, atol=1e-3), role  # spacing and position preserved
        for field in TEXT_FIELDS:
            assert img.header[field].item() in (b"", ""), (role, field)
        assert not img.header.extensions
    assert df.loc[0, "mask"] == str((cache / "mask.nii.gz").resolve())  # a copy: the manifest names no input
    mask = nib.load(df.loc[0, "mask"])
    assert np.array_equal(mask.get_fdata(), nib.load(tmp_path / "dicom" / "P001" / "tumour_seg.nii.gz").get_fdata())
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f"{r}.nii.gz" for r in [*sources, "mask"]] + [f"{r}.json" for r in [*sources, "mask"]])
    assert pd.read_csv(manifest).loc[0, "t1"] == "dicom_nifti/P001/t1.nii.gz"

    reports = validate_manifest(df)
    assert reports[0].status == "ok", reports[0].reason
    text = caplog.text
    assert "patient P001: 4 DICOM series" in text and "AX T2 FLAIR" in text


def test_the_series_table_names_every_series_and_the_reason(tmp_path):
    write_study(tmp_path / "P002")
    scan = scan_dicom(tmp_path, tmp_path / "conv", single_patient="P002")
    t = _table(scan, "P002")
    assert t.loc[3, "role"] == "t1" and "'t1' in the description" in t.loc[3, "reason"]
    assert t.loc[3, "reason"].endswith("before contrast (no agent recorded in 0018,0010)")
    assert t.loc[9, "role"] == "t1c" and t.loc[9, "reason"].endswith("after contrast ('post' in the description)")
    assert t.loc[5, "role"] == "t2" and t.loc[7, "role"] == "flair"
    assert list(t["description"]) == ["AX T1 SE", "AX T2 TSE", "AX T2 FLAIR", "AX T1 SE POST"]  # by series number
    assert (t["images"] == 12).all()


def test_localiser_derived_and_other_series_are_skipped_with_a_reason(tmp_path):
    patient = tmp_path / "P003"
    write_study(patient)
    views = [[0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1], [1, 0, 0, 0, 1, 0]]
    write_series(patient / "loc", volume(9, (16, 16, 3)), 1, SeriesDescription="AAHead_Scout",
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), orientations=views, RepetitionTime=8.6, EchoTime=4.0)
    write_series(patient / "mpr", volume(10), 20, SeriesDescription="T1 MPR COR",
                 image_type=("DERIVED", "SECONDARY", "MPR"), **{k: v for k, v in SEQUENCE_TAGS["t1c"].items()
                                                             if k != "SeriesDescription"})
    write_series(patient / "adc", volume(11), 21, SeriesDescription="ep2d_diff_ADC",
                 image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"), RepetitionTime=5000.0, EchoTime=90.0,
                 ScanningSequence="EP")
    write_series(patient / "dwi", volume(12), 8, SeriesDescription="ep2d_diff_b1000", RepetitionTime=5000.0,
                 EchoTime=90.0, ScanningSequence="EP")
    write_series(patient / "few", volume(13, (16, 16, 4)), 30, SeriesDescription="T2 test slices",
                 RepetitionTime=4000.0, EchoTime=100.0)
    scan = scan_dicom(tmp_path, tmp_path / "conv")
    t = _table(scan, "P003")
    assert t.loc[1, "role"] == "skipped" and t.loc[1, "reason"] == "localiser (ImageType LOCALIZER)"
    assert t.loc[20, "role"] == "skipped" and t.loc[20, "reason"].startswith("derived image (ImageType DERIVED/")
    assert t.loc[21, "role"] == "skipped" and "derived" in t.loc[21, "reason"]
    assert t.loc[8, "role"] == "skipped" and t.loc[8, "reason"].startswith("diffusion")
    assert t.loc[30, "role"] == "skipped" and "only 4 image(s)" in t.loc[30, "reason"]
    assert dict(zip(t["role"], t.index)) | {} and sorted(t.loc[t["role"] != "skipped", "role"]) == [
        "flair", "t1", "t1c", "t2"]
    row = scan.manifest.iloc[0]
    assert all(row[r] for r in ("t1", "t1c", "t2", "flair")) and row["mask"] == ""


def test_a_missing_flair_is_reported_and_rejected_by_validation_in_one_line(tmp_path, caplog):
    write_study(tmp_path / "dicom" / "P004", roles=("t1", "t1c", "t2"))
    _mask(tmp_path / "dicom" / "P004" / "seg" / "mask.nii.gz")
    write_study(tmp_path / "dicom" / "P005")
    _mask(tmp_path / "dicom" / "P005" / "P005_label.nii")
    df = scan_cohort(tmp_path / "dicom", convert_dir=tmp_path / "conv")
    assert list(df["patient_id"]) == ["P004", "P005"]
    assert df.loc[0, "flair"] == "" and df.loc[0, "t2"] != ""
    assert "patient P004: no flair series found" in caplog.text
    reports = validate_manifest(df)
    assert [r.status for r in reports] == ["rejected", "ok"], [r.reason for r in reports]
    assert reports[0].reason == ("patient P004: no flair file in the manifest (input.missing_sequences allows 0 "
                                 "missing sequences)")


def test_a_duplicate_t2_keeps_one_by_the_documented_rule(tmp_path):
    patient = tmp_path / "P006"
    sources = write_study(patient)
    repeat = volume(42)
    write_series(patient / "repeat", repeat, 11, **SEQUENCE_TAGS["t2"])  # the repeat: same images, later number
    longer = volume(43, (16, 16, 14))
    write_series(patient / "long", longer, 2, **SEQUENCE_TAGS["flair"])  # more images than series 7
    scan = scan_dicom(tmp_path, tmp_path / "conv")
    t = _table(scan, "P006")
    assert t.loc[11, "role"] == "t2"
    assert t.loc[5, "role"] == "skipped"
    assert t.loc[5, "reason"] == "duplicate of series 11 (t2: as many images, later series number)"
    assert t.loc[2, "role"] == "flair"
    assert t.loc[7, "reason"] == "duplicate of series 2 (flair: more images, 14 vs 12)"
    got, _ = _canonical(nib.load(scan.manifest.loc[0, "t2"]))
    assert np.array_equal(got, _canonical(nib.Nifti1Image(repeat, AFFINE))[0])
    assert not np.array_equal(got, _canonical(nib.Nifti1Image(sources["t2"][1], AFFINE))[0])


def test_an_override_csv_fixes_a_mislabelled_series(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gliotype")
    patient = tmp_path / "dicom" / "P007"
    sources = write_study(patient, roles=("t1", "t1c", "t2"))
    flair = volume(77)
    mislabelled = {**SEQUENCE_TAGS["flair"], "SeriesDescription": "AX T2 TSE", "ProtocolName": "t2_tse_tra"}
    write_series(patient / "S07", flair, 7, **mislabelled)
    _mask(patient / "seg.nii.gz")
    manifest = tmp_path / "manifest.csv"

    stages.scan(tmp_path / "dicom", manifest)
    before = read_manifest(manifest)
    assert before.loc[0, "flair"] == ""  # taken for a second T2 and dropped as a duplicate
    assert "look like FLAIR: check it" in caplog.text

    overrides = tmp_path / "overrides.csv"
    pd.DataFrame({"patient_id": ["P007"], "series_number": [7], "role": ["flair"]}).to_csv(overrides, index=False)
    scanned = scan_dicom(tmp_path / "dicom", tmp_path / "dicom_nifti", overrides)
    t = _table(scanned, "P007")
    assert t.loc[7, "role"] == "flair" and t.loc[7, "reason"].startswith("override (line 2 of the overrides CSV)")
    assert t.loc[5, "role"] == "t2"
    got, _ = _canonical(nib.load(scanned.manifest.loc[0, "flair"]))
    assert np.array_equal(got, _canonical(nib.Nifti1Image(flair, AFFINE))[0])
    t2, _ = _canonical(nib.load(scanned.manifest.loc[0, "t2"]))
    assert np.array_equal(t2, _canonical(nib.Nifti1Image(sources["t2"][1], AFFINE))[0])

    skip = tmp_path / "skip.csv"  # by UID and 'skip': the T1 is not used
    uid = __import__("pydicom").dcmread(next((patient / "study-" f"{CANARY}" / "S03").iterdir())).SeriesInstanceUID
    skip.write_text(f"patient_id,series_uid,role\nP007,{uid},skip\n")
    t = _table(scan_dicom(tmp_path / "dicom", tmp_path / "dicom_nifti", skip), "P007")
    assert t.loc[3, "role"] == "skipped" and t.loc[3, "reason"] == "override (line 2 of the overrides CSV)"


@pytest.mark.parametrize("text,problem", [
    ("patient_id,series_number,role\nP1,3,T1 post\n", "line 2: role 't1 post' is not one of t1, t1c, t2, flair, skip"),
    ("patient_id,series_number,role\nP1,three,t1\n", "line 2: series_number 'three' is not a number"),
    ("patient_id,series,role\nP1,3,t1\n", "needs the columns patient_id, series_number (or series_uid) and role"),
    ("patient_id,series_number,role\nP1,,t1\n", "line 2: give a series_number or a series_uid"),
])
def test_a_broken_override_csv_is_one_line(tmp_path, text, problem):
    write_study(tmp_path / "dicom" / "P1", roles=("t1",))
    (tmp_path / "o.csv").write_text(text)
    with pytest.raises(GliotypeError) as err:
        scan_cohort(tmp_path / "dicom", convert_dir=tmp_path / "c", dicom_overrides=tmp_path / "o.csv")
    assert str(err.value) == f"DICOM overrides o.csv {problem}" or problem in str(err.value)
    assert "\n" not in str(err.value)


def test_a_failed_conversion_is_one_line_and_never_stops_the_scan(tmp_path, caplog):
    bad = tmp_path / "dicom" / "P008"
    write_study(bad)
    _mask(bad / "seg.nii.gz")
    write_study(tmp_path / "dicom" / "P009")
    _mask(tmp_path / "dicom" / "P009" / "seg.nii.gz")
    for f in sorted((bad / f"study-{CANARY}" / "S05").iterdir())[::2]:  # half the T2 slices lose their pixels
        f.write_bytes(f.read_bytes()[:-300])
    df = scan_cohort(tmp_path / "dicom", convert_dir=tmp_path / "conv")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("patient P008: series 5 (t2):")]
    assert len(lines) == 1 and "\n" not in lines[0] and "dcm2niix" in lines[0], caplog.text
    assert str(tmp_path) not in lines[0]
    assert df.loc[0, "t2"] == "" and df.loc[0, "flair"] != ""
    reports = validate_manifest(df)
    assert [r.status for r in reports] == ["rejected", "ok"]
    assert reports[0].reason == ("patient P008: no t2 file in the manifest (input.missing_sequences allows 0 "
                                 "missing sequences)")


def test_conversions_are_reused_until_a_series_file_changes(tmp_path, caplog):
    write_study(tmp_path / "P010")
    conv = tmp_path / "conv"
    scan_dicom(tmp_path, conv)
    t2 = conv / "P010" / "t2.nii.gz"
    first = t2.stat().st_mtime_ns
    again = _table(scan_dicom(tmp_path, conv), "P010")
    assert again["reason"].str.endswith("converted earlier, reused").sum() == 4
    assert t2.stat().st_mtime_ns == first
    f = sorted((tmp_path / "P010" / f"study-{CANARY}" / "S05").iterdir())[0]
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    third = _table(scan_dicom(tmp_path, conv), "P010")
    assert third["reason"].str.endswith("converted earlier, reused").sum() == 3
    assert not third.loc[5, "reason"].endswith("reused") and t2.stat().st_mtime_ns != first
    assert not [p for p in (conv / "P010").iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_no_patient_data_reaches_the_manifest_the_conversions_or_the_logs(tmp_path, caplog):
    """The PHI canary: PatientName, IDs, birth date, institution, physicians, comments, a folder
    name; none of it in any output byte (NIfTI headers decompressed, JSON, CSV, printed table, log)."""
    caplog.set_level(logging.DEBUG, logger="gliotype")
    root = tmp_path / f"{CANARY}-Doe-Jane-{BIRTH_DATE}" / "dicom"
    write_study(root / "P011")
    _mask(root / "P011" / "seg.nii.gz")
    write_study(root / "P012", roles=("t1", "t2", "flair"))  # one incomplete patient: its warnings too
    out = tmp_path / "outputs"
    result = CliRunner().invoke(app, ["cohort", "scan", str(root), "--out", str(out / "manifest.csv")])
    assert result.exit_code == 0, result.output
    assert "2 patients found" in result.output
    df = read_manifest(out / "manifest.csv")
    assert df.loc[0, "t1c"] and df.loc[1, "t1c"] == ""
    assert leaks(out) == []
    for text in (result.output, caplog.text):
        assert CANARY.lower() not in text.lower() and "canary^" not in text.lower() and BIRTH_DATE not in text
    assert len(leaks(root)) > 0  # the detector sees it in the inputs


def test_predict_case_folder_converts_one_patient(tmp_path):
    from gliotype.prediction import case_folder_inputs, inputs_from_case

    patient = tmp_path / "P013"
    write_study(patient)
    _mask(patient / "seg.nii.gz")
    with case_folder_inputs(patient) as (pid, inputs):
        assert pid == "P013" and sorted(inputs) == ["flair", "mask", "t1", "t1c", "t2"]
        folder = inputs["t1"].parent
        assert inputs["t1"].is_file() and inputs["mask"] == folder / "mask.nii.gz"
    assert not folder.exists()  # the conversions live as long as the prediction
    pid, _ = inputs_from_case(patient, "NEW-ID", convert_dir=tmp_path / "c")
    assert pid == "NEW-ID" and (tmp_path / "c" / "NEW-ID" / "t1.nii.gz").is_file()
    with pytest.raises(GliotypeError, match="DICOM studies need a folder"):
        inputs_from_case(patient)


def test_a_folder_name_that_cannot_be_an_id_and_a_damaged_file_are_one_line_each(tmp_path, caplog):
    long_name = "P" * 70
    write_study(tmp_path / long_name, roles=("t1",))
    write_study(tmp_path / "P014")
    (tmp_path / "P014" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a patient")
    df = scan_cohort(tmp_path, "dicom", convert_dir=tmp_path / "conv")
    assert list(df["patient_id"]) == ["P014", long_name]  # 'notes' holds no DICOM file: not a patient
    assert all(df.loc[1, r] == "" for r in ("t1", "t1c", "t2", "flair"))
    assert "P014: 1 DICOM file(s) unreadable or without a series UID: left out" in caplog.text
    reports = validate_manifest(df)
    assert reports[1].status == "rejected" and "invalid patient id" in reports[1].reason
    assert reports[0].reason == "patient P014: no mask file in the manifest"
