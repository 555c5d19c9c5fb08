"""The multi-modal network: gradients, ablation switches, augmentation (section 3.3, 4.4)."""

import pytest
import torch

from gliotype.multimodal import multimodal_loss
from gliotype.multimodal.augment import rotate_batch, rotate_volume, rotation_matrix
from gliotype.multimodal.data import collate
from multimodal_items import N_POINTS, R, T, make_items, make_model


def test_collate_offsets_every_index():
    batch = collate(make_items(3))
    assert batch.tumor_image.shape == (3, 4, 32, 32, 32) and batch.points.shape == (3 * N_POINTS, 3)
    assert batch.edge_index.max() == 3 * R - 1 and batch.edge_index.shape == (2, 3 * T)
    assert batch.crossing[0].max() == 3 * N_POINTS - 1 and batch.crossing[1].max() < 3 * T
    assert torch.equal(batch.node_batch[batch.edge_index[0]], torch.arange(3).repeat_interleave(T))


def test_gradients_reach_every_encoder_and_both_attention_modules():
    model = make_model().train()
    batch = collate(make_items(4))
    out = model(batch)
    loss, terms = multimodal_loss(model, out, batch.label)
    assert set(terms) == {"contrastive", "bce"}
    loss.backward()
    for name in ("image", "point_cloud", "brain_network", "g_image", "g_points", "g_brain", "g_tumor", "classifier"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name
    # node attention (eq. 3) and the geometric gate that feeds eq. 2
    assert all(p.grad.abs().sum() > 0 for p in model.brain_network.node_head.parameters())
    assert model.point_cloud.gate.weight.grad.abs().sum() > 0
    assert out.edge_attention.shape == (4 * T,) and out.node_attention.shape == (4 * R,)


@pytest.mark.parametrize(
    "encoders, absent",
    [
        ("[image]", ["point_cloud", "brain_network", "g_tumor"]),
        ("[image, point_cloud]", ["brain_network", "g_brain", "g_tumor"]),
        ("[point_cloud, brain_network]", ["image", "g_image"]),
        ("[image, brain_network]", ["point_cloud", "g_points"]),
    ],
)
def test_switching_an_encoder_off_removes_its_parameters(encoders, absent):
    model = make_model(f"multimodal.encoders={encoders}").train()
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert not names & set(absent)
    batch = collate(make_items(4))
    loss, _ = multimodal_loss(model, model(batch), batch.label)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_no_attention_and_no_contrastive_switches():
    model = make_model("multimodal.use_attention=false", "multimodal.use_contrastive=false").train()
    batch = collate(make_items(4))
    out = model(batch)
    assert out.edge_attention is None and out.node_attention is None
    _, terms = multimodal_loss(model, out, batch.label)
    assert set(terms) == {"bce"}
    model.zero_grad()
    out = model(batch)
    multimodal_loss(model, out, batch.label)[0].backward()
    assert all(p.grad is None for p in model.brain_network.node_head.parameters())


@pytest.mark.parametrize("encoders", ["[image, point_cloud, brain_network]", "[image, point_cloud]",
                                      "[point_cloud, brain_network]"])
def test_the_contrastive_weight_scales_l_multi_alone(encoders):
    """``multimodal.contrastive.weight`` w: L = BCE + w L_multi at every level set (design.md point 54)."""
    batch = collate(make_items(4))
    terms = {}
    for w in (1.0, 0.1):
        model = make_model(f"multimodal.encoders={encoders}", f"multimodal.contrastive.weight={w}").eval()
        with torch.no_grad():
            loss, terms[w] = multimodal_loss(model, model(batch), batch.label)
        assert float(loss) == pytest.approx(sum(terms[w].values()), rel=1e-6)
    assert terms[0.1]["contrastive"] == pytest.approx(0.1 * terms[1.0]["contrastive"], rel=1e-5)
    assert terms[0.1]["bce"] == pytest.approx(terms[1.0]["bce"], rel=1e-6)


def test_nothing_to_train_is_an_error():
    model = make_model("multimodal.encoders=[image]", "multimodal.use_bce=false").train()
    batch = collate(make_items(4))
    with pytest.raises(ValueError, match="nothing to train"):
        multimodal_loss(model, model(batch), batch.label)


def test_rotation_moves_volume_and_points_alike():
    rot = rotation_matrix(torch.tensor([0.0, 0.0, torch.pi / 2]))
    vol = torch.zeros(1, 9, 9, 9)
    vol[0, 6, 4, 4] = 1.0  # offset +2 along the first axis from the centre (4, 4, 4)
    moved = rotate_volume(vol, rot)
    where = torch.nonzero(moved[0] > 0.5)[0] - 4
    expected = (rot @ torch.tensor([2.0, 0.0, 0.0])).round()
    assert torch.equal(where.float(), expected)


def test_augmentation_rotates_nothing_the_brain_encoder_sees():
    batch = collate(make_items(4))
    rotated = rotate_batch(batch, 30.0, torch.Generator().manual_seed(0))
    assert not torch.allclose(rotated.points, batch.points)
    assert not torch.allclose(rotated.tumor_image, batch.tumor_image)
    for name in ("node_x", "edge_index", "edge_attr", "crossing", "label"):
        assert torch.equal(getattr(rotated, name), getattr(batch, name))
    # each cloud turns about its centroid: distances to it are kept, and so is the centroid
    for b in range(batch.size):
        p, q = batch.points[batch.points_batch == b], rotated.points[batch.points_batch == b]
        torch.testing.assert_close((q - q.mean(0)).norm(dim=1), (p - p.mean(0)).norm(dim=1))
        torch.testing.assert_close(q.mean(0), p.mean(0))


def test_a_few_steps_lower_the_loss():
    model = make_model().train()
    batch = collate(make_items(6))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss, _ = multimodal_loss(model, model(batch), batch.label)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
