"""``gliotype explain`` and the ``predict`` / ``explain`` commands (issue 7)."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from pred_helpers import split_ids
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.prediction import explain_run


def _run_copy(tiny_run, tmp_path):
    """A run folder of our own: model/ and work/ linked (read only), splits.csv copied."""
    run = tmp_path / "run"
    run.mkdir()
    for sub in ("model", "work"):
        (run / sub).symlink_to(tiny_run / "run" / sub)
    shutil.copy(tiny_run / "run" / "splits.csv", run / "splits.csv")
    return run


def _head_classes(tiny_run, ids) -> dict:
    """The class the tiny model's BCE head gives each patient."""
    from gliotype.interpretation import load_case_batch
    from gliotype.interpretation._common import eval_mode
    from gliotype.prediction import load_model

    model = load_model(tiny_run / "run" / "model").multimodal
    out = {}
    for pid in ids:
        batch = load_case_batch(tiny_run / "run" / "work", pid, model.config.encoders)
        with eval_mode(model), torch.no_grad():
            out[pid] = "IDH-mutant" if float(model(batch).logit.reshape(-1)[0]) > 0 else "IDH-wildtype"
    return out


def test_gradcam_explains_the_class_the_head_gives(tiny_run, tmp_path):
    """A patient the head calls wild-type: the IDH-mutant score's Grad-CAM is all zero after the ReLU, the
    predicted class's is not; explain_case draws the latter and names it."""
    from gliotype.interpretation import tumor_gradcam
    from gliotype.prediction import load_model
    from gliotype.prediction.explain import explain_case

    ids = pd.read_csv(tiny_run / "run" / "splits.csv", dtype={"patient_id": str})["patient_id"].tolist()
    heads = _head_classes(tiny_run, ids)
    assert set(heads.values()) == {"IDH-mutant", "IDH-wildtype"}  # the tiny model calls both
    model = load_model(tiny_run / "run" / "model")
    work = tiny_run / "run" / "work"
    for pid in (next(p for p, c in heads.items() if c == "IDH-wildtype"),
                next(p for p, c in heads.items() if c == "IDH-mutant")):
        from gliotype.interpretation import load_case_batch

        batch = load_case_batch(work, pid, model.multimodal.config.encoders)
        mutant = tumor_gradcam(model.multimodal, batch, target="mutant")
        info = explain_case(model.multimodal, work, pid, tmp_path / pid, model.region_centroids, model.region_names,
                            epochs=5)
        cam = np.asarray(nib.load(tmp_path / pid / "gradcam.nii.gz").dataobj)
        assert info["gradcam_class"] == heads[pid] and cam.max() > 0
        if heads[pid] == "IDH-mutant":
            np.testing.assert_allclose(cam.max(), mutant.max(), rtol=1e-5)  # the same score


def test_explain_run_writes_figures_maps_and_cohort_summary(tiny_run, tmp_path):
    """(e) per-patient Figs. 7-8, Grad-CAM maps, edge probabilities; cohort density by IDH group."""
    run = _run_copy(tiny_run, tmp_path)
    splits = pd.read_csv(run / "splits.csv", dtype={"patient_id": str})
    test = splits[splits["split"] == "test"]
    ids = [test.loc[test["idh"] == 0, "patient_id"].iloc[0], test.loc[test["idh"] == 1, "patient_id"].iloc[0]]
    heads = _head_classes(tiny_run, ids)
    res = explain_run(run, ids, epochs=40)
    for pid in ids:
        folder = run / "explain" / pid
        assert {"figure7.png", "figure8.png", "gradcam.nii.gz", "gradcam_native.nii.gz", "edges.csv",
                "explain.json"} <= {p.name for p in folder.iterdir()}
        edges = pd.read_csv(folder / "edges.csv")
        assert edges["probability"].between(0, 1).all()
        assert (edges["important"] == (edges["probability"] > 0.5)).all()
        info = json.loads((folder / "explain.json").read_text())
        assert info["patient_id"] == pid and info["edges"] == len(edges)
        # Grad-CAM explains the class the head gives the patient, so its map is not all zero
        cam = np.asarray(nib.load(folder / "gradcam.nii.gz").dataobj)
        assert cam.max() > 0 and info["gradcam_class"] == heads[pid]
    for name in ("edge_density.csv", "edge_density_groups.csv", "edge_density.png", "summary.json"):
        assert (run / "explain" / name).exists()
    summary = json.loads((run / "explain" / "summary.json").read_text())
    assert summary["patients"] == 2 and {g["group"] for g in summary["groups"]} == {"wild-type", "mutant"}
    assert all(g["n"] == 1 for g in summary["groups"]) and "p_value" in summary and res["patients"] == 2
    density = pd.read_csv(run / "explain" / "edge_density.csv", dtype={"patient_id": str})
    assert density["patient_id"].tolist() == ids


def test_explain_cli_errors_and_unknown_patient(tiny_run, tmp_path):
    runner = CliRunner()
    run = _run_copy(tiny_run, tmp_path)
    res = runner.invoke(app, ["explain", str(run)])
    assert res.exit_code == 2 and "--patients" in res.output
    res = runner.invoke(app, ["explain", str(run), "--patients", "NOPE-1"])
    assert res.exit_code == 2 and "NOPE-1" in res.output and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["explain", str(tmp_path / "nothing"), "--all"])
    assert res.exit_code == 2 and "not a finished run" in res.output


def test_explain_cli_patient_list(tmp_path, monkeypatch):
    """``--patients A B C`` (and repeated or comma-separated) reach explain_run as one list."""
    import gliotype.prediction as prediction

    seen = []

    def fake(run, patients, **kwargs):
        seen.append(patients)
        return {"patients": len(patients or []), "groups": []}

    monkeypatch.setattr(prediction, "explain_run", fake)
    runner = CliRunner()
    for args in (["--patients", "A", "B", "C"], ["--patients", "A", "--patients", "B,C"]):
        res = runner.invoke(app, ["explain", str(tmp_path), *args, "--epochs", "10"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["explain", str(tmp_path), "--all"])
    assert res.exit_code == 0, res.output
    assert seen == [["A", "B", "C"], ["A", "B", "C"], None]


def test_predict_cli_case_folder(tiny_run, tmp_path):
    pid = split_ids(tiny_run / "run")[0]
    case = tiny_run / "cohort" / pid
    out = tmp_path / "pred"
    res = CliRunner().invoke(app, ["predict", "--model", str(tiny_run / "run" / "model"), "--case", str(case),
                                   "--out", str(out), "--no-explain", "--draws", "5"])
    assert res.exit_code == 0, res.output
    assert f"patient {pid}: P(IDH mutant)" in res.output
    rec = json.loads((out / "prediction.json").read_text())
    assert rec["patient_id"] == pid and rec["uncertainty"]["draws"] == 5
    assert (out / "report.html").exists() and not (out / "figure7.png").exists()


def test_predict_cli_errors(tiny_run, tmp_path):
    runner = CliRunner()
    model = str(tiny_run / "run" / "model")
    res = runner.invoke(app, ["predict", "--model", model, "--t1", "a.nii.gz", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "missing --t1c" in res.output
    res = runner.invoke(app, ["predict", "--model", str(tmp_path / "nomodel"), "--case", str(tmp_path),
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
