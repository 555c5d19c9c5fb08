"""A NIfTI whose sform and qform disagree (issue 14, case 7): read with the sform, as nibabel's
``img.affine`` does, but never silently: one warning naming the patient and the file, listed by
``gliotype cohort validate`` for that patient and logged by preprocessing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from input_helpers import manifest_of
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.input import load_volume, validate_manifest, validation_table


def _with_qform(path: Path, shift_mm: float, qcode: str = "scanner", scode: str = "scanner") -> np.ndarray:
    """Rewrite ``path`` with its affine as sform and the affine shifted by ``shift_mm`` in x as qform."""
    img = nib.load(str(path))
    sform = img.affine.copy()
    qform = sform.copy()
    qform[0, 3] += shift_mm
    out = nib.Nifti1Image(np.asarray(img.dataobj), sform)
    out.set_sform(sform, code=scode)
    out.set_qform(qform, code=qcode)
    nib.save(out, str(path))
    return sform


def test_disagreeing_sform_and_qform_are_read_with_the_sform_and_a_warning(tmp_path):
    path = Path(manifest_of(tmp_path).loc[0, "t2"])
    sform = _with_qform(path, 3.0, qcode="scanner", scode="mni")
    img = load_volume(path, "P0", "t2")
    assert np.allclose(img.affine, sform)
    assert img.extra["warnings"] == ["patient P0 [P0_t2.nii.gz]: t2 sform (mni) and qform (scanner) disagree by "
                                     "up to 3.00 mm; gliotype uses the sform, as nibabel does"]
    assert str(tmp_path) not in img.extra["warnings"][0]  # the file's name only: it may go into reports


@pytest.mark.parametrize("shift_mm, qcode", [
    (3.0, "unknown"),  # qform not set (code 0): the sform is the only affine
    (0.0, "scanner"),  # both set, the same
    (0.05, "scanner"),  # both set, half a tenth of a 1 mm voxel apart: float noise, not two placements
])
def test_no_warning_when_there_is_one_placement(tmp_path, shift_mm, qcode):
    path = Path(manifest_of(tmp_path).loc[0, "t2"])
    _with_qform(path, shift_mm, qcode=qcode)
    assert load_volume(path, "P0", "t2").extra["warnings"] == []


def test_validate_lists_the_warning_for_that_patient(tmp_path):
    df = manifest_of(tmp_path, 2)
    _with_qform(Path(df.loc[df["patient_id"] == "P1", "flair"].iloc[0]), 2.5)
    reports = {r.patient_id: r for r in validate_manifest(df)}
    warning = "P1_flair.nii.gz: flair sform (scanner) and qform (scanner) disagree by up to 2.50 mm; " \
              "gliotype uses the sform, as nibabel does"
    assert reports["P1"].status == "ok" and reports["P1"].warnings == [warning]
    assert reports["P0"].warnings == []
    assert f"P1       OK        {warning}" in validation_table(list(reports.values())).splitlines()
    # the command: the table on stdout, the CSV report with the warning in the patient's row
    manifest = tmp_path / "manifest.csv"
    df.to_csv(manifest, index=False)
    result = CliRunner().invoke(app, ["cohort", "validate", str(manifest), "--workers", "2",
                                      "--report", str(tmp_path / "report.csv")])
    assert result.exit_code == 0, result.output
    assert any(line.startswith("P1 ") and line.endswith(warning) for line in result.output.splitlines())
    import pandas as pd

    table = pd.read_csv(tmp_path / "report.csv", keep_default_na=False).set_index("patient_id")
    assert table.loc["P1", "warnings"] == warning and table.loc["P0", "warnings"] == ""


def test_preprocessing_logs_the_warning_and_keeps_it_in_qc(tmp_path):
    from gliotype.config import load_config
    from gliotype.preprocessing.case import CaseContext, read_inputs

    row = manifest_of(tmp_path).iloc[0]
    _with_qform(Path(row["t1c"]), 4.0)
    said, qc = [], {}
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("gliotype.preprocessing")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.WARNING  # whatever --log-level an earlier test set
    try:
        inputs = {r: Path(row[r]) for r in ("t1", "t1c", "t2", "flair", "mask")}
        read_inputs(CaseContext("P0", inputs, load_config("tiny").preprocess, None,
                                lambda msg, level=logging.INFO: said.append((level, msg)), qc))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    line = ("patient P0 [P0_t1ce.nii.gz]: t1c sform (scanner) and qform (scanner) disagree by up to 4.00 mm; "
            "gliotype uses the sform, as nibabel does")
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [line]
    assert (logging.WARNING, line) in said
    assert json.loads(json.dumps(qc))["warnings"] == [line]
