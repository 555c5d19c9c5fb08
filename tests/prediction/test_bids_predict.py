"""``gliotype predict --case`` on a subject folder of a BIDS dataset: the mask comes from the
dataset's derivatives, and the prediction is copied into ``derivatives/gliotype`` (issue 15)."""

from __future__ import annotations

import json
import shutil

from pred_helpers import case_inputs, split_ids
from typer.testing import CliRunner

from gliotype.cli import app

RAW = {"t1": "T1w", "t1c": "ce-gadolinium_T1w", "t2": "T2w", "flair": "FLAIR"}


def _bids_dataset(root, files):
    (root / "dataset_description.json").parent.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.10.0"}))
    (root / "sub-01" / "anat").mkdir(parents=True)
    for role, tail in RAW.items():
        shutil.copyfile(files[role], root / "sub-01" / "anat" / f"sub-01_{tail}.nii.gz")
    seg = root / "derivatives" / "manual" / "sub-01" / "anat"
    seg.mkdir(parents=True)
    shutil.copyfile(files["mask"], seg / "sub-01_desc-tumor_dseg.nii.gz")
    return root


def test_predict_a_bids_subject_writes_the_derivative(tiny_run, tmp_path):
    pid = split_ids(tiny_run / "run")[0]
    root = _bids_dataset(tmp_path / "ds", case_inputs(tiny_run / "cohort", pid))
    model = str(tiny_run / "run" / "model")
    out = tmp_path / "pred"
    res = CliRunner().invoke(app, ["predict", "--model", model, "--case", str(root / "sub-01"), "--out", str(out),
                                   "--no-explain", "--draws", "5"])
    assert res.exit_code == 0, res.output
    derivative = root / "derivatives" / "gliotype" / "sub-01" / "anat" / "sub-01_desc-idh_prediction.json"
    assert "patient sub-01: P(IDH mutant)" in res.output and str(derivative) in res.output
    assert derivative.read_bytes() == (out / "prediction.json").read_bytes()
    assert json.loads(derivative.read_text())["patient_id"] == "sub-01"
    desc = json.loads((root / "derivatives" / "gliotype" / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "gliotype"
    assert str(root) not in (out / "report.html").read_text()

    elsewhere = tmp_path / "elsewhere"
    res = CliRunner().invoke(app, ["predict", "--model", model, "--case", str(root), "--patient-id", "sub-01",
                                   "--out", str(out), "--no-explain", "--draws", "0", "--bids-derivatives",
                                   str(elsewhere)])
    assert res.exit_code == 0, res.output
    assert (elsewhere / "sub-01" / "anat" / "sub-01_desc-idh_prediction.json").is_file()
