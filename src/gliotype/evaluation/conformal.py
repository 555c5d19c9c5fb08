"""Split-conformal prediction sets for IDH status: {mutant}, {wild-type}, both, or (rarely) none.

A set is what the model can claim at a chosen error rate alpha: over exchangeable patients
it contains the true class at least 1 - alpha of the time, whatever the model (Vovk et al.
2005; Lei et al. 2018; Angelopoulos & Bates 2023). The guarantee needs calibration patients
the model did not fit: here the out-of-fit predictions of the training patients (validation
nodes, out-of-fold predictions). Nonconformity score: 1 - p(true class); threshold q: the
ceil((n + 1)(1 - alpha))-th smallest of the n calibration scores (+inf when that exceeds n);
a test patient's set holds every class c with 1 - p(c) <= q. ``class_conditional``
(Mondrian) takes one q per class from that class's calibration patients, so the coverage
holds within each class, not only on average.

A small implementation of its own: MAPIE is not installed here, and its estimator API
(fit / predict on feature rows) does not fit a transductive population graph whose test
probabilities already exist. Fitted predictors are plain JSON dicts, never pickles.
"""

from __future__ import annotations

import math

import numpy as np

from gliotype.evaluation.calibration import check_labels_and_probabilities

CLASSES = (0, 1)  # 0 wild-type, 1 mutant: the columns of ConformalPredictor.sets


def check_alpha(alpha) -> float:
    """An error rate strictly between 0 and 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise ValueError(f"conformal alpha must be a number strictly between 0 and 1, not {alpha!r}")
    return float(alpha)


def nonconformity(y, p) -> np.ndarray:
    """1 - the probability the model gave the true class (p for wild-type, 1 - p for mutant)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return np.where(y == 1, 1.0 - p, p)


def conformal_quantile(scores, alpha: float) -> float:
    """The ceil((n + 1)(1 - alpha))-th smallest score (the empirical quantile at level
    ceil((n + 1)(1 - alpha)) / n, inverse-CDF definition); +inf when that rank exceeds n."""
    alpha = check_alpha(alpha)
    scores = np.sort(np.asarray(scores, dtype=float))
    rank = math.ceil((len(scores) + 1) * (1 - alpha) - 1e-12)  # 1e-12: (n+1)(1-alpha) whole but rounded up
    return float("inf") if rank > len(scores) else float(scores[rank - 1])


class ConformalPredictor:
    """Thresholds of the nonconformity score, one for both classes or one per class
    (``thresholds[c]``, +inf: class c is always in the set)."""

    def __init__(self, alpha: float, thresholds: dict[int, float], class_conditional: bool = False,
                 calibration_patients: int = 0):
        self.alpha = check_alpha(alpha)
        self.thresholds = {int(c): float(thresholds[c]) for c in CLASSES}
        self.class_conditional = bool(class_conditional)
        self.calibration_patients = int(calibration_patients)

    def sets(self, p) -> np.ndarray:
        """Boolean (patients, 2): column 0 wild-type in the set, column 1 mutant in the set."""
        p = np.asarray(p, dtype=float)
        if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
            raise ValueError("conformal sets: probabilities must be finite and in [0, 1]")
        return np.column_stack([p <= self.thresholds[0], 1.0 - p <= self.thresholds[1]])

    def to_dict(self) -> dict:
        """Plain JSON values (an infinite threshold is null)."""
        return {"alpha": self.alpha, "class_conditional": self.class_conditional,
                "calibration_patients": self.calibration_patients,
                "thresholds": {str(c): (None if math.isinf(q) else q) for c, q in self.thresholds.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> ConformalPredictor:
        """The predictor a :meth:`to_dict` wrote."""
        try:
            q = {c: float("inf") if data["thresholds"][str(c)] is None else float(data["thresholds"][str(c)])
                 for c in CLASSES}
            return cls(data["alpha"], q, data.get("class_conditional", False), data.get("calibration_patients", 0))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"conformal predictor: its dict is incomplete ({exc})") from None


def fit_conformal(y, p, alpha: float = 0.1, class_conditional: bool = False) -> ConformalPredictor:
    """Split conformal on calibration labels ``y`` and **out-of-fit** probabilities ``p`` of mutant."""
    alpha = check_alpha(alpha)
    y, p = check_labels_and_probabilities(y, p, "fit_conformal")
    scores = nonconformity(y, p)
    if class_conditional:
        thresholds = {c: conformal_quantile(scores[y == c], alpha) for c in CLASSES}
    else:
        q = conformal_quantile(scores, alpha)
        thresholds = {c: q for c in CLASSES}
    return ConformalPredictor(alpha, thresholds, class_conditional, len(y))


def set_summary(sets: np.ndarray, y) -> dict[str, float]:
    """``coverage`` (fraction of patients whose set holds their class), mean ``set_size``, and the
    fractions whose set is ``both`` classes or ``empty``."""
    sets = np.asarray(sets, dtype=bool)
    y = np.asarray(y).astype(int)
    if sets.ndim != 2 or sets.shape[1] != 2 or len(sets) != len(y) or len(y) == 0:
        raise ValueError(f"set_summary: needs one set of 2 classes per label ({sets.shape} vs {len(y)} labels)")
    size = sets.sum(axis=1)
    return {"coverage": float(sets[np.arange(len(y)), y].mean()), "set_size": float(size.mean()),
            "both": float(np.mean(size == 2)), "empty": float(np.mean(size == 0))}


__all__ = ["ConformalPredictor", "check_alpha", "conformal_quantile", "fit_conformal", "nonconformity", "set_summary"]
