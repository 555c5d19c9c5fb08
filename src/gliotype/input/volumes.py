"""Reading one image file of a case: NIfTI through nibabel, MHA/NRRD through SimpleITK.

Every image of user input is read here (:func:`load_volume`). Memory follows the file,
never the header alone: before any voxel is read, the declared shape must be one 3D
volume within the voxel limit (config ``input.max_voxels``) and the file must hold the
voxel bytes its header declares (``.nii``: the file size; ``.nii.gz``: the decompressed
size, streamed in bounded memory; raw MHA/NRRD data: :func:`gliotype.input.headers.raw_voxels`).
Every failure becomes a :class:`~gliotype.errors.CaseError` naming the patient, the
file (name only) and the problem in one line; what is read but ambiguous (a sform and a
qform that disagree) is a one-line warning kept with the image (:func:`header_warnings`).
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.errors import CaseError, one_line
from gliotype.input.headers import raw_voxels
from gliotype.input.rules import MAX_VOXELS

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


class _Refused(Exception):
    """A problem found in the header, before any voxel is read (the message of a CaseError)."""


def _check_shape(shape: tuple[int, ...], max_voxels: int, squeeze: bool) -> None:
    """The declared shape is one 3D volume of at most ``max_voxels`` voxels, else :class:`_Refused`."""
    if len(shape) < 3:
        raise _Refused(f"image is {len(shape)}D with shape {shape} (expected 3D)")
    if min(shape) < 1:
        raise _Refused(f"image has an empty dimension (shape {shape})")
    voxels = math.prod(shape)
    if voxels > max_voxels:
        raise _Refused(f"image header declares {voxels:,} voxels ({' x '.join(map(str, shape))}), over the "
                       f"limit of {max_voxels:,} (input.max_voxels)")
    extra = [s for s in shape[3:] if s != 1]
    if len(shape) == 4 and extra and squeeze:
        raise _Refused(f"image is 4D with {shape[3]} volumes (expected one 3D volume)")
    if extra or (len(shape) > 3 and not squeeze):
        raise _Refused(f"image has shape {shape} (expected 3D)")


def _check_stored(declared: int, held: int) -> None:
    """The file holds the ``declared`` bytes of voxels, else :class:`_Refused` (truncated)."""
    if held < declared:
        raise _Refused(f"file is truncated: its header declares {declared:,} bytes of voxels, "
                       f"the file holds {max(held, 0):,}")


def _gzip_size(path: Path) -> int:
    """The decompressed size of a gzip file, read to its end in 4 MB steps (a truncated or
    corrupt stream fails here with a clear reason)."""
    size, buf = 0, bytearray(1 << 22)
    with gzip.open(path, "rb") as fh:
        while n := fh.readinto(buf):
            size += n
    return size


def _read_nifti(path: Path, suffix: str, max_voxels: int, squeeze: bool) -> nib.Nifti1Image:
    """A NIfTI file's voxels, read only once its header passed :func:`_check_shape` and the file
    holds the bytes the header declares."""
    img = nib.load(str(path))  # the header only: nibabel reads voxels when asked
    proxy = img.dataobj  # the declared shape and type, and where the voxels start
    shape = tuple(int(s) for s in proxy.shape)
    _check_shape(shape, max_voxels, squeeze)
    size = _gzip_size(path) if suffix == ".nii.gz" else path.stat().st_size
    _check_stored(math.prod(shape) * np.dtype(proxy.dtype).itemsize, size - int(proxy.offset))
    return nib.Nifti1Image(np.asanyarray(proxy), img.affine, img.header)


def _read_itk(path: Path, max_voxels: int, squeeze: bool) -> nib.Nifti1Image:
    """An MHA/NRRD file as a RAS NIfTI image, read only once its header (SimpleITK's image
    information) passed :func:`_check_shape` and any raw voxel data is all there."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    if reader.GetNumberOfComponents() != 1:
        raise _Refused(f"image has {reader.GetNumberOfComponents()} components per voxel (expected 1)")
    shape = tuple(int(s) for s in reader.GetSize())
    _check_shape(shape, max_voxels, squeeze)
    raw = raw_voxels(path)
    if raw is not None and raw[0].is_file():  # a missing data file: SimpleITK's reader says so
        itemsize = sitk.Image(1, 1, reader.GetPixelID()).GetSizeOfPixelComponent()
        _check_stored(math.prod(shape) * itemsize, raw[0].stat().st_size - raw[1])
    return _itk_to_nifti(reader.Execute())


def _itk_to_nifti(img) -> nib.Nifti1Image:
    """An ITK image (LPS) as a RAS NIfTI image."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(img)  # (z, y, x)
    arr = np.transpose(arr, tuple(range(arr.ndim))[::-1])
    dim = img.GetDimension()
    direction = np.array(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    spacing = np.array(img.GetSpacing(), dtype=np.float64)[:3]
    origin = np.array(img.GetOrigin(), dtype=np.float64)[:3]
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[None, :]
    affine[:3, 3] = origin
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    return nib.Nifti1Image(arr, lps_to_ras @ affine)


def load_volume(path: str | Path, patient_id: str | None = None, role: str | None = None,
                squeeze: bool = True, max_voxels: int = MAX_VOXELS) -> nib.Nifti1Image:
    """Load a 3D image as a NIfTI image with its data in memory.

    Before any voxel is read, the header must declare one 3D volume (a 4D file holding one
    volume is squeezed to 3D) of at most ``max_voxels`` voxels (config ``input.max_voxels``)
    and the file must hold the bytes of voxels it declares; this, unreadable files and bad
    affines raise :class:`CaseError`. ``role`` (``t1``, ``mask``...) only improves the message.
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
            img = _read_nifti(path, suffix, max_voxels, squeeze)
        else:
            img = _read_itk(path, max_voxels, squeeze)
    except _Refused as exc:
        raise CaseError(patient_id, path, f"{what}{exc}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CaseError(patient_id, path, f"{what}file is truncated or not a valid gzip stream ({_short(exc)})") from None
    except Exception as exc:  # nibabel/SimpleITK raise many types for unreadable files
        raise CaseError(patient_id, path, f"{what}file is not a readable image ({_short(exc)})") from None
    data = np.asanyarray(img.dataobj)
    if data.ndim > 3:  # one volume: _check_shape refused any other
        data = data.reshape(data.shape[:3])
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
