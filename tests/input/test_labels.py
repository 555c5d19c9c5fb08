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
