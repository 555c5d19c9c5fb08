"""Calibration metrics and calibrators against plain loops and scikit-learn."""

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss

from gliotype.evaluation.calibration import (
    Calibrator,
    brier_score,
    expected_calibration_error,
    fit_calibrator,
    reliability_curve,
)


def reference_bins(y, p, bins):
    """Per bin k: [k/bins, (k+1)/bins), the last one [k/bins, 1]; (mean p, mean y, count) of the non-empty ones."""
    out = []
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        members = [i for i in range(len(p)) if lo <= p[i] and (p[i] < hi or (k == bins - 1 and p[i] <= 1))]
        if members:
            out.append((sum(p[i] for i in members) / len(members), sum(y[i] for i in members) / len(members),
                        len(members)))
    return out


def reference_ece(y, p, bins):
    return sum(n * abs(obs - pred) for pred, obs, n in reference_bins(y, p, bins)) / len(p)


def miscalibrated(n, rng):
    """Labels from q = sigmoid(z); the model says sigmoid(2z - 1): overconfident and too low."""
    z = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return y, 1 / (1 + np.exp(-(2 * z - 1)))


def test_ece_and_reliability_curve_match_a_loop_with_points_on_the_bin_edges():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0], dtype=float)
    p = np.array([0.0, 0.1, 0.2, 0.3, 0.35, 0.5, 0.5, 0.7, 0.9, 0.95, 1.0, 0.1])  # edges 0.1, 0.2, ...: left-closed
    for bins in (1, 3, 4, 10):
        curve = reliability_curve(y, p, bins)
        ref = reference_bins(y, p, bins)
        np.testing.assert_allclose(curve.predicted, [r[0] for r in ref], rtol=0, atol=1e-12)
        np.testing.assert_allclose(curve.observed, [r[1] for r in ref], rtol=0, atol=1e-12)
        assert curve.count.tolist() == [r[2] for r in ref] and curve.count.sum() == len(y)
        assert expected_calibration_error(y, p, bins) == pytest.approx(reference_ece(y, p, bins), abs=1e-12)
    # 10 bins by hand: 0.1 and 0.1 in [0.1, 0.2); 0.5 twice in [0.5, 0.6); 1.0 in the closed last bin with 0.9, 0.95
    curve = reliability_curve(y, p, 10)
    assert curve.count.tolist() == [1, 2, 1, 2, 2, 1, 3]
    assert curve.observed[-1] == pytest.approx(1 / 3) and curve.predicted[-1] == pytest.approx((0.9 + 0.95 + 1) / 3)


def test_reliability_curve_is_scikit_learns_calibration_curve_off_the_edges():
    rng = np.random.default_rng(1)
    y, p = miscalibrated(500, rng)
    curve = reliability_curve(y, p, 8)
    observed, predicted = calibration_curve(y, p, n_bins=8, strategy="uniform")
    np.testing.assert_allclose(curve.observed, observed, atol=1e-12)
    np.testing.assert_allclose(curve.predicted, predicted, atol=1e-12)


def test_brier_score_is_scikit_learns_and_a_loop():
    y = np.array([1, 0, 1, 1, 0], dtype=float)
    p = np.array([0.9, 0.2, 0.4, 1.0, 0.0])
    loop = sum((p[i] - y[i]) ** 2 for i in range(5)) / 5
    assert brier_score(y, p) == pytest.approx(loop) == pytest.approx(brier_score_loss(y, p))
    assert brier_score(y, y) == 0 and expected_calibration_error(y, y) == 0


def test_perfectly_calibrated_probabilities_have_a_small_ece():
    rng = np.random.default_rng(2)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(float)
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.15  # shifted: about 0.2 off


def test_platt_recovers_a_known_miscalibration_and_helps_fresh_patients():
    """p = sigmoid(2z - 1) of true sigmoid(z): the inverse is a = 0.5, b = 0.5."""
    rng = np.random.default_rng(3)
    y, p = miscalibrated(6000, rng)
    platt = fit_calibrator(y, p, "platt")
    assert platt.a == pytest.approx(0.5, abs=0.06) and platt.b == pytest.approx(0.5, abs=0.08)
    y_new, p_new = miscalibrated(4000, rng)
    fixed = platt(p_new)
    assert expected_calibration_error(y_new, fixed) < 0.5 * expected_calibration_error(y_new, p_new)
    assert brier_score(y_new, fixed) < brier_score(y_new, p_new) - 0.005
    z = np.log(p_new) - np.log1p(-p_new)  # the formula, by hand
    np.testing.assert_allclose(fixed, 1 / (1 + np.exp(-(platt.a * z + platt.b))), rtol=1e-12)


