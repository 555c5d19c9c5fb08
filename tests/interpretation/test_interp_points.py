"""Maps on the tumor surface points and the geometric attention (section 4.5, Fig. 7E-F)."""

import numpy as np
import pytest
import torch
from multimodal_items import N_POINTS

from gliotype.interpretation import agreement, point_attention, project_to_points

AFFINE = np.array([[2.0, 0, 0, -40], [0, 2.0, 0, -50], [0, 0, 2.0, -30], [0, 0, 0, 1]])


def _x_volume(shape=(10, 12, 8)):
    return np.broadcast_to(np.arange(shape[0], dtype=np.float32)[:, None, None], shape).copy()


def _mm(vox):
    vox = np.asarray(vox, dtype=float)
    return vox @ AFFINE[:3, :3].T + AFFINE[:3, 3]


def test_each_point_takes_the_value_of_its_voxel():
    vol = _x_volume()
    rng = np.random.default_rng(0)
    vox = np.stack([rng.integers(0, s, 50) for s in vol.shape], axis=1)
    jitter = rng.uniform(-0.45, 0.45, vox.shape)  # < half a voxel: same nearest voxel
    values = project_to_points(vol, AFFINE, _mm(vox + jitter))
    np.testing.assert_array_equal(values, vox[:, 0].astype(np.float32))


def test_points_outside_the_grid_get_zero():
    vol = _x_volume() + 1.0
    pts = _mm([[-1, 3, 3], [10, 3, 3], [4, 12, 3], [4, 3, -0.6], [9.4, 11.4, 7.4], [0, 0, 0]])
    np.testing.assert_array_equal(project_to_points(vol, AFFINE, pts), [0, 0, 0, 0, 10, 1])
    np.testing.assert_array_equal(project_to_points(vol, AFFINE, pts, order=1)[:4], 0)


def test_trilinear_interpolates_between_voxels():
    vol = _x_volume()
    pts = _mm([[2.5, 3, 3], [4.25, 5.5, 2.0]])
    np.testing.assert_allclose(project_to_points(vol, AFFINE, pts, order=1), [2.5, 4.25], atol=1e-5)
    with pytest.raises(ValueError):
        project_to_points(vol, AFFINE, pts, order=3)


def test_point_attention_covers_every_input_point(model, batch2):
    att = point_attention(model, batch2)
    assert att.shape == (2 * N_POINTS,) and np.all(att > 0)
    with torch.no_grad():
        pc = model.point_cloud(batch2.points, batch2.points_batch)
    # the kept points carry their own attention; each patient's kept attention sums to one
    np.testing.assert_allclose(att[pc.index.numpy()], pc.attention.numpy(), rtol=1e-6)
    for b in (0, 1):
        assert att[pc.index[pc.batch == b].numpy()].sum() == pytest.approx(1.0, rel=1e-5)
    # every other point copies the nearest kept point of the same patient
    assert len(np.unique(att[:N_POINTS])) <= int((pc.batch == 0).sum())
    assert np.array_equal(att, point_attention(model, batch2))


def test_agreement_is_spearman():
    a = np.arange(10.0)
    assert agreement(a, a ** 3) == pytest.approx(1.0)
    assert agreement(a, -a) == pytest.approx(-1.0)
    assert np.isnan(agreement(a, np.ones(10)))
    with pytest.raises(ValueError):
        agreement(a, a[:5])
