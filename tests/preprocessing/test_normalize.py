"""Nyul histogram standardisation and z-scores inside the brain (section 4.2 "histogram matching")."""

import numpy as np
import pytest

from gliotype.preprocessing.normalize import (
    GM_THRESHOLD,
    PERCENTILES,
    STANDARD_SCALE,
    histogram_standardize,
    landmarks,
    normalize,
    piecewise_linear,
    pre_registration_method,
    zscore,
    zscore_gm,
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


# --------------------------------------------------------------------------- grey-matter readings


def _t2_like(wm_shift: float, seed: int = 3):
    """A T2-like brain: white matter (60% of it) darker than grey matter; ``wm_shift`` raises WM."""
    rng = np.random.default_rng(seed)
    shape = (24, 24, 24)
    gm = np.zeros(shape, np.float32)
    gm[:, :, :10] = 1.0
    image = np.where(gm > 0, rng.normal(100, 5, shape), rng.normal(60 * (1 + wm_shift), 3, shape))
    return image, np.ones(shape, bool), gm


def _wm_level_change(method: str) -> float:
    """Normalised WM median of a brain with WM +7% minus that without, in units of the GM spread."""
    levels = []
    for shift in (0.0, 0.07):
        image, brain, gm = _t2_like(shift)
        out = normalize(image, brain, method, gm_probability=gm)
        levels.append(np.median(out[gm == 0]))
        gm_iqr = np.subtract(*np.percentile(out[gm > 0], [75, 25]))
    return (levels[1] - levels[0]) / gm_iqr


def test_grey_matter_readings_keep_the_white_matter_level_that_histogram_removes():
    assert abs(_wm_level_change("histogram")) < 0.05  # whole-brain landmarks sit on WM: erased
    assert abs(_wm_level_change("zscore")) < 0.4  # whole-brain statistics absorb most of it
    for method in ("zscore_gm", "histogram_gm"):
        # 0.07 x 60 = 4.2 = 0.62 GM IQRs (sd 5): kept
        assert _wm_level_change(method) == pytest.approx(4.2 / (5 * 1.349), rel=0.15)


def test_zscore_gm_by_hand_and_tumour_left_out():
    image, brain, gm = _t2_like(0.0)
    tumor = np.zeros(image.shape, bool)
    tumor[:6, :6, :6] = True  # inside grey matter
    image[tumor] = 500.0
    out = zscore_gm(image, brain, gm, exclude=tumor)
    ref = image[(gm >= GM_THRESHOLD) & ~tumor]
    q25, q50, q75 = np.percentile(ref, [25, 50, 75])
    assert np.allclose(out[brain], (image[brain] - q50) / ((q75 - q25) / 1.349), atol=1e-4)
    with pytest.raises(ValueError, match="grey-matter map"):
        normalize(image, brain, "zscore_gm")
    assert pre_registration_method("zscore_gm") == "zscore" and pre_registration_method("histogram") == "histogram"


def test_pipeline_applies_the_grey_matter_reading_on_the_template_grid(tmp_path):
    """A template-grid patient through preprocess_case equals zscore_gm of its input with the template GM map."""
    import nibabel as nib

    from gliotype.atlases import load_template
    from gliotype.preprocessing import load_preprocessed, preprocess_case

    from pp_helpers import config

    tpl = load_template(2)
    brain = tpl.brain_mask > 0.5
    rng = np.random.default_rng(0)
    mask = np.zeros(tpl.shape, np.uint8)
    mask[40:46, 60:66, 40:46] = 2
    row, raw = {"patient_id": "A", "fa": None}, {}
    for role, (g, w, c) in {"t1": (60, 90, 20), "t1c": (60, 90, 20), "t2": (100, 60, 180),
                            "flair": (100, 70, 30)}.items():
        img = tpl.gm * g + tpl.wm * w + tpl.csf * c + rng.normal(0, 2, tpl.shape)
        raw[role] = np.where(brain, np.maximum(img, 1.0), 0.0).astype(np.float32)
        nib.save(nib.Nifti1Image(raw[role], tpl.affine), tmp_path / f"{role}.nii.gz")
        row[role] = str(tmp_path / f"{role}.nii.gz")
    nib.save(nib.Nifti1Image(mask, tpl.affine), tmp_path / "mask.nii.gz")
    row["mask"] = str(tmp_path / "mask.nii.gz")
    res = preprocess_case(row, tmp_path / "work", config(normalization="zscore_gm"))
    assert res.status == "done", res.reason
    out = load_preprocessed(tmp_path / "work", "A")["sequences"]
    for i, role in enumerate(("t1", "t1c", "t2", "flair")):
        want = zscore_gm(raw[role], brain, tpl.gm, exclude=mask > 0)
        np.testing.assert_allclose(out[i][brain], want[brain], atol=2e-4)
    ref = (tpl.gm >= GM_THRESHOLD) & brain & (mask == 0)
    assert np.median(out[2][ref]) == pytest.approx(0, abs=1e-4)  # t2 centred on grey matter
    assert np.median(out[2][(tpl.wm > 0.9) & brain]) < -3  # white matter well below it (not z-scored away)


# --------------------------------------------------------------------------- mutation-guided checks (issue 13)

from statistics import NormalDist  # noqa: E402  (an independent normal quantile for the standard scale)

from gliotype.preprocessing.normalize import (  # noqa: E402
    GM_MIN_VOXELS,
    _standard_scale,
    grey_matter_reference,
    histogram_standardize_gm,
    normalize_on_template,
)


def _scale_by_hand(percentiles, low, high):
    z = [NormalDist().inv_cdf(p / 100) for p in percentiles]
    return [low + (high - low) * (q - z[0]) / (z[-1] - z[0]) for q in z]


def test_standard_scale_is_the_rescaled_normal_quantiles():
    """Landmark k sits at low + (high - low) (z_k - z_first) / (z_last - z_first), z the normal quantile."""
    np.testing.assert_allclose(_standard_scale(), _scale_by_hand(PERCENTILES, 10.0, 90.0), atol=1e-9)
    np.testing.assert_allclose(STANDARD_SCALE, _standard_scale(), atol=1e-6)
    # p10: 10 + 80 (z(.10) - z(.01)) / (z(.99) - z(.01)) = 10 + 80 * 1.044796 / 4.652696
    assert _standard_scale()[1] == pytest.approx(27.9645, abs=1e-3)
    # an asymmetric set with other ends: first -> low, last -> high, inner points by the formula
    pct, lo, hi = (5.0, 25.0, 50.0, 90.0), -2.0, 3.0
    got = _standard_scale(pct, lo, hi)
    np.testing.assert_allclose(got, _scale_by_hand(pct, lo, hi), atol=1e-9)
    assert got[0] == pytest.approx(-2.0) and got[-1] == pytest.approx(3.0)


def test_landmarks_of_two_values_and_a_small_range():
    """Two distinct values (or a range below 1) are enough: the percentiles interpolate between them."""
    np.testing.assert_allclose(landmarks(np.array([0.0, 0.5])), 0.5 * np.array(PERCENTILES) / 100)
    np.testing.assert_allclose(landmarks(np.array([2.0, 3.0]), (25.0, 75.0)), [2.25, 2.75])
    for bad in (np.array([4.0]), np.array([3.0, 3.0, 3.0]), np.array([np.nan, 1.0])):
        with pytest.raises(ValueError, match="constant"):
            landmarks(bad)


def test_tied_landmarks_are_separated_by_a_millionth_of_the_range():
    """95 zeros and 5 tens: p1 ... p90 are all 0, so landmark k (k >= 1) becomes k x 1e-6 x range."""
    values = np.r_[np.zeros(95), np.full(5, 10.0)]
    eps = 1e-6 * 10.0
    want = [k * eps for k in range(10)] + [10.0]
    np.testing.assert_allclose(landmarks(values), want, rtol=0, atol=1e-12)


def _ramp_with_extras(extras):
    """Reference voxels 1..1001 (landmark q at 1 + 10 q) plus brain voxels ``extras`` outside the reference."""
    image = np.r_[np.arange(1, 1002, dtype=np.float64), extras]
    brain = np.ones(image.shape, bool)
    reference = np.r_[np.ones(1001, bool), np.zeros(len(extras), bool)]
    return image, brain, reference


def test_histogram_clips_at_zero_by_default_and_not_when_asked():
    """Below p1 (value 11 -> 10) the first segment is extended with slope (s1 - s0) / 90; the
    default clips the result at 0 (exactly; a value mapping to 0.5 stays 0.5)."""
    slope = (STANDARD_SCALE[1] - STANDARD_SCALE[0]) / (101 - 11)
    v_half = 11 - 9.5 / slope  # maps onto 0.5
    image, brain, reference = _ramp_with_extras([v_half, -1000.0])
    unclipped = [0.5, 10 + (-1000 - 11) * slope]
    out = histogram_standardize(image, brain, reference=reference)
    np.testing.assert_allclose(out[-2:], [0.5, 0.0], atol=1e-4)
    raw = histogram_standardize(image, brain, reference=reference, clip=False)
    np.testing.assert_allclose(raw[-2:], unclipped, rtol=1e-5)
    # the reference may be a label map (uint8): the same landmarks
    np.testing.assert_array_equal(histogram_standardize(image, brain, reference=reference.astype(np.uint8)), out)


def test_histogram_custom_scale_and_its_checks():
    """Two landmarks (p1, p99) onto (0, 100): a straight line through (11, 0) and (991, 100)."""
    image, brain, _ = _ramp_with_extras([])
    out = histogram_standardize(image, brain, percentiles=(1.0, 99.0), scale=(0.0, 100.0))
    np.testing.assert_allclose(out, np.maximum((image - 11) / 980 * 100, 0), atol=1e-4)
    small = histogram_standardize(image, brain, percentiles=(1.0, 50.0, 99.0), scale=(0.0, 0.5, 1.0))
    assert small[500] == pytest.approx(0.5, abs=1e-6)  # the median, steps below 1 are fine
    with pytest.raises(ValueError, match="same length"):
        histogram_standardize(image, brain, percentiles=(1.0, 50.0, 99.0), scale=(0.0, 100.0))
    with pytest.raises(ValueError, match="same length"):
        histogram_standardize(image, brain, percentiles=(50.0,), scale=(0.0,))
    for flat in ((0.0, 50.0, 50.0), (0.0, 60.0, 50.0)):
        with pytest.raises(ValueError, match="strictly increasing"):
            histogram_standardize(image, brain, percentiles=(1.0, 50.0, 99.0), scale=flat)


def test_reference_threshold_is_at_least_100_voxels_and_a_tenth_of_the_brain():
    """zscore statistics come from brain minus tumour only if >= max(100, 10 % of the brain) remain."""
    rng = np.random.default_rng(4)

    def case(n_brain, n_tumour):
        image = rng.normal(0, 1, n_brain)
        image[:n_tumour] += 50.0
        tumour = np.zeros(n_brain, bool)
        tumour[:n_tumour] = True
        return image, np.ones(n_brain, bool), tumour

    def stats_from(image, ref):
        return (image - image[ref].mean()) / image[ref].std()

    image, brain, tumour = case(200, 100)  # exactly 100 healthy voxels left (>= 100, >= 20): used
    np.testing.assert_allclose(zscore(image, brain, tumour), stats_from(image, ~tumour), rtol=1e-5, atol=1e-5)
    image, brain, tumour = case(2000, 1850)  # 150 left: >= 100 but < 200 (10 %): the whole brain
    np.testing.assert_allclose(zscore(image, brain, tumour), stats_from(image, brain), rtol=1e-5, atol=1e-5)
    image, brain, tumour = case(2000, 1800)  # exactly 200 left: used
    np.testing.assert_allclose(zscore(image, brain, tumour), stats_from(image, ~tumour), rtol=1e-5, atol=1e-5)


def test_zscore_small_spread_empty_brain_and_dtype():
    rng = np.random.default_rng(6)
    image = rng.normal(3.0, 0.01, size=(10, 10, 10))  # sd far below 1
    brain = np.ones(image.shape, bool)
    z = zscore(image, brain)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, (image - image.mean()) / image.std(), atol=1e-5)
    with pytest.raises(ValueError, match="constant"):
        zscore(image, np.zeros(image.shape, bool))


