"""The multi-modal network of Fig. 1B and Algorithm 1 (paper section 3.3).

Encoders f_I, f_P, f_B (any subset, for the ablations of Table 4), projection heads
g_I, g_P, g_B (32 -> 64 -> 128 -> 128) and g_T (64 -> 64 -> 128 -> 128), the
hierarchical attention that links them, and a BCE classification head on the
concatenated features (the "multi-task" training of section 4.4, open point 8).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from gliotype.config.schema import MultiModalConfig
from gliotype.encoders import (
    MLP,
    BrainNetworkEncoder,
    ImageEncoder,
    PointCloudEncoder,
    edge_attention,
    scale_point_attention,
)
from gliotype.losses import bilevel_contrastive_loss, cross_modal_contrastive
from gliotype.modalities.tumor_image import COMPARTMENTS, SEQUENCE_CHANNELS

#: values of :func:`compartment_summary`: each compartment's share, then each sequence's z-score in it
COMPARTMENT_SUMMARY = len(COMPARTMENTS) * (1 + SEQUENCE_CHANNELS)


@dataclass
class MultiModalBatch:
    """A minibatch of B patients, every modality stacked PyG-style.

    ``crossing`` holds ``(point row, global tract index)`` pairs: which tracts each
    input point crosses (eq. 2), computed from unrotated MNI coordinates.
    """

    tumor_image: torch.Tensor | None = None  # (B, 4, D, H, W)
    points: torch.Tensor | None = None  # (N, 3) normalised
    points_batch: torch.Tensor | None = None  # (N,)
    pose: torch.Tensor | None = None  # (B, 4) each cloud's centroid (template mm) and largest radius (mm)
    crossing: torch.Tensor | None = None  # (2, C)
    node_x: torch.Tensor | None = None  # (B * R, F)
    edge_index: torch.Tensor | None = None  # (2, B * T), one direction per tract
    edge_attr: torch.Tensor | None = None  # (B * T, F)
    node_batch: torch.Tensor | None = None  # (B * R,)
    n_tracts: int = 0  # T per patient
    label: torch.Tensor | None = None  # (B,), -1 unknown
    patient_id: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.patient_id)


@dataclass
class MultiModalOutput:
    features: dict[str, torch.Tensor]  # u_I, u_P, u_T, u_B (those available)
    latents: dict[str, torch.Tensor]  # z_I, z_P, z_T, z_B
    logit: torch.Tensor | None
    point_attention: torch.Tensor | None = None
    point_index: torch.Tensor | None = None
    edge_attention: torch.Tensor | None = None
    node_attention: torch.Tensor | None = None
    # (prediction, target) of the compartment head, (B, COMPARTMENT_SUMMARY) each (``image.compartment_weight``)
    compartments: tuple[torch.Tensor, torch.Tensor] | None = None


def compartment_summary(x_i: torch.Tensor) -> torch.Tensor:
    """What the compartment head predicts (docs/design.md point 49), read off x_I ``(B, C, D, H, W)``
    whose last three channels are the compartments (necrotic / non-enhancing core, edema,
    enhancing; ``modalities.image_label_channels``): each compartment's share of the lesion's
    voxels, then each sequence's mean inside each compartment as a z-score over the whole lesion
    (sequence-major; the same for every intensity scale and offset, clipped to +-10),
    ``(B, 3 + 4 x 3)``. An absent compartment has share 0 and z-scores 0."""
    parts = x_i[:, -len(COMPARTMENTS):].flatten(2)  # (B, 3, V)
    sequences = x_i[:, :SEQUENCE_CHANNELS].flatten(2)  # (B, 4, V)
    volume = parts.sum(2)  # (B, 3)
    size = volume.sum(1, keepdim=True).clamp_min(1e-6)  # (B, 1)
    sums = torch.einsum("bsv,bcv->bsc", sequences, parts)  # (B, 4, 3)
    mean = sums.sum(2) / size  # (B, 4): over the whole lesion
    spread = ((sequences - mean.unsqueeze(2)) ** 2 * parts.sum(1, keepdim=True)).sum(2) / size
    means = sums / volume.clamp_min(1e-6).unsqueeze(1)
    z = (means - mean.unsqueeze(2)) / spread.sqrt().clamp_min(1e-6).unsqueeze(2)
    z = torch.where(volume.unsqueeze(1) > 0, z.clamp(-10.0, 10.0), torch.zeros_like(z))
    return torch.cat([volume / size, z.flatten(1)], dim=1)


@torch.no_grad()
def standardised_summary(x_i: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """:func:`compartment_summary` of x_I on the pretraining's scale (point 50)."""
    return (compartment_summary(x_i) - mean) / std


