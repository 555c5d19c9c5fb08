"""The grids of the synthetic generator (gliotype.synthetic.grid): template millimetres, the
patient's native grid, and resampling. Tiny arrays, plus the 2 mm anatomy (loaded once)."""

from __future__ import annotations

import numpy as np
import pytest

from gliotype.synthetic.anatomy import load_anatomy
from gliotype.synthetic.grid import grid_mm, native_grid, resample_to, rotation_matrix, source_coordinates


def _row(rot=(0.0, 0.0, 0.0), shift=(0.0, 0.0, 0.0), spacing=(2.0, 2.0, 2.0), flip=0) -> dict:
    row = {f"native_rot_{a}_deg": v for a, v in zip("xyz", rot)}
    row.update({f"native_shift_{a}_mm": v for a, v in zip("xyz", shift)})
    row.update({f"native_spacing_{a}_mm": v for a, v in zip("xyz", spacing)})
    row["native_flip_x"] = flip
    return row


# --------------------------------------------------------------------------- rotations

def test_rotation_matrix_is_a_rotation_applied_x_then_y_then_z():
    R = rotation_matrix([12.0, -30.0, 75.0])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(rotation_matrix([0, 0, 0]), np.eye(3))
    np.testing.assert_allclose(rotation_matrix([0, 0, 90]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)  # right-handed
    np.testing.assert_allclose(rotation_matrix([90, 0, 0]) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix([0, 90, 0]) @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    # x first (y -> z), then y (z -> x): y ends on x; the other order would leave it on z
    np.testing.assert_allclose(rotation_matrix([90, 90, 0]) @ [0, 1, 0], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix([10, 20, 30]),
                               rotation_matrix([0, 0, 30]) @ rotation_matrix([0, 20, 0]) @ rotation_matrix([10, 0, 0]))


# --------------------------------------------------------------------------- sampling coordinates

def test_source_coordinates_of_a_scaled_shifted_grid():
    to_src = np.array([[2.0, 0, 0, 1.0], [0, 1.0, 0, -0.5], [0, 0, 0.5, 3.0], [0, 0, 0, 1]])
    src = source_coordinates(to_src, (2, 3, 4))
    assert src.shape == (3, 24) and src.dtype == np.float32
    # voxel (1, 2, 3) is the last one (C order): (2*1 + 1, 2 - 0.5, 0.5*3 + 3)
    np.testing.assert_allclose(src[:, -1], [3.0, 1.5, 4.5])
    np.testing.assert_allclose(src[:, 0], [1.0, -0.5, 3.0])
    np.testing.assert_allclose(src[:, 5], [1.0, 0.5, 3.5])  # voxel (0, 1, 1)


def test_resample_to_identity_shift_and_outside():
    vol = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    for order in (0, 1, 3):
        np.testing.assert_allclose(resample_to(vol, np.eye(4), vol.shape, order), vol, atol=1e-5)
    shift = np.eye(4)
    shift[:3, 3] = [1, 0, 2]  # output voxel v reads vol at v + (1, 0, 2)
    out = resample_to(vol, shift, (3, 6, 4), order=1)
    assert out.shape == (3, 6, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, :4], vol[1:4, :, 2:6], atol=1e-6)
    edge = resample_to(vol, shift, (5, 6, 7), order=1)
    np.testing.assert_array_equal(edge[4], 0)  # beyond the volume: 0
    np.testing.assert_array_equal(edge[:, :, 5:], 0)


def test_resample_to_interpolates_and_keeps_label_dtype():
    ramp = np.broadcast_to(np.arange(8, dtype=np.float32)[:, None, None], (8, 3, 3)).copy()
    half = np.eye(4)
    half[0, 0] = 0.5  # output voxel i reads x = i / 2
    np.testing.assert_allclose(resample_to(ramp, half, (8, 3, 3), order=1)[:, 1, 1], np.arange(8) / 2, atol=1e-6)
    labels = np.zeros((8, 3, 3), np.uint8)
    labels[4:] = 4
    lab = resample_to(labels, half, (16, 3, 3), order=0)
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {0, 4}
    # precomputed coordinates give the same result for every volume on that grid
    src = source_coordinates(half, (8, 3, 3))
    np.testing.assert_array_equal(resample_to(ramp, half, (8, 3, 3), 1, src=src),
                                  resample_to(ramp, half, (8, 3, 3), 1))
    moved = src + np.float32(1.0)  # the src given is the one used, not recomputed
    assert not np.array_equal(resample_to(ramp, half, (8, 3, 3), 1, src=moved), resample_to(ramp, half, (8, 3, 3), 1))


# --------------------------------------------------------------------------- template and native grids

@pytest.fixture(scope="module")
def anatomy():
    return load_anatomy(2)


def test_grid_mm_is_the_mni_position_of_every_cropped_voxel(anatomy):
    g = grid_mm(2)
    assert g.shape == (3, *anatomy.crop_shape) and g.dtype == np.float32
    assert not g.flags.writeable and grid_mm(2) is g  # cached and read-only
    for vox in [(0, 0, 0), (10, 20, 30), tuple(s - 1 for s in anatomy.crop_shape)]:
        full = np.asarray(vox) + anatomy.crop_offset
        np.testing.assert_allclose(g[(slice(None), *vox)], (anatomy.affine @ np.append(full, 1.0))[:3], atol=1e-4)
    np.testing.assert_allclose(np.diff(g[0, :3, 0, 0]), 2.0)  # 2 mm steps along x


def _crop_of_native(aff, row, anatomy, vox):
    """Cropped-template voxel of native voxel ``vox``, the long way (scanner mm -> MNI mm -> voxel)."""
    Q = rotation_matrix([row[f"native_rot_{a}_deg"] for a in "xyz"])
    t = np.array([row[f"native_shift_{a}_mm"] for a in "xyz"])
    scan = (aff @ np.append(vox, 1.0))[:3]
    mni = Q.T @ (scan - t)
    return (np.linalg.inv(anatomy.affine) @ np.append(mni, 1.0))[:3] - anatomy.crop_offset


def test_native_grid_unrotated_is_the_crop_with_a_margin(anatomy):
    aff, shape, to_crop = native_grid(_row(), 2)
    crop = np.array(anatomy.crop_shape)
    assert shape == tuple(int(s) for s in crop + 2)  # 2 mm margin each side = one voxel each side
    np.testing.assert_allclose(aff[:3, :3], np.diag([2.0, 2.0, 2.0]))
    expected = np.eye(4)
    expected[:3, 3] = -1.0  # native voxel 1 is cropped voxel 0
    np.testing.assert_allclose(to_crop, expected, atol=1e-9)


@pytest.mark.parametrize("flip", [0, 1])
def test_native_grid_maps_to_the_template_and_covers_the_brain(anatomy, flip):
    row = _row(rot=(8.0, -5.0, 12.0), shift=(3.5, -7.0, 11.0), spacing=(1.0, 1.2, 3.0), flip=flip)
    aff, shape, to_crop = native_grid(row, 2)
    assert aff[0, 0] == (-1.0 if flip else 1.0) and aff[1, 1] == 1.2 and aff[2, 2] == 3.0
    for vox in [(0, 0, 0), (17, 40, 9), tuple(s - 1 for s in shape)]:
        np.testing.assert_allclose(to_crop @ np.append(vox, 1.0), np.append(_crop_of_native(aff, row, anatomy, vox), 1),
                                   atol=1e-6)
    # every corner of the cropped template lands inside the native grid
    back = np.linalg.inv(to_crop)
    for bits in np.ndindex(2, 2, 2):
        corner = np.array([0 if b == 0 else s - 1 for s, b in zip(anatomy.crop_shape, bits)], float)
        v = (back @ np.append(corner, 1.0))[:3]
        assert np.all(v >= 0) and np.all(v <= np.array(shape) - 1), (bits, v)


def test_a_flipped_grid_covers_the_same_scanner_box_mirrored(anatomy):
    row = _row(rot=(0.0, 10.0, -6.0), shift=(2.0, 1.0, -4.0), spacing=(1.5, 2.0, 2.5))
    aff0, shape0, crop0 = native_grid(row, 2)
    aff1, shape1, crop1 = native_grid({**row, "native_flip_x": 1}, 2)
    assert shape0 == shape1
    mirror = np.eye(4)
    mirror[0, 0], mirror[0, 3] = -1.0, shape0[0] - 1  # flipped voxel i is unflipped voxel (n - 1 - i)
    np.testing.assert_allclose(aff1, aff0 @ mirror, atol=1e-9)
    np.testing.assert_allclose(crop1, crop0 @ mirror, atol=1e-9)


def test_resampling_the_template_onto_a_native_grid_and_back(anatomy):
    """The generator's use: render on the crop, resample onto the native grid with ``to_crop``."""
    row = _row(rot=(0.0, 0.0, 9.0), shift=(4.0, -2.0, 0.0), spacing=(2.0, 2.0, 2.0))
    aff, shape, to_crop = native_grid(row, 2)
    mask = np.asarray(anatomy.mask, np.float32)
    native = resample_to(mask, to_crop, shape, order=1)
    assert native.shape == shape
    # same voxel volume and a rotation: about the same brain volume
    assert native.sum() == pytest.approx(mask.sum(), rel=0.02)
    back = resample_to(native, np.linalg.inv(to_crop), anatomy.crop_shape, order=1)
    inside = mask > 0.99
    assert np.mean(back[inside] > 0.5) > 0.99
