"""Single-patient prediction with a trained model folder (issue 7): inductive insertion,
outputs, determinism, bad inputs, tampered models."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from pred_helpers import case_inputs, split_ids
from report_check import assert_reports_pass, needs_chromium

from gliotype.errors import CaseError, GliotypeError
from gliotype.prediction import ModelError, graph_predict, load_model, predict_patient
from gliotype.prediction.calibrated import NO_OUT_OF_FIT

#: Re-inserting a stored node as new rebuilds the same graph up to the order of its nodes and
#: edges, so only float32 summation order differs: the probabilities agree to ~1e-7.
INSERTION_TOL = 1e-5
#: End to end, the features of a re-processed patient agree with the stored ones to ~1e-6
#: (same preprocessing, same atlas positions, batch of 1 instead of 8).
END_TO_END_TOL = 1e-3


def _stored(model):
    with np.load(model.folder / "population_graph" / "nodes.npz", allow_pickle=False) as z:
        return z["u_t"], z["u_b"], [str(p) for p in z["patient_id"]], z["probability"]


def test_model_folder_loads_and_rebuilds_the_training_graph(tiny_model):
    assert tiny_model.graph_check is not None and tiny_model.graph_check < 1e-5
    assert 0 < tiny_model.threshold < 1 and tiny_model.theta == 0.5
    assert len(tiny_model.region_centroids) == tiny_model.config.atlas.n_regions


def test_inductive_insertion_matches_transductive(tiny_model):
    """(a) every stored patient, taken out of the graph and inserted again as new, gets its
    transductive probability (labelled B nodes too: the z-score statistics stay the stored ones)."""
    u_t, u_b, ids, p_stored = _stored(tiny_model)
    diffs = []
    for i, pid in enumerate(ids):
        out = graph_predict(tiny_model.without([pid]), u_t[i : i + 1], u_b[i : i + 1], pid, draws=0)
        diffs.append(abs(out["probability"] - float(p_stored[i])))
    assert max(diffs) < INSERTION_TOL, diffs
    # without taking it out first, the patient's own stored copy is one of its neighbours (r = 1)
    dup = graph_predict(tiny_model, u_t[:1], u_b[:1], ids[0], draws=0)
    assert dup["neighbours"] >= 1


def test_subsampling_interval(tiny_model):
    u_t, u_b, ids, p_stored = _stored(tiny_model)
    m = tiny_model.without([ids[-1]])
    out = graph_predict(m, u_t[-1:], u_b[-1:], ids[-1], draws=40, node_fraction=0.8, seed=1)
    lo, hi = out["interval"]
    assert 0 <= lo <= hi <= 1 and len(out["draws"]) == 40
    assert out["subset_nodes"] == round(0.8 * m.graph.num_nodes)
    again = graph_predict(m, u_t[-1:], u_b[-1:], ids[-1], draws=40, node_fraction=0.8, seed=1)
    assert again["interval"] == out["interval"]


def test_predict_end_to_end_deterministic(tiny_run, tiny_model, tmp_path):
    """(b) predict writes prediction.json + report.html (+ figures and maps), the same twice, and a
    test patient predicted from its raw files (out of the graph) gets its transductive probability."""
    run, cohort = tiny_run / "run", tiny_run / "cohort"
    pid = split_ids(run)[0]
    inputs = case_inputs(cohort, pid)
    _, _, ids, p_stored = _stored(tiny_model)
    model = tiny_model.without([pid])
    a = predict_patient(model, inputs, None, tmp_path / "a", draws=20, explainer_epochs=60)
    b = predict_patient(model, inputs, pid, tmp_path / "b", draws=20, explainer_epochs=60)
    assert a.patient_id == pid  # read from the BraTS file names
    assert b.patient_id == pid and b.probability == a.probability  # the same ID given: the same prediction
    assert abs(a.probability - float(p_stored[ids.index(pid)])) < END_TO_END_TOL

    for out in (tmp_path / "a", tmp_path / "b"):
        names = {p.name for p in out.iterdir()}
        assert {"prediction.json", "report.html", "figure7.png", "figure8.png", "gradcam.nii.gz",
                "gradcam_native.nii.gz", "edges.csv"} <= names
    ja, jb = (json.loads((tmp_path / d / "prediction.json").read_text()) for d in "ab")
    ja.pop("seconds"), jb.pop("seconds")
    for j in (ja, jb):
        j["interpretation"].pop("seconds")
    assert ja == jb
    assert ja["patient_id"] == pid and ja["decision"] in ("IDH-mutant", "IDH-wildtype")
    assert ja["decision"] == ("IDH-mutant" if ja["idh_mutant_probability"] >= ja["threshold"] else "IDH-wildtype")
    lo, hi = ja["uncertainty"]["interval_95"]
    assert 0 <= lo <= hi <= 1
    assert ja["model"]["config_hash"] == model.config_hash and ja["model"]["gliotype_version"]
    assert ja["graph_neighbours"] >= 0 and ja["input_checks"]
    # the tiny preset has no out-of-fold predictions: no calibration, and the record says why
    assert ja["calibration"] == {"available": False, "reason": NO_OUT_OF_FIT}
    ga, gb = (np.asarray(nib.load(tmp_path / d / "gradcam.nii.gz").dataobj) for d in "ab")
    np.testing.assert_array_equal(ga, gb)
    assert ga.shape == nib.load(inputs["t1c"]).shape  # the synthetic cohort lies on the template grid
    native = nib.load(tmp_path / "a" / "gradcam_native.nii.gz")
    assert native.shape == nib.load(inputs["t1c"]).shape and np.allclose(native.affine, nib.load(inputs["t1c"]).affine)

    html = (tmp_path / "a" / "report.html").read_text()
    assert pid in html and html.count("data:image/png;base64,") == 2
    assert "No calibrated probability or prediction set: the model has no out-of-fit predictions" in html
    assert str(cohort) not in html and "_t1ce" not in html and "_seg" not in html and "/" + pid not in html
    assert "src='http" not in html and 'src="http' not in html  # self-contained
    assert not list(tmp_path.glob(".*partial*"))


@needs_chromium
def test_the_prediction_report_passes_the_browser_check(tiny_run, tiny_model, tmp_path):
    """report.html of a prediction as a person sees it (`make check-reports`): figures loaded and captioned,
    no script error, no network request, nothing wider than a 1366 or 1280 px laptop screen."""
    pid = split_ids(tiny_run / "run")[0]
    predict_patient(tiny_model.without([pid]), case_inputs(tiny_run / "cohort", pid), pid, tmp_path / "p", draws=5,
                    explainer_epochs=20)
    assert_reports_pass([tmp_path / "p" / "report.html"], tmp_path / "png")


def test_bad_inputs_give_one_line_and_no_output(tiny_run, tiny_model, tmp_path):
    """(c) empty mask / missing file: CaseError in one line naming patient and file, nothing written."""
    cohort = tiny_run / "cohort"
    pid = split_ids(tiny_run / "run")[0]
    inputs = case_inputs(cohort, pid)
    empty = tmp_path / "in" / "empty_seg.nii.gz"
    empty.parent.mkdir()
    ref = nib.load(inputs["mask"])
    nib.save(nib.Nifti1Image(np.zeros(ref.shape, np.uint8), ref.affine), empty)
    out = tmp_path / "out"
    with pytest.raises(CaseError) as err:
        predict_patient(tiny_model, {**inputs, "mask": empty}, "P1", out, draws=0)
    msg = str(err.value)
    assert "\n" not in msg and "P1" in msg and "empty_seg.nii.gz" in msg and "empty" in msg
    assert str(tmp_path) not in msg
    with pytest.raises(CaseError) as err:
        predict_patient(tiny_model, {**inputs, "flair": tmp_path / "in" / "gone_flair.nii.gz"}, "P1", out, draws=0)
    msg = str(err.value)
    assert "\n" not in msg and "gone_flair.nii.gz" in msg and "not found" in msg and str(tmp_path) not in msg
    with pytest.raises(CaseError, match="no t2 file"):
        predict_patient(tiny_model, {k: v for k, v in inputs.items() if k != "t2"}, "P1", out, draws=0)
    # a NaN voxel: the rule and the message of the validator and of preprocessing (input.rules.check_finite)
    flair = nib.load(inputs["flair"])
    data = np.asarray(flair.dataobj, np.float32).copy()
    data[tuple(np.argwhere(data > 0)[0])] = np.nan
    nib.save(nib.Nifti1Image(data, flair.affine), tmp_path / "in" / "nan_flair.nii.gz")
    with pytest.raises(CaseError) as err:
        predict_patient(tiny_model, {**inputs, "flair": tmp_path / "in" / "nan_flair.nii.gz"}, "P1", out, draws=0)
    assert str(err.value) == ("patient P1 [nan_flair.nii.gz]: flair has 1 NaN or infinite voxels "
                              "(preprocess.nonfinite=zero would set them to 0)")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no staging folder left


def test_failure_late_leaves_no_output(tiny_run, tiny_model, tmp_path, monkeypatch):
    """A failure after the figures were written still leaves no output folder (staging removed)."""
    import gliotype.prediction.report as report

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "write_report", boom)
    pid = split_ids(tiny_run / "run")[1]
    with pytest.raises(RuntimeError):
        predict_patient(tiny_model, case_inputs(tiny_run / "cohort", pid), None, tmp_path / "out", draws=0,
                        explainer_epochs=5)
    assert list(tmp_path.iterdir()) == []


def test_output_folder_rules(tiny_model, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(GliotypeError, match="not empty"):
        predict_patient(tiny_model, {}, "P1", other)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(GliotypeError, match="invalid patient id"):
        predict_patient(tiny_model, {}, "../x", tmp_path / "o")


def test_tampered_model_is_refused(tiny_run, tmp_path):
    """(d) a changed byte in any file of the model folder stops the loading with one line."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_run / "run" / "model", folder)
    target = folder / "population_graph" / "gnn.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        load_model(folder)
    msg = str(err.value)
    assert "population_graph/gnn.safetensors" in msg and "sha256" in msg and "\n" not in msg
    assert str(tmp_path) not in msg
    (folder / "population_graph" / "gnn.safetensors").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ModelError, match="no manifest.json"):
        load_model(folder)


