"""The exported model's calibrator and conformal predictor (calibration.json): fitted on out-of-fit
predictions of the training patients only, listed in the manifest, applied by gliotype predict."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from pred_helpers import split_ids

from gliotype.bundle import write_manifest
from gliotype.evaluation.calibration import fit_calibrator
from gliotype.evaluation.conformal import fit_conformal
from gliotype.layout import ModelDir
from gliotype.prediction import ModelError, load_model
from gliotype.prediction.calibrated import (
    NO_OUT_OF_FIT,
    NOT_EXPORTED,
    Calibration,
    NoCalibration,
    fit_model_calibration,
    read_calibration,
    write_calibration,
)
from gliotype.prediction.report import calibration_text


@pytest.fixture()
def out_of_fit():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=60) < 0.4).astype(float)
    p = 1 / (1 + np.exp(-(2.5 * (2 * y - 1) + rng.normal(0, 1.5, 60))))
    p[::7] = np.nan  # fitted patients: left out
    return y, p


@pytest.mark.parametrize("method", ["platt", "isotonic", "none"])
def test_the_calibration_is_fitted_on_the_out_of_fit_predictions_only(out_of_fit, method, tmp_path):
    y, p = out_of_fit
    cal = fit_model_calibration(y, p, method, 0.1, False)
    used = np.isfinite(p)
    assert (cal.patients, cal.mutant, cal.method) == (used.sum(), y[used].sum(), method)
    ref_cal, ref_cp = fit_calibrator(y[used], p[used], method), fit_conformal(y[used], p[used], 0.1)
    grid = np.linspace(0.01, 0.99, 25)
    np.testing.assert_array_equal(cal.calibrator(grid), ref_cal(grid))
    np.testing.assert_array_equal(cal.conformal.sets(grid), ref_cp.sets(grid))
    write_calibration(tmp_path / "c.json", cal)
    back = read_calibration(json.loads((tmp_path / "c.json").read_text()))
    assert back.describe(0.37, (0.2, 0.6)) == cal.describe(0.37, (0.2, 0.6))


def test_describe_gives_the_calibrated_probability_and_the_set(out_of_fit):
    y, p = out_of_fit
    cal = fit_model_calibration(y, p, "platt", 0.1, False)
    q = cal.conformal.thresholds[0]
    for prob in (0.01, 0.5, 0.99):
        d = cal.describe(prob, (prob / 2, prob))
        assert d["available"] and d["coverage"] == 0.9 and d["method"] == "platt"
        assert d["calibrated_probability"] == pytest.approx(float(cal.calibrator(np.array([prob]))[0]), abs=1e-6)
        assert d["calibrated_interval_95"] == pytest.approx(list(cal.calibrator(np.array([prob / 2, prob]))),
                                                            abs=1e-6)
        expected = [name for name, inside in (("IDH-wildtype", prob <= q), ("IDH-mutant", 1 - prob <= q)) if inside]
        assert d["prediction_set"] == expected
        assert f"{cal.patients} classifier-training patients ({cal.mutant} IDH-mutant)" in d["fitted_on"]
    assert cal.describe(0.01)["prediction_set"] == ["IDH-wildtype"]
    assert cal.describe(0.99)["prediction_set"] == ["IDH-mutant"]
    assert "calibrated_interval_95" not in cal.describe(0.5)
    # a strict coverage leaves the middle undecided
    strict = fit_model_calibration(y, p, "platt", 0.02, False)
    assert strict.describe(0.5)["prediction_set"] == ["IDH-wildtype", "IDH-mutant"]


def test_a_calibration_without_a_slope_says_so(out_of_fit):
    y, p = out_of_fit
    flat = fit_model_calibration(y, 1 - p, "platt", 0.1, False)  # ranked the wrong way round: no slope
    d = flat.describe(0.3, (0.2, 0.4))
    assert d["calibrated_interval_95"][0] == d["calibrated_interval_95"][1] == d["calibrated_probability"]
    assert "prevalence" in d["note"] and "prevalence" in calibration_text({"calibration": d})
    assert "note" not in fit_model_calibration(y, p, "platt", 0.1, False).describe(0.3)


def test_no_out_of_fit_predictions_no_calibration(out_of_fit, tmp_path):
    y, p = out_of_fit
    assert fit_model_calibration(y, None, "platt", 0.1, False) is None
    assert fit_model_calibration(np.ones(60), p, "platt", 0.1, False) is None  # one class: nothing to fit
    write_calibration(tmp_path / "c.json", None)
    none = read_calibration(json.loads((tmp_path / "c.json").read_text()))
    assert none == NoCalibration(NO_OUT_OF_FIT)
    assert none.describe(0.3) == {"available": False, "reason": NO_OUT_OF_FIT}
    assert read_calibration(None).describe(0.3)["reason"] == NOT_EXPORTED


def test_the_report_reads_the_set(out_of_fit):
    y, p = out_of_fit
    cal = fit_model_calibration(y, p, "isotonic", 0.1, True)
    mutant = calibration_text({"calibration": cal.describe(0.99, (0.9, 0.99))})
    assert "90% prediction set: IDH-mutant only" in mutant and "in each class" in mutant and "isotonic" in mutant
    both = calibration_text({"calibration": {**cal.describe(0.5), "prediction_set": ["IDH-wildtype", "IDH-mutant"]}})
    assert "cannot rule out either" in both and "interval" not in both.split("</b>")[0]
    assert calibration_text({"calibration": NoCalibration(NO_OUT_OF_FIT).describe(0.5)}).startswith(
        "<p class='note'>No calibrated probability")
    assert calibration_text({}) == ""


def test_an_exported_model_carries_its_calibration(tiny_run, tmp_path):
    """Re-exported with out-of-fold thresholds: calibration.json is listed in the manifest and load_model
    reads the calibrator fitted on the GNN's out-of-fold predictions of the B patients."""
    from gliotype import stages
    from gliotype.config import load_config
    from gliotype.experiment.export import export_model
    from gliotype.experiment.tables import out_of_fit

    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)  # the shared fixture is only read
    config = load_config("tiny", overrides=["population_graph.epochs=30", "population_graph.threshold_folds=2"])
    splits = pd.read_csv(run / "splits.csv", dtype={"patient_id": str})
    labels = dict(zip(splits["patient_id"], splits["idh"]))
    b, test = split_ids(run, "B"), split_ids(run, "test")
    graph_ids = b + test
    work, mm_dir = run / "work", run / "models" / "full"
    feats = stages.features(work, mm_dir, graph_ids, config)
    in_b = np.arange(len(graph_ids)) < len(b)
    y = np.array([labels[p] for p in graph_ids], dtype=float)
    _, chosen = stages.population_graph(feats, y, in_b, graph_ids, config)
    folder = export_model(tmp_path / "model", config, work, mm_dir, feats, graph_ids, in_b, y, chosen)
    layout = ModelDir(folder)
    assert "calibration.json" in json.loads(layout.manifest.read_text())["files"]
    model = load_model(folder)
    assert isinstance(model.calibration, Calibration) and model.calibration.patients == len(b)
    ref = fit_calibrator(y[in_b], out_of_fit(chosen), "platt")
    np.testing.assert_allclose(model.calibration.calibrator(np.array([0.2, 0.7])), ref(np.array([0.2, 0.7])))

    # an older export without the file predicts without it; a file added after the export is refused
    layout.calibration.unlink()
    write_manifest(layout, model.config_hash)
    assert load_model(folder).calibration == NoCalibration(NOT_EXPORTED)
    write_calibration(layout.calibration, model.calibration)
    with pytest.raises(ModelError, match="calibration.json is not listed"):
        load_model(folder)
