"""x_P: farthest-point samples of the tumor surface mesh (section 3.2)."""

import numpy as np
import pytest
from scipy import ndimage

from gliotype.modalities import tumor_point_cloud
from gliotype.modalities.point_cloud import farthest_point_sampling


def _sphere(shape=(32, 32, 32), centre=(16, 15, 17), radius=8.0):
    grid = np.indices(shape)
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre))) <= radius


AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
AFFINE[:3, 3] = [-30.0, -20.0, 10.0]


def test_points_lie_on_the_tumor_surface():
    """Mean distance of the points to the mask boundary is below one voxel."""
    mask = _sphere()
    pc = tumor_point_cloud(mask, AFFINE, n_points=256)
    assert pc.points_mm.shape == (256, 3) and pc.points.shape == (256, 3)
    vox = (pc.points_mm - AFFINE[:3, 3]) / 2.0
    boundary = mask & ~ndimage.binary_erosion(mask)
    dist = ndimage.distance_transform_edt(~boundary)
    d = ndimage.map_coordinates(dist, vox.T, order=1)
    assert d.mean() < 1.0
    radii = np.linalg.norm(vox - np.array([16, 15, 17]), axis=1)
    np.testing.assert_allclose(radii.mean(), 8.0, atol=0.75)


def test_normalised_copy_is_centred_in_the_unit_ball():
    pc = tumor_point_cloud(_sphere(), AFFINE, n_points=128)
    np.testing.assert_allclose(pc.points.mean(0), 0, atol=1e-5)
    assert np.linalg.norm(pc.points, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(pc.points * pc.scale + pc.centre, pc.points_mm, atol=1e-3)


def test_affine_translation_moves_points_in_millimetres():
    shifted = AFFINE.copy()
    shifted[:3, 3] += [5.0, -3.0, 1.0]
    a = tumor_point_cloud(_sphere(), AFFINE, n_points=64)
    b = tumor_point_cloud(_sphere(), shifted, n_points=64)
    np.testing.assert_allclose(b.points_mm - a.points_mm, np.tile([5.0, -3.0, 1.0], (64, 1)), atol=1e-4)
    np.testing.assert_allclose(a.points, b.points, atol=1e-5)


def test_deterministic_and_small_tumors_are_densified():
    small = _sphere(radius=1.5)
    a = tumor_point_cloud(small, AFFINE, n_points=200, seed=3)
    b = tumor_point_cloud(small, AFFINE, n_points=200, seed=3)
    np.testing.assert_array_equal(a.points_mm, b.points_mm)
    assert len(np.unique(a.points_mm, axis=0)) == 200


def test_fps_spreads_points_more_than_random():
    rng = np.random.default_rng(0)
    pts = rng.random((2000, 3))
    fps = pts[farthest_point_sampling(pts, 50)]
    rnd = pts[rng.choice(2000, 50, replace=False)]

    def min_gap(p):
        d = np.linalg.norm(p[:, None] - p[None], axis=-1)
        return d[np.triu_indices(len(p), 1)].min()

    assert min_gap(fps) > 2 * min_gap(rnd)


def test_empty_mask_is_an_error():
    with pytest.raises(ValueError, match="too few"):
        tumor_point_cloud(np.zeros((5, 5, 5), bool), AFFINE)


def test_mni_coordinates_keep_location_and_size():
    """Two tumours of different size and place: 'mni' clouds differ in centroid and extent
    (the template millimetres / point_scale_mm), 'unit_ball' clouds do not."""
    small = _sphere(shape=(40, 40, 40), centre=(12, 14, 16), radius=5.0)
    large = _sphere(shape=(40, 40, 40), centre=(26, 24, 22), radius=10.0)
    mni = [tumor_point_cloud(m, AFFINE, n_points=256, coordinates="mni", scale_mm=100.0) for m in (small, large)]
    ball = [tumor_point_cloud(m, AFFINE, n_points=256) for m in (small, large)]
    for pc in mni:
        np.testing.assert_allclose(pc.points, pc.points_mm / 100.0, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(pc.points.mean(0), pc.centre / 100.0, atol=1e-4)
    centres_mm = [np.array(c) * 2.0 + AFFINE[:3, 3] for c in ((12, 14, 16), (26, 24, 22))]
    for pc, c in zip(mni, centres_mm):
        box_centre = (pc.points.min(0) + pc.points.max(0)) / 2 * 100.0
        np.testing.assert_allclose(box_centre, c, atol=1.0)

    def extent(p):
        return np.linalg.norm(p - p.mean(0), axis=1).mean()

    assert extent(mni[1].points) / extent(mni[0].points) == pytest.approx(2.0, rel=0.1)  # radius 20 vs 10 mm
    assert extent(mni[1].points) * 100.0 == pytest.approx(20.0, rel=0.1)
    # unit_ball removes both: centroid 0 and largest radius 1 for either tumour
    for pc in ball:
        np.testing.assert_allclose(pc.points.mean(0), 0.0, atol=1e-5)
        assert np.linalg.norm(pc.points, axis=1).max() == pytest.approx(1.0, abs=1e-5)


def test_unknown_coordinates_are_an_error():
    with pytest.raises(ValueError, match="coordinates"):
        tumor_point_cloud(_sphere(), AFFINE, n_points=32, coordinates="scanner")
