"""Calibration of predicted probabilities: does "70 % mutant" mean 70 of 100 such patients?

:func:`brier_score` (scikit-learn's), :func:`expected_calibration_error` and
:func:`reliability_curve` (equal-width bins on [0, 1], each bin [lo, hi) and the last one
[lo, 1]) measure it; :func:`fit_calibrator` corrects it with Platt scaling or isotonic
regression, fitted on **out-of-fit** training predictions only (fitted predictions are
overconfident, so a calibrator fitted on them learns the wrong correction). Fitted
calibrators are plain JSON dicts (:meth:`Calibrator.to_dict`), never pickles.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Platt scaling works on logit(p); probabilities are clipped to [EPS, 1 - EPS] first
EPS = 1e-6
METHODS = ("none", "platt", "isotonic")


def check_labels_and_probabilities(y, p, what: str = "calibration") -> tuple[np.ndarray, np.ndarray]:
    """``y`` (0/1) and ``p`` (finite, in [0, 1]) as float arrays of the same non-zero length;
    anything else is one ``ValueError`` line."""
    y, p = np.asarray(y, dtype=float).ravel(), np.asarray(p, dtype=float).ravel()
    if len(y) != len(p) or len(y) == 0:
        raise ValueError(f"{what}: needs as many labels as probabilities, at least one ({len(y)} vs {len(p)})")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{what}: labels must be 0 (wild-type) or 1 (mutant)")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError(f"{what}: probabilities must be finite and in [0, 1]")
    return y, p


def check_bins(bins) -> int:
    """A positive whole number of bins."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"calibration bins must be a whole number >= 1, not {bins!r}")
    return int(bins)


def bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    """The equal-width bin of each probability: k where k/bins <= p < (k+1)/bins, the last bin closed."""
    edges = np.arange(bins + 1) / bins
    return np.minimum(np.searchsorted(edges, p, side="right") - 1, bins - 1)


def brier_score(y, p) -> float:
    """Mean squared difference between the probability and the label (0 perfect, 0.25 a coin at 0.5)."""
    from sklearn.metrics import brier_score_loss

    y, p = check_labels_and_probabilities(y, p, "brier_score")
    return float(brier_score_loss(y, p, pos_label=1))


class ReliabilityCurve(NamedTuple):
    """Per non-empty bin, in bin order: the mean predicted probability, the observed fraction of
    mutants and the number of patients."""

    predicted: np.ndarray
    observed: np.ndarray
    count: np.ndarray


def reliability_curve(y, p, bins: int = 10) -> ReliabilityCurve:
    """The points of a reliability diagram: equal-width bins of ``p``, empty bins left out."""
    y, p = check_labels_and_probabilities(y, p, "reliability_curve")
    k = bin_index(p, check_bins(bins))
    count = np.bincount(k, minlength=bins)
    kept = count > 0
    predicted = np.bincount(k, weights=p, minlength=bins)[kept] / count[kept]
    observed = np.bincount(k, weights=y, minlength=bins)[kept] / count[kept]
    return ReliabilityCurve(predicted, observed, count[kept])


def expected_calibration_error(y, p, bins: int = 10) -> float:
    """ECE: the mean over patients of |observed fraction - mean probability| of their bin
    (equal-width bins, each weighted by its share of the patients)."""
    curve = reliability_curve(y, p, bins)
    return float(np.sum(curve.count * np.abs(curve.observed - curve.predicted)) / np.sum(curve.count))


def logit(p) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [EPS, 1 - EPS] (NaN stays NaN): the one logit of a probability."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


