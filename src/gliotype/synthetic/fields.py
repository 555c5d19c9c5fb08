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
    zoom = [s / c for s, c in zip(shape, coarse)]
    out = np.stack([ndi.zoom(noise[j], zoom, order=3, mode="nearest", grid_mode=False) for j in range(n)])
    assert out.shape[1:] == tuple(shape)
    return out


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
    "gauss_noise",
    "patient_rng",
    "skip_smooth_field",
    "smooth_field",
]
