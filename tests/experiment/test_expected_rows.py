"""Table 3's age rows (issue 16): ``Age + LR`` is scikit-learn's logistic regression on the
standardised age, ``Age + full model`` stacks age on the full model's out-of-fit training
predictions; a row without its inputs is skipped with one INFO line."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gliotype.config import load_config
from gliotype.experiment.expected_rows import age_model, age_with_model
from gliotype.experiment.tables import AGE_MODEL_ROW, AGE_ROW, GNN_ROW, Scored, table


@pytest.fixture()
def cohort():
    rng = np.random.default_rng(0)
    n = 80
    y = (rng.random(n) < 0.4).astype(float)
    age = np.round(60 - 15 * y + rng.normal(0, 10, n), 1)  # mutant gliomas come younger
    ids = [f"P{i:02d}" for i in range(n)]
    rows = pd.DataFrame({"patient_id": ids, "age": age, "idh": y})
    return rows, ids[:55], ids[55:], dict(zip(ids, y)), age, y


def test_age_lr_is_the_reference_sklearn_fit(cohort):
    rows, train, test, labels, age, y = cohort
    config = load_config("cpu")  # out-of-fold thresholds
    (row,) = age_model(rows, train, test, labels, config)
    assert (row.key, row.name) == (AGE_ROW, "Age + LR")
    ref = make_pipeline(StandardScaler(), LogisticRegression()).fit(age[:55, None], y[:55])
    np.testing.assert_allclose(row.p_test, ref.predict_proba(age[55:, None])[:, 1], rtol=1e-10)
    np.testing.assert_allclose(row.p_train, ref.predict_proba(age[:55, None])[:, 1], rtol=1e-10)
    folds = StratifiedKFold(5, shuffle=True, random_state=config.seed)
    oof = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression()), age[:55, None], y[:55], cv=folds,
                            method="predict_proba")[:, 1]
    np.testing.assert_allclose(row.p_threshold, oof, rtol=1e-10)  # the threshold rule of the feature classifiers
    assert ref[-1].coef_[0, 0] < 0  # younger -> mutant
    fitted = age_model(rows, train, test, labels, load_config("paper"))[0]
    assert fitted.p_threshold is None  # threshold: fitted (on p_train), no out-of-fit predictions to stack on


def test_age_rows_are_skipped_without_ages(cohort, caplog):
    rows, train, test, labels, _, _ = cohort
    with caplog.at_level(logging.INFO, logger="gliotype"):
        assert age_model(rows.assign(age=np.nan), train, test, labels, load_config("tiny")) == []
        assert age_model(None, train, test, labels, load_config("tiny")) == []
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 2 and all(line.startswith("Age + LR skipped") for line in lines)


def test_an_unknown_age_leaves_that_patient_out_of_the_row(cohort):
    rows, train, test, labels, age, y = cohort
    rows = rows.copy()
    rows.loc[rows["patient_id"].isin(["P03", "P60"]), "age"] = np.nan
    (row,) = age_model(rows, train, test, labels, load_config("tiny"))
    assert np.isnan(row.p_train[3]) and np.isnan(row.p_test[5]) and np.isfinite(np.delete(row.p_test, 5)).all()
    keep = np.arange(55) != 3
    ref = make_pipeline(StandardScaler(), LogisticRegression()).fit(age[:55][keep, None], y[:55][keep])
    np.testing.assert_allclose(row.p_test[6:], ref.predict_proba(age[61:, None])[:, 1], rtol=1e-10)


def test_age_with_the_full_model_stacks_on_its_out_of_fit_predictions(cohort, caplog):
    rows, train, test, labels, age, y = cohort
    rng = np.random.default_rng(1)
    p_oof = np.clip(0.5 + 0.3 * (y[:55] - 0.5) + rng.normal(0, 0.15, 55), 0.01, 0.99)
    p_test = np.clip(0.5 + 0.3 * (y[55:] - 0.5) + rng.normal(0, 0.15, 25), 0.01, 0.99)
    gnn = Scored("Multi-modal + GNN", np.where(y[:55] == 1, 0.99, 0.01), p_test, p_threshold=p_oof, key=GNN_ROW)
    config = load_config("tiny")
    (row,) = age_with_model(rows, train, test, labels, gnn, config)
    assert (row.key, row.name) == (AGE_MODEL_ROW, "Age + full model")

    def logit(p):
        return np.log(p / (1 - p))

    ref = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        np.column_stack([age[:55], logit(p_oof)]), y[:55])  # the out-of-fit, not the fitted (0.01 / 0.99), ones
    np.testing.assert_allclose(row.p_test, ref.predict_proba(np.column_stack([age[55:], logit(p_test)]))[:, 1],
                               rtol=1e-10)
    df = table([gnn, row], y[:55], y[55:], config.evaluation, reference=GNN_ROW)
    assert np.isfinite(df["delong_p"].iloc[1])

    # with the fold GNNs' test probabilities, the logistic reads those (the scale it was fitted on)
    reference = np.clip(p_test * 0.5 + 0.2, 0.01, 0.99)
    gnn.p_test_reference = reference
    (stacked,) = age_with_model(rows, train, test, labels, gnn, config)
    np.testing.assert_allclose(stacked.p_test,
                               ref.predict_proba(np.column_stack([age[55:], logit(reference)]))[:, 1], rtol=1e-10)

    without = Scored("Multi-modal + GNN", gnn.p_train, p_test, key=GNN_ROW)  # no out-of-fit predictions
    with caplog.at_level(logging.INFO, logger="gliotype"):
        assert age_with_model(rows, train, test, labels, without, config) == []
    assert "Age + full model skipped" in caplog.text and "threshold_folds" in caplog.text
