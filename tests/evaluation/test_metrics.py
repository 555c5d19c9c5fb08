"""Metrics of section 5 against hand computation and loop references."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gliotype.evaluation import binary_metrics, bootstrap_auc_ci, delong_test, youden_threshold


def test_binary_metrics_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.05])
    m = binary_metrics(y, p, 0.5)
    assert m == {"auc": pytest.approx(roc_auc_score(y, p)), "acc": pytest.approx(5 / 7),
                 "sen": pytest.approx(2 / 3), "spe": pytest.approx(3 / 4)}


def test_youden_threshold_separates_separable_scores():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    t = youden_threshold(y, p)
    assert 0.3 < t <= 0.7
    assert binary_metrics(y, p, t)["acc"] == 1.0


def test_youden_threshold_is_the_best_cut_by_a_brute_force_search():
    """Scores far from 0.5 and non-separable: the threshold is the observed score that
    maximises sensitivity + specificity - 1 (a fixed 0.5, or the wrong side of a tie, fails)."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = (rng.random(40) < 0.35).astype(int)
        y[:2] = [0, 1]
        p = 0.05 + 0.1 * rng.random(40) + 0.05 * y  # every score in [0.05, 0.2]
        t = youden_threshold(y, p)
        j = lambda cut: binary_metrics(y, p, cut)["sen"] + binary_metrics(y, p, cut)["spe"] - 1  # noqa: E731
        best = max(j(c) for c in np.unique(p))
        assert t in set(p.tolist()) and j(t) == pytest.approx(best)


def test_bootstrap_interval_contains_the_auc_and_narrows_with_data():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    p = rng.normal(size=400) + y
    lo, hi = bootstrap_auc_ci(y, p, n=300, seed=1)
    auc = roc_auc_score(y, p)
    assert lo < auc < hi
    lo2, hi2 = bootstrap_auc_ci(y[:80], p[:80], n=300, seed=1)
    assert hi2 - lo2 > hi - lo


def _delong_loop(y, p1, p2):
    """DeLong et al. (1988) with explicit loops over positive/negative pairs."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)

    def psi(a, b):
        return 1.0 if a > b else 0.5 if a == b else 0.0

    v10 = [[np.mean([psi(p[i], p[j]) for j in neg]) for i in pos] for p in (p1, p2)]
    v01 = [[np.mean([psi(p[i], p[j]) for i in pos]) for j in neg] for p in (p1, p2)]
    auc = [np.mean(v) for v in v10]
    m, n = len(pos), len(neg)

    def cov(v, a, b):
        return sum((v[a][k] - np.mean(v[a])) * (v[b][k] - np.mean(v[b])) for k in range(len(v[a]))) / (len(v[a]) - 1)

    var = sum(s * (cov(v10, a, b) / m + cov(v01, a, b) / n) for a, b, s in ((0, 0, 1), (1, 1, 1), (0, 1, -2)))
    return auc, (auc[0] - auc[1]) / np.sqrt(var)


def test_delong_matches_the_loop_and_sklearn():
    rng = np.random.default_rng(3)
    y = (rng.random(80) < 0.4).astype(int)
    p1 = rng.normal(size=80) + 2.5 * y
    p2 = np.round(rng.normal(size=80), 1)  # uninformative, with ties
    res = delong_test(y, p1, p2)
    (a1, a2), z = _delong_loop(y, p1, p2)
    assert res["auc1"] == pytest.approx(roc_auc_score(y, p1)) == pytest.approx(a1)
    assert res["auc2"] == pytest.approx(roc_auc_score(y, p2)) == pytest.approx(a2)
    assert res["z"] == pytest.approx(z, rel=1e-9)
    assert 0 <= res["p_value"] < 0.05


def test_delong_of_a_model_with_itself():
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.1, 0.8, 0.4, 0.6, 0.3, 0.2])
    assert delong_test(y, p, p)["p_value"] == 1.0


def test_delong_p_value_is_the_two_sided_normal_tail_of_z():
    """Killed surviving mutants: ``3 * sf`` for ``2 * sf`` and a z that does not enter p."""
    from scipy import stats

    rng = np.random.default_rng(5)
    y = (rng.random(60) < 0.5).astype(int)
    p1 = rng.normal(size=60) + 0.8 * y
    p2 = rng.normal(size=60) + 0.3 * y
    res = delong_test(y, p1, p2)
    (_, _), z = _delong_loop(y, p1, p2)
    assert res["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert 0.0 < res["p_value"] < 1.0
    same = delong_test(y, p1, p1)
    assert same == {"auc1": pytest.approx(roc_auc_score(y, p1)), "auc2": pytest.approx(roc_auc_score(y, p1)),
                    "z": 0.0, "p_value": 1.0}


def _bootstrap_loop(y, p, n, seed, level):
    """The percentile bootstrap written out: resample within each class, AUC, two quantiles."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    aucs = []
    for _ in range(n):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        aucs.append(roc_auc_score(y[idx], p[idx]))
    tail = (1 - level) / 2
    return np.quantile(aucs, tail), np.quantile(aucs, 1 - tail)


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_bootstrap_interval_matches_the_loop_at_its_level(level):
    rng = np.random.default_rng(2)
    y = (rng.random(60) < 0.4).astype(int)
    p = rng.normal(size=60) + y
    lo, hi = bootstrap_auc_ci(y, p, n=200, seed=4, level=level)
    assert (lo, hi) == pytest.approx(_bootstrap_loop(y, p, 200, 4, level), rel=1e-12)
    assert bootstrap_auc_ci(y, p, n=200, seed=4, level=level) == (lo, hi)  # seeded
    assert bootstrap_auc_ci(y, p, n=200, seed=5, level=level) != (lo, hi)


