"""Split-conformal prediction sets: a loop reference, coverage on exchangeable draws, edge cases."""

import json
import math

import numpy as np
import pytest

from gliotype.evaluation.conformal import ConformalPredictor, conformal_quantile, fit_conformal, set_summary


def reference_sets(y_cal, p_cal, p_test, alpha):
    """The textbook recipe in loops: scores 1 - p(true class); q the smallest score with at least
    (n + 1)(1 - alpha) scores at or below it (none: infinite); set = classes whose score <= q."""
    scores = [1 - p if y == 1 else p for y, p in zip(y_cal, p_cal)]
    need = (len(scores) + 1) * (1 - alpha)
    q = math.inf
    for s in sorted(scores):
        if sum(t <= s for t in scores) >= need - 1e-9:
            q = s
            break
    return [[p <= q, 1 - p <= q] for p in p_test]


def draw(rng, n, prevalence=0.4, shift=0.0):
    """Exchangeable patients: labels, and a model's probability (a noisy, imperfect score)."""
    y = (rng.random(n) < prevalence).astype(float)
    z = 1.2 * (2 * y - 1) + rng.normal(0, 1.3, n) + shift
    return y, 1 / (1 + np.exp(-z))


def test_sets_match_the_loop_reference():
    rng = np.random.default_rng(0)
    for n, alpha in [(7, 0.1), (10, 0.2), (19, 0.05), (30, 0.1), (41, 0.33)]:
        y, p = draw(rng, n)
        _, p_test = draw(rng, 25)
        sets = fit_conformal(y, p, alpha).sets(p_test)
        assert sets.tolist() == reference_sets(y, p, p_test, alpha), (n, alpha)


def test_quantile_is_the_ceil_n_plus_1_rank():
    scores = np.arange(1, 11) / 10  # 0.1 .. 1.0, n = 10
    assert conformal_quantile(scores, 0.2) == 0.9  # ceil(11 * 0.8) = 9th smallest
    assert conformal_quantile(scores, 0.5) == 0.6  # ceil(5.5) = 6th
    assert conformal_quantile(scores, 1 / 11) == 1.0  # 11 * 10/11 = 10 exactly: the 10th, not +inf
    assert conformal_quantile(scores, 0.05) == math.inf  # ceil(10.45) = 11 > 10


def test_marginal_coverage_is_one_minus_alpha_on_exchangeable_draws():
    """For continuous scores E[coverage] = k / (n + 1), k = ceil((n + 1)(1 - alpha)): 55/61 for
    n = 60, alpha = 0.1. The next or previous order statistic gives 56/61 or 54/61."""
    rng = np.random.default_rng(1)
    n, alpha, coverage, sizes = 60, 0.1, [], []
    for _ in range(400):
        y, p = draw(rng, n)
        y_test, p_test = draw(rng, 200)
        s = set_summary(fit_conformal(y, p, alpha).sets(p_test), y_test)
        coverage.append(s["coverage"])
        sizes.append(s["set_size"])
    expected = math.ceil((n + 1) * (1 - alpha)) / (n + 1)
    assert np.mean(coverage) >= 1 - alpha - 0.005
    assert np.mean(coverage) < 1 - alpha + 0.05
    assert abs(np.mean(coverage) - expected) < 0.007
    assert 1 < np.mean(sizes) < 2  # an informative model: not every set is both classes


def test_class_conditional_coverage_holds_in_each_class():
    """A model that calls too many patients mutant: marginal sets under-cover the wild-type patients,
    Mondrian sets cover each class at 1 - alpha."""
    rng = np.random.default_rng(2)
    alpha, per_class = 0.1, {False: {0: [], 1: []}, True: {0: [], 1: []}}
    for _ in range(300):
        y, p = draw(rng, 80, prevalence=0.3, shift=1.5)
        y_test, p_test = draw(rng, 200, prevalence=0.3, shift=1.5)
        for mondrian in (False, True):
            sets = fit_conformal(y, p, alpha, class_conditional=mondrian).sets(p_test)
            for c in (0, 1):
                per_class[mondrian][c].append(sets[y_test == c, c].mean())
    for c in (0, 1):
        assert np.mean(per_class[True][c]) >= 1 - alpha - 0.005, c
        assert np.mean(per_class[True][c]) < 1 - alpha + 0.05, c
    assert np.mean(per_class[False][0]) < 1 - alpha - 0.03  # what the option is for


