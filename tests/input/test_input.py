"""Cohort input: layouts, labels and the manifest round trip (validation: test_validate.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from input_helpers import BRATS21, BRATS23, UCSF, brain, make_case, manifest_of, save, tumor

from gliotype.errors import GliotypeError
from gliotype.input import (
    attach_labels,
    detect_layout,
    parse_idh,
    read_labels,
    read_manifest,
    scan_cohort,
    validate_manifest,
    write_manifest,
)


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


def test_has_fa_is_a_non_blank_fa_cell():
    import pandas as pd

    from gliotype.input import has_fa

    assert has_fa(pd.DataFrame({"fa": ["p/fa.nii.gz", None, "", float("nan"), "  "]})) == [True, False, False, False,
                                                                                          False]
    assert has_fa(pd.DataFrame({"t1": ["a", "b"]})) == [False, False]
