"""Fixed voxel positions and the gather (gliotype.atlases.sampling) on tiny hand-made atlases.

``test_atlas_sampling.py`` covers the built-in AAL and tract atlases; this file covers what
those leave out: the edge cases of the draws (exactly ``n`` voxels, unnormalised and
zero probabilities, several tracts on one pair), the errors, and ``gather`` at voxels
whose values are known.
"""

from __future__ import annotations

import numpy as np
import pytest

from gliotype.atlases.nodes import NodeAtlas
from gliotype.atlases.sampling import gather, sample_node_positions, sample_tract_positions
from gliotype.atlases.tracts import TractAtlas
from gliotype.errors import GliotypeError

SHAPE = (6, 6, 6)


def _node_atlas(regions=(3, 7, 9)) -> NodeAtlas:
    """Region 3: a 4x4x4 block (64 voxels); region 7: 5 voxels; region 9: exactly 10 voxels."""
    labels = np.zeros(SHAPE, np.int16)
    labels[0:4, 0:4, 0:4] = 3
    labels[5, 0:5, 5] = 7
    labels[4, 0:5, 4:6] = 9
    return NodeAtlas(labels=labels, affine=np.eye(4), regions=tuple(regions), names=tuple(f"R{r}" for r in regions),
                     source="test")


def _tracts(pairs, idx, prob) -> TractAtlas:
    return TractAtlas.from_lists(pairs, [np.asarray(i, np.int64) for i in idx],
                                 [np.asarray(p, np.float32) for p in prob], SHAPE, np.eye(4))


def test_node_positions_inside_their_region_sorted_and_seeded():
    atlas = _node_atlas()
    pos = sample_node_positions(atlas, n=8, seed=4)
    assert pos.shape == (3, 8) and pos.dtype == np.int64
    flat = atlas.labels.ravel()
    for r, label in enumerate(atlas.regions):
        assert np.all(flat[pos[r]] == label)
        assert np.all(np.diff(pos[r]) >= 0)  # sorted (C order)
    assert len(np.unique(pos[0])) == 8  # 64 voxels >= 8: without replacement
    np.testing.assert_array_equal(pos, sample_node_positions(atlas, n=8, seed=4))
    assert not np.array_equal(pos[0], sample_node_positions(atlas, n=8, seed=5)[0])


def test_a_small_region_gives_every_voxel_then_repeats():
    atlas = _node_atlas()
    pos = sample_node_positions(atlas, n=12, seed=0)
    small = atlas.voxels(7)  # 5 voxels
    values, counts = np.unique(pos[1], return_counts=True)
    np.testing.assert_array_equal(values, small)  # each of the 5 at least once
    assert counts.sum() == 12 and counts.max() >= 2
    exact = atlas.voxels(9)  # exactly 10 voxels, n = 10: each once
    np.testing.assert_array_equal(sample_node_positions(atlas, n=10, seed=0)[2], exact)


def test_node_positions_errors():
    with pytest.raises(GliotypeError, match="node positions must be >= 1, got 0"):
        sample_node_positions(_node_atlas(), n=0)
    with pytest.raises(GliotypeError, match="region 11 of the node atlas has no voxel"):
        sample_node_positions(_node_atlas(regions=(3, 11)), n=4)


def test_the_seed_is_taken_modulo_2_to_the_32():
    atlas = _node_atlas()
    np.testing.assert_array_equal(sample_node_positions(atlas, 6, seed=2 ** 32 + 5),
                                  sample_node_positions(atlas, 6, seed=5))


def test_tract_positions_follow_unnormalised_probabilities():
    atlas = _tracts([[1, 2]], [[10, 20, 30]], [[3.0, 1.0, 0.0]])  # 3 : 1, never voxel 30
    pos = sample_tract_positions(atlas, n=8000, seed=1)
    assert pos.shape == (1, 8000) and pos.dtype == np.int64
    assert set(np.unique(pos)) == {10, 20}
    assert abs(np.mean(pos == 10) - 0.75) < 0.02
    assert np.all(np.diff(pos[0]) >= 0)


def test_tracts_on_the_same_pair_draw_their_own_positions():
    idx, prob = [0, 1, 2, 3, 4, 5, 6, 7], [1.0] * 8
    atlas = _tracts([[1, 2], [1, 2], [4, 5]], [idx, idx, idx], [prob, prob, prob])
    pos = sample_tract_positions(atlas, n=50, seed=0)
    assert not np.array_equal(pos[0], pos[1])  # second tract of pair 1-2: another stream
    # a tract's stream is its pair (and rank on the pair), not its row: reorder the atlas
    swapped = _tracts([[4, 5], [1, 2], [1, 2]], [idx, idx, idx], [prob, prob, prob])
    other = sample_tract_positions(swapped, n=50, seed=0)
    np.testing.assert_array_equal(other[0], pos[2])
    np.testing.assert_array_equal(other[1:], pos[:2])


def test_tract_positions_errors():
    ok = _tracts([[1, 2]], [[1, 2]], [[0.5, 0.5]])
    with pytest.raises(GliotypeError, match="edge positions must be >= 1, got 0"):
        sample_tract_positions(ok, n=0)
    no_voxel = _tracts([[1, 2], [3, 4]], [[1, 2], []], [[0.5, 0.5], []])
    with pytest.raises(GliotypeError, match=r"tract 1 \(3-4\) of the tract atlas is empty"):
        sample_tract_positions(no_voxel, n=5)
    zero = _tracts([[6, 8]], [[1, 2]], [[0.0, 0.0]])
    with pytest.raises(GliotypeError, match=r"tract 0 \(6-8\) of the tract atlas is empty"):
        sample_tract_positions(zero, n=5)


def test_gather_reads_known_voxels_channel_major():
    index = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)  # value = flat index
    vols = np.stack([index, 1000 + index])
    pos = np.array([[0, 7, 215], [43, 43, 1]])
    out = gather(vols, pos)
    assert out.shape == (2, 6) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[0, 7, 215, 1000, 1007, 1215], [43, 43, 1, 1043, 1043, 1001]])
    # flat index 7 in C order is voxel (0, 1, 1)
    vols[0, 0, 1, 1] = -5.0
    assert gather(vols, pos)[0, 1] == -5.0


def test_gather_on_node_positions_reads_the_region_label():
    atlas = _node_atlas()
    pos = sample_node_positions(atlas, n=7, seed=0)
    out = gather(atlas.labels.astype(np.int16), pos)  # a 3D volume: one channel, any dtype
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.repeat(np.array([[3.0], [7.0], [9.0]], np.float32), 7, axis=1))


def test_gather_errors_and_empty_positions():
    vols = np.zeros((2, *SHAPE), np.float32)
    with pytest.raises(ValueError, match=r"volumes must be \(C, X, Y, Z\), got shape \(6, 6\)"):
        gather(np.zeros((6, 6)), np.zeros((1, 1), int))
    with pytest.raises(ValueError, match=r"positions must be \(K, n\), got shape \(3,\)"):
        gather(vols, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"positions out of range for volumes of shape \(6, 6, 6\)"):
        gather(vols, np.array([[0, -1]]))
    with pytest.raises(ValueError, match="out of range"):
        gather(vols, np.array([[216]]))
    assert gather(vols, np.zeros((0, 3), np.int64)).shape == (0, 6)
