"""NIfTI (nibabel, RAS+) <-> ANTs (ITK, LPS) images and grid comparisons.

Images are converted in memory so every file is read once (through
:func:`gliotype.input.volumes.load_volume`, which also reads MHA/NRRD) and the
voxel-to-world mapping stays exactly the one nibabel reports.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.preprocessing.ants_runtime import ants_module
from gliotype.utils.io import atomic_path

_LPS = np.diag([-1.0, -1.0, 1.0])


def grid_of(img: nib.Nifti1Image) -> tuple[tuple[int, int, int], np.ndarray]:
    """``(shape, affine)`` of a 3D image."""
    return tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine, dtype=np.float64)


def same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image, atol: float = 1e-3) -> bool:
    """True when both images have the same shape and (within ``atol`` mm) the same affine."""
    sa, aa = grid_of(a)
    sb, ab = grid_of(b)
    return sa == sb and bool(np.allclose(aa, ab, atol=atol))


def voxel_order(img: nib.Nifti1Image, shape, affine, atol: float = 1e-3) -> np.ndarray | None:
    """How ``img``'s voxel array becomes an array on the grid ``(shape, affine)`` when both grids
    hold the same voxel centres in world space (within ``atol`` mm), in any voxel order (an axis
    permutation and flips: LPI against RAS): a nibabel orientation transform for :func:`reorder`
    (the identity for the same grid); None when the two grids are not the same points."""
    src = np.asarray(img.affine, dtype=np.float64)
    src_shape = tuple(int(s) for s in img.shape[:3])
    try:
        ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(src),
                                               nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64)))
        moved = src @ nib.orientations.inv_ornt_aff(ornt, src_shape)
    except ValueError:  # a degenerate affine has no orientation
        return None
    new_shape = [0, 0, 0]
    for axis, (to, _) in enumerate(ornt):
        new_shape[int(to)] = src_shape[axis]
    if tuple(new_shape) != tuple(int(s) for s in shape) or not np.allclose(moved, affine, atol=atol):
        return None
    return ornt


def reorder(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """``data`` in the voxel order of :func:`voxel_order`'s ``ornt`` (exact: no interpolation; a copy)."""
    return np.ascontiguousarray(nib.orientations.apply_orientation(np.asarray(data), ornt))


def inverse_order(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes ``ornt``: ``reorder(reorder(x, o), inverse_order(o)) == x``."""
    inv = np.empty_like(np.asarray(ornt, dtype=np.float64))
    for axis, (to, flip) in enumerate(ornt):
        inv[int(to)] = (axis, flip)
    return inv


def is_identity_order(ornt: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(ornt), [[0, 1], [1, 1], [2, 1]]))


def voxel_volume(affine: np.ndarray) -> float:
    """Volume of one voxel in mm^3."""
    return float(abs(np.linalg.det(np.asarray(affine)[:3, :3])))


def check_affine(affine: np.ndarray) -> str | None:
    """A reason when the affine cannot be represented by ITK (shear), else None."""
    m = _LPS @ np.asarray(affine, dtype=np.float64)[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing <= 0):
        return "image has a zero voxel size"
    direction = m / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        return "image affine has a shear (not representable as spacing + rotation)"
    return None


def to_ants(img: nib.Nifti1Image, data: np.ndarray | None = None):
    """An ANTs float32 image with the grid of ``img`` and voxel values ``data`` (default: img's)."""
    ants = ants_module()

    affine = np.asarray(img.affine, dtype=np.float64)
    m = _LPS @ affine[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    direction = m / spacing
    arr = np.asarray(img.dataobj if data is None else data, dtype=np.float32)
    return ants.from_numpy(np.ascontiguousarray(arr), origin=tuple(float(v) for v in _LPS @ affine[:3, 3]),
                           spacing=tuple(float(v) for v in spacing), direction=direction)


def ants_affine(aimg) -> np.ndarray:
    """The RAS+ voxel-to-world affine of an ANTs image."""
    affine = np.eye(4)
    affine[:3, :3] = _LPS @ np.asarray(aimg.direction, dtype=np.float64) @ np.diag(aimg.spacing)
    affine[:3, 3] = _LPS @ np.asarray(aimg.origin, dtype=np.float64)
    return affine


def from_ants(aimg, dtype=np.float32) -> nib.Nifti1Image:
    """A NIfTI image with the grid and values of an ANTs image."""
    return nib.Nifti1Image(np.asarray(aimg.numpy(), dtype=dtype), ants_affine(aimg))


def grid_image(shape, affine, data: np.ndarray | None = None):
    """An ANTs image on the grid ``(shape, affine)`` (zeros unless ``data`` is given)."""
    arr = np.zeros(tuple(shape), dtype=np.float32) if data is None else data
    return to_ants(nib.Nifti1Image(np.zeros((1, 1, 1), np.float32), np.asarray(affine)), arr)


def save_nifti(data: np.ndarray, affine: np.ndarray, path: str | Path, dtype=np.float32,
               mni: bool = True) -> Path:
    """Write ``data`` as a gzipped NIfTI atomically (qform = sform = affine; MNI or scanner code)."""
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), np.asarray(affine, dtype=np.float64))
    code = "mni" if mni else "scanner"
    img.set_qform(img.affine, code=code)
    img.set_sform(img.affine, code=code)
    path = Path(path)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
        usual_mode(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_mode(path: str | Path) -> None:
    """Give a file the permissions of a normally created one (the temporary files of
    :func:`gliotype.utils.io.atomic_path` are private, 0600)."""
    os.chmod(path, 0o666 & ~_umask())


def write_text(path: str | Path, text: str) -> Path:
    """Write text atomically with the usual permissions."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        usual_mode(tmp)
    return path


def copy_file(src: str | Path, dst: str | Path) -> Path:
    """Copy a file atomically with the usual permissions."""
    import shutil

    dst = Path(dst)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
        usual_mode(tmp)
    return dst
