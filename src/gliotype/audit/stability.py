"""The encoders' stability across the cross-fitting folds (``split.protocol: crossfit``).

A cross-fitted run trains the multi-modal encoders twice: on half A (fold A; its features
score half B and the test patients) and on half B (fold B; scoring half A and the test
patients). Each fold's full model has its own BCE head, whose probability ``p_head`` is in
the fold's ``features.csv``. Three figures compare the two folds:

- ``head_auc_a_on_b``: the AUC of fold A's head on half B, patients its encoders never saw;
- ``head_auc_b_on_a``: the same for fold B's head on half A;
- ``test_agreement``: the Spearman correlation of the two heads' probabilities over the test
  patients (no test label is read): 1 when both folds rank the test patients alike.

On a small cohort the two folds' encoders can disagree a lot about the test patients: the
features then depend on which patients (and which initialisation) trained them, and a
result that rests on them rests on chance. A figure that cannot be computed (a half with
one class only, fewer than three test patients, a constant head) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

#: the column of ``features.csv`` holding the BCE head's probability
HEAD = "p_head"


@dataclass(frozen=True)
class FoldStability:
    """The two folds' heads on each other's half and their agreement on the test patients
    (NaN: not computable); ``test_patients``: how many test patients the agreement counts."""

    head_auc_a_on_b: float
    head_auc_b_on_a: float
    test_agreement: float
    test_patients: int

    def to_dict(self) -> dict:
        """The figures with NaN as None (``audit.json`` writes it as null)."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}


def _head(features: pd.DataFrame) -> pd.Series:
    """The head's probability per patient ID (finite values only)."""
    head = pd.to_numeric(features[HEAD], errors="coerce")
    head.index = features["patient_id"].astype(str)
    head = head[~head.index.duplicated()]
    return head[np.isfinite(head.to_numpy(np.float64))]


def _head_auc(head: pd.Series, patient_ids: Sequence[str], labels: Mapping) -> float:
    """AUC of ``head`` on the patients of ``patient_ids`` it scored and that have a label; NaN
    without both classes."""
    from sklearn.metrics import roc_auc_score

    pids = [str(p) for p in patient_ids]
    y = pd.to_numeric(pd.Series([labels.get(p, np.nan) for p in pids], index=pids), errors="coerce")
    have = [p for p in pids if p in head.index and np.isfinite(y[p])]
    y_have = y[have].to_numpy(int) if have else np.array([], dtype=int)
    if len(set(y_have)) < 2:
        return float("nan")
    return float(roc_auc_score(y_have, head[have].to_numpy(np.float64)))


def _agreement(head_a: pd.Series, head_b: pd.Series, patient_ids: Sequence[str]) -> tuple[float, int]:
    """Spearman rho of the two heads over the patients both scored, and how many those are."""
    from gliotype.evaluation.metrics import rank_correlation

    both = [str(p) for p in patient_ids if str(p) in head_a.index and str(p) in head_b.index]
    return rank_correlation(head_a[both].to_numpy(), head_b[both].to_numpy()), len(both)


def fold_stability(features_a: pd.DataFrame, features_b: pd.DataFrame, ids: Mapping[str, Sequence[str]],
                   labels: Mapping) -> FoldStability:
    """The stability of the two folds' full models.

    ``features_a``, ``features_b``: the ``features.csv`` of the full model of fold A (encoders on
    half A) and fold B (encoders on half B), with ``patient_id`` and ``p_head``; ``ids``: the
    patient IDs of each split (``"A"``, ``"B"``, ``"test"``); ``labels``: patient ID -> IDH label,
    read for halves A and B only. Patients a fold did not score are left out.
    """
    head_a, head_b = _head(features_a), _head(features_b)
    agreement, n_test = _agreement(head_a, head_b, ids["test"])
    return FoldStability(_head_auc(head_a, ids["B"], labels), _head_auc(head_b, ids["A"], labels), agreement, n_test)


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def stability_sentence(stability: FoldStability) -> str:
    """One readable line of the three figures."""
    s = stability
    return (f"Encoder stability across the cross-fitting folds: fold A's head on half B AUC "
            f"{_number(s.head_auc_a_on_b)}, fold B's head on half A {_number(s.head_auc_b_on_a)}; agreement of the "
            f"two folds on the {s.test_patients} test patients Spearman {_number(s.test_agreement)} "
            "(1 = the same ranking)")
