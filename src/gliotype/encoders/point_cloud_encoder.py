"""f_P: the geometric encoder of the tumor point cloud (paper section 3.3; section 4.3).

"The points are first converted into a graph for each convolution by generating links
between points and their nearest neighbors within a predefined radius distance.
Secondly, convolution operators NNConv aggregate the points features (euclidean
coordinates of points) and the link features (distance between points) to the center
node. Finally, the farthest points sampling is adopted ... convolutional layers
(dimension: 32, 64, 64, 128, 128). After the last layer, a global attention pooling
is employed to produce attention scores for the points. Finally, a feed-forward
network (dimension: 256, 128, 32) outputs the geometric features."

The radii are in the units of x_P (``modalities.point_coordinates``): fractions of the
tumour's largest radius for ``unit_ball``, of ``point_scale_mm`` for ``mni``;
``radii_mm`` gives them in millimetres instead (:func:`encoder_radii`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.utils import scatter, softmax

from gliotype.config.schema import GeometricEncoderConfig, ModalitiesConfig
from gliotype.encoders.edge_conditioned_conv import EdgeConditionedConv
from gliotype.encoders.geometry import farthest_point_sample, radius_graph
from gliotype.encoders.mlp import MLP
from gliotype.errors import GliotypeError


def encoder_radii(geometric: GeometricEncoderConfig, modalities: ModalitiesConfig) -> list[float]:
    """The radius of each layer's graph in the units of x_P: ``radii``, or ``radii_mm``
    divided by ``point_scale_mm`` (millimetres are only meaningful for ``mni`` points)."""
    if geometric.radii_mm is None:
        return [float(r) for r in geometric.radii]
    if modalities.point_coordinates != "mni":
        raise GliotypeError("multimodal.point_cloud.radii_mm needs modalities.point_coordinates=mni "
                            "(unit_ball points have no millimetre scale); use radii")
    return [float(r) / modalities.point_scale_mm for r in geometric.radii_mm]


@dataclass
class PointCloudOutput:
    """u_P and the geometric attention a_P of the points that reach the last layer.

    ``index`` maps those points to rows of the input cloud, ``batch`` to their graph.
    ``attention`` sums to one within each graph (softmax of the gate).
    """

    features: torch.Tensor  # (B, fc[-1])
    attention: torch.Tensor  # (M,)
    index: torch.Tensor  # (M,)
    batch: torch.Tensor  # (M,)


class PointCloudEncoder(nn.Module):
    """u_P, a_P = f_P(x_P).

    Args:
        in_channels: point features (3: the coordinates of x_P).
        channels: NNConv output sizes (paper: 32, 64, 64, 128, 128).
        fc: feed-forward sizes (paper: 256, 128, 32).
        radii: neighbourhood radius of each layer, in x_P's units (open point 15; :func:`encoder_radii`).
        fps_ratios: fraction of points kept by farthest point sampling after each layer.
        max_neighbors: neighbour cap of the radius graph.
        edge_hidden: hidden size of each NNConv's edge network (distance -> weight matrix).
        pose_features: 0, or 4: the cloud's pose (centroid xyz and largest radius, in mm) divided
            by ``pose_scale_mm`` is appended to the pooled feature before the head (not in the paper).
        pose_scale_mm: the divisor of the pose (``modalities.point_scale_mm``).

    Shapes: ``pos (N, 3)``, ``batch (N,)``, ``pose (B, 4)`` (when ``pose_features``) -> :class:`PointCloudOutput`.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 64, 128, 128),
        fc: Sequence[int] = (256, 128, 32),
        radii: Sequence[float] = (0.15, 0.3, 0.35, 0.5, 0.6),
        fps_ratios: Sequence[float] = (0.25, 1.0, 0.5, 0.5, 1.0),
        max_neighbors: int = 16,
        edge_hidden: int = 16,
        pose_features: int = 0,
        pose_scale_mm: float = 100.0,
    ):
        super().__init__()
        if not len(channels) == len(radii) == len(fps_ratios):
            raise ValueError(
                f"channels, radii and fps_ratios need one value per layer: {len(channels)}, {len(radii)}, {len(fps_ratios)}"
            )
        self.radii, self.ratios, self.max_neighbors = list(radii), list(fps_ratios), max_neighbors
        self.convs = nn.ModuleList()
        c_in = in_channels
        for c_out in channels:
            edge_net = MLP([1, edge_hidden, c_in * c_out])
            self.convs.append(EdgeConditionedConv(c_in, c_out, edge_net, aggr="mean"))  # NNConv, faster
            c_in = c_out
        if pose_features not in (0, 4):
            raise ValueError(f"pose_features must be 0 or 4 (centroid xyz, radius), got {pose_features}")
        self.pose_features, self.pose_scale_mm = int(pose_features), float(pose_scale_mm)
        self.gate = nn.Linear(c_in, 1)
        self.head = MLP([c_in + self.pose_features, *fc])
        self.out_features = int(fc[-1])
        self._repr = f"PointCloudEncoder({in_channels}, channels={list(channels)}, fc={list(fc)})"

    def __repr__(self) -> str:
        return self._repr

    def forward(self, pos: torch.Tensor, batch: torch.Tensor | None = None,
                pose: torch.Tensor | None = None) -> PointCloudOutput:
        if batch is None:
            batch = torch.zeros(len(pos), dtype=torch.long, device=pos.device)
        x, index = pos, torch.arange(len(pos), device=pos.device)
        for conv, r, ratio in zip(self.convs, self.radii, self.ratios):
            edge_index = radius_graph(pos, r, batch, self.max_neighbors)
            dist = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=1, keepdim=True)
            x = torch.relu(conv(x, edge_index, dist))
            keep = farthest_point_sample(pos, ratio, batch)
            x, pos, batch, index = x[keep], pos[keep], batch[keep], index[keep]
        attention = softmax(self.gate(x).squeeze(-1), batch)
        n_graphs = int(batch.max()) + 1 if len(batch) else 0
        pooled = scatter(attention.unsqueeze(-1) * x, batch, dim=0, dim_size=n_graphs, reduce="sum")
        if self.pose_features:
            if pose is None or tuple(pose.shape) != (n_graphs, self.pose_features):
                raise ValueError(f"this f_P takes each cloud's pose ({n_graphs}, {self.pose_features}): centroid and "
                                 f"radius in mm, got {None if pose is None else tuple(pose.shape)}")
            pooled = torch.cat([pooled, pose.to(pooled.dtype) / self.pose_scale_mm], dim=1)
        return PointCloudOutput(self.head(pooled), attention, index, batch)