class MultiModalNet(nn.Module):
    """Algorithm 1: features, attention and projected latents of every patient in a batch.

    Args:
        config: the ``multimodal`` section (encoder sizes, which encoders, switches).
        crop_size: spatial size of x_I.
        node_features, edge_features: sizes of v_N and v_E (16).
    """

    def __init__(self, config: MultiModalConfig, crop_size=(120, 120, 120), node_features=16, edge_features=16,
                 image_channels: int | None = None, point_radii: list[float] | None = None,
                 point_scale_mm: float = 100.0):
        """``image_channels``, ``point_radii`` and ``point_scale_mm`` follow the modalities config (a
        ring channel, radii in mm, the pose's divisor); ``None`` takes ``image.in_channels`` and
        ``point_cloud.radii``."""
        super().__init__()
        self.config = config
        enc = set(config.encoders)
        if not enc:
            raise ValueError("at least one encoder is needed")
        c, h = config, config.heads
        if config.brain_network.node_attention_head[-1] != h.tumor[-1]:
            raise ValueError("node_attention_head must end in the size of g_T's output (eq. 3 compares them)")
        self.image = (ImageEncoder(image_channels or c.image.in_channels, c.image.channels, c.image.fc, crop_size,
                                   c.image.pool)
                      if "image" in enc else None)
        p = c.point_cloud
        self.point_cloud = (
            PointCloudEncoder(3, p.channels, p.fc, point_radii or p.radii, p.fps_ratios, p.max_neighbors,
                              p.edge_hidden, pose_features=4 if p.pose else 0, pose_scale_mm=point_scale_mm)
            if "point_cloud" in enc
            else None
        )
        b = c.brain_network
        self.brain_network = (
            BrainNetworkEncoder(node_features, edge_features, b.gat, b.fc, b.node_attention_head,
                                b.node_pooling, b.node_temperature, b.heads, conv=b.conv, residual=b.residual,
                                norm=b.norm, jumping_knowledge=b.jumping_knowledge,
                                edge_attention_mode=b.edge_attention_mode)
            if "brain_network" in enc
            else None
        )
        tumor_dim = (c.image.fc[-1] if self.image else 0) + (p.fc[-1] if self.point_cloud else 0)
        tumor_level = c.use_contrastive and self.image is not None and self.point_cloud is not None
        brain_level = c.use_contrastive and self.brain_network is not None and tumor_dim > 0
        attention = c.use_attention and self.brain_network is not None and tumor_dim > 0
        self.g_image = MLP([c.image.fc[-1], *h.modality[1:]]) if tumor_level else None
        self.g_points = MLP([p.fc[-1], *h.modality[1:]]) if tumor_level else None
        self.g_brain = MLP([b.fc[-1], *h.modality[1:]]) if brain_level else None
        self.g_tumor = (
            MLP([tumor_dim, *h.tumor[1:]]) if brain_level or (attention and b.share_tumor_head) else None
        )
        self.g_tumor_attention = MLP([tumor_dim, *h.tumor[1:]]) if attention and not b.share_tumor_head else None
        feat_dim = tumor_dim + (b.fc[-1] if self.brain_network else 0)
        self.classifier = MLP([feat_dim, *c.classifier_hidden, 1]) if c.use_bce else None
        # point 49: a linear head on u_I for compartment_summary (point 50: pretrained with f_I)
        self.compartment_head = (nn.Linear(c.image.fc[-1], COMPARTMENT_SUMMARY)
                                 if self.image is not None and (c.image.compartment_weight > 0
                                                                or c.image.pretrain_epochs > 0) else None)
        if self.compartment_head is not None and c.image.pretrain_epochs > 0:
            # the pretraining's standardisation of the summary (mean and SD over its patients), so the
            # head goes on predicting in the multi-modal training what it was pretrained on
            self.register_buffer("compartment_mean", torch.zeros(COMPARTMENT_SUMMARY))
            self.register_buffer("compartment_std", torch.ones(COMPARTMENT_SUMMARY))

    def forward(self, batch: MultiModalBatch) -> MultiModalOutput:
        c = self.config
        feats: dict[str, torch.Tensor] = {}
        latents: dict[str, torch.Tensor] = {}
        out = MultiModalOutput(feats, latents, None)
        if self.image is not None:
            feats["u_I"] = self.image(batch.tumor_image)
            if c.image.compartment_weight > 0:
                out.compartments = (self.compartment_head(feats["u_I"]), self.compartment_target(batch.tumor_image))
            if self.g_image is not None:
                latents["z_I"] = self.g_image(feats["u_I"])
        if self.point_cloud is not None:
            pc = self.point_cloud(batch.points, batch.points_batch, batch.pose)
            feats["u_P"] = pc.features
            if self.g_points is not None:
                latents["z_P"] = self.g_points(pc.features)
            out.point_attention, out.point_index = pc.attention, pc.index
        tumor = [feats[k] for k in ("u_I", "u_P") if k in feats]
        if tumor:
            feats["u_T"] = torch.cat(tumor, dim=1)
        if self.brain_network is not None:
            edge_weight = tumor_latent = None
            if c.use_attention and tumor:
                if out.point_attention is not None:
                    edge_weight = self._edge_attention(batch, out.point_attention, out.point_index, pc.batch)
                    out.edge_attention = edge_weight
                head = self.g_tumor_attention or self.g_tumor
                tumor_latent = head(feats["u_T"])
            bn = self.brain_network(batch.node_x, batch.edge_index, batch.edge_attr, batch.node_batch,
                                    edge_weight, tumor_latent)
            feats["u_B"] = bn.features
            out.node_attention = bn.node_attention
            if self.g_brain is not None:
                latents["z_B"] = self.g_brain(bn.features)
                latents["z_T"] = self.g_tumor(feats["u_T"])
        if self.classifier is not None:
            parts = [feats[k] for k in ("u_T", "u_B") if k in feats]
            out.logit = self.classifier(torch.cat(parts, dim=1)).squeeze(-1)
        return out

    @torch.no_grad()
    def compartment_target(self, x_i: torch.Tensor) -> torch.Tensor:
        """What the compartment head predicts of x_I: :func:`compartment_summary`, standardised by
        the pretraining's statistics when f_I was pretrained (point 50)."""
        if hasattr(self, "compartment_mean"):
            return standardised_summary(x_i, self.compartment_mean, self.compartment_std)
        return compartment_summary(x_i)

    def _edge_attention(self, batch, attention, index, point_batch) -> torch.Tensor:
        """Eq. 2 over the batch, from the points that reach the attention pooling."""
        n_edges = batch.size * batch.n_tracts
        if batch.crossing is None or batch.crossing.numel() == 0:
            return torch.full((n_edges,), self.config.brain_network.uncrossed_edge_attention)
        # keep the crossings of the surviving points, renumbered to their rows in `attention`
        row_of = torch.full((len(batch.points),), -1, dtype=torch.long)
        row_of[index] = torch.arange(len(index))
        rows = row_of[batch.crossing[0]]
        keep = rows >= 0
        crossing = torch.stack([rows[keep], batch.crossing[1][keep]])
        scaled = scale_point_attention(attention, point_batch)
        return edge_attention(scaled, crossing, n_edges, self.config.brain_network.uncrossed_edge_attention)


