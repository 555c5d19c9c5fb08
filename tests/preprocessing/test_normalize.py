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
