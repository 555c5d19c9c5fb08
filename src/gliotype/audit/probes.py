"""Linear probes: how much of a target a feature group carries, by cross-validation.

One model throughout: median imputation, standardisation and an L2 logistic regression
whose C is chosen by an inner stratified cross-validation on the log loss
(``LogisticRegressionCV``; a ridge regression with its alpha chosen by efficient
leave-one-out for continuous targets). Every preprocessing step is fitted inside the
folds. Callers pass *training* patients only; the test patients are touched by
:func:`observable_ceiling` alone.

- :func:`probe_auc`: repeated stratified K-fold AUC for IDH (pooled out-of-fold
  probabilities of each repeat, averaged over the repeats);
- :func:`observable_ceiling`: the probe fitted on the training patients and scored on the
  test patients (an oracle on hand-made features, printed beside the Bayes AUC);
- :func:`latent_association`: how well a group predicts a generator latent: Spearman rho
  between a continuous latent and its cross-validated ridge prediction; the AUC of a
  cross-validated logistic prediction of a binary one (``location_group``); the balanced
  accuracy of a cross-validated multinomial prediction of a categorical one (``site``;
  chance is 1 / number of sites).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import KFold, RepeatedStratifiedKFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

#: Inverse regularisation strengths searched by the inner cross-validation (one per decade).
CS = np.logspace(-4, 2, 7)
#: Ridge penalties searched by leave-one-out.
ALPHAS = np.logspace(-3, 4, 15)


def single_threaded(func):
    """Run ``func`` with one BLAS/OpenMP thread and without sklearn's per-fit warnings. The probes
    fit thousands of small models, which multi-threaded BLAS slows down 10-20 times on a shared
    machine (measured: 20 logistic fits 2.7 s -> 0.14 s)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message="Skipping features without any observed values")
            warnings.filterwarnings("ignore", message="The least populated class in y")
            return func(*args, **kwargs)

    return wrapper


def _matrix(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1) if x.ndim != 2 else x


def neg_log_loss(estimator, X, y) -> float:
    """The inner CV's score: minus the mean log loss of ``estimator`` on ``(X, y)``, as sklearn's
    ``neg_log_loss`` scorer computes it (probabilities clipped to [eps, 1 - eps]) without its
    per-call input checks, which cost a third of an audit (``y`` holds the estimator's class
    values; the inner folds are stratified, so every class is in every fold)."""
    p = estimator.predict_proba(X)
    column = np.searchsorted(estimator.classes_, y)
    eps = np.finfo(p.dtype).eps
    picked = np.clip(p[np.arange(len(column)), column], eps, 1 - eps)
    return float(np.mean(np.log(picked)))


def logistic_probe(y_train: np.ndarray, seed: int = 0, inner_folds: int = 3):
    """Imputer + scaler + L2 logistic regression with C chosen by inner stratified CV (log loss)."""
    counts = np.unique(y_train, return_counts=True)[1]
    k = int(max(2, min(inner_folds, counts.min())))
    lr = LogisticRegressionCV(Cs=CS, l1_ratios=(0.0,), cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                              scoring=neg_log_loss, max_iter=5000, use_legacy_attributes=False)
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), lr)


def _usable(x: np.ndarray, y: np.ndarray, folds: int) -> int:
    """Number of outer folds possible (0 when a class has fewer than 2 patients or x is empty)."""
    if x.shape[1] == 0 or len(y) == 0:
        return 0
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2 or counts.min() < 2:
        return 0
    return int(min(folds, counts.min()))


@single_threaded
def probe_auc(X, y, seed: int = 0, folds: int = 5, repeats: int = 3) -> float:
    """Cross-validated AUC of the linear probe for a binary ``y`` (NaN when a class has < 2 patients)."""
    x, y = _matrix(X), np.asarray(y).astype(int)
    k = _usable(x, y, folds)
    if not k:
        return float("nan")
    aucs = []
    splitter = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    splits = list(splitter.split(x, y))
    for r in range(repeats):
        oof = np.empty(len(y))
        for train, test in splits[r * k : (r + 1) * k]:
            model = logistic_probe(y[train], seed).fit(x[train], y[train])
            oof[test] = model.predict_proba(x[test])[:, 1]
        aucs.append(roc_auc_score(y, oof))
    return float(np.mean(aucs))


@single_threaded
def observable_ceiling(X_train, y_train, X_test, y_test, seed: int = 0) -> float:
    """AUC on the test patients of the probe fitted on the training patients (NaN when either
    set lacks a class)."""
    x_tr, x_te = _matrix(X_train), _matrix(X_test)
    y_tr, y_te = np.asarray(y_train).astype(int), np.asarray(y_test).astype(int)
    if not _usable(x_tr, y_tr, 5) or len(np.unique(y_te)) < 2:
        return float("nan")
    model = logistic_probe(y_tr, seed, inner_folds=5).fit(x_tr, y_tr)
    return float(roc_auc_score(y_te, model.predict_proba(x_te)[:, 1]))


@single_threaded
def latent_correlation(X, latent, seed: int = 0, folds: int = 5) -> float:
    """Spearman rho between a continuous latent and its cross-validated ridge prediction from ``X``."""
    x, z = _matrix(X), np.asarray(latent, dtype=np.float64)
    keep = np.isfinite(z)
    x, z = x[keep], z[keep]
    if x.shape[1] == 0 or len(z) < 2 * folds or np.ptp(z) == 0:
        return float("nan")
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), RidgeCV(alphas=ALPHAS))
    pred = cross_val_predict(model, x, z, cv=KFold(folds, shuffle=True, random_state=seed))
    if np.ptp(pred) == 0:
        return 0.0
    return float(spearmanr(pred, z).statistic)


@single_threaded
def latent_association(X, values, kind: str, seed: int = 0, folds: int = 5) -> float:
    """How well ``X`` predicts a latent: ``continuous`` (Spearman rho, :func:`latent_correlation`),
    ``binary`` (cross-validated AUC) or ``categorical`` (cross-validated balanced accuracy)."""
    if kind == "continuous":
        return latent_correlation(X, values, seed, folds)
    if kind not in ("binary", "categorical"):
        raise ValueError(f"kind must be continuous, binary or categorical, got {kind!r}")
    x = _matrix(X)
    v = np.asarray(values, dtype=object)
    keep = np.array([not (isinstance(a, float) and np.isnan(a)) and a is not None for a in v])
    x, v = x[keep], v[keep]
    classes, codes = np.unique(v.astype(str), return_inverse=True)
    k = _usable(x, codes, folds)
    if not k or (kind == "binary" and len(classes) != 2):
        return float("nan")
    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    if kind == "binary":
        oof = np.empty(len(codes))
        for train, test in cv.split(x, codes):
            oof[test] = logistic_probe(codes[train], seed).fit(x[train], codes[train]).predict_proba(x[test])[:, 1]
        return float(roc_auc_score(codes, oof))
    pred = np.empty(len(codes), dtype=codes.dtype)
    for train, test in cv.split(x, codes):
        pred[test] = logistic_probe(codes[train], seed).fit(x[train], codes[train]).predict(x[test])
    return float(balanced_accuracy_score(codes, pred))
