"""The two self-supervised models that build the brain network (paper section 3.2, Fig. 2).

- :class:`NodeAutoencoder`: region voxels (4 sequences x n positions) -> v_N (16-d)
  -> reconstruction; MSE.
- :class:`EdgeContrastiveModel`: tract voxels of anatomical MRI -> v_E and of FA ->
  v_E', projected by g, g' into a common space and aligned with eq. 1.

Inputs are standardised per feature with statistics of the training rows, kept as
buffers so they travel with the weights. So are the codes: :meth:`attributes` gives
v_N / v_E z-scored per dimension with the statistics of the training patients' codes
(the losses are scale-free, eq. 1 is a cosine, so the raw codes drift to magnitudes in
the thousands and made the brain-network encoder diverge; docs/design.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gliotype.encoders.mlp import MLP


class Standardize(nn.Module):
    """``(x - mean) / std`` per feature, statistics set once from training data."""

    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> Standardize:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class NodeAutoencoder(nn.Module):
    """MLP autoencoder of region voxels; the bottleneck is the node attribute v_N.

    Paper sizes: encoder 4000 -> 2048 -> 1024 -> 512 -> 128 -> 32 -> 16, decoder mirrored.

    Shapes: ``encode: (N, in_features) -> (N, latent)``; ``forward`` returns the
    reconstruction in standardised units and the standardised input.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], latent: int):
        super().__init__()
        self.norm = Standardize(in_features)
        self.encoder = MLP([in_features, *hidden, latent])
        self.decoder = MLP([latent, *reversed(list(hidden)), in_features])
        self.code_norm = Standardize(latent)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.norm(x))

    def attributes(self, x: torch.Tensor) -> torch.Tensor:
        """v_N: the standardised code, the node attribute of the brain network."""
        return self.code_norm(self.encode(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.norm(x)
        return self.decoder(self.encoder(target)), target


class EdgeContrastiveModel(nn.Module):
    """Two MLP encoders (anatomical MRI, FA) and projection heads g, g' (eq. 1).

    Paper sizes: MRI 4000 -> 2048 -> 1024 -> 512 -> 128 -> 32 -> 16; FA 1000 -> 1024 ->
    512 -> 128 -> 32 -> 16. After training only the MRI branch is used: v_E = f(x_MRI).
    """

    def __init__(
        self,
        mri_features: int,
        fa_features: int,
        mri_hidden: Sequence[int],
        fa_hidden: Sequence[int],
        latent: int,
        projection: Sequence[int],
    ):
        super().__init__()
        self.mri_norm = Standardize(mri_features)
        self.fa_norm = Standardize(fa_features)
        self.mri_encoder = MLP([mri_features, *mri_hidden, latent])
        self.fa_encoder = MLP([fa_features, *fa_hidden, latent])
        self.mri_head = MLP([latent, *projection])
        self.fa_head = MLP([latent, *projection])
        self.code_norm = Standardize(latent)

    def encode(self, x_mri: torch.Tensor) -> torch.Tensor:
        """The raw code of the anatomical MRI branch."""
        return self.mri_encoder(self.mri_norm(x_mri))

    def attributes(self, x_mri: torch.Tensor) -> torch.Tensor:
        """v_E: the standardised code from anatomical MRI alone, the edge attribute."""
        return self.code_norm(self.encode(x_mri))

    def forward(self, x_mri: torch.Tensor, x_fa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_E = g(v_E), z_E' = g'(v_E')."""
        z = self.mri_head(self.encode(x_mri))
        z_fa = self.fa_head(self.fa_encoder(self.fa_norm(x_fa)))
        return z, z_fa
