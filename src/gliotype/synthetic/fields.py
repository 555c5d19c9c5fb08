"""Random numbers of one patient: its independent streams and the random fields drawn from them.

Every part of the renderer draws from its own stream (``STREAM_*``) of the patient's
seed sequence, so changing one latent leaves every other random field of the patient
unchanged; the smooth fields (cubic control grid, Gaussian-smoothed white noise) are
the building blocks of the warp, the tumour shape and the textures.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

#: The streams of a patient (``patient_rng`` component): warp, tumour shape, image
#: texture, acquisition (bias field, noise), FA noise, order of the disrupted paths.
STREAM_DEFORM, STREAM_SHAPE, STREAM_TEXTURE, STREAM_ACQ, STREAM_FA, STREAM_PATHS = range(6)


def patient_rng(seed: int, key: tuple[int, ...], component: int) -> np.random.Generator:
    """Independent stream ``component`` of the patient with spawn key ``key``.

    ``SeedSequence(seed).spawn(n)[i]`` has spawn key ``(i,)``; its own children are
    ``(i, c)``. Each part of the renderer has its own stream, so changing one latent
    leaves every random field of the patient unchanged.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key) + (component,)))


def smooth_field(rng: np.random.Generator, shape, spacing_vox: float, n: int = 1) -> np.ndarray:
    """``n`` smooth random fields on ``shape``: cubic interpolation of white noise on a
    control grid ``spacing_vox`` voxels apart (about unit standard deviation)."""
    coarse = [int(math.ceil(s / spacing_vox)) + 3 for s in shape]
    noise = rng.standard_normal((n, *coarse)).astype(np.float32)
    return np.stack([cubic_zoom(noise[j], shape) for j in range(n)])


#: The edge padding of the spline coefficients, as ``scipy.ndimage.zoom`` pads for ``mode="nearest"``.
_PAD = 12


def cubic_zoom(grid: np.ndarray, shape) -> np.ndarray:
    """``scipy.ndimage.zoom(grid, shape / grid.shape, order=3, mode="nearest", grid_mode=False)``
    evaluated axis by axis (generator version 3): the same cubic B-spline coefficients, then each
    axis's interpolation as a matrix product. 15 times faster; the float64 sums run in another
    order, so about 1 value in 10 million differs by 1 float32 ulp from ``ndimage.zoom``'s."""
    out = ndi.spline_filter(np.pad(grid, _PAD, mode="edge"), 3, output=np.float64, mode="nearest")
    for axis, (n_in, n_out) in enumerate(zip(grid.shape, shape)):
        out = np.moveaxis(np.tensordot(_cubic_weights(n_in, int(n_out)), out, axes=([1], [axis])), 0, axis)
    return out.astype(grid.dtype)


def _cubic_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in + 2 * _PAD)``: row ``o`` holds the cubic B-spline weights of the padded
    coefficients at ``x = o (n_in - 1) / (n_out - 1)``, the coordinate ``ndimage.zoom`` samples."""
    x = np.arange(n_out, dtype=np.float64) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    start = np.floor(x)
    t = x - start
    weights = np.stack([(1 - t) ** 3, 4 - 6 * t**2 + 3 * t**3, 1 + 3 * t + 3 * t**2 - 3 * t**3, t**3], axis=1) / 6
    matrix = np.zeros((n_out, n_in + 2 * _PAD))
    np.put_along_axis(matrix, start.astype(int)[:, None] + np.arange(-1, 3) + _PAD, weights, axis=1)
    return matrix


def skip_smooth_field(rng: np.random.Generator, shape, spacing_vox: float, n: int = 1) -> None:
    """Advance ``rng`` exactly as ``smooth_field`` would, without computing the field (the
    texture stream keeps the draws of generator version 1, whose remote field used them)."""
    rng.standard_normal((n, *[int(math.ceil(s / spacing_vox)) + 3 for s in shape]))


def gauss_noise(rng: np.random.Generator, shape, sigma_vox: float) -> np.ndarray:
    """White noise smoothed by a Gaussian, rescaled to unit standard deviation."""
    f = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox, truncate=3.0)
    return f / (float(f.std()) + 1e-6)


__all__ = [
    "STREAM_ACQ",
    "STREAM_DEFORM",
    "STREAM_FA",
    "STREAM_PATHS",
    "STREAM_SHAPE",
    "STREAM_TEXTURE",
    "cubic_zoom",
    "gauss_noise",
    "patient_rng",
    "skip_smooth_field",
    "smooth_field",
]
