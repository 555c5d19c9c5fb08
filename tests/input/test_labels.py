"""One rule for a patient listed twice in a labels table (issue 14, case 1)."""

from __future__ import annotations

import logging

import pytest

from gliotype.errors import GliotypeError
from gliotype.input import read_labels


def test_conflicting_duplicate_labels_are_an_error_naming_the_patient_and_both_lines(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("patient_id,idh\nP0,0\nP1,1\nP2,0\nP1,0\n")
    with pytest.raises(GliotypeError) as err:
        read_labels(f)
    text = str(err.value)
    assert "P1" in text and "line 3" in text and "line 5" in text and "labels.csv" in text
    assert len(text.splitlines()) == 1 and str(tmp_path) not in text


def test_the_same_id_written_differently_is_the_same_patient(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("patient_id,idh,age\nBraTS_007,1,50\nbrats_007,0,50\n")
    with pytest.raises(GliotypeError, match="idh"):
        read_labels(f)


def test_identical_duplicates_warn_and_count_once(tmp_path, caplog):
    f = tmp_path / "labels.csv"
    f.write_text("patient_id,idh,age\nP0,0,40\nP1,mutant,61\nP1,mutant,61\n")
    with caplog.at_level(logging.WARNING):
        labels = read_labels(f)
    assert labels["patient_id"].tolist() == ["P0", "P1"]
    assert labels.set_index("patient_id").loc["P1", "idh"] == 1.0
    assert any("P1" in r.getMessage() and "line 4" in r.getMessage() for r in caplog.records)


def test_a_missing_value_against_a_value_is_a_conflict(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("patient_id,idh,age\nP1,1,\nP1,1,55\n")
    with pytest.raises(GliotypeError, match="age"):
        read_labels(f)


def test_sex_is_read_when_given_and_reaches_the_manifest(tmp_path):
    """Optional (issue 16, the population graph's phenotype option): F / M in any usual spelling,
    anything else unknown; a manifest written before the column existed still reads."""
    import numpy as np
    import pandas as pd

    from gliotype.input import read_manifest, write_manifest
    from gliotype.input.labels import attach_labels, parse_sex

    assert [parse_sex(v) for v in ("F", "female", " Woman", "m", "MALE")] == ["F", "F", "F", "M", "M"]
    assert all(np.isnan(parse_sex(v)) for v in ("", "1", "x", None, float("nan")))
    f = tmp_path / "labels.csv"
    f.write_text("patient_id,idh,Gender\nP0,0,female\nP1,1,M\nP2,1,\n")
    labels = read_labels(f)
    assert labels["sex"].tolist()[:2] == ["F", "M"] and np.isnan(labels["sex"].iloc[2])
    f.write_text("patient_id,idh,sex\nP1,1,F\nP1,1,M\n")
    with pytest.raises(GliotypeError, match="sex"):
        read_labels(f)
    rows = pd.DataFrame({"patient_id": ["P0", "P1"], "t1": "a", "t1c": "a", "t2": "a", "flair": "a", "mask": "a"})
    manifest, _ = attach_labels(rows, labels)
    write_manifest(manifest, tmp_path / "manifest.csv")
    back = read_manifest(tmp_path / "manifest.csv")
    assert back["sex"].tolist() == ["F", "M"]
    old = pd.read_csv(tmp_path / "manifest.csv", dtype=str).drop(columns="sex")
    old.to_csv(tmp_path / "old.csv", index=False)
    assert read_manifest(tmp_path / "old.csv")["sex"].isna().all()
