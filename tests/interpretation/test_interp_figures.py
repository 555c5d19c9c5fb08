"""Figures 7 and 8 (section 5.4) and the AAL-style region centroids."""

import numpy as np
import pytest

from gliotype.interpretation import connectome_matrix, figure7, figure8, region_centroids

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG


def test_figure7_from_volumes_and_from_slices(tmp_path):
    rng = np.random.default_rng(0)
    seqs = rng.normal(size=(4, 16, 16, 16)).astype(np.float32)
    cam = rng.uniform(size=(16, 16, 16)).astype(np.float32)
    pts = rng.normal(size=(40, 3)) * 10
    out = figure7(seqs, cam, pts, rng.uniform(size=40), rng.uniform(size=40), tmp_path / "f7.png",
                  patient_id="P0")
    assert out == tmp_path / "f7.png" and _is_png(out)
    out2 = figure7(seqs[:, :, :, 5], cam[:, :, 5], pts, rng.uniform(size=40), rng.uniform(size=40),
                   tmp_path / "sub" / "f7b.png")
    assert _is_png(out2)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["f7.png", "f7b.png"]  # no temp files
    with pytest.raises(ValueError, match="points"):
        figure7(seqs, cam, pts, np.zeros(3), np.zeros(40), tmp_path / "bad.png")


def test_region_centroids_in_mm():
    labels = np.zeros((10, 10, 10), dtype=np.int16)
    labels[0:2, 0:2, 0:2] = 3  # centre voxel (0.5, 0.5, 0.5)
    labels[6:10, 4, 4] = 7  # centre (7.5, 4, 4)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-10, -20, -30)
    c = region_centroids(labels, affine, [7, 3])
    np.testing.assert_allclose(c, [[5, -12, -22], [-9, -19, -29]])
    with pytest.raises(ValueError, match="absent"):
        region_centroids(labels, affine, [3, 5])


def test_figure8_single_and_grouped(tmp_path):
    coords = np.array([[-40, -20, 10], [40, -20, 10], [0, 40, 20], [0, -60, 0]], dtype=float)
    pairs = np.array([(1, 2), (1, 3), (2, 4), (3, 4), (1, 4), (2, 3)])
    probs = np.array([0.9, 0.2, 0.7, 0.6, 0.1, 0.5])
    assert _is_png(figure8(probs, pairs, coords, tmp_path / "f8.png", title="P1"))
    out = figure8({"P1 (IDH wild-type)": probs, "P2 (IDH mutant)": np.zeros(6)}, pairs - 1, coords,
                  tmp_path / "f8b.png", regions=range(4))
    assert _is_png(out)
    with pytest.raises(ValueError, match="not among the regions"):
        figure8(probs, pairs + 10, coords, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="probabilities"):
        figure8(probs[:3], pairs, coords, tmp_path / "bad.png")


def test_connectome_matrix_puts_each_probability_on_its_own_edge():
    pairs = np.array([(1, 2), (1, 3), (2, 4), (3, 4), (1, 4), (2, 3), (4, 2)])
    probs = np.array([0.9, 0.2, 0.7, 0.6, 0.1, 0.5, 0.8])
    adj = connectome_matrix(probs, pairs, regions=[1, 2, 3, 4], threshold=0.5)
    want = np.zeros((4, 4))
    want[0, 1] = want[1, 0] = 0.9
    want[1, 3] = want[3, 1] = 0.8  # (2, 4) and (4, 2): the higher one
    want[2, 3] = want[3, 2] = 0.6
    np.testing.assert_array_equal(adj, want)  # 0.5 is not > 0.5; 0.2 and 0.1 are dropped
    # the rows follow ``regions``: the same edges with 0-based labels in another row order
    order = [3, 1, 0, 2]  # row k holds label order[k]
    perm = connectome_matrix(probs, pairs - 1, regions=order, threshold=0.5)
    np.testing.assert_array_equal(perm, want[np.ix_(order, order)])


def test_figure8_draws_each_panel_with_its_own_probabilities(tmp_path, monkeypatch):
    """The glass brain receives, panel by panel, the matrix of that patient's edges."""
    from nilearn import plotting

    drawn = []
    real = plotting.plot_connectome

    def spy(adjacency, coords, **kwargs):
        drawn.append((np.array(adjacency), np.array(coords)))
        return real(adjacency, coords, **kwargs)

    monkeypatch.setattr(plotting, "plot_connectome", spy)
    coords = np.array([[-40, -20, 10], [40, -20, 10], [0, 40, 20], [0, -60, 0]], dtype=float)
    pairs = np.array([(1, 2), (1, 3), (2, 4), (3, 4)])
    p1, p2 = np.array([0.9, 0.1, 0.1, 0.1]), np.array([0.1, 0.1, 0.1, 0.7])
    figure8({"P1": p1, "P2": p2}, pairs, coords, tmp_path / "f8.png")
    assert len(drawn) == 2
    np.testing.assert_array_equal(drawn[0][0], connectome_matrix(p1, pairs, [1, 2, 3, 4]))
    np.testing.assert_array_equal(drawn[1][0], connectome_matrix(p2, pairs, [1, 2, 3, 4]))
    assert drawn[0][0][0, 1] == 0.9 and drawn[1][0][2, 3] == 0.7
    np.testing.assert_array_equal(drawn[0][1], coords)
