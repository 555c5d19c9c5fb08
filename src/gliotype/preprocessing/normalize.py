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

Grey-matter readings (``histogram_gm``, ``zscore_gm``): the whole-brain landmarks of
``histogram`` sit largely on white matter (on T2 the low percentiles *are* white
matter), so mapping them onto a fixed scale erases the patient's white-matter level,
where the network phenotype lives. These readings take their statistics from grey
matter only (template GM probability >= :data:`GM_THRESHOLD`, brain, no tumor):
``histogram_gm`` maps the grey-matter landmarks onto the standard scale (extended
linearly beyond them, not clipped); ``zscore_gm`` is ``(x - median) / (IQR / 1.349)``
of grey matter (robust to the misregistered voxels at the tissue borders). White
matter then keeps its level relative to grey matter. The GM map is the template's, so
these run on the template grid after registration (:func:`normalize_on_template`);
before registration the image gets :func:`pre_registration_method` (``zscore``, an
affine map that the grey-matter reading then replaces exactly).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

#: Readings whose statistics come from grey matter on the template grid.
GM_METHODS: tuple[str, ...] = ("histogram_gm", "zscore_gm")
#: Voxels with template GM probability at least this are the grey-matter reference.
GM_THRESHOLD = 0.8
#: Fewer reference voxels than this (a tiny or misregistered brain) lowers the threshold to 0.5.
GM_MIN_VOXELS = 1000
#: Interquartile range of a standard normal distribution.
IQR_TO_SD = 1.349

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
                          percentiles=PERCENTILES, scale=STANDARD_SCALE, reference: np.ndarray | None = None,
                          clip: bool = True) -> np.ndarray:
    """Nyul piecewise-linear standardisation of ``image`` inside ``brain`` (float32, 0 outside).

    Landmarks come from ``reference`` when given, else from ``brain & ~exclude`` (e.g.
    the tumor); the mapping is applied to every brain voxel and (``clip``) clipped at 0
    from below.
    """
    image = np.asarray(image)
    brain = np.asarray(brain, dtype=bool)
    if len(percentiles) != len(scale) or len(scale) < 2:
        raise ValueError("percentiles and scale must have the same length (>= 2)")
    if np.any(np.diff(np.asarray(scale, dtype=np.float64)) <= 0):
        raise ValueError("the standard scale must be strictly increasing")
    ref = _reference(brain, exclude) if reference is None else np.asarray(reference, dtype=bool)
    src = landmarks(image[ref], percentiles)
    out = np.zeros(image.shape, dtype=np.float32)
    mapped = piecewise_linear(image[brain], src, scale)
    out[brain] = np.maximum(mapped, 0.0) if clip else mapped
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


def grey_matter_reference(brain: np.ndarray, gm_probability: np.ndarray, exclude: np.ndarray | None = None,
                          threshold: float = GM_THRESHOLD) -> np.ndarray:
    """Brain voxels with GM probability >= ``threshold`` outside ``exclude`` (0.5 when too few)."""
    brain = np.asarray(brain, dtype=bool)
    gm = np.asarray(gm_probability, dtype=np.float32)
    if gm.shape != brain.shape:
        raise ValueError(f"the grey-matter map {gm.shape} is not on the image grid {brain.shape}")
    keep = brain if exclude is None else brain & ~np.asarray(exclude, dtype=bool)
    ref = keep & (gm >= threshold)
    if ref.sum() < GM_MIN_VOXELS:
        ref = keep & (gm >= 0.5)
    if ref.sum() < 2:
        raise ValueError("no grey matter inside the brain to normalise on")
    return ref


def zscore_gm(image: np.ndarray, brain: np.ndarray, gm_probability: np.ndarray,
              exclude: np.ndarray | None = None) -> np.ndarray:
    """``(x - median) / (IQR / 1.349)`` inside ``brain`` with grey-matter statistics (0 outside)."""
    image = np.asarray(image, dtype=np.float64)
    brain = np.asarray(brain, dtype=bool)
    ref = image[grey_matter_reference(brain, gm_probability, exclude)]
    q25, q50, q75 = np.percentile(ref, [25, 50, 75])
    sd = (q75 - q25) / IQR_TO_SD
    if not np.isfinite(sd) or sd <= 0:
        sd = float(ref.std())
    if not np.isfinite(sd) or sd <= 0:
        raise ValueError("the image is constant in grey matter")
    out = np.zeros(image.shape, dtype=np.float32)
    out[brain] = (image[brain] - q50) / sd
    return out


def histogram_standardize_gm(image: np.ndarray, brain: np.ndarray, gm_probability: np.ndarray,
                             exclude: np.ndarray | None = None) -> np.ndarray:
    """Nyul standardisation with grey-matter landmarks, not clipped (white matter keeps its level)."""
    ref = grey_matter_reference(brain, gm_probability, exclude)
    return histogram_standardize(image, brain, reference=ref, clip=False)


def pre_registration_method(method: str) -> str:
    """The normalisation applied before registration: ``zscore`` for the grey-matter readings."""
    return "zscore" if method in GM_METHODS else method


def normalize_on_template(image: np.ndarray, brain: np.ndarray, method: str, gm_probability: np.ndarray,
                          exclude: np.ndarray | None = None) -> np.ndarray:
    """The grey-matter readings on the template grid (``gm_probability``: the template GM map)."""
    if method == "zscore_gm":
        return zscore_gm(image, brain, gm_probability, exclude)
    if method == "histogram_gm":
        return histogram_standardize_gm(image, brain, gm_probability, exclude)
    raise ValueError(f"{method!r} is not a grey-matter normalisation ({', '.join(GM_METHODS)})")


def normalize(image: np.ndarray, brain: np.ndarray, method: str, exclude: np.ndarray | None = None,
              gm_probability: np.ndarray | None = None) -> np.ndarray:
    """Dispatch on ``method``: ``histogram``, ``zscore``, ``none`` (brain-masked raw values), or
    ``histogram_gm`` / ``zscore_gm`` (need ``gm_probability`` on the image grid)."""
    if method == "histogram":
        return histogram_standardize(image, brain, exclude)
    if method == "zscore":
        return zscore(image, brain, exclude)
    if method == "none":
        return np.where(brain, np.asarray(image, dtype=np.float32), np.float32(0)).astype(np.float32)
    if method in GM_METHODS:
        if gm_probability is None:
            raise ValueError(f"normalization {method} needs the grey-matter map on the image grid")
        return normalize_on_template(image, brain, method, gm_probability, exclude)
    raise ValueError(f"unknown normalization {method!r} (histogram, zscore, none, histogram_gm or zscore_gm)")


__all__ = ["GM_METHODS", "GM_THRESHOLD", "PERCENTILES", "STANDARD_SCALE", "grey_matter_reference",
           "histogram_standardize", "histogram_standardize_gm", "landmarks", "normalize", "normalize_on_template",
           "piecewise_linear", "pre_registration_method", "zscore", "zscore_gm"]
