"""Intensity normalisation inside the brain (paper section 4.2, "histogram matching").

``histogram``: piecewise-linear histogram standardisation (Nyul, Udupa & Zhang 2000).
The intensities of the landmark percentiles ``PERCENTILES`` (1, 10, 20, ..., 90, 99)
of the brain are mapped onto the fixed ``STANDARD_SCALE``, linearly in between and
beyond (the end segments are extended). Nyul learns the standard scale from training
images; here it is fixed so that each patient is processed on its own (no cohort
pass, per-patient caching): the landmarks sit at the standard normal quantiles of
their percentiles, rescaled so that p1 -> 10, p50 -> 50 and p99 -> 90. A brain whose
histogram is Gaussian is therefore only shifted and scaled (about 50 + 17.2 z), and
every brain shares the same landmark intensities. Values are clipped at 0 from below,
so the background (0) is never above tissue.

``zscore``: mean 0 and standard deviation 1 inside the brain.

Landmarks (and the z-score statistics) are estimated on the brain *without* the tumor
when a tumor mask is given, so the size of a bright tumor does not shift them; the
mapping is then applied to every brain voxel, tumor included. Outside the brain the
result is 0.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

#: Landmark percentiles (Nyul's "deciles" landmark set with p1 and p99 as ends).
PERCENTILES: tuple[float, ...] = (1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0)


def _standard_scale(percentiles=PERCENTILES, low: float = 10.0, high: float = 90.0) -> np.ndarray:
    z = norm.ppf(np.asarray(percentiles, dtype=np.float64) / 100.0)
    return low + (high - low) * (z - z[0]) / (z[-1] - z[0])


#: The fixed standard scale the landmarks are mapped to (p1 -> 10, p50 -> 50, p99 -> 90).
STANDARD_SCALE: tuple[float, ...] = tuple(float(v) for v in np.round(_standard_scale(), 6))


def landmarks(values: np.ndarray, percentiles=PERCENTILES) -> np.ndarray:
    """The intensities at ``percentiles`` of ``values`` (linear interpolation), strictly increasing.

    Tied landmarks (flat histograms of integer images) are separated by a tiny
    amount so the mapping stays a function. Raises ``ValueError`` for fewer than
    two distinct values.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size < 2 or np.ptp(values) <= 0:
        raise ValueError("the image is constant inside the brain")
    lm = np.percentile(values, percentiles)
    eps = 1e-6 * float(np.ptp(values))
    for i in range(1, lm.size):  # strictly increasing
        if lm[i] <= lm[i - 1]:
            lm[i] = lm[i - 1] + eps
    return lm


def piecewise_linear(x: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Map ``x`` through the increasing landmarks ``src`` -> ``dst``, extending the end segments."""
    x = np.asarray(x, dtype=np.float64)
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    out = np.interp(x, src, dst)
    lo, hi = x < src[0], x > src[-1]
    out[lo] = dst[0] + (x[lo] - src[0]) * (dst[1] - dst[0]) / (src[1] - src[0])
    out[hi] = dst[-1] + (x[hi] - src[-1]) * (dst[-1] - dst[-2]) / (src[-1] - src[-2])
    return out


def _reference(brain: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """The voxels the statistics come from: the brain minus ``exclude`` (unless too little is left)."""
    ref = brain
    if exclude is not None:
        healthy = brain & ~np.asarray(exclude, dtype=bool)
        if healthy.sum() >= max(100, 0.1 * brain.sum()):
            ref = healthy
    return ref


def histogram_standardize(image: np.ndarray, brain: np.ndarray, exclude: np.ndarray | None = None,
                          percentiles=PERCENTILES, scale=STANDARD_SCALE) -> np.ndarray:
    """Nyul piecewise-linear standardisation of ``image`` inside ``brain`` (float32, 0 outside).

    Landmarks come from ``brain & ~exclude`` (e.g. the tumor); the mapping is applied to
    every brain voxel and clipped at 0 from below.
    """
    image = np.asarray(image)
    brain = np.asarray(brain, dtype=bool)
    if len(percentiles) != len(scale) or len(scale) < 2:
        raise ValueError("percentiles and scale must have the same length (>= 2)")
    if np.any(np.diff(np.asarray(scale, dtype=np.float64)) <= 0):
        raise ValueError("the standard scale must be strictly increasing")
    src = landmarks(image[_reference(brain, exclude)], percentiles)
    out = np.zeros(image.shape, dtype=np.float32)
    out[brain] = np.maximum(piecewise_linear(image[brain], src, scale), 0.0)
    return out


def zscore(image: np.ndarray, brain: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """``(x - mean) / sd`` inside ``brain`` with statistics from ``brain & ~exclude`` (0 outside)."""
    image = np.asarray(image, dtype=np.float64)
    brain = np.asarray(brain, dtype=bool)
    ref = image[_reference(brain, exclude)]
    sd = float(ref.std()) if ref.size else 0.0
    if not np.isfinite(sd) or sd <= 0:
        raise ValueError("the image is constant inside the brain")
    out = np.zeros(image.shape, dtype=np.float32)
    out[brain] = (image[brain] - ref.mean()) / sd
    return out


def normalize(image: np.ndarray, brain: np.ndarray, method: str, exclude: np.ndarray | None = None) -> np.ndarray:
    """Dispatch on ``method``: ``histogram``, ``zscore`` or ``none`` (brain-masked raw values)."""
    if method == "histogram":
        return histogram_standardize(image, brain, exclude)
    if method == "zscore":
        return zscore(image, brain, exclude)
    if method == "none":
        return np.where(brain, np.asarray(image, dtype=np.float32), np.float32(0)).astype(np.float32)
    raise ValueError(f"unknown normalization {method!r} (histogram, zscore or none)")


__all__ = ["PERCENTILES", "STANDARD_SCALE", "histogram_standardize", "landmarks", "normalize",
           "piecewise_linear", "zscore"]
