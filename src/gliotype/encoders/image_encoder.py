"""f_I: the 3D CNN image encoder (paper section 3.3, "Image encoder"; section 4.3).

"Five 3D convolutional layers (dimension 64, 128, 128, 256, 256), with four input
channels corresponding to the four MRI sequences. Batch normalization and max
pooling are performed for all convolutional layers. Three feed-forward layers
(dimension: 512, 256, 32) are followed to output features with a dimension of 32."
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gliotype.encoders.mlp import MLP
from gliotype.utils.memory_format import channels_last_block


class ImageEncoder(nn.Module):
    """u_I = f_I(x_I).

    Args:
        in_channels: MRI sequences (4).
        channels: output channels of each conv block (paper: 64, 128, 128, 256, 256).
        fc: sizes of the feed-forward layers (paper: 512, 256, 32); the last is dim(u_I).
        input_size: spatial size of x_I (paper: 120^3 at 2 mm), to size the first FC layer.
        pool: ``max`` (the paper) or ``avg`` pooling after each block. At small crops the
            last maps are a few voxels, and max pooling keeps only whether a pattern occurs,
            not how much of the lesion it covers (docs/design.md point 34).

    Each conv block: Conv3d(3x3x3, padding 1) -> BatchNorm3d -> ReLU -> MaxPool3d(2) (or AvgPool3d).
    ``self.features[-1]`` is the last conv block (the Grad-CAM target, section 4.5).

    Shapes: ``(N, in_channels, *input_size) -> (N, fc[-1])``.
    """

    def __init__(
        self,
        in_channels: int = 4,
        channels: Sequence[int] = (64, 128, 128, 256, 256),
        fc: Sequence[int] = (512, 256, 32),
        input_size: Sequence[int] = (120, 120, 120),
        pool: str = "max",
    ):
        super().__init__()
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        pooling = nn.MaxPool3d if pool == "max" else nn.AvgPool3d
        blocks, c_in, size = [], in_channels, list(input_size)
        for c_out in channels:
            blocks.append(
                nn.Sequential(
                    nn.Conv3d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm3d(c_out),
                    nn.ReLU(inplace=True),
                    pooling(2),
                )
            )
            c_in, size = c_out, [s // 2 for s in size]
        if min(size) < 1:
            raise ValueError(f"input_size {tuple(input_size)} is too small for {len(channels)} pooling steps")
        self.features = nn.Sequential(*blocks)
        channels_last_block(self.features[0])  # the same numbers within rounding, faster (utils/memory_format.py)
        self.head = MLP([c_in * size[0] * size[1] * size[2], *fc])
        self.out_features = int(fc[-1])
        self._repr = f"ImageEncoder({in_channels}, channels={list(channels)}, fc={list(fc)}, pool={pool!r})"

    def __repr__(self) -> str:
        return self._repr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))
