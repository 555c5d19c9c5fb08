"""Encoders of the multi-modal framework (paper section 3.3) and their building blocks."""

from gliotype.encoders.brain_network_encoder import (
    BrainNetworkEncoder,
    BrainNetworkOutput,
    edge_attention,
    scale_point_attention,
)
from gliotype.encoders.image_encoder import ImageEncoder
from gliotype.encoders.mlp import MLP
from gliotype.encoders.point_cloud_encoder import PointCloudEncoder, PointCloudOutput

__all__ = [
    "MLP",
    "BrainNetworkEncoder",
    "BrainNetworkOutput",
    "ImageEncoder",
    "PointCloudEncoder",
    "PointCloudOutput",
    "edge_attention",
    "scale_point_attention",
]
