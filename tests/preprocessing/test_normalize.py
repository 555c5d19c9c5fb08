"""Nyul histogram standardisation and z-scores inside the brain (section 4.2 "histogram matching")."""

import numpy as np
import pytest

from gliotype.preprocessing.normalize import (
    PERCENTILES,
    STANDARD_SCALE,
    histogram_standardize,
    landmarks,
    normalize,
    piecewise_linear,
    zscore,
)


def test_standard_scale_is_fixed_and_documented():
    assert len(STANDARD_SCALE) == len(PERCENTILES) == 11
    assert PERCENTILES[0] == 1 and PERCENTILES[-1] == 99 and PERCENTILES[1:-1] == tuple(range(10, 100, 10))
    assert STANDARD_SCALE[0] == pytest.approx(10) and STANDARD_SCALE[-1] == pytest.approx(90)
    assert STANDARD_SCALE[5] == pytest.approx(50)  # the median
    assert np.all(np.diff(STANDARD_SCALE) > 0)
    # symmetric around the median (normal quantiles)
    assert np.allclose(np.array(STANDARD_SCALE) + np.array(STANDARD_SCALE)[::-1], 100)


def test_piecewise_linear_by_hand():
    src = np.array([0.0, 10.0, 30.0])
    dst = np.array([0.0, 100.0, 200.0])
    x = np.array([-5.0, 0.0, 5.0, 10.0, 20.0, 30.0, 40.0])
    # inside: interpolation; below: slope of the first segment (10); above: of the last (5)
    assert np.allclose(piecewise_linear(x, src, dst), [-50, 0, 50, 100, 150, 200, 250])


def test_histogram_standardize_matches_hand_computation():
    values = np.arange(1, 1002, dtype=np.float64)  # 1..1001: percentile q lies at 1 + 10 q
    image = values.reshape(7, 11, 13)
    brain = np.ones(image.shape, bool)
    out = histogram_standardize(image, brain)
    src = 1 + 10 * np.array(PERCENTILES)
    assert np.allclose(landmarks(values), src)
    # the voxel at landmark k maps exactly onto STANDARD_SCALE[k]
    for q, s in zip(src, STANDARD_SCALE):
        assert out.ravel()[int(q) - 1] == pytest.approx(s, abs=1e-4)
    # between landmarks 1 (value 101 -> s1) and 2 (201 -> s2): linear
    v = 151.0
    hand = STANDARD_SCALE[1] + (v - 101) / 100 * (STANDARD_SCALE[2] - STANDARD_SCALE[1])
    assert out.ravel()[int(v) - 1] == pytest.approx(hand, abs=1e-4)
    # above p99 (991): the last segment extended
    hand_top = STANDARD_SCALE[-1] + (1001 - 991) * (STANDARD_SCALE[-1] - STANDARD_SCALE[-2]) / (991 - 901)
    assert out.ravel()[-1] == pytest.approx(hand_top, abs=1e-4)


def test_histogram_standardize_monotone_and_landmarks_hit_the_scale():
    rng = np.random.default_rng(0)
    image = rng.gamma(3.0, 200.0, size=(30, 30, 30)).astype(np.float32)  # skewed, any scale
    brain = np.zeros(image.shape, bool)
    brain[3:27, 3:27, 3:27] = True
    out = histogram_standardize(image, brain)
    order = np.argsort(image[brain])
    assert np.all(np.diff(out[brain][order]) >= -1e-4)  # monotone
    assert np.all(out[~brain] == 0) and out.dtype == np.float32
    assert np.allclose(np.percentile(out[brain], PERCENTILES), STANDARD_SCALE, atol=0.5)
    # another patient, other scanner scale and gain: the same landmarks afterwards
    out2 = histogram_standardize(image * 3.7 + 120, brain)
    assert np.allclose(out, out2, atol=1e-3)


def test_landmarks_ignore_the_tumor_but_the_tumor_is_mapped():
    rng = np.random.default_rng(1)
    image = rng.normal(100, 10, size=(20, 20, 20))
    tumor = np.zeros(image.shape, bool)
    tumor[:8] = True
    image[tumor] += 300  # a large bright tumour
    brain = np.ones(image.shape, bool)
    out = histogram_standardize(image, brain, exclude=tumor)
    assert np.allclose(np.percentile(out[~tumor], PERCENTILES), STANDARD_SCALE, atol=1.0)
    assert out[tumor].min() > STANDARD_SCALE[-1]  # brighter than every healthy landmark
    with_tumor = histogram_standardize(image, brain)  # landmarks pulled by the tumour
    assert not np.allclose(np.percentile(with_tumor[~tumor], PERCENTILES), STANDARD_SCALE, atol=1.0)


def test_ties_and_constant_images():
    image = np.repeat(np.arange(3.0), 100).reshape(10, 10, 3)  # three values: tied landmarks
    out = histogram_standardize(image, np.ones(image.shape, bool))
    assert np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="constant"):
        histogram_standardize(np.ones((5, 5, 5)), np.ones((5, 5, 5), bool))
    with pytest.raises(ValueError, match="constant"):
        zscore(np.ones((5, 5, 5)), np.ones((5, 5, 5), bool))


def test_zscore_and_none():
    rng = np.random.default_rng(2)
    image = rng.normal(500, 40, size=(16, 16, 16))
    brain = np.zeros(image.shape, bool)
    brain[2:14, 2:14, 2:14] = True
    z = zscore(image, brain)
    assert z[brain].mean() == pytest.approx(0, abs=1e-5) and z[brain].std() == pytest.approx(1, abs=1e-4)
    assert np.all(z[~brain] == 0)
    raw = normalize(image, brain, "none")
    assert np.allclose(raw[brain], image[brain]) and np.all(raw[~brain] == 0)
    with pytest.raises(ValueError):
        normalize(image, brain, "bogus")
