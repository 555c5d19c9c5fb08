"""The synthetic generator's truth has one reader (gliotype.synthetic.truth): the run's Bayes
ceiling and the audit take it from there; a real cohort has none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gliotype.errors import GliotypeError
from gliotype.synthetic.truth import TRUTH_FILE, read_truth, read_truth_file, truth_file


def _cohort(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / TRUTH_FILE, index=False)
    return folder


def test_a_cohort_folder_gives_its_truth_by_patient_id(tmp_path):
    cohort = _cohort(tmp_path / "cohort", {"patient_id": ["007", "010", "007"], "bayes_posterior": [0.2, 0.9, 0.3],
                                           "z_image": [0.1, -1.0, 0.5]})
    truth = read_truth(cohort)
    assert truth.index.tolist() == ["007", "010"]  # IDs stay text; a repeated patient counts once
    assert truth.loc["007", "bayes_posterior"] == 0.2 and truth.index.name == "patient_id"
    assert truth_file(cohort) == cohort / TRUTH_FILE
    pd.testing.assert_frame_equal(read_truth_file(cohort / TRUTH_FILE), truth)


def test_no_truth_is_none_for_a_cohort_and_an_error_for_a_named_file(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "manifest.csv").write_text("patient_id\nP1\n")
    assert read_truth(real) is None and read_truth(None) is None
    assert read_truth(real / "manifest.csv") is None  # a cohort given as a CSV file has no truth
    with pytest.raises(GliotypeError, match=f"truth file {TRUTH_FILE} not found"):
        read_truth_file(real / TRUTH_FILE)
    (real / "bad.csv").write_text("z_image\n0.1\n")
    with pytest.raises(GliotypeError, match="has no patient_id column"):
        read_truth_file(real / "bad.csv")


def test_the_audit_and_the_bayes_ceiling_read_it(tmp_path):
    from gliotype.audit import read_truth as audit_truth
    from gliotype.experiment.ceilings import bayes_ceiling

    cohort = _cohort(tmp_path / "c", {"patient_id": ["A", "B", "C", "D"], "bayes_posterior": [0.1, 0.8, 0.4, 0.3],
                                      "z_shape": [1.0, 2.0, 3.0, 4.0], "other": [0, 0, 0, 0]})
    for source in (cohort, cohort / TRUTH_FILE):  # the audit's --truth: the cohort or its file
        assert list(audit_truth(source).columns) == ["z_shape", "bayes_posterior"]
    with pytest.raises(GliotypeError, match="no truth file"):
        audit_truth(tmp_path)
    assert bayes_ceiling(read_truth(cohort), ["B", "C", "D"], np.array([1.0, 0.0, 1.0])) == pytest.approx(0.5)
    assert bayes_ceiling(None, ["B"], np.array([1.0])) is None