def test_grey_matter_reference_thresholds():
    """GM >= 0.8 when at least GM_MIN_VOXELS such voxels, else GM >= 0.5 (0.5 itself included);
    always inside the brain and outside ``exclude``; fewer than 2 voxels is an error."""
    n = GM_MIN_VOXELS + 200
    brain = np.ones(n, bool)
    brain[-20:] = False
    exclude = np.zeros(n, bool)
    exclude[-40:-20] = True
    gm = np.full(n, 0.3, np.float32)
    gm[:GM_MIN_VOXELS] = 0.9  # exactly GM_MIN_VOXELS at >= 0.8
    gm[GM_MIN_VOXELS:GM_MIN_VOXELS + 50] = 0.6
    gm[-40:] = 0.95  # excluded or outside the brain
    ref = grey_matter_reference(brain, gm, exclude)
    np.testing.assert_array_equal(ref, np.arange(n) < GM_MIN_VOXELS)
    # uint8 brain and label masks (as read from NIfTI): the same boolean mask, usable as an index
    from_labels = grey_matter_reference(brain.astype(np.uint8), gm, exclude.astype(np.uint8) * 2)
    assert from_labels.dtype == bool
    np.testing.assert_array_equal(from_labels, ref)
    gm[0] = 0.7  # one short: fall back to >= 0.5
    gm[GM_MIN_VOXELS + 50] = 0.5
    ref = grey_matter_reference(brain, gm, exclude)
    np.testing.assert_array_equal(ref, np.arange(n) < GM_MIN_VOXELS + 51)
    # two GM voxels suffice, one does not
    gm = np.zeros(n, np.float32)
    gm[:2] = 1.0
    assert grey_matter_reference(brain, gm).sum() == 2
    gm[1] = 0.0
    with pytest.raises(ValueError, match="no grey matter"):
        grey_matter_reference(brain, gm)
    with pytest.raises(ValueError, match="grey-matter map"):
        grey_matter_reference(brain, gm[:-1])


