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
