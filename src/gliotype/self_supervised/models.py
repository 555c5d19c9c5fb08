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

With ``ssl.inputs = deviation`` each model also holds the normative statistics of its
inputs (:class:`~gliotype.self_supervised.deviation.NormativeDeviation`, buffers
``deviation.*`` / ``mri_deviation.*``, ``fa_deviation.*``): :meth:`prepare` turns a
patient's raw atlas samples into the rows the networks take.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gliotype.encoders.mlp import MLP
from gliotype.self_supervised.deviation import NormativeDeviation


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
    reconstruction in standardised units and the standardised input. ``deviation``
    (a :meth:`NormativeDeviation.spec`) adds the normative statistics of the inputs.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], latent: int, deviation: dict | None = None):
        super().__init__()
        self.deviation = NormativeDeviation(**deviation) if deviation else None
        if self.deviation is not None and self.deviation.out_features != in_features:
            raise ValueError(f"deviation inputs give {self.deviation.out_features} features, not {in_features}")
        self.norm = Standardize(in_features)
        self.encoder = MLP([in_features, *hidden, latent])
        self.decoder = MLP([latent, *reversed(list(hidden)), in_features])
        self.code_norm = Standardize(latent)

    def prepare(self, node: torch.Tensor, tumor: torch.Tensor | None = None) -> torch.Tensor:
        """One patient's ``(R, 4n)`` node samples -> the model's input rows (deviations or as they are)."""
        return node if self.deviation is None else self.deviation(node, tumor)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.norm(x))

    def attributes(self, node: torch.Tensor, tumor: torch.Tensor | None = None) -> torch.Tensor:
        """v_N of one patient's node samples: the standardised code, the node attribute of the brain network."""
        return self.code_norm(self.encode(self.prepare(node, tumor)))

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
        deviation: dict | None = None,
    ):
        super().__init__()
        # deviation: {"mri": spec, "fa": spec} of NormativeDeviation
        self.mri_deviation = NormativeDeviation(**deviation["mri"]) if deviation else None
        self.fa_deviation = NormativeDeviation(**deviation["fa"]) if deviation else None
        for dev, n in ((self.mri_deviation, mri_features), (self.fa_deviation, fa_features)):
            if dev is not None and dev.out_features != n:
                raise ValueError(f"deviation inputs give {dev.out_features} features, not {n}")
        self.mri_norm = Standardize(mri_features)
        self.fa_norm = Standardize(fa_features)
        self.mri_encoder = MLP([mri_features, *mri_hidden, latent])
        self.fa_encoder = MLP([fa_features, *fa_hidden, latent])
        self.mri_head = MLP([latent, *projection])
        self.fa_head = MLP([latent, *projection])
        self.code_norm = Standardize(latent)

    def prepare_mri(self, tract: torch.Tensor, tumor: torch.Tensor | None = None) -> torch.Tensor:
        """One patient's ``(T, 4n)`` tract samples -> the MRI branch's input rows."""
        return tract if self.mri_deviation is None else self.mri_deviation(tract, tumor)

    def prepare_fa(self, tract_fa: torch.Tensor, tumor: torch.Tensor | None = None) -> torch.Tensor:
        """One patient's ``(T, n)`` FA tract samples -> the FA branch's input rows."""
        return tract_fa if self.fa_deviation is None else self.fa_deviation(tract_fa, tumor)

    def encode(self, x_mri: torch.Tensor) -> torch.Tensor:
        """The raw code of the anatomical MRI branch (prepared rows)."""
        return self.mri_encoder(self.mri_norm(x_mri))

    def attributes(self, tract: torch.Tensor, tumor: torch.Tensor | None = None) -> torch.Tensor:
        """v_E of one patient's tract samples: the standardised code from anatomical MRI alone."""
        return self.code_norm(self.encode(self.prepare_mri(tract, tumor)))

    def forward(self, x_mri: torch.Tensor, x_fa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_E = g(v_E), z_E' = g'(v_E') of prepared rows."""
        z = self.mri_head(self.encode(x_mri))
        z_fa = self.fa_head(self.fa_encoder(self.fa_norm(x_fa)))
        return z, z_fa
