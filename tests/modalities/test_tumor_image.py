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


def _sphere_case(shape=(40, 40, 40), centre=(20, 20, 20), radius=5):
    seq = np.ones((4, *shape), np.float32)
    grid = np.indices(shape)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    return seq, (dist <= radius).astype(np.uint8), dist


def test_margin_enlarges_the_mask_by_the_margin_in_millimetres():
    """2 mm voxels, sphere of 5 voxels (10 mm), margin 10 mm -> every voxel whose centre
    is within 10 mm of a tumour voxel (EDT), i.e. a ball of about 15 voxels."""
    seq, mask, dist = _sphere_case()
    ti = tumor_image(seq, mask, (40, 40, 40), margin_mm=10.0, spacing_mm=(2.0, 2.0, 2.0))
    got = ti.to_source(ti.data[0], mask.shape) > 0
    from scipy import ndimage

    expected = ndimage.distance_transform_edt(mask == 0, sampling=(2, 2, 2)) <= 10.0
    np.testing.assert_array_equal(got, expected)
    assert got[dist <= 9.0].all() and not got[dist >= 10.6].any()  # radius 5 voxels + 10 mm / 2 mm
    no_margin = tumor_image(seq, mask, (40, 40, 40))
    assert np.count_nonzero(no_margin.data[0]) == mask.sum() < got.sum()
    # anisotropic voxels: the same 10 mm is 5 voxels along a 2 mm axis, 10 along a 1 mm axis
    aniso = tumor_image(seq, mask, (40, 40, 40), margin_mm=10.0, spacing_mm=(2.0, 1.0, 1.0))
    line = aniso.to_source(aniso.data[0], mask.shape)
    assert (line[:, 20, 20] > 0).sum() == 11 + 2 * 5 and (line[20, :, 20] > 0).sum() == 11 + 2 * 10


def test_ring_channel_holds_the_undilated_label_mask():
    seq, mask, _ = _sphere_case()
    ti = tumor_image(seq, mask, (32, 32, 32), margin_mm=6.0, spacing_mm=(2.0, 2.0, 2.0), ring_channel=True)
    assert ti.data.shape == (5, 32, 32, 32)
    np.testing.assert_array_equal(ti.to_source(ti.data[4], mask.shape), mask.astype(np.float32))
    assert np.count_nonzero(ti.data[0]) > np.count_nonzero(ti.data[4])  # sequences cover the shell too
    assert tumor_image(seq, mask, (32, 32, 32)).data.shape[0] == 4


def test_label_channels_hold_each_compartment_over_the_crop():
    from gliotype.modalities.tumor_image import image_channels

    seq = np.ones((4, 24, 24, 24), dtype=np.float32)
    mask = np.zeros((24, 24, 24), dtype=np.int16)
    mask[8:16, 8:16, 8:16] = 2  # edema around
    mask[10:14, 10:14, 10:14] = 4  # enhancing
    mask[11:13, 11:13, 11:13] = 1  # necrosis inside
    ti = tumor_image(seq, mask, (16, 16, 16), labels="core", ring_channel=True, label_channels=True)
    assert ti.data.shape[0] == image_channels(True, True) == 8
    back = [ti.to_source(ti.data[c], mask.shape) for c in range(4, 8)]
    np.testing.assert_array_equal(back[0], np.isin(mask, (1, 4)))  # ring: the image labels (core)
    for channel, labels in zip(back[1:], ((1,), (2,), (3, 4))):
        np.testing.assert_array_equal(channel, np.isin(mask, labels))  # edema too, outside the core
    assert ti.data[0].sum() == np.isin(mask, (1, 4)).sum()  # the sequences stay masked to the core
    only = tumor_image(seq, mask, (16, 16, 16), label_channels=True)
    assert only.data.shape[0] == image_channels(False, True) == 7


def test_margin_needs_the_spacing():
    seq, mask, _ = _sphere_case()
    with pytest.raises(ValueError, match="spacing"):
        tumor_image(seq, mask, (8, 8, 8), margin_mm=4.0)


def test_label_lists_and_the_fallback_to_the_whole_tumor():
    from gliotype.modalities.tumor_image import tumor_region

    labels = np.array([0, 1, 2, 3, 4, 2])
    assert tumor_binary_mask(labels, [4]).tolist() == [False, False, False, False, True, False]
    assert tumor_binary_mask(labels, [1, 2]).tolist() == [False, True, True, False, False, True]
    edema_only = np.array([0, 2, 2, 2, 0])
    region, fell = tumor_region(edema_only, "core", min_voxels=1)
    assert fell and region.tolist() == [False, True, True, True, False]
    region, fell = tumor_region(np.array([0, 1, 4, 2]), "core", min_voxels=2)
    assert not fell and region.tolist() == [False, True, True, False]
    region, fell = tumor_region(np.array([0, 1, 2, 2]), "core", min_voxels=2)  # one core voxel < 2
    assert fell and region.sum() == 3
    with pytest.raises(ValueError, match="labels"):
        tumor_binary_mask(labels, [0])
