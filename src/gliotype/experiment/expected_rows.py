"""Table 3 rows the field expects beside the paper's baselines (issue 16; not in the paper).

- ``Radiomics + LR``, ``Radiomics + SVM`` (``radiomics.enabled``): pyradiomics features of
  the preprocessed sequences (:mod:`gliotype.evaluation.radiomics`), classifiers whose
  imputation, scaling and feature selection are fitted inside each training fold.
- ``Age + LR``: a logistic regression on the standardised age alone.
- ``Age + full model``: a logistic regression on [age, logit of the full model's
  probability], stacked on the training patients' *out-of-fit* GNN predictions (those the
  threshold is chosen on: ``population_graph.threshold_folds`` or ``val_fraction``) and
  scored with the GNN's test probabilities.

Every row is trained on the same training patients as the multi-modal feature classifiers
(half B; halves A and B with ``split.protocol: crossfit``) and scored like them: its
threshold from out-of-fold predictions of the training patients when
``feature_classifiers.threshold`` is ``out_of_fold`` (else from its fitted ones), AUC with
its bootstrap interval and DeLong's test against the full model on the test patients. A
patient without features (a failed extraction) or without an age is left out of that
row only (NaN probability, :mod:`gliotype.experiment.tables`). A row that cannot be
fitted (no ages, one class) is skipped with one INFO line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gliotype.config import GliotypeConfig
from gliotype.config.schema import FeatureClassifiersConfig
from gliotype.experiment.tables import AGE_MODEL_ROW, AGE_ROW, RADIOMICS_ROWS, TABLE3_ROWS, Scored
from gliotype.utils.logging import get_logger

log = get_logger(__name__)


def _spread(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """``values`` at positions ``rows`` of a length-``n`` vector of NaN."""
    out = np.full(n, np.nan)
    out[rows] = values
    return out


def radiomics_models(features: pd.DataFrame, train_ids: Sequence[str], test_ids: Sequence[str],
                     labels: Mapping[str, float], config: GliotypeConfig) -> list[Scored]:
    """``Radiomics + LR`` / ``+ SVM`` (``radiomics.classifiers``) fitted on the ``train_ids``
    that have features (``features``: one row per patient, index ``patient_id``)."""
    from gliotype.evaluation.baselines import out_of_fold_proba, selected
    from gliotype.evaluation.radiomics import (
        finite_matrix,
        fold_plan,
        quiet_selection,
        radiomics_classifier,
        selected_columns,
    )

    rc, fc, seed = config.radiomics, config.feature_classifiers, config.seed
    train_ids, test_ids = [str(p) for p in train_ids], [str(p) for p in test_ids]
    tr = np.array([i for i, p in enumerate(train_ids) if p in features.index], dtype=np.int64)
    te = np.array([i for i, p in enumerate(test_ids) if p in features.index], dtype=np.int64)
    x_tr = finite_matrix(features.loc[[train_ids[i] for i in tr]])
    x_te = finite_matrix(features.loc[[test_ids[i] for i in te]])
    y_tr = np.array([labels[train_ids[i]] for i in tr], dtype=float)
    out = []
    for kind in rc.classifiers:
        key = f"radiomics_{kind}"
        if not len(te) or len(np.unique(y_tr)) < 2:
            log.info("%s skipped: %d training patients (%s class(es)) and %d test patients have radiomics features",
                     RADIOMICS_ROWS[key], len(tr), len(np.unique(y_tr)), len(te))
            continue
        oof = fc.threshold == "out_of_fold"
        try:
            outer, _ = fold_plan(kind, y_tr, fc, oof, tuned=len(rc.cs) > 1)
        except ValueError as exc:
            log.info("%s skipped: %s", RADIOMICS_ROWS[key], exc)
            continue
        with quiet_selection():
            model = radiomics_classifier(kind, y_tr, rc, fc, seed, out_of_fold=oof).fit(x_tr, y_tr)
            p_oof = out_of_fold_proba(selected(model), x_tr, y_tr, outer, seed) if oof else None
        p_fit = model.predict_proba(x_tr)[:, 1]
        artifacts = {"model": model, "chosen": getattr(model, "best_params_", {}), "patients": (len(tr), len(te)),
                     "selected": selected_columns(model, list(features.columns))}
        out.append(Scored(RADIOMICS_ROWS[key], _spread(p_fit, tr, len(train_ids)),
                          _spread(model.predict_proba(x_te)[:, 1], te, len(test_ids)), artifacts,
                          None if p_oof is None else _spread(p_oof, tr, len(train_ids)), key))
    return out


def before_model(work, cohort: pd.DataFrame | None, train_ids: Sequence[str], test_ids: Sequence[str],
                 labels: Mapping[str, float], config: GliotypeConfig) -> list[Scored]:
    """The rows Table 3 lists before the multi-modal ones: ``Radiomics + LR / SVM`` (when
    ``radiomics.enabled``; features of the training and test patients, cached in the work
    folder ``work``) and ``Age + LR``."""
    from gliotype import stages

    rows = []
    if config.radiomics.has_rows:
        features = stages.radiomics(work, [*train_ids, *test_ids], config)
        rows += radiomics_models(features, train_ids, test_ids, labels, config)
    return rows + age_model(cohort, train_ids, test_ids, labels, config)


def logistic_row(key: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 fc: FeatureClassifiersConfig | None = None, seed: int = 0) -> Scored | None:
    """A Table 3 row of a standardised L2 logistic regression (scikit-learn's defaults, C = 1)
    on the few columns of ``x_train``: fitted on the rows without NaN, scoring the test rows
    without NaN (NaN elsewhere); None (with an INFO line) when it cannot be fitted."""
    from gliotype.evaluation.baselines import nested_folds, out_of_fold_proba

    fc = fc or FeatureClassifiersConfig()
    x_train, x_test = np.asarray(x_train, dtype=float), np.asarray(x_test, dtype=float)
    y_train = np.asarray(y_train, dtype=float)
    tr, te = np.flatnonzero(np.isfinite(x_train).all(1)), np.flatnonzero(np.isfinite(x_test).all(1))
    y = y_train[tr]
    counts = np.bincount(y.astype(int), minlength=2)
    if not len(te) or counts.min() < 2:
        log.info("%s skipped: %d training patients (%d wild-type, %d mutant) and %d test patients have its inputs",
                 TABLE3_ROWS[key], len(tr), counts[0], counts[1], len(te))
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x_train[tr], y)
    p_fit = model.predict_proba(x_train[tr])[:, 1]
    p_thr = None  # the threshold on the fitted predictions
    if fc.threshold == "out_of_fold":
        p_thr = out_of_fold_proba(clone(model), x_train[tr], y, nested_folds(y, [fc.inner_folds])[0], seed)
    return Scored(TABLE3_ROWS[key], _spread(p_fit, tr, len(x_train)),
                  _spread(model.predict_proba(x_test[te])[:, 1], te, len(x_test)),
                  {"model": model, "patients": (len(tr), len(te))},
                  None if p_thr is None else _spread(p_thr, tr, len(x_train)), key)


def ages(cohort: pd.DataFrame | None, ids: Sequence[str]) -> np.ndarray:
    """The age (years) of each of ``ids`` from the cohort's ``age`` column, NaN where unknown."""
    if cohort is None or "age" not in cohort:
        return np.full(len(ids), np.nan)
    by_id = dict(zip(cohort["patient_id"].astype(str), pd.to_numeric(cohort["age"], errors="coerce")))
    return np.array([by_id.get(str(p), np.nan) for p in ids], dtype=float)


def age_model(cohort: pd.DataFrame | None, train_ids: Sequence[str], test_ids: Sequence[str],
              labels: Mapping[str, float], config: GliotypeConfig) -> list[Scored]:
    """``Age + LR`` (a list of one row, or none when the ages are missing)."""
    y = np.array([labels[str(p)] for p in train_ids], dtype=float)
    row = logistic_row(AGE_ROW, ages(cohort, train_ids)[:, None], y, ages(cohort, test_ids)[:, None],
                       config.feature_classifiers, config.seed)
    return [] if row is None else [row]


def age_with_model(cohort: pd.DataFrame | None, train_ids: Sequence[str], test_ids: Sequence[str],
                   labels: Mapping[str, float], gnn: Scored, config: GliotypeConfig) -> list[Scored]:
    """``Age + full model``: [age, logit p] with the full model's out-of-fit predictions of the
    training patients (``gnn.p_threshold``) and its test probabilities (from the same out-of-fit
    models, ``gnn.p_test_reference``, when it has them: the scale the logistic was fitted on);
    none without them."""
    if gnn.p_threshold is None:
        log.info("%s skipped: the full model has no out-of-fit predictions of its training patients "
                 "(population_graph.threshold_folds or val_fraction)", TABLE3_ROWS[AGE_MODEL_ROW])
        return []

    from gliotype.evaluation.calibration import logit

    y = np.array([labels[str(p)] for p in train_ids], dtype=float)
    x_train = np.column_stack([ages(cohort, train_ids), logit(gnn.p_threshold)])
    p_test = gnn.p_test if gnn.p_test_reference is None else gnn.p_test_reference
    x_test = np.column_stack([ages(cohort, test_ids), logit(p_test)])
    row = logistic_row(AGE_MODEL_ROW, x_train, y, x_test, config.feature_classifiers, config.seed)
    return [] if row is None else [row]


__all__ = ["age_model", "age_with_model", "ages", "before_model", "logistic_row", "radiomics_models"]
