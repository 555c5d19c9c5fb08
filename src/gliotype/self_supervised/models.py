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

A sequence the patient lacks (``input.missing_sequences``) has all-zero samples; its block of
a prepared row (the columns of that channel, sequence-major) is replaced by the value that
standardises to 0, the training mean of what the model sees there (:func:`impute_missing`,
``missing=`` of :meth:`NodeAutoencoder.attributes` and :meth:`EdgeContrastiveModel.attributes`).
``ssl.sequence_dropout`` trains both models with that imputation (:func:`sequence_dropout`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gliotype.encoders.mlp import MLP
from gliotype.self_supervised.deviation import NormativeDeviation
from gliotype.self_supervised.inputs import MRI_CHANNELS


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


def sequence_indices(missing: Sequence[str | int]) -> list[int]:
    """Channel indices (:data:`gliotype.input.SEQUENCES` order) of sequence names or indices."""
    from gliotype.input import SEQUENCES

    return sorted({SEQUENCES.index(m) if isinstance(m, str) else int(m) for m in missing})


def impute_missing(prepared: torch.Tensor, norm: Standardize, channels: int,
                   missing_idx: Sequence[int]) -> torch.Tensor:
    """``prepared`` rows ``(N, F)`` with the block of every channel of ``missing_idx`` set to ``norm``'s
    mean of those columns, so it standardises to 0 (a copy; ``prepared`` is unchanged).

    The rows are sequence-major: channel ``c`` is columns ``c * n : (c + 1) * n`` with
    ``n = F // channels`` (deviation inputs may append one tumour-fraction column, never imputed).
    """
    missing_idx = sorted(set(int(c) for c in missing_idx))
    if not missing_idx:
        return prepared
    n = prepared.shape[-1] // channels
    out = prepared.clone()
    for c in missing_idx:
        if not 0 <= c < channels:
            raise ValueError(f"channel {c} is not one of {channels}")
        out[..., c * n:(c + 1) * n] = norm.mean[c * n:(c + 1) * n]
    return out


def sequence_dropout(rows: torch.Tensor, norm: Standardize, channels: int, probability: float,
                     generator: torch.Generator, within: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Training rows with, per row and with ``probability``, one random channel block imputed by
    :func:`impute_missing` (``ssl.sequence_dropout``). Two draws per row whatever the outcome, from
    ``generator`` only, so an epoch replays its draws when ``generator`` is reseeded. ``within``
    ``(start, stop, total)``: ``rows`` are rows ``start:stop`` of a batch of ``total`` (a training
    process's slice): the draws of all ``total`` are made, these rows' kept."""
    if probability <= 0:
        return rows
    start, stop, total = within if within is not None else (0, len(rows), len(rows))
    drop = (torch.rand(total, generator=generator) < probability)[start:stop].to(rows.device)
    which = torch.randint(0, channels, (total,), generator=generator)[start:stop].to(rows.device)
    n = rows.shape[-1] // channels
    out = rows.clone()
    for c in range(channels):
        hit = drop & (which == c)
        if hit.any():
            out[hit, c * n:(c + 1) * n] = norm.mean[c * n:(c + 1) * n]
    return out


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

    def attributes(self, node: torch.Tensor, tumor: torch.Tensor | None = None,
                   missing: Sequence[str | int] = ()) -> torch.Tensor:
        """v_N of one patient's node samples: the standardised code, the node attribute of the brain
        network. ``missing``: sequences the patient lacks, imputed (:func:`impute_missing`)."""
        rows = impute_missing(self.prepare(node, tumor), self.norm, MRI_CHANNELS, sequence_indices(missing))
        return self.code_norm(self.encode(rows))

    def forward(self, x: torch.Tensor, corrupted: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The reconstruction of the standardised ``x`` from ``corrupted`` (default ``x`` itself: a
        denoising autoencoder under ``ssl.sequence_dropout``), and the standardised ``x``."""
        target = self.norm(x)
        inputs = target if corrupted is None else self.norm(corrupted)
        return self.decoder(self.encoder(inputs)), target


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

    def attributes(self, tract: torch.Tensor, tumor: torch.Tensor | None = None,
                   missing: Sequence[str | int] = ()) -> torch.Tensor:
        """v_E of one patient's tract samples: the standardised code from anatomical MRI alone.
        ``missing``: sequences the patient lacks, imputed (:func:`impute_missing`)."""
        rows = impute_missing(self.prepare_mri(tract, tumor), self.mri_norm, MRI_CHANNELS, sequence_indices(missing))
        return self.code_norm(self.encode(rows))

    def forward(self, x_mri: torch.Tensor, x_fa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_E = g(v_E), z_E' = g'(v_E') of prepared rows."""
        z = self.mri_head(self.encode(x_mri))
        z_fa = self.fa_head(self.fa_encoder(self.fa_norm(x_fa)))
        return z, z_fa
