"""The stored transforms of a preprocessed patient and the maps between template and native space.

:func:`save_transforms` copies the transform files of a registration
(:class:`~gliotype.preprocessing.register.Registration`) into the patient's
``transforms/`` folder under stable names and writes ``transforms/transforms.json``;
:func:`to_template` and :func:`to_native` read them back to map any volume between
the two spaces (e.g. a Grad-CAM map onto the patient).

Conventions. The *native* space is the patient's T1c grid (every sequence, the mask
and FA are brought onto it first). ``transforms.json`` lists the forward
(native -> template) and inverse (template -> native) ANTs transform files, in the
order :func:`ants.apply_transforms` takes them, the native and template grids and the
rigid co-registration files (role -> file name).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.errors import CaseError
from gliotype.layout import TransformsDir, WorkDir
from gliotype.preprocessing.ants_runtime import ants_module
from gliotype.preprocessing.images import copy_file, from_ants, grid_image, to_ants, write_text
from gliotype.preprocessing.register import Registration
from gliotype.utils.io import make_folder


def save_transforms(reg: Registration, folder: Path | TransformsDir, native: nib.Nifti1Image, template,
                    coreg: dict) -> dict:
    """Copy the transform files into ``folder`` with stable names and write transforms.json (atomic)."""
    folder = TransformsDir.of(folder)
    make_folder(folder.root)
    names: dict[str, str] = {}

    def stable(path: str) -> str:
        if path not in names:
            if path.endswith(".mat"):
                target = folder.affine
            elif "InverseWarp" in os.path.basename(path):
                target = folder.inverse_warp
            else:
                target = folder.warp
            copy_file(path, target)
            names[path] = target.name
        return names[path]

    meta = {
        "type": reg.kind,
        "forward": [stable(p) for p in reg.forward],
        "inverse": [stable(p) for p in reg.inverse],
        "inverse_invert": list(reg.inverse_invert),
        "native_grid": {"shape": [int(s) for s in native.shape[:3]], "affine": np.asarray(native.affine).tolist()},
        "template_grid": {"shape": list(template.shape), "affine": np.asarray(template.affine).tolist(),
                          "resolution_mm": template.spacing},
        "coregistration": coreg,
        "usage": "forward: ants.apply_transforms(fixed=template, moving=native, transformlist=forward); "
                 "inverse: ants.apply_transforms(fixed=native, moving=template, transformlist=inverse, "
                 "whichtoinvert=inverse_invert)",
    }
    keep = set(names.values()) | {v for v in coreg.values() if v}
    for stale in [folder.warp, folder.inverse_warp, *folder.coregistrations()]:
        if stale.name not in keep and stale.exists():  # left by an earlier run with other settings
            stale.unlink()
    write_text(folder.json, json.dumps(meta, indent=2))
    return meta


def _transforms(workdir, patient_id) -> tuple[TransformsDir, dict]:
    folder = WorkDir.of(workdir).case(patient_id).transforms
    if not folder.json.exists():
        raise CaseError(str(patient_id), None, "no stored transforms (run preprocessing first)")
    return folder, json.loads(folder.json.read_text())


def _as_image(volume, shape, affine, patient_id, role) -> nib.Nifti1Image:
    """A path, NIfTI image or array (taken to lie on ``(shape, affine)``) as a 3D NIfTI image."""
    if isinstance(volume, (str, Path)):
        from gliotype.input.volumes import load_volume

        return load_volume(volume, patient_id, role)
    if isinstance(volume, nib.spatialimages.SpatialImage):
        return nib.Nifti1Image(np.asarray(volume.dataobj, dtype=np.float32), volume.affine)
    arr = np.asarray(volume, dtype=np.float32)
    if arr.shape != tuple(shape):
        raise ValueError(f"{role} array has shape {arr.shape}, expected {tuple(shape)}")
    return nib.Nifti1Image(arr, np.asarray(affine, dtype=np.float64))


def to_template(volume, workdir, patient_id, interpolator: str = "linear") -> nib.Nifti1Image:
    """Map a native-space volume (path, NIfTI image, or array on the T1c grid) onto the template grid.

    ``interpolator``: ``linear`` for intensities and maps, ``genericLabel`` or
    ``nearestNeighbor`` for labels.
    """
    ants = ants_module()
    folder, meta = _transforms(workdir, patient_id)
    ng, tg = meta["native_grid"], meta["template_grid"]
    img = _as_image(volume, ng["shape"], ng["affine"], patient_id, "native volume")
    fixed = grid_image(tg["shape"], tg["affine"])
    out = ants.apply_transforms(fixed, to_ants(img), [str(folder.file(f)) for f in meta["forward"]],
                                interpolator=interpolator)
    return from_ants(out)


def to_native(volume_on_template, workdir, patient_id, reference_path=None,
              interpolator: str = "linear") -> nib.Nifti1Image:
    """Map a template-grid volume (path, NIfTI image or array, e.g. a Grad-CAM map) back to the patient.

    The result lies on the grid of ``reference_path`` (any image in the patient's T1c
    world space, e.g. the original mask), or on the stored native T1c grid when None.
    """
    ants = ants_module()
    folder, meta = _transforms(workdir, patient_id)
    ng, tg = meta["native_grid"], meta["template_grid"]
    img = _as_image(volume_on_template, tg["shape"], tg["affine"], patient_id, "template volume")
    if reference_path is not None:
        from gliotype.input.volumes import load_volume

        ref = load_volume(reference_path, patient_id, "reference")
        fixed = to_ants(ref, np.zeros(ref.shape[:3], np.float32))
    else:
        fixed = grid_image(ng["shape"], ng["affine"])
    out = ants.apply_transforms(fixed, to_ants(img), [str(folder.file(f)) for f in meta["inverse"]],
                                whichtoinvert=list(meta["inverse_invert"]), interpolator=interpolator)
    return from_ants(out)


__all__ = ["save_transforms", "to_native", "to_template"]
