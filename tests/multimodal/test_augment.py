"""Rotation augmentation of point clouds about each cloud's centroid (modalities.point_coordinates)."""

import torch

from gliotype.multimodal.augment import rotate_points, rotation_matrix


def _clouds():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 3, generator=g) * 0.1 + torch.tensor([0.3, -0.2, 0.4])  # 'mni': off the origin
    b = torch.randn(70, 3, generator=g) * 0.2 + torch.tensor([-0.5, 0.1, 0.0])
    return torch.cat([a, b]), torch.tensor([0] * 50 + [1] * 70)


def test_rotation_about_the_centroid_keeps_location_and_shape():
    points, batch = _clouds()
    rotations = torch.stack([rotation_matrix(torch.tensor([0.2, -0.3, 0.25])),
                             rotation_matrix(torch.tensor([-0.25, 0.1, 0.3]))])
    out = rotate_points(points, batch, rotations)
    for b in (0, 1):
        p, q = points[batch == b], out[batch == b]
        torch.testing.assert_close(q.mean(0), p.mean(0), atol=1e-6, rtol=0)  # location kept
        torch.testing.assert_close((q - q.mean(0)).norm(dim=1), (p - p.mean(0)).norm(dim=1))  # shape kept
        torch.testing.assert_close(q - q.mean(0), (p - p.mean(0)) @ rotations[b].T, atol=1e-6, rtol=0)
        assert (q - p).abs().max() > 0.01  # and it did rotate


def test_a_centred_cloud_turns_about_the_origin_bit_for_bit():
    """'unit_ball' clouds are centred: the result is exactly R p, as before the centroid rule."""
    points, batch = _clouds()
    points = points - torch.stack([points[batch == b].mean(0) for b in (0, 1)])[batch]
    rotations = torch.stack([rotation_matrix(torch.tensor([0.2, -0.3, 0.25]))] * 2)
    out = rotate_points(points, batch, rotations)
    assert torch.equal(out, torch.einsum("nij,nj->ni", rotations[batch], points))
