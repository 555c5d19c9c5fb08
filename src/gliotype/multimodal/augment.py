"""Rotation augmentation (section 4.3): "rotating both images and points cloud data with
the same angles". The brain network and the point-to-tract crossings (eq. 2, computed
from unrotated MNI coordinates) are left untouched (open point 16).

A cloud turns about its own centroid, so ``mni`` points (modalities.point_coordinates)
keep their location; a ``unit_ball`` cloud is centred, so that is the origin as before.

Sequence dropout (``multimodal.sequence_dropout``, not in the paper; docs/design.md point 37):
:class:`SequenceDropout` gives a training item, with that probability, as if one of its present
sequences were missing: its x_I channel zeroed and x_B the stored variant encoded without it."""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from torch.utils.data import Dataset
from torch_geometric.utils import scatter

from gliotype.errors import GliotypeError

from gliotype.multimodal.model import MultiModalBatch

CENTRED_TOL = 1e-4  # a cloud whose centroid is this close to the origin turns about the origin


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """``(3,)`` angles in radians about the first, second and third axis -> ``(3, 3)``."""
    a, b, c = angles.tolist()
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return (rz @ ry @ rx).float()


def rotate_volume(volume: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate ``(C, D, H, W)`` about its centre so that a point at voxel offset ``v`` (axes
    D, H, W) moves to ``rotation @ v`` (trilinear, zeros outside)."""
    flip = torch.eye(3).flip(0)  # (i, j, k) <-> grid_sample's (x, y, z) = (k, j, i)
    theta = torch.zeros(1, 3, 4)
    theta[0, :, :3] = flip @ rotation.cpu().T @ flip  # output -> input coordinates
    theta = theta.to(volume.device)
    size = (1, *volume.shape)
    grid = F.affine_grid(theta, size, align_corners=True)
    return F.grid_sample(volume.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def rotate_batch(batch: MultiModalBatch, max_degrees: float, generator: torch.Generator,
                 within: tuple[int, int, int] | None = None) -> MultiModalBatch:
    """A copy of ``batch`` whose tumor images and point clouds are rotated by the same
    random angles per patient (uniform in +-``max_degrees`` about each axis): the image
    about the crop centre, the cloud about its centroid. ``within`` ``(start, stop, total)``:
    ``batch`` is patients ``start:stop`` of a batch of ``total`` (a training process's slice,
    :mod:`gliotype.utils.distributed`); the rotations of all ``total`` are drawn, these kept."""
    if max_degrees <= 0:
        return batch
    limit = math.radians(max_degrees)
    start, stop, total = within if within is not None else (0, batch.size, batch.size)
    rotations = [rotation_matrix((torch.rand(3, generator=generator) * 2 - 1) * limit) for _ in range(total)]
    rotations = rotations[start:stop]
    image, points = batch.tumor_image, batch.points
    if image is not None:
        image = torch.stack([rotate_volume(v, r) for v, r in zip(image, rotations)])
    if points is not None:
        points = rotate_points(points, batch.points_batch, torch.stack(rotations).to(points.device))
    return replace(batch, tumor_image=image, points=points)


def rotate_points(points: torch.Tensor, batch: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate each cloud about its centroid: ``R_b (p - c_b) + c_b``.

    Shapes: ``points (N, 3)``, ``batch (N,)`` cloud index, ``rotations (B, 3, 3)`` -> ``(N, 3)``.
    A centred cloud (``|c_b| <= CENTRED_TOL``) skips the translation: the same rotation,
    bit for bit what rotating about the origin gives.
    """
    centre = scatter(points, batch, dim=0, dim_size=len(rotations), reduce="mean")
    moved = (centre.norm(dim=1, keepdim=True) > CENTRED_TOL)[batch]  # (N, 1)
    centre = torch.where(moved, centre[batch], torch.zeros_like(points))
    rotated = torch.einsum("nij,nj->ni", rotations[batch], points - centre)
    return torch.where(moved, rotated + centre, rotated)


class SequenceDropout(Dataset):
    """Items of ``dataset`` of which each, with ``probability``, drops one random present sequence.

    ``dataset``'s items carry ``present`` (the patient's sequences, :data:`gliotype.input.SEQUENCES`
    order) and, with the brain network, ``variants`` (sequence -> x_B ``(node_x, edge_attr)``
    encoded without it, :func:`gliotype.self_supervised.load_brain_network_variants`). A dropped
    item is a copy with ``tumor_image``'s channel of that sequence zeroed, ``node_x`` and
    ``edge_attr`` of the variant and ``dropped`` naming the sequence; a patient with one sequence
    keeps it. Two draws from ``generator`` per item whatever the outcome: reseeding it every epoch
    (``fit``'s streams) with the loader's order replays the epoch's choices exactly.
    """

    def __init__(self, dataset, probability: float, generator: torch.Generator):
        self.dataset, self.probability, self.generator = dataset, float(probability), generator

    def __len__(self) -> int:
        return len(self.dataset)

    def skip(self, index: int) -> None:
        """Advance the draws past item ``index`` without loading it (another training process's item)."""
        torch.rand((), generator=self.generator)
        torch.rand((), generator=self.generator)

    def __getitem__(self, index: int) -> dict:
        from gliotype.input import SEQUENCES

        item = self.dataset[index]
        drop = bool(torch.rand((), generator=self.generator) < self.probability)
        pick = float(torch.rand((), generator=self.generator))
        present = tuple(item.get("present", ()))
        if not drop or len(present) < 2:
            return item
        seq = present[min(int(pick * len(present)), len(present) - 1)]
        out = dict(item, dropped=seq)
        if "tumor_image" in item:
            image = item["tumor_image"].clone()
            image[SEQUENCES.index(seq)] = 0.0
            out["tumor_image"] = image
        if "node_x" in item:
            variants = item.get("variants") or {}
            if seq not in variants:
                raise GliotypeError(f"patient {item.get('patient_id')}: no brain network without {seq} (encode the "
                                    "brain networks with their variants: gliotype run with multimodal.sequence_dropout > 0)")
            out["node_x"], out["edge_attr"] = variants[seq]
        return out
