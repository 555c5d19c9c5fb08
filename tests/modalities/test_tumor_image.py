"""x_I: sequences x binary tumor mask, cropped around the tumor (section 3.2)."""

import numpy as np
import pytest

from gliotype.modalities import tumor_binary_mask, tumor_image


def _case(shape=(30, 32, 28), centre=(15, 16, 14), radius=4):
    rng = np.random.default_rng(0)
    seq = rng.random((4, *shape)).astype(np.float32) + 1.0
    grid = np.indices(shape)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    mask = np.where(dist <= radius, 2, 0).astype(np.uint8)
    mask[dist <= radius / 2] = 1
    mask[(dist > radius / 2) & (dist <= radius * 0.75)] = 4
    return seq, mask


def test_zero_outside_the_tumor_and_unchanged_inside():
    seq, mask = _case()
    ti = tumor_image(seq, mask, crop_size=(16, 16, 16))
    placed = np.stack([ti.to_source(c, mask.shape) for c in ti.data])
    np.testing.assert_array_equal(placed, seq * (mask > 0))
    assert ti.truncated == 0.0 and ti.data.shape == (4, 16, 16, 16)


def test_crop_is_centred_on_the_tumor():
    seq, mask = _case(centre=(10, 20, 12))
    ti = tumor_image(seq, mask, crop_size=(12, 12, 12))
    inside = np.argwhere(ti.data[0] != 0)
    centre = (inside.min(0) + inside.max(0)) / 2
    np.testing.assert_allclose(centre, [5.5, 5.5, 5.5], atol=1)


def test_crop_leaving_the_grid_is_zero_padded():
    seq, mask = _case(shape=(20, 20, 20), centre=(4, 4, 15), radius=3)
    ti = tumor_image(seq, mask, crop_size=(16, 16, 16))
    assert min(ti.origin) < 0 and ti.truncated == 0.0
    assert np.count_nonzero(ti.data[0]) == np.count_nonzero(mask)


def test_tumor_larger_than_the_crop_reports_truncation():
    seq, mask = _case(radius=9)
    ti = tumor_image(seq, mask, crop_size=(8, 8, 8))
    assert 0.0 < ti.truncated < 1.0


def test_core_labels_exclude_edema():
    seq, mask = _case()
    whole = tumor_image(seq, mask, (16, 16, 16), labels="whole")
    core = tumor_image(seq, mask, (16, 16, 16), labels="core")
    assert np.count_nonzero(core.data[0]) == np.isin(mask, (1, 3, 4)).sum() < np.count_nonzero(whole.data[0])
    assert tumor_binary_mask(np.array([0, 1, 2, 3, 4]), "core").tolist() == [False, True, False, True, True]


@pytest.mark.parametrize(
    "seq_shape, mask_fill, match",
    [((4, 5, 5, 5), 1, "do not share a grid"), ((4, 6, 6, 6), 0, "empty")],
)
def test_bad_inputs(seq_shape, mask_fill, match):
    with pytest.raises(ValueError, match=match):
        tumor_image(np.ones(seq_shape), np.full((6, 6, 6), mask_fill), (4, 4, 4))
