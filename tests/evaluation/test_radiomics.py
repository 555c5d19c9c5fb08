"""Radiomics baselines (issue 16): real pyradiomics on small NIfTI volumes laid out as a work
folder, the per-patient cache, failures left out, and classifiers that fit their scaling and
feature selection on training patients only."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gliotype.config.schema import FeatureClassifiersConfig, RadiomicsConfig
from gliotype.evaluation.radiomics import extract_case, radiomics_classifier, radiomics_features, selected_columns
from gliotype.layout import WorkDir

SHAPE = (24, 24, 24)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
SMALL = RadiomicsConfig(features=["shape", "firstorder", "glcm"], sequences=["t1c", "flair"])


def _region(kind: str) -> np.ndarray:
    """A 10-voxel cube or a sphere of radius 6 voxels, centred; BraTS labels (core 1 in the
    middle, edema 2 around it)."""
    grid = np.indices(SHAPE) - 12
    inside = (np.abs(grid) < 5).all(0) if kind == "cube" else (grid ** 2).sum(0) <= 36
    mask = inside.astype(np.uint8) * 2
    mask[(np.abs(grid) < 2).all(0) & inside] = 1
    return mask


def write_patient(work: WorkDir, pid: str, kind: str = "sphere", texture: str = "textured", seed: int = 0) -> None:
    """A preprocessed patient: four sequences, the mask and the preprocessing record."""
    case = work.case(pid)
    case.preprocessed.mkdir(parents=True, exist_ok=True)
    mask = _region(kind)
    rng = np.random.default_rng(seed)
    for i, seq in enumerate(("t1", "t1c", "t2", "flair")):
        image = np.full(SHAPE, 50.0, dtype=np.float32)
        if texture == "textured":
            image += rng.normal(0, 12, SHAPE).astype(np.float32) * (mask > 0) + 3 * i
        nib.save(nib.Nifti1Image(image, AFFINE), case.sequence(seq))
    nib.save(nib.Nifti1Image(mask, AFFINE), case.mask)
    case.done.write_text(json.dumps({"key": f"{pid}-{kind}-{texture}-{seed}", "files": {}}))


@pytest.fixture()
def work(tmp_path):
    return WorkDir(tmp_path / "work")


def test_a_sphere_is_rounder_than_a_cube_and_texture_shows_in_the_glcm(work):
    write_patient(work, "cube", "cube", "constant")
    write_patient(work, "sphere", "sphere", "constant")
    write_patient(work, "textured", "sphere", "textured")
    cube, _ = extract_case(work, "cube", SMALL)
    sphere, _ = extract_case(work, "sphere", SMALL)
    textured, _ = extract_case(work, "textured", SMALL)
    s = "original_shape_Sphericity"
    assert cube[s] == pytest.approx(0.806, abs=0.06)  # pi^(1/3) 6^(2/3) / 6 for a perfect cube
    assert sphere[s] > cube[s] + 0.05
    assert sphere["original_shape_VoxelVolume"] == pytest.approx(8 * (_region("sphere") > 0).sum())
    # a constant region has one grey level: no contrast, no joint entropy; noise has both
    for name in ("flair_original_glcm_Contrast", "flair_original_glcm_JointEntropy"):
        assert sphere[name] == pytest.approx(0.0, abs=1e-9) and textured[name] > 1.0, name
    assert textured["flair_original_firstorder_Mean"] != pytest.approx(textured["t1c_original_firstorder_Mean"])
    # shape once, first order and GLCM per sequence; no diagnostics
    assert sum(k.startswith("original_shape_") for k in sphere) == 14
    assert {k.split("_original_")[0] for k in sphere if "_original_" in k} == {"t1c", "flair"}
    assert not any("diagnostics" in k for k in sphere)


def test_the_core_region_and_its_fallback(work):
    write_patient(work, "P1")
    whole, note = extract_case(work, "P1", SMALL)
    core, core_note = extract_case(work, "P1", SMALL.model_copy(update={"labels": "core"}))
    assert note == "" and core_note == ""
    assert core["original_shape_VoxelVolume"] == 8 * 27 < whole["original_shape_VoxelVolume"]
    small, fell = extract_case(work, "P1", SMALL.model_copy(update={"labels": "core"}), min_voxels=100)
    assert "whole tumour used" in fell and small["original_shape_VoxelVolume"] == whole["original_shape_VoxelVolume"]


def test_features_are_cached_per_patient_and_a_changed_setting_recomputes(work, monkeypatch):
    import gliotype.evaluation.radiomics as rad

    for i in range(3):
        write_patient(work, f"P{i}", seed=i)
    first = radiomics_features(work, ["P0", "P1", "P2"], SMALL)
    assert list(first.index) == ["P0", "P1", "P2"] and first.notna().all().all()
    assert work.case("P1").radiomics_features.is_file() and work.case("P1").radiomics_record.is_file()

    calls = []
    real = rad.extract_case
    monkeypatch.setattr(rad, "extract_case", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    again = radiomics_features(work, ["P2", "P0", "P1"], SMALL)
    assert calls == []  # every patient read back
    pd.testing.assert_frame_equal(again.loc[first.index], first)

    wider = radiomics_features(work, ["P0"], SMALL.model_copy(update={"bin_width": 8.0}))
    assert calls == ["P0"]
    assert wider.loc["P0", "flair_original_glcm_JointEntropy"] < first.loc["P0", "flair_original_glcm_JointEntropy"]

    write_patient(work, "P1", seed=7)  # preprocessed again from another input: a new record digest
    radiomics_features(work, ["P1", "P2"], SMALL)
    assert calls == ["P0", "P1"]

    work.case("P2").radiomics_features.write_text("{}")  # a damaged cache file is rebuilt, not trusted
    rebuilt = radiomics_features(work, ["P2"], SMALL)
    assert calls == ["P0", "P1", "P2"]
    pd.testing.assert_series_equal(rebuilt.loc["P2"], first.loc["P2"])


def test_a_failed_patient_is_named_with_its_file_and_left_out(work, caplog):
    for i in range(3):
        write_patient(work, f"P{i}", seed=i)
    work.case("P1").sequence("flair").unlink()
    with caplog.at_level(logging.WARNING, logger="gliotype"):
        df = radiomics_features(work, ["P0", "P1", "P2"], SMALL)
    assert list(df.index) == ["P0", "P2"]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "patient P1" in lines[0] and "flair.nii.gz" in lines[0] and "left out" in lines[0]
    assert str(work.root) not in lines[0]  # file names only
    assert not work.case("P1").radiomics_record.exists()


def test_two_workers_give_the_same_features(work):
    for i in range(4):
        write_patient(work, f"P{i}", seed=i)
    two = radiomics_features(work, [f"P{i}" for i in range(4)], SMALL, workers=2)
    for i in range(4):
        work.case(f"P{i}").radiomics_record.unlink()
    one = radiomics_features(work, [f"P{i}" for i in range(4)], SMALL, workers=1)
    pd.testing.assert_frame_equal(one, two)


# --------------------------------------------------------------------------- classifiers


def _data(n=80, p=30, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    x = rng.normal(size=(n, p))
    x[:, :3] += 1.5 * y[:, None]
    return x, y


@pytest.mark.parametrize("kind", ["lr", "svm"])
def test_the_classifiers_learn_and_select_on_training_rows(kind):
    from sklearn.metrics import roc_auc_score

    x, y = _data()
    config = RadiomicsConfig(select_k=5, cs=[0.1, 1.0])
    model = radiomics_classifier(kind, y[:60], config, FeatureClassifiersConfig(), seed=0).fit(x[:60], y[:60])
    assert roc_auc_score(y[60:], model.predict_proba(x[60:])[:, 1]) > 0.8
    chosen = selected_columns(model, [f"f{i}" for i in range(x.shape[1])])
    assert len(chosen) == 5 and {"f0", "f1", "f2"} <= set(chosen)


def test_no_test_row_reaches_the_scaling_or_the_selection():
    """The rows' function gets training and test features together: whatever the test rows hold
    (here a column that is the test label itself), the fitted scaler, selector and training
    predictions are those of the training rows alone."""
    from sklearn.feature_selection import f_classif

    from gliotype.config import load_config
    from gliotype.experiment.expected_rows import radiomics_models

    x, y = _data(n=70, p=12)
    ids = [f"P{i}" for i in range(70)]
    train, test = ids[:50], ids[50:]
    labels = dict(zip(ids, y))
    config = load_config("cpu", overrides=["radiomics.select_k=3", "radiomics.cs=[0.1, 1.0]",
                                           "feature_classifiers.inner_folds=3"])  # inner CV and out-of-fold
    features = pd.DataFrame(x, index=pd.Index(ids, name="patient_id"), columns=[f"f{i}" for i in range(12)])
    leaky = features.copy()
    leaky.loc[test, "f11"] = y[50:] * 100  # perfectly predictive, but only on the test rows
    leaky.loc[test, "f5"] = 1e6  # and a scale no training row has
    a = radiomics_models(features, train, test, labels, config)
    b = radiomics_models(leaky, train, test, labels, config)
    assert [m.key for m in a] == ["radiomics_lr", "radiomics_svm"]
    for ma, mb in zip(a, b):
        assert ma.artifacts["selected"] == mb.artifacts["selected"] and "f11" not in mb.artifacts["selected"]
        np.testing.assert_array_equal(ma.p_train, mb.p_train)
        np.testing.assert_array_equal(ma.p_threshold, mb.p_threshold)  # out-of-fold, training rows only
        pipe = mb.artifacts["model"].best_estimator_
        np.testing.assert_allclose(pipe.named_steps["scale"].mean_, x[:50].mean(0))
        scores, _ = f_classif(pipe.named_steps["scale"].transform(x[:50]), y[:50])
        np.testing.assert_allclose(pipe.named_steps["select"].scores_, scores)
        assert not np.isnan(ma.p_threshold).any() and not np.allclose(ma.p_threshold, ma.p_train)


def test_a_patient_without_features_is_left_out_of_the_row_only():
    from gliotype.config import load_config
    from gliotype.experiment.expected_rows import radiomics_models
    from gliotype.experiment.tables import table

    x, y = _data(n=60, p=8)
    ids = [f"P{i}" for i in range(60)]
    features = pd.DataFrame(x, index=pd.Index(ids, name="patient_id"))
    missing = features.drop(index=["P3", "P55"])  # one training, one test patient failed
    config = load_config("tiny")
    (lr, svm) = radiomics_models(missing, ids[:45], ids[45:], dict(zip(ids, y)), config)
    assert np.isnan(lr.p_train[3]) and np.isnan(lr.p_test[10]) and np.isfinite(np.delete(lr.p_test, 10)).all()
    df = table([lr, svm], y[:45], y[45:], config.evaluation, reference="radiomics_lr")
    assert df["auc"].notna().all() and df["delong_p"].isna().tolist() == [True, False]
    from gliotype.evaluation import binary_metrics

    keep = np.arange(15) != 10
    assert df["auc"].iloc[0] == binary_metrics(y[45:][keep], lr.p_test[keep], 0.5)["auc"]
