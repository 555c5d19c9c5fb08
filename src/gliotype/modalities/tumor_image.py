"""x_I: the focal tumor image (paper sections 3.2 and 4.2).

"The image data of focal tumor is obtained by assigning Boolean values on the
tumor masks and the MRI": the four sequences are multiplied by the binary tumor
mask, then cropped around the tumor to a fixed size on the 2 mm grid (paper:
120 x 120 x 120). Which labels count as tumor is a choice (docs/design.md, point 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

# BraTS labels: 1 necrotic / non-enhancing core, 2 edema, 3 or 4 enhancing.
CORE_LABELS = (1, 3, 4)


def tumor_binary_mask(mask: np.ndarray, labels: Literal["whole", "core"] = "whole") -> np.ndarray:
    """Boolean tumor mask: every label > 0 (``whole``) or the tumor core labels 1, 3, 4 (``core``)."""
    if labels == "whole":
        return np.asarray(mask) > 0
    if labels == "core":
        return np.isin(mask, CORE_LABELS)
    raise ValueError(f"labels must be 'whole' or 'core', got {labels!r}")


@dataclass(frozen=True)
class TumorImage:
    """A cropped tumor image and where it came from.

    Attributes:
        data: ``(C, *crop_size)`` float32, zero outside the tumor.
        origin: voxel index on the source grid of ``data[:, 0, 0, 0]`` (may be negative:
            the crop is zero-padded where it leaves the grid).
        truncated: fraction of tumor voxels that fell outside the crop.
    """

    data: np.ndarray
    origin: tuple[int, int, int]
    truncated: float

    def to_source(self, crop_map: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """Place a map on the crop grid (e.g. Grad-CAM) back onto the source grid (zeros elsewhere)."""
        out = np.zeros(shape, dtype=np.float32)
        src, dst = _overlap(self.origin, crop_map.shape, shape)
        out[dst] = crop_map[src]
        return out


def _overlap(origin, crop_shape, shape):
    """Slices of the crop and of the source grid where they overlap."""
    src, dst = [], []
    for o, c, s in zip(origin, crop_shape, shape):
        lo, hi = max(o, 0), min(o + c, s)
        dst.append(slice(lo, max(hi, lo)))
        src.append(slice(lo - o, max(hi, lo) - o))
    return tuple(src), tuple(dst)


def tumor_image(
    sequences: np.ndarray,
    mask: np.ndarray,
    crop_size: tuple[int, int, int] = (120, 120, 120),
    labels: Literal["whole", "core"] = "whole",
) -> TumorImage:
    """Build x_I from co-registered sequences ``(C, X, Y, Z)`` and a label mask ``(X, Y, Z)``.

    The crop is centred on the centre of the tumor's bounding box; parts outside the
    grid are zero-padded.
    """
    sequences = np.asarray(sequences, dtype=np.float32)
    if sequences.ndim != 4 or sequences.shape[1:] != np.shape(mask):
        raise ValueError(f"sequences {sequences.shape} and mask {np.shape(mask)} do not share a grid")
    binary = tumor_binary_mask(mask, labels)
    if not binary.any():
        raise ValueError("the tumor mask is empty")
    idx = np.argwhere(binary)
    centre = (idx.min(0) + idx.max(0) + 1) // 2
    origin = tuple(int(c - s // 2) for c, s in zip(centre, crop_size))
    masked = sequences * binary[None]
    data = np.zeros((sequences.shape[0], *crop_size), dtype=np.float32)
    src, dst = _overlap(origin, crop_size, binary.shape)
    data[(slice(None), *src)] = masked[(slice(None), *dst)]
    kept = int(binary[dst].sum())
    return TumorImage(data=data, origin=origin, truncated=1.0 - kept / int(binary.sum()))