def test_degenerate_inputs_give_nan_not_a_number_by_accident():
    import math

    one_class = np.array([1, 1, 1])
    m = binary_metrics(one_class, np.array([0.9, 0.2, 0.6]), 0.5)
    assert math.isnan(m["auc"]) and math.isnan(m["spe"]) and m["sen"] == pytest.approx(2 / 3)
    m = binary_metrics(np.array([0, 0]), np.array([0.9, 0.2]), 0.5)
    assert math.isnan(m["sen"]) and m["spe"] == 0.5 and m["acc"] == 0.5
    # labels given as floats and scores as a list still count as 0/1 classes
    m = binary_metrics(np.array([0.0, 1.0, 1.0, 0.0]), [0.1, 0.8, 0.3, 0.6], 0.5)
    assert (m["sen"], m["spe"], m["acc"]) == (0.5, 0.5, 0.5)
    for y in (one_class, np.array([0, 0, 0])):
        assert all(math.isnan(v) for v in bootstrap_auc_ci(y, np.array([0.1, 0.5, 0.9]), n=10))
    assert all(math.isnan(v) for v in bootstrap_auc_ci(np.array([0, 1]), np.array([0.1, 0.9]), n=0))
    for n in (1, 5):  # one patient of each class: defined, from a single resample on
        assert bootstrap_auc_ci(np.array([0, 1]), np.array([0.1, 0.9]), n=n) == (1.0, 1.0)


def test_youden_threshold_is_at_most_one():
    """roc_curve's first threshold is +inf (or max + 1): a cut above every score is never returned as > 1."""
    y = np.array([1, 1, 0, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4])  # perfectly wrong: the best J is the trivial cut above all scores
    t = youden_threshold(y, p)
    assert t == 1.0


def test_transfer_threshold_calls_the_same_fraction_of_the_same_patients_mutant():
    from gliotype.evaluation import transfer_threshold

    rng = np.random.default_rng(0)
    source = rng.uniform(0.2, 0.4, 40)  # fold GNNs: a compressed scale
    target = 1 / (1 + np.exp(-12 * (source - 0.3) + rng.normal(0, 0.01, 40)))  # the reported GNN: stretched
    for threshold in (0.25, 0.3, 0.37):
        moved = transfer_threshold(threshold, source, target)
        assert np.mean(target >= moved) == pytest.approx(np.mean(source >= threshold), abs=1 / 40)
    # the value would not carry over: 0.37 calls few mutant on the compressed scale, most on the stretched one
    assert np.mean(target >= 0.37) > np.mean(source >= 0.37) + 0.3
    # a linear interpolation between order statistics, by hand
    assert transfer_threshold(0.5, np.array([0.1, 0.6, 0.2, 0.7]), np.array([1.0, 4.0, 2.0, 3.0])) == 2.5


def test_transfer_threshold_at_the_ends_and_on_bad_input():
    from gliotype.evaluation import transfer_threshold

    target = np.array([0.2, 0.5, 0.9])
    assert transfer_threshold(0.0, np.array([0.1, 0.3, 0.4]), target) == 0.2  # everybody mutant: at the smallest
    above = transfer_threshold(0.99, np.array([0.1, 0.3, 0.4]), target)  # nobody: just above the largest
    assert above > 0.9 and not (target >= above).any()
    with pytest.raises(ValueError, match="same patients"):
        transfer_threshold(0.5, np.array([0.1, 0.2]), np.array([0.1]))
    with pytest.raises(ValueError, match="same patients"):
        transfer_threshold(0.5, np.array([]), np.array([]))


def test_bootstrap_interval_matches_the_loop_with_tied_scores():
    """Tied scores count 1/2 in every resample's pair-matrix AUC, as in roc_auc_score's curve."""
    rng = np.random.default_rng(11)
    y = (rng.random(54) < 0.45).astype(int)
    p = np.round(rng.random(54), 1)  # 11 distinct values: many ties between the classes
    assert bootstrap_auc_ci(y, p, n=400, seed=3) == pytest.approx(_bootstrap_loop(y, p, 400, 3, 0.95), abs=1e-12)


def test_rank_correlation_over_finite_pairs_and_nan_when_undefined():
    from scipy.stats import spearmanr

    from gliotype.evaluation.metrics import rank_correlation

    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 3.0])
    b = np.array([2.0, 1.0, 7.0, np.inf, 6.0, 4.0])
    ok = np.isfinite(a) & np.isfinite(b)
    assert rank_correlation(a, b) == pytest.approx(spearmanr(a[ok], b[ok])[0])
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == -1.0
    assert np.isnan(rank_correlation([1, 2], [1, 2]))  # fewer than 3 pairs
    assert np.isnan(rank_correlation([1, 2, 3, 4], [5, 5, 5, 5]))  # constant
    assert np.isnan(rank_correlation([1, 2, 3, np.nan], [5, 5, 5, 7]))  # constant on the finite pairs
