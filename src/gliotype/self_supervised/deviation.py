"""Node and edge inputs as deviations from the normative value at each position (``ssl.inputs``).

A row of atlas samples (one region or tract of one patient) is sequence-major: ``C``
channels (sequences) x ``n`` fixed voxel positions. Its deviation is

    d[k, c, j] = (x[k, c, j] - centre[k, c, j]) / scale[k, c, j]

with the centre and scale of row ``k`` at channel ``c`` and position ``j`` over the
self-supervised *training* patients only (``mean_sd``: mean and standard deviation;
``median_mad``: median and 1.4826 x median absolute deviation). Region and tract
identity, which is most of the raw rows' variance, is therefore removed before the
models see the data, and what is left is the patient.

Tumour (``tumor="mask"``): positions inside the patient's tumour mask are left out of
the statistics (of the training patients) and their deviation is set to 0 (the
normative value); the fraction of the row's positions the tumour covers is appended as
one more input, so the models know how much of the row was imputed. ``"keep"``
treats tumour positions like any other.

The statistics are buffers, saved with the model weights (safetensors) and reused to
encode every other patient, at training and at prediction time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gliotype.errors import GliotypeError

#: The scale of a position is at least this fraction of the median scale of its channel
#: (a position where the few training patients happen to agree must not explode).
SCALE_FLOOR = 0.1
#: Median absolute deviation -> standard deviation of a normal distribution.
MAD_TO_SD = 1.4826


def tile_positions(mask: np.ndarray | torch.Tensor, channels: int):
    """``(..., n)`` per-position flags -> ``(..., channels * n)`` in the sequence-major row layout."""
    if isinstance(mask, torch.Tensor):
        return mask.repeat(*([1] * (mask.dim() - 1)), channels)
    return np.tile(mask, (1,) * (mask.ndim - 1) + (channels,))


class NormativeDeviation(nn.Module):
    """Per-row, per-position normative statistics and the deviation of a patient's rows.

    Shapes: ``centre``, ``scale`` ``(rows, channels * positions)``; :meth:`forward`
    maps a patient's ``(rows, channels * positions)`` samples (and ``(rows, positions)``
    tumour flags) to ``(rows, out_features)``.
    """

    def __init__(self, rows: int, features: int, channels: int, tumor: str = "mask"):
        super().__init__()
        if tumor not in ("keep", "mask"):
            raise ValueError(f"tumor must be 'keep' or 'mask', got {tumor!r}")
        if features % channels:
            raise ValueError(f"{features} features are not {channels} channels of equal length")
        self.rows, self.features, self.channels, self.tumor = int(rows), int(features), int(channels), tumor
        self.register_buffer("centre", torch.zeros(rows, features))
        self.register_buffer("scale", torch.ones(rows, features))

    @property
    def positions(self) -> int:
        return self.features // self.channels

    @property
    def out_features(self) -> int:
        """Inputs of the model: the deviations, plus the tumour-covered fraction with ``mask``."""
        return self.features + (self.tumor == "mask")

    def spec(self) -> dict:
        """Constructor arguments (stored in ``models.json``)."""
        return {"rows": self.rows, "features": self.features, "channels": self.channels, "tumor": self.tumor}

    @torch.no_grad()
    def fit(self, samples: np.ndarray, tumor: np.ndarray | None = None, statistic: str = "mean_sd"):
        """Statistics of the training patients' ``(P, rows, features)`` samples.

        ``tumor`` ``(P, rows, positions)`` flags positions to leave out (with ``mask``); a
        position covered in all but one training patient uses every patient there.
        """
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 3 or x.shape[1:] != (self.rows, self.features):
            raise ValueError(f"samples must be (patients, {self.rows}, {self.features}), got {x.shape}")
        if self.tumor == "mask" and tumor is not None:
            covered = tile_positions(np.asarray(tumor, dtype=bool), self.channels)
            healthy = np.where(covered, np.nan, x)
            few = np.sum(~covered, axis=0) < 2  # not enough tumour-free patients at this position
            healthy[:, few] = x[:, few]
            x = healthy
        if statistic == "mean_sd":
            centre = np.nanmean(x, axis=0)
            scale = np.nanstd(x, axis=0, ddof=1) if x.shape[0] > 1 else np.zeros_like(centre)
        elif statistic == "median_mad":
            centre = np.nanmedian(x, axis=0)
            scale = MAD_TO_SD * np.nanmedian(np.abs(x - centre), axis=0)
        else:
            raise ValueError(f"statistic must be 'mean_sd' or 'median_mad', got {statistic!r}")
        scale = np.nan_to_num(scale, nan=0.0)
        n = self.positions
        for c in range(self.channels):  # floor per channel (sequences have their own units)
            block = scale[:, c * n:(c + 1) * n]
            floor = max(SCALE_FLOOR * float(np.median(block)), 1e-6)
            scale[:, c * n:(c + 1) * n] = np.maximum(block, floor)
        self.centre.copy_(torch.from_numpy(centre.astype(np.float32)))
        self.scale.copy_(torch.from_numpy(scale.astype(np.float32)))
        return self

    def forward(self, x: torch.Tensor, tumor: torch.Tensor | None = None) -> torch.Tensor:
        """``(rows, features)`` samples of one patient -> ``(rows, out_features)`` deviations."""
        if x.shape != self.centre.shape:
            raise GliotypeError(f"atlas samples of shape {tuple(x.shape)} do not match the normative statistics "
                                f"{tuple(self.centre.shape)} (another atlas or number of positions?)")
        d = (x - self.centre) / self.scale
        if self.tumor == "keep":
            return d
        if tumor is None:
            raise GliotypeError("deviation inputs with tumor=mask need the tumour flags of every position")
        tumor = torch.as_tensor(tumor, dtype=torch.bool)
        d = d.masked_fill(tile_positions(tumor, self.channels), 0.0)
        fraction = tumor.float().mean(1, keepdim=True)
        return torch.cat([d, fraction], dim=1)


__all__ = ["MAD_TO_SD", "NormativeDeviation", "SCALE_FLOOR", "tile_positions"]
