"""Fixed voxel positions of regions and tracts, and gathering patient voxels at them."""

from __future__ import annotations

import numpy as np
import pytest

from gliotype.atlases import TractAtlas, gather, sample_node_positions, sample_tract_positions


def test_node_positions_deterministic_and_inside_their_region(aal):
    pos = sample_node_positions(aal, 1000, seed=0)
    assert pos.shape == (90, 1000) and pos.dtype == np.int64
    np.testing.assert_array_equal(pos, sample_node_positions(aal, 1000, seed=0))
    assert not np.array_equal(pos, sample_node_positions(aal, 1000, seed=1))
    flat = aal.labels.ravel()
    for r, lab in enumerate(aal.regions):
        assert np.all(flat[pos[r]] == lab)
    counts = aal.counts()
    big, small = int(np.argmax(counts)), int(np.argmin(counts))
    assert counts[big] >= 1000 and len(np.unique(pos[big])) == 1000  # no repeats when the region is large
    assert counts[small] < 1000 and len(np.unique(pos[small])) == counts[small]  # every voxel of a small one


def test_node_positions_do_not_depend_on_the_other_regions(aal):
    from gliotype.atlases import load_node_atlas

    six = load_node_atlas(None, n_regions=6)
    np.testing.assert_array_equal(sample_node_positions(six, 50, seed=3), sample_node_positions(aal, 50, seed=3)[:6])


def test_tract_positions_follow_the_probability(small_tracts):
    pos = sample_tract_positions(small_tracts, 1000, seed=0)
    assert pos.shape == (len(small_tracts), 1000) and pos.dtype == np.int64
    np.testing.assert_array_equal(pos, sample_tract_positions(small_tracts, 1000, seed=0))
    assert not np.array_equal(pos, sample_tract_positions(small_tracts, 1000, seed=5))
    for t in range(len(small_tracts)):
        idx, prob = small_tracts.tract(t)
        assert np.all(np.isin(pos[t], idx))
        drawn = prob[np.searchsorted(idx, pos[t])]
        assert drawn.mean() > prob.mean()  # high-probability voxels are drawn more often


def test_tract_positions_frequencies():
    shape = (4, 4, 4)
    atlas = TractAtlas.from_lists([[1, 2]], [np.array([3, 40])], [np.array([0.9, 0.1], np.float32)], shape, np.eye(4))
    assert isinstance(atlas, TractAtlas)
    pos = sample_tract_positions(atlas, 20000, seed=0)
    assert abs(np.mean(pos == 3) - 0.9) < 0.01


def test_gather_matches_a_loop():
    rng = np.random.default_rng(0)
    vols = rng.standard_normal((4, 5, 6, 7)).astype(np.float64)
    pos = rng.integers(0, 5 * 6 * 7, size=(3, 10))
    out = gather(vols, pos)
    assert out.shape == (3, 40) and out.dtype == np.float32
    ref = np.zeros((3, 40), np.float32)
    for k in range(3):
        for c in range(4):
            for j in range(10):
                x, y, z = np.unravel_index(pos[k, j], (5, 6, 7))
                ref[k, c * 10 + j] = vols[c, x, y, z]
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(gather(vols[1], pos), ref[:, 10:20])  # one 3D volume = one channel
    with pytest.raises(ValueError, match="out of range"):
        gather(vols, np.array([[0, 5 * 6 * 7]]))


def test_gather_on_the_template_grid(aal, small_tracts):
    nodes = sample_node_positions(aal, 100, seed=0)
    seqs = np.stack([aal.labels.astype(np.float32) * (c + 1) for c in range(4)])
    out = gather(seqs, nodes)
    assert out.shape == (90, 400)
    np.testing.assert_array_equal(out[4, :100], np.full(100, 5.0))  # region 5, channel 0
    np.testing.assert_array_equal(out[4, 300:], np.full(100, 20.0))  # channel 3
    tract = gather(seqs[:1], sample_tract_positions(small_tracts, 100, seed=0))
    assert tract.shape == (len(small_tracts), 100)
