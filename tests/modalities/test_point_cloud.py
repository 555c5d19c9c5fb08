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


# --------------------------------------------------------------------------- mutation-guided checks (issue 13)


def _barycentric(p, tri):
    """Barycentric weights of points ``p`` (N, 3) in triangle ``tri`` (3, 3) and the distance to its plane."""
    e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
    a = np.stack([e1, e2], axis=1)  # (3, 2)
    uv, *_ = np.linalg.lstsq(a, (p - tri[0]).T, rcond=None)
    off_plane = np.linalg.norm(p - tri[0] - (a @ uv).T, axis=1)
    return uv.T, off_plane


def test_surface_samples_lie_on_the_triangles_area_weighted_and_seeded():
    """Two triangles away from the origin, areas 1 and 3 (in different planes): every sample is
    inside one of them, 3/4 of the samples fall on the larger, they are uniform inside a
    triangle (mean at its centroid) and the same generator seed gives the same samples."""
    from gliotype.modalities.point_cloud import _surface_samples

    verts = np.array([[10.0, 0, 0], [11, 0, 0], [10, 2, 0],  # area 1 in the plane z = 0
                      [0, 10, 5], [0, 13, 5], [0, 10, 7]])  # area 3 in the plane x = 0
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    n = 4000
    pts = _surface_samples(verts, faces, n, np.random.default_rng(7))
    assert pts.shape == (n, 3)
    on = []
    for tri in (verts[:3], verts[3:]):
        uv, off = _barycentric(pts, tri)
        on.append((off < 1e-9) & (uv >= -1e-12).all(1) & (uv.sum(1) <= 1 + 1e-12))
    on = np.array(on)
    assert np.all(on.sum(0) == 1)  # each sample on exactly one triangle, none in the parallelograms
    assert on[1].mean() == pytest.approx(0.75, abs=0.03)  # area 3 / (1 + 3)
    for k, tri in enumerate((verts[:3], verts[3:])):
        np.testing.assert_allclose(pts[on[k]].mean(0), tri.mean(0), atol=0.06)  # uniform inside
    np.testing.assert_array_equal(pts, _surface_samples(verts, faces, n, np.random.default_rng(7)))
    assert not np.allclose(pts, _surface_samples(verts, faces, n, np.random.default_rng(8)))


def _fps_reference(points, n):
    """Written-out farthest point sampling: start at the point farthest from the centroid, then
    repeatedly take the point whose distance to the chosen set is largest."""
    d_centre = [np.sqrt(sum((p[k] - points[:, k].mean()) ** 2 for k in range(3))) for p in points]
    chosen = [int(np.argmax(d_centre))]
    while len(chosen) < n:
        best, best_d = -1, -1.0
        for i, p in enumerate(points):
            d = min(np.sqrt(((p - points[j]) ** 2).sum()) for j in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def test_farthest_point_sampling_matches_a_brute_force_loop():
    """A small elongated cloud offset along its narrowest axis, so that measuring the start from
    anything but the centroid (its negative, the mean of all coordinates) picks another point."""
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(40, 3)) * [3.0, 1.0, 2.0] + [0.0, 50.0, 0.0]
    idx = farthest_point_sampling(pts, 12)
    assert idx.dtype == np.int64
    assert idx.tolist() == _fps_reference(pts, 12)
    assert idx[0] == 35  # the point farthest from the centroid (the loop above agrees)
    with pytest.raises(ValueError, match="cannot sample"):
        farthest_point_sampling(pts, 41)


def test_tumor_point_cloud_defaults_and_dtypes():
    """Defaults: 1024 points, seed 0, mni divisor 100 mm; the arrays are float32 as documented."""
    small = _sphere(shape=(12, 12, 12), centre=(6, 5, 6), radius=2.0)  # fewer vertices than 1024: densified
    pc = tumor_point_cloud(small, AFFINE)
    assert pc.points_mm.shape == (1024, 3)
    np.testing.assert_array_equal(pc.points_mm, tumor_point_cloud(small, AFFINE, seed=0).points_mm)
    assert not np.array_equal(pc.points_mm, tumor_point_cloud(small, AFFINE, seed=1).points_mm)
    for a in (pc.points_mm, pc.points, pc.centre):
        assert a.dtype == np.float32
    mni = tumor_point_cloud(small, AFFINE, n_points=64, coordinates="mni")
    np.testing.assert_allclose(mni.points, mni.points_mm / 100.0, rtol=1e-6)
    half = tumor_point_cloud(small, AFFINE, n_points=64, coordinates="mni", scale_mm=0.5)
    np.testing.assert_allclose(half.points, half.points_mm / 0.5, rtol=1e-6)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="scale_mm"):
            tumor_point_cloud(small, AFFINE, coordinates="mni", scale_mm=bad)


def test_small_tumour_keeps_every_mesh_vertex_plus_surface_samples():
    """Fewer mesh vertices than n_points: exactly n_points - len(verts) surface points are added,
    so the farthest point sampling keeps every vertex of the mesh and adds points on its faces."""
    from gliotype.modalities.point_cloud import surface_mesh

    small = _sphere(shape=(10, 10, 10), centre=(5, 5, 5), radius=1.5)
    verts, _ = surface_mesh(small, AFFINE)
    n = len(verts) + 50
    pc = tumor_point_cloud(small, AFFINE, n_points=n, seed=2)
    got = {tuple(np.round(p, 3)) for p in pc.points_mm.astype(np.float64)}
    assert {tuple(np.round(v, 3)) for v in verts} <= got
    assert len(got) == n


def test_two_voxels_are_enough_one_is_not_and_labels_count_as_tumour():
    """The mask is any non-zero label: a two-voxel tumour has a surface, a single voxel (even
    labelled 5) is an error, and a label map gives the same cloud as its boolean mask."""
    two = np.zeros((6, 6, 6), np.uint8)
    two[2, 2, 2] = two[2, 2, 3] = 1
    assert tumor_point_cloud(two, AFFINE, n_points=16).points_mm.shape == (16, 3)
    one = np.zeros((6, 6, 6), np.uint8)
    one[3, 3, 3] = 5
    with pytest.raises(ValueError, match="too few"):
        tumor_point_cloud(one, AFFINE, n_points=16)
    labels = _sphere(shape=(20, 20, 20), centre=(10, 10, 10), radius=4.0).astype(np.uint8) * 2
    labels[10, 10, 8:12] = 4  # a second label inside the tumour
    a = tumor_point_cloud(labels, AFFINE, n_points=128)
    b = tumor_point_cloud(labels > 0, AFFINE, n_points=128)
    np.testing.assert_array_equal(a.points_mm, b.points_mm)
