"""The encoders' stability across the cross-fitting folds, on hand-made head probabilities:
each fold's head on the other half, the two folds' agreement on the test patients (whose
labels are never read), NaN when a figure cannot be computed, and the sentence."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from gliotype.audit.stability import FoldStability, fold_stability, stability_sentence

IDS = {"A": [f"A{i}" for i in range(6)], "B": [f"B{i}" for i in range(6)], "test": [f"T{i}" for i in range(8)]}
LABELS = {**{f"A{i}": i % 2 for i in range(6)}, **{f"B{i}": i // 3 for i in range(6)},
          **{f"T{i}": i % 2 for i in range(8)}}
TEST_HEAD = np.linspace(0.1, 0.9, 8)


def features(train: dict, test=TEST_HEAD) -> pd.DataFrame:
    """A fold's ``features.csv``: u_T columns (ignored) and ``p_head`` of its classifier half and the test patients."""
    ids = [*train, *IDS["test"]]
    p = [*train.values(), *test]
    return pd.DataFrame({"patient_id": ids, "u_T_0": np.arange(len(ids), dtype=float), "p_head": p})


def perfect(half: str) -> dict:
    """A head that ranks every patient of ``half`` by their label."""
    return {p: 0.2 + 0.6 * LABELS[p] + 0.01 * i for i, p in enumerate(IDS[half])}


def test_identical_folds_agree_and_a_reversed_ranking_disagrees():
    a = features(perfect("B"))
    same = fold_stability(a, features(perfect("A")), IDS, LABELS)
    assert same.test_agreement == 1.0 and same.test_patients == 8
    reversed_ = fold_stability(a, features(perfect("A"), test=TEST_HEAD[::-1]), IDS, LABELS)
    assert reversed_.test_agreement == -1.0
    assert reversed_.head_auc_a_on_b == same.head_auc_a_on_b == 1.0  # the agreement is the test patients' alone


def test_each_fold_is_scored_on_the_other_half_with_its_labels():
    good_a, good_b = perfect("B"), perfect("A")
    inverse_b = {p: 1 - v for p, v in good_b.items()}
    s = fold_stability(features(good_a), features(inverse_b), IDS, LABELS)
    assert s.head_auc_a_on_b == 1.0 and s.head_auc_b_on_a == 0.0
    s = fold_stability(features({p: 1 - v for p, v in good_a.items()}), features(good_b), IDS, LABELS)
    assert s.head_auc_a_on_b == 0.0 and s.head_auc_b_on_a == 1.0


def test_test_labels_are_never_read():
    a, b = features(perfect("B")), features(perfect("A"), test=TEST_HEAD ** 2 + 0.3 * np.sin(7 * TEST_HEAD))
    expected = fold_stability(a, b, IDS, LABELS)
    assert -1 < expected.test_agreement < 1
    without = {p: v for p, v in LABELS.items() if not p.startswith("T")}
    unknown = {**without, **{p: np.nan for p in IDS["test"]}}
    rng = np.random.default_rng(0)
    shuffled = {**without, **dict(zip(IDS["test"], rng.permutation([LABELS[p] for p in IDS["test"]])))}
    flipped = {**without, **{p: 1 - LABELS[p] for p in IDS["test"]}}
    for labels in (without, unknown, shuffled, flipped):
        assert fold_stability(a, b, IDS, labels) == expected


def test_patients_a_fold_did_not_score_are_left_out():
    a = features(perfect("B"))
    b = features(perfect("A"))
    b = b[b["patient_id"] != "T3"]
    a.loc[a["patient_id"] == "T5", "p_head"] = np.nan
    s = fold_stability(a, b, IDS, LABELS)
    assert s.test_patients == 6 and s.test_agreement == 1.0


def test_one_class_only_or_too_few_test_patients_is_nan():
    one_class = {**LABELS, **{p: 1 for p in IDS["B"]}}
    s = fold_stability(features(perfect("B")), features(perfect("A")), IDS, one_class)
    assert math.isnan(s.head_auc_a_on_b) and s.head_auc_b_on_a == 1.0
    few = {**IDS, "test": IDS["test"][:2]}
    s = fold_stability(features(perfect("B")), features(perfect("A")), few, LABELS)
    assert math.isnan(s.test_agreement) and s.test_patients == 2
    constant = fold_stability(features(perfect("B")), features(perfect("A"), test=np.full(8, 0.5)), IDS, LABELS)
    assert math.isnan(constant.test_agreement) and constant.test_patients == 8


def test_the_sentence_and_the_json_carry_the_numbers():
    s = FoldStability(0.714, 0.6789, 0.4912, 54)
    line = stability_sentence(s)
    assert "fold A's head on half B AUC 0.71" in line and "fold B's head on half A 0.68" in line
    assert "54 test patients" in line and "Spearman 0.49" in line and "\n" not in line
    nan = FoldStability(float("nan"), 0.5, float("nan"), 2)
    assert "AUC n/a" in stability_sentence(nan) and "Spearman n/a" in stability_sentence(nan)
    assert json.loads(json.dumps(nan.to_dict())) == {"head_auc_a_on_b": None, "head_auc_b_on_a": 0.5,
                                                     "test_agreement": None, "test_patients": 2}
