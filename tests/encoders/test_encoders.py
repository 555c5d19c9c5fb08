"""Shapes, invariances and the hierarchical attention of the three encoders (section 3.3)."""

import pytest
import torch

from gliotype.config import load_config
from gliotype.encoders import (
    BrainNetworkEncoder,
    ImageEncoder,
    PointCloudEncoder,
    edge_attention,
    scale_point_attention,
)


def _rotation(seed):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.linalg.det(q))


@pytest.mark.parametrize(
    "kwargs, input_shape, expected",
    [
        ({"channels": [4, 8], "fc": [16, 8], "input_size": (16, 16, 16)}, (3, 4, 16, 16, 16), (3, 8)),
        ({"channels": [4, 8, 8], "fc": [10, 5], "input_size": (24, 16, 32)}, (2, 4, 24, 16, 32), (2, 5)),
        ({"in_channels": 2, "channels": [4], "fc": [3], "input_size": (8, 8, 8)}, (1, 2, 8, 8, 8), (1, 3)),
    ],
)
def test_image_encoder_shapes(kwargs, input_shape, expected):
    model = ImageEncoder(**kwargs).eval()
    assert model(torch.randn(input_shape)).shape == expected


def test_image_encoder_pooling_max_sees_presence_avg_sees_extent():
    """One conv block, weights fixed to pass the input through: a max-pooled map keeps a lone
    bright voxel at full height, an average-pooled one scales with how much of the block is lit."""
    def through(pool):
        model = ImageEncoder(1, [1], [1], (2, 2, 2), pool).eval()
        conv, bn = model.features[0][0], model.features[0][1]
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1, 1] = 1.0
            bn.running_mean.zero_(), bn.running_var.fill_(1 - bn.eps)
        return model.features
    one, four = torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2)
    one[0, 0, 0, 0, 0] = 1.0
    four[0, 0, 0] = 1.0
    assert through("max")(one).item() == pytest.approx(through("max")(four).item()) == pytest.approx(1.0)
    assert through("avg")(one).item() == pytest.approx(1 / 8) and through("avg")(four).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="pool"):
        ImageEncoder(pool="median")


def test_image_encoder_rejects_inputs_too_small_for_its_pooling():
    with pytest.raises(ValueError, match="too small"):
        ImageEncoder(channels=[4, 4, 4, 4], input_size=(8, 8, 8))


