"""Reading one image file of a case: NIfTI through nibabel, MHA/NRRD through SimpleITK.

Every failure becomes a :class:`~gliotype.errors.CaseError` naming the patient, the
file (name only) and the problem in one line; what is read but ambiguous (a sform and a
qform that disagree) is a one-line warning kept with the image (:func:`header_warnings`).
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.errors import CaseError, one_line

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
SUPPORTED_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s'\"]+")


def image_suffix(path: str | Path) -> str | None:
    """The supported image suffix of ``path`` (``.nii.gz``, ``.mha``...), else None."""
    name = Path(path).name.lower()
    for s in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return s
    return None


def _itk_to_nifti(path: Path) -> nib.Nifti1Image:
    """Read an ITK image (LPS) and return it as a RAS NIfTI image."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{img.GetNumberOfComponentsPerPixel()} components per voxel (expected 1)")
    arr = sitk.GetArrayFromImage(img)  # (z, y, x)
    arr = np.transpose(arr, tuple(range(arr.ndim))[::-1])
    dim = img.GetDimension()
    if dim < 3:
        raise ValueError(f"{dim}D image (expected 3D)")
    direction = np.array(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    spacing = np.array(img.GetSpacing(), dtype=np.float64)[:3]
    origin = np.array(img.GetOrigin(), dtype=np.float64)[:3]
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[None, :]
    affine[:3, 3] = origin
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    return nib.Nifti1Image(arr, lps_to_ras @ affine)


def _check_gzip(path: Path) -> None:
    """Read a gzip stream to its end, so a truncated file fails here with a clear reason."""
    with gzip.open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def load_volume(path: str | Path, patient_id: str | None = None, role: str | None = None,
                squeeze: bool = True) -> nib.Nifti1Image:
    """Load a 3D image as a NIfTI image with its data in memory.

    A 4D file holding one volume is squeezed to 3D; more volumes, fewer than 3
    dimensions, unreadable or truncated files raise :class:`CaseError`.
    ``role`` (``t1``, ``mask``...) only improves the message.
    """
    path = Path(path)
    what = f"{role} " if role else ""
    if not path.exists():
        raise CaseError(patient_id, path, f"{what}file not found")
    if not path.is_file():
        raise CaseError(patient_id, path, f"{what}path is not a file")
    suffix = image_suffix(path)
    if suffix is None:
        raise CaseError(patient_id, path, f"{what}file type not supported (use .nii, .nii.gz, .mha or .nrrd)")
    try:
        if suffix in NIFTI_SUFFIXES:
            if suffix == ".nii.gz":
                _check_gzip(path)
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
            img = nib.Nifti1Image(data, img.affine, img.header)
        else:
            img = _itk_to_nifti(path)
            data = np.asanyarray(img.dataobj)
    except CaseError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CaseError(patient_id, path, f"{what}file is truncated or not a valid gzip stream ({_short(exc)})") from None
    except Exception as exc:  # nibabel/SimpleITK raise many types for unreadable files
        raise CaseError(patient_id, path, f"{what}file is not a readable image ({_short(exc)})") from None
    if data.ndim == 4 and squeeze:
        if data.shape[3] != 1:
            raise CaseError(patient_id, path, f"{what}image is 4D with {data.shape[3]} volumes (expected one 3D volume)")
        data = data[..., 0]
    if data.ndim > 4 and squeeze:
        extra = [s for s in data.shape[3:] if s != 1]
        if extra:
            raise CaseError(patient_id, path, f"{what}image has shape {tuple(data.shape)} (expected 3D)")
        data = data.reshape(data.shape[:3])
    if data.ndim != 3:
        raise CaseError(patient_id, path, f"{what}image is {data.ndim}D with shape {tuple(data.shape)} (expected 3D)")
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-9:
        raise CaseError(patient_id, path, f"{what}image has an invalid affine (voxel-to-world matrix)")
    out = nib.Nifti1Image(np.asarray(data), img.affine)
    out.extra["warnings"] = header_warnings(img.header, patient_id, path, role)
    return out


#: sform and qform disagree when a voxel lands this many voxels (of the smallest side) apart.
SFORM_QFORM_TOL_VOXELS = 0.1


def header_warnings(header, patient_id: str | None, path: str | Path, role: str | None = None) -> list[str]:
    """One-line warnings about a NIfTI header that gliotype reads one way of several: a sform and a
    qform both set (codes > 0) that place the voxels apart by more than :data:`SFORM_QFORM_TOL_VOXELS`
    of a voxel. gliotype, as nibabel's ``img.affine``, uses the sform. Each warning names the patient
    and the file (name only, as a :class:`CaseError` does); :func:`load_volume` keeps them in the
    image's ``extra["warnings"]`` for the validator's table and the preprocessing log."""
    try:
        sform, scode = header.get_sform(coded=True)
        qform, qcode = header.get_qform(coded=True)
        if not scode or not qcode or sform is None or qform is None:
            return []
        shape = np.asarray(header.get_data_shape()[:3], dtype=np.float64)
        corners = np.c_[np.array(list(np.ndindex(2, 2, 2)), dtype=np.float64) * (shape - 1), np.ones(8)]
        apart = float(np.linalg.norm((corners @ (sform - qform).T)[:, :3], axis=1).max())  # mm, worst at a corner
        voxel = float(min(nib.affines.voxel_sizes(sform)))
        if not np.isfinite(apart) or apart <= SFORM_QFORM_TOL_VOXELS * voxel:
            return []
        names = header.get_value_label("sform_code"), header.get_value_label("qform_code")
    except Exception:  # not a NIfTI header, or one nibabel cannot read these from: nothing to say
        return []
    what = f"{role} " if role else ""
    problem = (f"{what}sform ({names[0]}) and qform ({names[1]}) disagree by up to {apart:.2f} mm; "
               f"gliotype uses the sform, as nibabel does")
    return [str(CaseError(patient_id, path, problem))]


def _short(exc: Exception) -> str:
    """First line of an exception message, any absolute path reduced to its file name."""
    return _PATH.sub(lambda m: Path(m.group(0)).name, one_line(exc, limit=4000))[:160]


__all__ = ["SFORM_QFORM_TOL_VOXELS", "SUPPORTED_SUFFIXES", "header_warnings", "image_suffix", "load_volume"]