def test_config_tamper_detected(tiny_run, tmp_path):
    """A config.yaml changed *and* re-hashed in the manifest still fails the recorded config hash."""
    from gliotype.utils.io import sha256_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_run / "run" / "model", folder)
    cfg = folder / "config.yaml"
    cfg.write_text(cfg.read_text().replace("theta: 0.5", "theta: 0.1"))
    with pytest.raises(ModelError, match="config.yaml does not match its sha256"):
        load_model(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["config.yaml"] = sha256_file(cfg)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="does not match the config hash"):
        load_model(folder)


def test_the_work_folder_holds_only_the_patients_files(tiny_run, tiny_model, tmp_path, monkeypatch):
    """The model's atlas and self-supervised models are loaded once (TrainedModel) and passed in
    memory: the temporary work folder holds the patient's own files, no copy of the model."""
    from pathlib import Path

    import gliotype.multimodal.stage as stage
    from gliotype.input import check_patient_id
    from gliotype.prediction import inputs

    assert inputs.check_patient_id is check_patient_id  # the cohort's patient-ID rule
    seen = {}
    real = stage.extract_features

    def spy(work, *args, **kwargs):
        seen["work"] = sorted(p.name for p in Path(work).iterdir())
        seen["patients"] = sorted(p.name for p in (Path(work) / "patients").iterdir())
        return real(work, *args, **kwargs)

    monkeypatch.setattr(stage, "extract_features", spy)
    pid = split_ids(tiny_run / "run")[0]
    res = predict_patient(tiny_model.without([pid]), case_inputs(tiny_run / "cohort", pid), None, tmp_path / "out",
                          draws=0, explain=False)
    assert seen["patients"] == [pid]
    assert seen["work"] == ["brain_network_status.csv", "patients"], seen["work"]
    assert res.patient_id == pid and (tmp_path / "out" / "prediction.json").exists()
