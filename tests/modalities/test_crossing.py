"""Points crossing tracts (eq. 2 mapping): threshold and radius behave as documented."""

import numpy as np

from gliotype.modalities.crossing import point_tract_crossing, tract_matrix

SHAPE = (10, 10, 10)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
AFFINE[:3, 3] = [-10.0, -10.0, -10.0]


def _atlas():
    # tract 0: a line along the first axis at (j, k) = (5, 5), probability 0.9
    # tract 1: one voxel (2, 2, 2) with probability 0.1 (below the threshold)
    line = [np.ravel_multi_index((i, 5, 5), SHAPE) for i in range(10)]
    return tract_matrix([np.array(line), np.array([np.ravel_multi_index((2, 2, 2), SHAPE)])],
                        [np.full(10, 0.9), np.array([0.1])], int(np.prod(SHAPE)))


def _mm(ijk):
    return np.asarray(ijk, float) * 2.0 - 10.0


def test_points_on_near_and_far_from_a_tract():
    m = _atlas()
    pts = np.stack([_mm((3, 5, 5)), _mm((3, 6, 5)), _mm((3, 8, 5)), _mm((2, 2, 2))])
    pairs = point_tract_crossing(pts, m, SHAPE, AFFINE, threshold=0.2, radius_mm=2.0)
    assert {tuple(p) for p in pairs.T} == {(0, 0), (1, 0)}  # on, one voxel away; not three away; 0.1 < 0.2
    pairs0 = point_tract_crossing(pts, m, SHAPE, AFFINE, threshold=0.2, radius_mm=0.0)
    assert {tuple(p) for p in pairs0.T} == {(0, 0)}
    low = point_tract_crossing(pts, m, SHAPE, AFFINE, threshold=0.05, radius_mm=0.0)
    assert (3, 1) in {tuple(p) for p in low.T}


def test_points_outside_the_grid_cross_nothing():
    pairs = point_tract_crossing(np.array([[500.0, 0, 0]]), _atlas(), SHAPE, AFFINE)
    assert pairs.shape == (2, 0)
