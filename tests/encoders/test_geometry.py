"""Radius graph and farthest point sampling in plain torch (no pyg-lib)."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from gliotype.encoders.geometry import farthest_point_sample, radius_graph


def _rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return torch.tensor(q * np.sign(np.linalg.det(q)), dtype=torch.float32)


def test_radius_graph_matches_a_kd_tree():
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(300, 3, generator=g)
    batch = torch.tensor([0] * 120 + [1] * 180)
    ei = radius_graph(pos, 0.15, batch, max_num_neighbors=1000)
    got = {(int(j), int(i)) for j, i in ei.T}
    expected = set()
    for lo, hi in ((0, 120), (120, 300)):
        tree = cKDTree(pos[lo:hi].numpy())
        for a, b in tree.query_pairs(0.15):
            expected |= {(a + lo, b + lo), (b + lo, a + lo)}
    assert got == expected


def test_radius_graph_caps_neighbours_at_the_nearest():
    pos = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0]])
    ei = radius_graph(pos, 1.0, max_num_neighbors=2)
    into_0 = sorted(int(j) for j, i in ei.T if i == 0)
    assert into_0 == [1, 2]
    assert radius_graph(pos[:1], 1.0).shape == (2, 0)


def test_fps_is_rotation_invariant_and_per_graph():
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(200, 3, generator=g)
    batch = torch.tensor([0] * 80 + [1] * 120)
    a = farthest_point_sample(pos, 0.25, batch)
    b = farthest_point_sample(pos @ _rotation(0).T, 0.25, batch)
    assert torch.equal(a, b)
    assert (a < 80).sum() == 20 and (a >= 80).sum() == 30
    assert torch.equal(farthest_point_sample(pos, 1.0, batch), torch.arange(200))


@pytest.mark.parametrize("ratio", [0.1, 0.5])
def test_fps_spreads_points(ratio):
    g = torch.Generator().manual_seed(2)
    pos = torch.rand(400, 3, generator=g)
    idx = farthest_point_sample(pos, ratio)
    rnd = torch.randperm(400, generator=g)[: len(idx)]

    def gap(p):
        d = torch.cdist(p, p) + torch.eye(len(p)) * 9
        return float(d.min())

    assert gap(pos[idx]) > gap(pos[rnd])


def test_radii_in_millimetres_give_the_same_graph_as_on_millimetre_points():
    """radii_mm / point_scale_mm on 'mni' points links exactly the pairs closer than radii_mm."""
    from gliotype.config import load_config
    from gliotype.encoders.point_cloud_encoder import encoder_radii

    config = load_config("tiny", overrides=["modalities.point_coordinates=mni", "modalities.point_scale_mm=80",
                                            "multimodal.point_cloud.radii_mm=[6, 12]"])
    radii = encoder_radii(config.multimodal.point_cloud, config.modalities)
    assert radii == pytest.approx([6 / 80, 12 / 80])
    g = torch.Generator().manual_seed(3)
    mm = torch.rand(200, 3, generator=g, dtype=torch.float64) * 40.0 + torch.tensor([10.0, -30.0, 20.0],
                                                                                     dtype=torch.float64)
    for r_mm, r in zip((6, 12), radii):
        a = radius_graph(mm, r_mm, max_num_neighbors=1000)
        b = radius_graph(mm / 80.0, r, max_num_neighbors=1000)
        assert a.shape[1] > 0 and {tuple(e) for e in a.T.tolist()} == {tuple(e) for e in b.T.tolist()}
    default = load_config("tiny")
    assert encoder_radii(default.multimodal.point_cloud, default.modalities) == default.multimodal.point_cloud.radii


def test_radii_in_millimetres_need_mni_points():
    from gliotype.config import load_config
    from gliotype.encoders.point_cloud_encoder import encoder_radii
    from gliotype.errors import GliotypeError

    config = load_config("tiny", overrides=["multimodal.point_cloud.radii_mm=[6, 12]"])
    with pytest.raises(GliotypeError, match="point_coordinates=mni"):
        encoder_radii(config.multimodal.point_cloud, config.modalities)