class Calibrator:
    """A map from a model's probability to a calibrated one: ``calibrator(p)``; ``to_dict()``
    gives plain JSON values, :meth:`from_dict` reads them back (same outputs, bit for bit)."""

    method = "none"

    def __call__(self, p) -> np.ndarray:
        return np.asarray(p, dtype=float).copy()

    def to_dict(self) -> dict:
        return {"method": self.method}

    @staticmethod
    def from_dict(data: dict) -> Calibrator:
        """The calibrator a :meth:`to_dict` wrote."""
        method = data.get("method") if isinstance(data, dict) else None
        try:
            if method == "none":
                return Calibrator()
            if method == "platt":
                return PlattCalibrator(float(data["a"]), float(data["b"]))
            if method == "isotonic":
                return IsotonicCalibrator(data["thresholds"], data["values"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"calibrator {method}: its dict is incomplete or not numeric ({exc})") from None
        raise ValueError(f"calibrator: unknown method {method!r}; choose one of {', '.join(METHODS)}")


class PlattCalibrator(Calibrator):
    """Platt scaling: sigmoid(a * logit(p) + b)."""

    method = "platt"

    def __init__(self, a: float, b: float):
        self.a, self.b = float(a), float(b)

    def __call__(self, p) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * logit(p) + self.b)))

    def to_dict(self) -> dict:
        return {"method": self.method, "a": self.a, "b": self.b}


class IsotonicCalibrator(Calibrator):
    """Isotonic regression: a non-decreasing step-and-ramp map through the fitted thresholds,
    constant beyond the first and the last (scikit-learn's ``out_of_bounds="clip"``)."""

    method = "isotonic"

    def __init__(self, thresholds, values):
        self.thresholds = np.asarray(thresholds, dtype=float)
        self.values = np.asarray(values, dtype=float)
        if self.thresholds.ndim != 1 or len(self.thresholds) == 0 or len(self.thresholds) != len(self.values):
            raise ValueError("isotonic calibrator: needs as many thresholds as values, at least one")

    def __call__(self, p) -> np.ndarray:
        return np.interp(np.asarray(p, dtype=float), self.thresholds, self.values)

    def to_dict(self) -> dict:
        return {"method": self.method, "thresholds": self.thresholds.tolist(), "values": self.values.tolist()}


def fit_calibrator(y, p, method: str = "platt") -> Calibrator:
    """Fit ``method`` (``platt``, ``isotonic`` or ``none``) on labels ``y`` and **out-of-fit**
    probabilities ``p`` of the same patients (never fitted ones).

    Platt: scikit-learn's unpenalised ``LogisticRegression`` of y on logit(p), with Platt's
    (1999) targets (N+ + 1) / (N+ + 2) and 1 / (N- + 2) instead of 1 and 0 (each patient
    entered as both classes, weighted by its target), so a separable calibration set gives a
    finite slope. A negative slope (predictions that rank the calibration patients the wrong
    way round) is set to 0: the calibrated probability is then the smoothed prevalence for
    everyone, never a reversal of the model's ranking. Isotonic: ``IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)``.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    if method not in METHODS:
        raise ValueError(f"fit_calibrator: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    y, p = check_labels_and_probabilities(y, p, "fit_calibrator")
    if method == "none":
        return Calibrator()
    if len(np.unique(y)) < 2:
        raise ValueError(f"fit_calibrator {method}: needs both classes among the calibration patients")
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p, y)
        return IsotonicCalibrator(iso.X_thresholds_, iso.y_thresholds_)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = np.concatenate([logit(p), logit(p)])[:, None]
    labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    weights = np.concatenate([target, 1 - target])
    lr = LogisticRegression(C=np.inf, max_iter=1000).fit(x, labels, sample_weight=weights)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a < 0:  # the predictions rank these patients the wrong way round: a calibrator must not reverse them
        a, b = 0.0, float(logit(np.array([target.mean()]))[0])  # the (smoothed) prevalence for every patient
    return PlattCalibrator(a, b)


__all__ = ["Calibrator", "IsotonicCalibrator", "PlattCalibrator", "ReliabilityCurve", "brier_score",
           "expected_calibration_error", "fit_calibrator", "logit", "reliability_curve"]