def multimodal_loss(model: MultiModalNet, out: MultiModalOutput, label: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """BCE on labelled patients (if enabled) + L_multi (eq. 7, times ``contrastive.weight``) over the levels
    whose modalities exist (+ the compartment head's weighted MSE on every patient, ``image.compartment_weight``).

    With image and point cloud only, the tumor level alone; with the brain network and
    one tumor modality, the brain level alone (z_T from that modality); with all
    three, eq. 7 as printed.
    """
    c = model.config
    terms: dict[str, torch.Tensor] = {}
    z = out.latents
    if c.use_contrastive and label.numel() >= 2:
        cc = c.contrastive
        if {"z_I", "z_P", "z_T", "z_B"} <= z.keys():
            terms["contrastive"] = bilevel_contrastive_loss(z["z_I"], z["z_P"], z["z_T"], z["z_B"], cc.temperature,
                                                            cc.lam, cc.form)
        elif {"z_I", "z_P"} <= z.keys():
            terms["contrastive"] = 0.5 * (
                cross_modal_contrastive(z["z_I"], z["z_P"], cc.temperature, cc.form)
                + cross_modal_contrastive(z["z_P"], z["z_I"], cc.temperature, cc.form)
            ).mean()
        elif {"z_B", "z_T"} <= z.keys():
            terms["contrastive"] = cross_modal_contrastive(z["z_B"], z["z_T"], cc.temperature, cc.form).mean()
        if "contrastive" in terms and cc.weight != 1.0:
            terms["contrastive"] = cc.weight * terms["contrastive"]
    if out.compartments is not None:  # every patient of the batch, labelled or not (point 49)
        terms["compartments"] = c.image.compartment_weight * nn.functional.mse_loss(*out.compartments)
    if out.logit is not None:
        known = label >= 0
        if known.any():
            terms["bce"] = c.bce_weight * nn.functional.binary_cross_entropy_with_logits(out.logit[known], label[known])
    if not terms:
        raise ValueError("nothing to train: enable the contrastive loss (with two modalities) or the BCE head")
    total = sum(terms.values())
    return total, {k: float(v.detach()) for k, v in terms.items()}