def test_platt_on_a_separable_set_stays_finite():
    y = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    platt = fit_calibrator(y, p, "platt")
    assert np.isfinite([platt.a, platt.b]).all() and 0 < platt.a < 50
    out = platt(np.array([0.0, 0.5, 1.0]))  # 0 and 1 are clipped before the logit
    assert np.isfinite(out).all() and out[0] < out[1] < out[2]


def test_platt_never_reverses_the_ranking():
    """Predictions that rank the calibration patients the wrong way round (out-of-fold GNNs trained on half
    the labels can): the fitted slope would be negative; it is 0 instead, so every patient gets the
    smoothed prevalence and a higher probability is never calibrated lower."""
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=40) < 0.3).astype(float)
    p = 1 / (1 + np.exp(-(-1.5 * (2 * y - 1) + rng.normal(0, 1, 40))))  # anti-correlated with y
    cal = fit_calibrator(y, p, "platt")
    n_pos, n_neg = y.sum(), 40 - y.sum()
    smoothed = (n_pos * (n_pos + 1) / (n_pos + 2) + n_neg / (n_neg + 2)) / 40
    assert cal.a == 0.0
    np.testing.assert_allclose(cal(np.array([0.05, 0.5, 0.95])), smoothed, rtol=1e-9)
    good = fit_calibrator(y, 1 - p, "platt")  # the same predictions the right way round keep their slope
    assert good.a > 0 and np.all(np.diff(good(np.linspace(0.01, 0.99, 9))) > 0)


def test_isotonic_is_scikit_learns_monotone_map_and_clips_outside():
    rng = np.random.default_rng(4)
    y, p = miscalibrated(400, rng)
    iso = fit_calibrator(y, p, "isotonic")
    grid = np.linspace(0, 1, 501)
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p, y)
    np.testing.assert_allclose(iso(grid), ref.predict(grid), atol=1e-12)
    assert (np.diff(iso(grid)) >= 0).all() and iso(grid).min() >= 0 and iso(grid).max() <= 1
    assert iso(np.array([-1.0]))[0] == iso(np.array([p.min()]))[0]  # clipped, not extrapolated
    assert expected_calibration_error(y, iso(p)) < expected_calibration_error(y, p)


@pytest.mark.parametrize("method", ["none", "platt", "isotonic"])
def test_calibrators_round_trip_through_strict_json(method):
    rng = np.random.default_rng(5)
    y, p = miscalibrated(300, rng)
    fitted = fit_calibrator(y, p, method)
    text = json.dumps(fitted.to_dict(), allow_nan=False)
    back = Calibrator.from_dict(json.loads(text))
    grid = np.concatenate([np.linspace(0, 1, 101), p])
    assert type(back) is type(fitted) and back.to_dict() == fitted.to_dict()
    assert back(grid).tobytes() == fitted(grid).tobytes()
    if method == "none":
        assert back(grid).tobytes() == grid.tobytes()
    else:
        assert not np.allclose(back(grid), grid)


def test_bad_input_is_one_value_error():
    y, p = np.array([0, 1, 1.0]), np.array([0.2, 0.7, 0.9])
    with pytest.raises(ValueError, match="as many labels"):
        brier_score(y, p[:2])
    with pytest.raises(ValueError, match="finite and in"):
        expected_calibration_error(y, np.array([0.2, np.nan, 0.9]))
    with pytest.raises(ValueError, match="finite and in"):
        reliability_curve(y, np.array([0.2, 1.2, 0.9]))
    with pytest.raises(ValueError, match="0 .wild-type. or 1"):
        brier_score(np.array([0, 2, 1]), p)
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error(y, p, bins=0)
    with pytest.raises(ValueError, match="unknown method"):
        fit_calibrator(y, p, "beta")
    with pytest.raises(ValueError, match="both classes"):
        fit_calibrator(np.ones(3), p, "platt")
    with pytest.raises(ValueError, match="unknown method"):
        Calibrator.from_dict({"method": "beta"})
    with pytest.raises(ValueError, match="incomplete"):
        Calibrator.from_dict({"method": "platt", "a": 1.0})