def test_zscore_gm_falls_back_to_the_sd_when_the_iqr_is_zero_and_rejects_constant_gm():
    gm = np.ones(1200, np.float32)
    brain = np.ones(1200, bool)
    image = np.full(1200, 100.0)
    image[:100] = 130.0  # IQR 0 (the quartiles are both 100), SD > 0
    out = zscore_gm(image, brain, gm)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (image - 100.0) / image.std(), rtol=1e-6)
    with pytest.raises(ValueError, match="constant in grey matter"):
        zscore_gm(np.full(1200, 7.0), brain, gm)


def _brain_with_bright_gm_tumour(seed=8):
    """GM (probability 1) in the first half, WM after; a bright tumour filling a third of the GM."""
    rng = np.random.default_rng(seed)
    shape = (20, 20, 20)
    gm = np.zeros(shape, np.float32)
    gm[:10] = 1.0
    image = np.where(gm > 0, rng.normal(100, 5, shape), rng.normal(60, 3, shape))
    tumour = np.zeros(shape, bool)
    tumour[:4] = True
    image[tumour] += 400.0
    brain = np.ones(shape, bool)
    brain[:, :, 0] = False
    return image, brain, gm, tumour


@pytest.mark.parametrize("method", ["histogram", "zscore", "zscore_gm", "histogram_gm"])
def test_every_method_leaves_the_tumour_out_of_its_statistics_and_takes_label_masks(method):
    """Through ``normalize`` (and ``normalize_on_template``): the healthy reference lands on the
    target (landmarks on the standard scale, mean 0 / SD 1, GM median 0 / IQR 1.349); without
    ``exclude`` it would not; uint8 brain and label masks give the same result as booleans."""
    image, brain, gm, tumour = _brain_with_bright_gm_tumour()
    out = normalize(image, brain, method, exclude=tumour, gm_probability=gm)
    assert out.dtype == np.float32 and np.all(out[~brain] == 0)
    healthy = brain & ~tumour
    ref = healthy & (gm >= GM_THRESHOLD) if method.endswith("_gm") else healthy

    def on_target(o):
        v = o[ref].astype(np.float64)
        if method.startswith("histogram"):
            return np.allclose(np.percentile(v, PERCENTILES), STANDARD_SCALE, atol=0.05)  # off by ~30 if not
        if method == "zscore":
            return abs(v.mean()) < 1e-4 and abs(v.std() - 1) < 1e-4
        q25, q50, q75 = np.percentile(v, [25, 50, 75])
        return abs(q50) < 1e-4 and abs(q75 - q25 - 1.349) < 1e-3

    assert on_target(out)
    assert not on_target(normalize(image, brain, method, gm_probability=gm))
    labels = tumour.astype(np.uint8) * 2
    labels[0, 0, 1:3] = 4
    same = normalize(image, brain.astype(np.uint8), method, exclude=labels, gm_probability=gm)
    np.testing.assert_allclose(same, out, atol=1e-5)
    if method.endswith("_gm"):
        np.testing.assert_array_equal(normalize_on_template(image, brain, method, gm, tumour), out)


def test_histogram_gm_is_not_clipped_and_dispatch_errors():
    image, brain, gm, tumour = _brain_with_bright_gm_tumour()
    image[~tumour & (gm == 0)] -= 200.0  # white matter far below grey matter: negative after mapping
    out = histogram_standardize_gm(image, brain, gm, tumour)
    assert out[brain & (gm == 0)].max() < 0
    with pytest.raises(ValueError, match="not a grey-matter normalisation"):
        normalize_on_template(image, brain, "zscore", gm)
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize(image, brain, "bogus")
    raw = normalize(image, brain, "none")
    assert raw.dtype == np.float32
