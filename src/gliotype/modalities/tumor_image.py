"""x_I: the focal tumor image (paper sections 3.2 and 4.2).

"The image data of focal tumor is obtained by assigning Boolean values on the
tumor masks and the MRI": the four sequences are multiplied by the binary tumor
mask, then cropped around the tumor to a fixed size on the 2 mm grid (paper:
120 x 120 x 120). Which labels count as tumor is a choice (docs/design.md, point 14).
Options beyond the paper: the mask dilated by a margin (a shell around the lesion,
so infiltration beyond the mask reaches f_I) and a last channel holding the label
mask itself (where the lesion ends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

# BraTS labels: 1 necrotic / non-enhancing core, 2 edema, 3 or 4 enhancing.
CORE_LABELS = (1, 3, 4)
SEQUENCE_CHANNELS = 4  # t1, t1c, t2, flair

Labels = Literal["whole", "core"] | Sequence[int]


def tumor_binary_mask(mask: np.ndarray, labels: Labels = "whole") -> np.ndarray:
    """Boolean tumor mask: every label > 0 (``whole``), the core labels 1, 3, 4 (``core``)
    or the given list of labels."""
    if isinstance(labels, str):
        if labels == "whole":
            return np.asarray(mask) > 0
        if labels == "core":
            return np.isin(mask, CORE_LABELS)
        raise ValueError(f"labels must be 'whole', 'core' or a list of labels, got {labels!r}")
    if len(labels) == 0 or any(int(v) < 1 for v in labels):
        raise ValueError(f"labels must be 'whole', 'core' or a list of labels >= 1, got {list(labels)!r}")
    return np.isin(mask, [int(v) for v in labels])


def tumor_region(mask: np.ndarray, labels: Labels, min_voxels: int) -> tuple[np.ndarray, bool]:
    """The region of ``labels``, or the whole tumour when it has fewer than ``min_voxels`` voxels.

    Returns the boolean mask and whether it fell back to the whole tumour.
    """
    binary = tumor_binary_mask(mask, labels)
    if (isinstance(labels, str) and labels == "whole") or int(binary.sum()) >= min_voxels:
        return binary, False
    return tumor_binary_mask(mask, "whole"), True


def dilate_mm(binary: np.ndarray, margin_mm: float, spacing_mm: Sequence[float]) -> np.ndarray:
    """Voxels within ``margin_mm`` (Euclidean, voxel centres) of ``binary``; itself when the margin is 0."""
    binary = np.asarray(binary, dtype=bool)
    if margin_mm <= 0 or not binary.any():
        return binary
    return ndimage.distance_transform_edt(~binary, sampling=[float(s) for s in spacing_mm]) <= margin_mm


#: BraTS compartments (``label_channels``, the audit's descriptors): necrotic / non-enhancing
#: core, edema, enhancing, and their labels.
COMPARTMENTS = {"ncr": (1,), "ed": (2,), "et": (3, 4)}


def image_channels(ring_channel: bool, label_channels: bool = False) -> int:
    """Channels of x_I: the four sequences, the label mask with ``ring_channel``, one channel
    per BraTS compartment with ``label_channels``."""
    return SEQUENCE_CHANNELS + int(bool(ring_channel)) + len(COMPARTMENTS) * int(bool(label_channels))


@dataclass(frozen=True)
class TumorImage:
    """A cropped tumor image and where it came from.

    Attributes:
        data: ``(C, *crop_size)`` float32, zero outside the image mask (the tumor, dilated
            by the margin); then, if asked, the undilated label mask and the compartments (0/1).
        origin: voxel index on the source grid of ``data[:, 0, 0, 0]`` (may be negative:
            the crop is zero-padded where it leaves the grid).
        truncated: fraction of image-mask voxels that fell outside the crop.
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
    labels: Labels = "whole",
    margin_mm: float = 0.0,
    spacing_mm: Sequence[float] | None = None,
    ring_channel: bool = False,
    label_channels: bool = False,
) -> TumorImage:
    """Build x_I from co-registered sequences ``(C, X, Y, Z)`` and a label mask ``(X, Y, Z)``.

    The sequences are multiplied by the region of ``labels`` dilated by ``margin_mm``
    (``spacing_mm``: voxel size, needed when the margin is > 0). The crop is centred on
    the centre of the labels' bounding box; parts outside the grid are zero-padded.
    ``ring_channel`` appends the undilated label mask as a channel; ``label_channels`` then
    appends one 0/1 channel per compartment of :data:`COMPARTMENTS` (necrosis and
    non-enhancing core, edema, enhancing), over the whole crop: where the segmentation
    puts each part of the lesion, which the sequences alone show only through intensities.
    """
    sequences = np.asarray(sequences, dtype=np.float32)
    if sequences.ndim != 4 or sequences.shape[1:] != np.shape(mask):
        raise ValueError(f"sequences {sequences.shape} and mask {np.shape(mask)} do not share a grid")
    binary = tumor_binary_mask(mask, labels)
    if not binary.any():
        raise ValueError("the tumor mask is empty")
    if margin_mm > 0 and spacing_mm is None:
        raise ValueError("a margin in millimetres needs the voxel spacing")
    region = dilate_mm(binary, margin_mm, spacing_mm if spacing_mm is not None else (1.0, 1.0, 1.0))
    idx = np.argwhere(binary)
    centre = (idx.min(0) + idx.max(0) + 1) // 2
    origin = tuple(int(c - s // 2) for c, s in zip(centre, crop_size))
    masked = sequences * region[None]
    extra = [binary] if ring_channel else []
    if label_channels:
        extra += [np.isin(mask, labels) for labels in COMPARTMENTS.values()]
    if extra:
        masked = np.concatenate([masked, np.stack(extra).astype(np.float32)])
    data = np.zeros((masked.shape[0], *crop_size), dtype=np.float32)
    src, dst = _overlap(origin, crop_size, region.shape)
    data[(slice(None), *src)] = masked[(slice(None), *dst)]
    kept = int(region[dst].sum())
    return TumorImage(data=data, origin=origin, truncated=1.0 - kept / int(region.sum()))