def test_class_conditional_thresholds_come_from_each_class_alone():
    """Wild-type scores (p) 0.05-0.2: rank ceil(5 * 0.7) = 4 -> 0.2; mutant scores (1 - p) 0.1-0.5:
    rank ceil(10 * 0.7) = 7 -> 0.4; all 13 together: rank ceil(14 * 0.7) = 10 -> 0.35."""
    p0 = np.array([0.05, 0.1, 0.15, 0.2])
    p1 = 1 - np.linspace(0.1, 0.5, 9)
    y, p = np.r_[np.zeros(4), np.ones(9)], np.r_[p0, p1]
    mondrian = fit_conformal(y, p, 0.3, class_conditional=True).thresholds
    marginal = fit_conformal(y, p, 0.3).thresholds
    assert mondrian[0] == pytest.approx(0.2) and mondrian[1] == pytest.approx(0.4)
    assert marginal[0] == marginal[1] == pytest.approx(0.35)


def test_tiny_calibration_sets_give_both_classes_and_alpha_is_checked():
    y, p = np.array([0, 1, 1.0]), np.array([0.2, 0.9, 0.6])
    cp = fit_conformal(y, p, 0.1)  # ceil(4 * 0.9) = 4 > 3: no finite threshold
    assert cp.thresholds == {0: math.inf, 1: math.inf}
    assert cp.sets(np.array([0.0, 0.5, 1.0])).all()
    mondrian = fit_conformal(np.ones(30), np.linspace(0.5, 1, 30), 0.1, class_conditional=True)
    assert mondrian.thresholds[0] == math.inf and math.isfinite(mondrian.thresholds[1])  # no wild-type: always in
    for alpha in (0, 1, -0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            fit_conformal(y, p, alpha)
    with pytest.raises(ValueError, match="finite and in"):
        fit_conformal(y, np.array([0.2, np.nan, 0.6]))
    with pytest.raises(ValueError, match="finite and in"):
        cp.sets(np.array([1.5]))


def test_an_empty_set_when_the_model_is_confident_and_q_is_small():
    y = np.zeros(40)
    p = np.full(40, 0.01)  # every score 0.01: q = 0.01
    sets = fit_conformal(y, p, 0.1).sets(np.array([0.005, 0.5, 0.995]))
    assert sets.tolist() == [[True, False], [False, False], [False, True]]  # 0.5: neither class is that sure
    assert set_summary(sets, np.array([0, 0, 1])) == {"coverage": 2 / 3, "set_size": 2 / 3, "both": 0.0,
                                                      "empty": 1 / 3}


def test_set_summary_against_a_loop():
    sets = np.array([[True, False], [True, True], [False, True], [False, False], [True, True]])
    y = np.array([1, 0, 1, 0, 1])
    covered = [bool(sets[i][y[i]]) for i in range(5)]
    s = set_summary(sets, y)
    assert s["coverage"] == sum(covered) / 5 == 0.6
    assert s["set_size"] == sum(int(a) + int(b) for a, b in sets) / 5 == 1.2
    assert s["both"] == 0.4 and s["empty"] == 0.2
    with pytest.raises(ValueError, match="one set of 2 classes per label"):
        set_summary(sets, y[:3])


@pytest.mark.parametrize("mondrian", [False, True])
def test_predictor_round_trips_through_strict_json(mondrian):
    rng = np.random.default_rng(3)
    y, p = draw(rng, 50)
    fitted = fit_conformal(y, p, 0.2, mondrian)
    tiny = fit_conformal(y[:3], p[:3], 0.2, mondrian)  # infinite thresholds become null
    grid = np.linspace(0, 1, 201)
    for cp in (fitted, tiny):
        back = ConformalPredictor.from_dict(json.loads(json.dumps(cp.to_dict(), allow_nan=False)))
        assert back.to_dict() == cp.to_dict() and back.thresholds == cp.thresholds
        assert np.array_equal(back.sets(grid), cp.sets(grid))
    assert fitted.to_dict()["calibration_patients"] == 50 and fitted.to_dict()["class_conditional"] is mondrian
    assert tiny.to_dict()["thresholds"]["1"] is None
    with pytest.raises(ValueError, match="incomplete"):
        ConformalPredictor.from_dict({"alpha": 0.1})
