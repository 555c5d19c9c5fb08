"""The ICBM152 2009 template (T1, GM, WM, brain mask) shipped inside nilearn.

Paper section 4.2 registers every patient to the MNI152 2 mm template; nilearn
ships the ICBM152 2009 (nonlinear, symmetric) version, which needs no download.

nilearn ships it at 1 mm and resamples it at each load for 2 mm (about 1.2 s on one core,
paid by every process that preprocesses, e.g. each ``gliotype predict``). The 2 mm arrays
are therefore kept once in gliotype's cache folder
(:func:`~gliotype.atlases.tract_cache.atlas_cache_folder`), named by the nilearn version and
:data:`TEMPLATE_CACHE_VERSION`; the cached arrays are those nilearn gives, to the bit (float32
volumes, float64 affine, uncompressed ``.npz`` written atomically). A damaged file is
rebuilt; an unwritable cache folder is skipped (a debug line).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: Format version of the cached 2 mm template (part of its file name).
TEMPLATE_CACHE_VERSION = 1
_VOLUMES = ("t1", "gm", "wm", "brain_mask")


@dataclass(frozen=True)
class Template:
    """Template volumes on one grid (float32 arrays, RAS+ affine in millimetres)."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.t1.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> float:
        return float(abs(self.affine[0, 0]))

    @property
    def csf(self) -> np.ndarray:
        """CSF probability inside the brain mask: what GM and WM leave."""
        return np.clip(self.brain_mask - self.gm - self.wm, 0.0, 1.0).astype(np.float32)

    def image(self, data: np.ndarray, dtype=np.float32) -> nib.Nifti1Image:
        """Wrap an array on this grid as a NIfTI image."""
        return nib.Nifti1Image(np.asarray(data, dtype=dtype), self.affine)


def template_cache_file(resolution: int = 2) -> Path:
    """Where the ``resolution`` mm template is cached: named by nilearn's version and :data:`TEMPLATE_CACHE_VERSION`."""
    import nilearn

    from gliotype.atlases.tract_cache import atlas_cache_folder  # here: tract_cache imports this module

    name = f"icbm152-2009-{resolution}mm-nilearn{nilearn.__version__}-v{TEMPLATE_CACHE_VERSION}.npz"
    return atlas_cache_folder() / name


@lru_cache(maxsize=4)
def load_template(resolution: int = 2) -> Template:
    """Load the ICBM152 2009 template at ``resolution`` mm (1 or 2), from nilearn's package data
    (2 mm: from gliotype's cache when there, see the module's text)."""
    if resolution not in (1, 2):
        raise ValueError(f"resolution must be 1 or 2 mm, got {resolution}")
    path = template_cache_file(resolution) if resolution == 2 else None
    out = _read_cache(path) if path is not None and path.exists() else None
    if out is None:
        out = _from_nilearn(resolution)
        if path is not None:
            _write_cache(out, path)
    for k in _VOLUMES:
        getattr(out, k).setflags(write=False)
    return out


def _from_nilearn(resolution: int) -> Template:
    """The template as nilearn gives it (a change here changes the cached arrays: bump
    :data:`TEMPLATE_CACHE_VERSION`)."""
    from nilearn import datasets

    def arr(img):
        return np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)

    t1 = datasets.load_mni152_template(resolution=resolution)
    gm = datasets.load_mni152_gm_template(resolution=resolution)
    wm = datasets.load_mni152_wm_template(resolution=resolution)
    mask = datasets.load_mni152_brain_mask(resolution=resolution)
    return Template(
        t1=arr(t1),
        gm=np.clip(arr(gm), 0, 1),
        wm=np.clip(arr(wm), 0, 1),
        brain_mask=(arr(mask) > 0.5).astype(np.float32),
        affine=np.asarray(t1.affine, dtype=np.float64),
    )


def _read_cache(path: Path) -> Template | None:
    """The cached template, or None when the file is damaged (then it is rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.array(z[k], dtype=np.float32) for k in _VOLUMES}
            affine = np.array(z["affine"], dtype=np.float64)
        if affine.shape != (4, 4) or len({a.shape for a in arrays.values()}) != 1 or arrays["t1"].ndim != 3:
            raise ValueError("inconsistent arrays")
        return Template(affine=affine, **arrays)
    except Exception as exc:  # a damaged cache file is rebuilt
        log.warning("template cache %s unreadable (%s): rebuilding it", path.name, type(exc).__name__)
        return None


def _write_cache(template: Template, path: Path) -> None:
    from gliotype.utils.io import atomic_path

    try:
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, affine=template.affine, **{k: getattr(template, k) for k in _VOLUMES})
    except Exception as exc:  # an unwritable cache: the template is rebuilt next time
        log.debug("cannot cache the template at %s (%s)", path, exc)