def _cloud(n_graphs=3, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.nn.functional.normalize(torch.randn(n_graphs * n, 3, generator=g), dim=1)
    pos = pos * (1 + 0.1 * torch.rand(n_graphs * n, 1, generator=g))
    return pos, torch.arange(n_graphs).repeat_interleave(n)


def _tiny_point_encoder():
    c = load_config("tiny").multimodal.point_cloud
    return PointCloudEncoder(3, c.channels, c.fc, c.radii, c.fps_ratios, c.max_neighbors, c.edge_hidden).eval()


def test_point_cloud_encoder_outputs_and_attention():
    torch.manual_seed(0)
    model = _tiny_point_encoder()
    pos, batch = _cloud()
    out = model(pos, batch)
    assert out.features.shape == (3, 8)
    assert len(out.attention) == len(out.index) == len(out.batch) == 3 * 32
    sums = torch.zeros(3).index_add_(0, out.batch, out.attention)
    torch.testing.assert_close(sums, torch.ones(3))
    assert torch.equal(batch[out.index], out.batch)


def test_point_cloud_encoder_ignores_point_order():
    torch.manual_seed(0)
    model = _tiny_point_encoder()
    pos, batch = _cloud(n_graphs=1, seed=3)
    perm = torch.randperm(len(pos), generator=torch.Generator().manual_seed(1))
    a = model(pos, batch).features
    b = model(pos[perm], batch).features
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_edge_attention_is_the_mean_of_the_crossing_points():
    """Hand-built eq. 2: tract 0 crossed by points 0, 1; tract 2 by point 2; tract 1 by none."""
    a_p = torch.tensor([0.2, 0.6, 1.5, 9.0])
    crossing = torch.tensor([[0, 1, 2], [0, 0, 2]])
    got = edge_attention(a_p, crossing, n_edges=3, uncrossed=1.0)
    torch.testing.assert_close(got, torch.tensor([0.4, 1.0, 1.5]))
    got0 = edge_attention(a_p, crossing, n_edges=3, uncrossed=0.0)
    assert got0[1] == 0.0


def test_scaled_point_attention_has_mean_one_per_graph():
    batch = torch.tensor([0, 0, 0, 1, 1])
    a = torch.tensor([0.2, 0.3, 0.5, 0.9, 0.1])
    s = scale_point_attention(a, batch)
    torch.testing.assert_close(torch.stack([s[:3].mean(), s[3:].mean()]), torch.ones(2))


def _network(n_graphs=2, nodes=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    pairs = torch.tensor([(a, b) for a in range(nodes) for b in range(a + 1, nodes)]).T
    x = torch.randn(n_graphs * nodes, 4, generator=g)
    ei = torch.cat([pairs + k * nodes for k in range(n_graphs)], dim=1)
    ea = torch.randn(ei.shape[1], 3, generator=g)
    return x, ei, ea, torch.arange(n_graphs).repeat_interleave(nodes)


def _brain_encoder(**kw):
    torch.manual_seed(0)
    return BrainNetworkEncoder(4, 3, gat=[8, 8], fc=[16, 5], attention_head=[4, 8, 6], **kw).eval()


def test_brain_network_encoder_with_and_without_attention():
    x, ei, ea, batch = _network()
    model = _brain_encoder()
    plain = model(x, ei, ea, batch)
    assert plain.features.shape == (2, 5) and plain.node_attention is None
    att = model(x, ei, ea, batch, edge_weight=torch.rand(ei.shape[1]), tumor_latent=torch.randn(2, 6))
    assert att.features.shape == (2, 5) and att.node_attention.shape == (12,)
    assert att.node_attention.abs().max() <= 1.0 + 1e-6  # cosine similarity, eq. 3


def test_unit_edge_weights_change_nothing_and_other_weights_do():
    x, ei, ea, batch = _network()
    model = _brain_encoder()
    e_none = model.embed(x, ei, ea)
    e_one = model.embed(x, ei, ea, torch.ones(ei.shape[1]))
    e_half = model.embed(x, ei, ea, torch.full((ei.shape[1],), 0.1))
    torch.testing.assert_close(e_none, e_one)
    assert not torch.allclose(e_none, e_half)


@pytest.mark.parametrize("pooling", ["softmax", "sum", "mean"])
def test_node_attention_gets_gradients(pooling):
    x, ei, ea, batch = _network()
    model = _brain_encoder(node_pooling=pooling)
    tumor = torch.randn(2, 6, requires_grad=True)
    model(x, ei, ea, batch, torch.rand(ei.shape[1]), tumor).features.sum().backward()
    assert tumor.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.node_head.parameters())


def test_graphs_in_a_batch_do_not_interact():
    x, ei, ea, batch = _network(n_graphs=2)
    model = _brain_encoder()
    both = model(x, ei, ea, batch, torch.ones(ei.shape[1]), torch.randn(2, 6, generator=torch.Generator().manual_seed(1)))
    x2 = x.clone()
    x2[6:] += 5.0  # change the second graph only
    changed = model(x2, ei, ea, batch, torch.ones(ei.shape[1]), torch.randn(2, 6, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(both.features[0], changed.features[0])
    assert not torch.allclose(both.features[1], changed.features[1])


def test_every_encoder_reads_its_input():
    """Each patient's features depend on that patient's own input, through every input
    (image voxels; point positions; node and tract attributes): an encoder that ignored
    a part of its input, or read zeros, would give equal rows."""
    torch.manual_seed(0)
    image = ImageEncoder(4, [4, 8], [16, 8], (16, 16, 16)).eval()
    x = torch.randn(2, 4, 16, 16, 16)
    x[1] = x[0]
    x[1, :, 4:12, 4:12, 4:12] += 1.0  # the second patient differs inside the crop only
    out = image(x)
    assert not torch.allclose(out[0], out[1])

    points = _tiny_point_encoder()
    pos, batch = _cloud(n_graphs=2)
    pos[64:] = pos[:64] * torch.tensor([1.0, 1.0, 1.6])  # the same cloud, stretched
    feats = points(pos, batch).features
    assert not torch.allclose(feats[0], feats[1])

    for conv in ("gat", "transformer"):
        brain = _brain_encoder(conv=conv)
        nodes, ei, ea, batch = _network()
        same = brain(nodes, ei, ea, batch).features
        other_nodes = nodes.clone()
        other_nodes[6:] = nodes[:6] + 1.0
        other_edges = ea.clone()
        half = ei.shape[1] // 2
        other_edges[half:] = ea[:half] * 3.0
        nodes_only = brain(other_nodes, ei, ea, batch).features
        edges_only = brain(nodes, ei, other_edges, batch).features
        assert not torch.allclose(same[1], nodes_only[1]) and torch.allclose(same[0], nodes_only[0])
        assert not torch.allclose(same[1], edges_only[1]) and torch.allclose(same[0], edges_only[0])


def test_point_cloud_pose_reaches_the_features_and_only_through_the_head():
    """``pose_features=4``: the centroid and radius (mm / pose_scale_mm) join the pooled feature,
    so two clouds of the same shape at other places differ in u_P; the convolutions and the
    attention see only the (unit-ball) points; a missing or mis-sized pose is an error."""
    torch.manual_seed(0)
    enc = PointCloudEncoder(3, [8, 8], [16, 4], radii=[0.4, 0.8], fps_ratios=[0.5, 1.0], pose_features=4,
                            pose_scale_mm=100.0).eval()
    pos = torch.rand(64, 3) * 2 - 1
    batch = torch.repeat_interleave(torch.arange(2), 32)
    same = torch.tensor([[10.0, -20.0, 5.0, 30.0], [10.0, -20.0, 5.0, 30.0]])
    moved = torch.tensor([[10.0, -20.0, 5.0, 30.0], [-60.0, 40.0, 25.0, 12.0]])
    a, b = enc(pos, batch, same), enc(pos, batch, moved)
    torch.testing.assert_close(a.attention, b.attention)  # the points' part is untouched
    torch.testing.assert_close(a.features[0], b.features[0])
    assert not torch.allclose(a.features[1], b.features[1])
    # the head's input is [pooled, pose / 100]: a pose of 100 mm equals a pose of 1 at scale 1 mm
    unit = PointCloudEncoder(3, [8, 8], [16, 4], radii=[0.4, 0.8], fps_ratios=[0.5, 1.0], pose_features=4,
                             pose_scale_mm=1.0).eval()
    unit.load_state_dict(enc.state_dict())
    torch.testing.assert_close(unit(pos, batch, moved / 100.0).features, b.features)
    with pytest.raises(ValueError, match="pose"):
        enc(pos, batch)
    with pytest.raises(ValueError, match="pose"):
        enc(pos, batch, moved[:1])
    with pytest.raises(ValueError, match="pose_features"):
        PointCloudEncoder(3, [8], [4], radii=[0.4], fps_ratios=[1.0], pose_features=3)


def test_the_pose_option_builds_a_network_that_reads_the_stored_centroid_and_radius():
    from gliotype.multimodal.data import cloud_pose, collate
    from gliotype.multimodal.stage import build_model

    config = load_config("tiny", overrides=["multimodal.encoders=[point_cloud]", "multimodal.use_contrastive=false",
                                            "multimodal.point_cloud.pose=true"])
    net = build_model(config).eval()
    assert net.point_cloud.pose_features == 4 and net.point_cloud.pose_scale_mm == config.modalities.point_scale_mm
    items = [{"patient_id": f"P{i}", "points": torch.rand(40, 3) * 2 - 1,
              "pose": cloud_pose(torch.tensor([i * 30.0, 0.0, 0.0]), 20.0 + i)} for i in range(2)]
    batch = collate(items)
    assert batch.pose.shape == (2, 4) and batch.pose[1].tolist() == [30.0, 0.0, 0.0, 21.0]
    u = net(batch).features["u_P"]
    moved = collate([items[0], {**items[1], "pose": cloud_pose(torch.tensor([-50.0, 10.0, 0.0]), 21.0)}])
    assert torch.equal(net(moved).features["u_P"][0], u[0]) and not torch.equal(net(moved).features["u_P"][1], u[1])
