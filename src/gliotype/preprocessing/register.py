"""Registrations with ANTs (paper section 4.2): rigid co-registration to T1c and the
non-linear registration to the ICBM152 2009 template, and applying a registration.

The native space is the patient's T1c grid. What is kept of a registration, and the maps
between template and native space afterwards, are :mod:`gliotype.preprocessing.transforms`';
ANTs' import, thread count and seed are :mod:`gliotype.preprocessing.ants_runtime`'s.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from gliotype.preprocessing.ants_runtime import ants_module, itk_threads_here, seed_ants
from gliotype.preprocessing.images import copy_file, from_ants, grid_image, to_ants

#: Margin (voxels at the registration spacing) around the tumour left out of the SyN metric.
#: 1 voxel kept 92% of the tumour's share of the brain on the real case, 3 voxels (6 mm) 99%.
TUMOR_MARGIN_VOXELS = 3

#: The metric of the template registration's affine stage: global correlation, the linear metric of
#: ANTs' reproducible mode (``antsRegistrationSyN.sh -y``), the same bytes on a fixed number of ITK
#: threads; ANTsPy's default Mattes is not on more than one (docs/design.md point 57). The moving
#: image is the brain on its registration intensity (:func:`registration_intensity`), the fixed one
#: the template T1: one contrast, so correlation fits.
AFFINE_METRIC = "GC"


def _downsample(aimg, spacing_mm: float, interp: int = 0):
    """Resample to ``spacing_mm`` when the image is finer (0 linear, 1 nearest)."""
    ants = ants_module()
    if min(aimg.spacing) >= spacing_mm - 1e-6:
        return aimg
    return ants.resample_image(aimg, (spacing_mm,) * 3, use_voxels=False, interp_type=interp)


def _cleanup(reg: dict) -> None:
    """Remove the temporary transform files ANTs wrote."""
    for f in set(reg.get("fwdtransforms", [])) | set(reg.get("invtransforms", [])):
        if isinstance(f, str) and os.path.exists(f):
            os.remove(f)


# --------------------------------------------------------------------------- co-registration


@contextlib.contextmanager
def one_itk_thread() -> Iterator[Callable]:
    """For the block, a function ``run(fn, *args)`` that calls ``fn(*args)`` (a module-level function)
    on ONE ITK thread: what a linear registration on Mattes mutual information needs to give the same
    bytes every time (``ants_runtime``). Here when ITK runs on one thread in this process, else in a
    helper process on one thread, started at the first such call and ended with the block."""
    from gliotype.preprocessing.helper import case_helper

    helper = None
    with contextlib.ExitStack() as stack:
        def run(fn: Callable, *args):
            nonlocal helper
            if itk_threads_here() == 1:
                return fn(*args)
            if helper is None:
                helper = stack.enter_context(case_helper(1))
            return helper.result(helper.submit(fn, *args))

        yield run


def rigid_coregister(fixed: nib.Nifti1Image, moving: nib.Nifti1Image, spacing_mm: float, seed: int,
                     transform_out: Path) -> nib.Nifti1Image:
    """Rigidly register ``moving`` to ``fixed`` (Mattes MI), estimated at ``spacing_mm``; the same bytes
    on one ITK thread only (run it through :func:`one_itk_thread`).

    Returns ``moving`` resampled (linear) onto the grid of ``fixed``; the rigid transform
    (moving -> fixed, ANTs ``.mat``) is written atomically to ``transform_out``.
    """
    ants = ants_module()
    seed_ants(seed)
    f_full = to_ants(fixed)
    m_full = to_ants(moving)
    reg = ants.registration(_downsample(f_full, spacing_mm), _downsample(m_full, spacing_mm),
                            type_of_transform="Rigid")
    try:
        out = ants.apply_transforms(f_full, m_full, reg["fwdtransforms"], interpolator="linear")
        copy_file(reg["fwdtransforms"][0], transform_out)
    finally:
        _cleanup(reg)
    return from_ants(out)


def resample_to(fixed: nib.Nifti1Image, moving: nib.Nifti1Image, interpolator: str = "linear") -> nib.Nifti1Image:
    """``moving`` resampled onto the grid of ``fixed`` through world coordinates (no registration)."""
    ants = ants_module()
    out = ants.resample_image_to_target(to_ants(moving), to_ants(fixed, np.zeros(fixed.shape[:3], np.float32)),
                                        interp_type=interpolator)
    return from_ants(out)


# --------------------------------------------------------------------------- template registration


@dataclass
class Registration:
    """Result of :func:`register_to_template`: transform files (temporary) and their use."""

    kind: str  # SyN, Affine, identity
    forward: list[str]
    inverse: list[str]
    inverse_invert: list[bool]
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def cleanup(self) -> None:
        for f in set(self.forward) | set(self.inverse):
            if os.path.exists(f) and os.path.basename(f).startswith(("tmp", ".gliotype")):
                os.remove(f)

    @property
    def affine_file(self) -> str:
        return self.inverse[0]

    def linear_scale(self) -> float:
        """Volume scale of the linear part, native -> template (1 for the identity)."""
        ants = ants_module()
        tx = ants.read_transform(self.affine_file)
        m = np.asarray(tx.parameters[:9], dtype=np.float64).reshape(3, 3)
        det = abs(float(np.linalg.det(m)))
        return 1.0 / det if det > 0 else float("nan")


def _identity_transform() -> str:
    """A temporary ANTs identity affine ``.mat`` file."""
    import tempfile

    ants = ants_module()
    fd, path = tempfile.mkstemp(prefix=".gliotype_identity_", suffix=".mat")
    os.close(fd)
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform", dimension=3), path)
    return path


def identity_registration() -> Registration:
    path = _identity_transform()
    return Registration("identity", [path], [path], [True])


def template_image(template):
    """The template T1 as an ANTs image."""
    return to_ants(template.image(template.t1))


def registration_intensity(data: np.ndarray, brain: np.ndarray, tumor: np.ndarray | None = None) -> np.ndarray:
    """What is registered: the brain rescaled so its p1..p99 (tumour left out) span 0..1, clipped to
    [0, 1.5], 0 outside. Independent of the normalisation option (z-scores' negative values
    and extrapolated tumour intensities made ANTs' Mattes metric fail or waste bins)."""
    data = np.asarray(data, dtype=np.float32)
    brain = np.asarray(brain, dtype=bool)
    ref = brain & ~tumor if tumor is not None and (brain & ~tumor).sum() > 0.1 * brain.sum() else brain
    values = data[ref]
    if values.size == 0:
        return np.zeros(data.shape, np.float32)
    lo, hi = np.percentile(values, [1.0, 99.0])
    scale = float(hi - lo) if hi > lo else 1.0
    return np.where(brain, np.clip((data - lo) / scale, 0.0, 1.5), 0.0).astype(np.float32)


def metric_mask(affine: np.ndarray, brain: np.ndarray, tumor: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The moving mask of the SyN stage on the ``spacing_mm`` grid of the moving image (native grid
    ``affine``): the brain dilated by 2 voxels without the tumour dilated by
    :data:`TUMOR_MARGIN_VOXELS` (float32, 1 inside)."""
    b = _downsample(grid_image(brain.shape, affine, brain.astype(np.float32)), spacing_mm).numpy() > 0.5
    t = _downsample(grid_image(tumor.shape, affine, tumor.astype(np.float32)), spacing_mm).numpy() > 0.01
    metric = ndi.binary_dilation(b, iterations=2) & ~ndi.binary_dilation(t, iterations=TUMOR_MARGIN_VOXELS)
    return metric.astype(np.float32)


def register_to_template(moving: nib.Nifti1Image, brain: np.ndarray, tumor: np.ndarray | None, template,
                         kind: str, spacing_mm: float, reg_iterations, seed: int,
                         fixed_mask: np.ndarray | None = None,
                         tumor_metric_mask: Callable[[], np.ndarray] | None = None) -> Registration:
    """Register the brain-masked ``moving`` (native grid) to the template T1.

    ``moving`` is resampled to ``spacing_mm`` first (the transform lives in world
    coordinates, so it applies to the full-resolution images). ``tumor`` (native, or
    None) is left out of the metric with a moving mask in every stage (cost-function
    masking, Brett et al. 2001), so the tumour does not pull the normal anatomy of the
    template into it. ``fixed_mask`` (template grid) restricts the metric on the template.
    ``tumor_metric_mask``: a function of no argument that returns :func:`metric_mask` of
    ``moving``, ``brain`` and ``tumor`` (computed elsewhere meanwhile); by default it is computed here.
    The affine stage runs on :data:`AFFINE_METRIC`, the SyN stage on ANTsPy's dense Mattes: the same
    bytes on a fixed number of ITK threads.
    """
    import time

    ants = ants_module()
    t0 = time.perf_counter()
    if kind == "none":
        return identity_registration()
    if kind not in ("SyN", "Affine"):
        raise ValueError(f"unknown registration {kind!r}")
    seed_ants(seed)
    fixed = template_image(template)
    m_full = to_ants(moving, registration_intensity(np.asarray(moving.dataobj), brain, tumor))
    m = _downsample(m_full, spacing_mm)
    kwargs = {"aff_metric": AFFINE_METRIC}
    if tumor is not None and np.any(tumor) and kind == "SyN":
        # the tumour is left out of the SyN stage only: masking the affine stage made it
        # unstable (linear scale 1.1-1.6 between runs on the real case), and a global
        # 12-parameter transform is hardly pulled by the tumour
        metric = metric_mask(moving.affine, brain, tumor, spacing_mm) if tumor_metric_mask is None \
            else tumor_metric_mask()
        kwargs.update(moving_mask=m.new_image_like(metric), mask_all_stages=False)
    if fixed_mask is not None:
        kwargs.update(mask=fixed.new_image_like(np.asarray(fixed_mask, dtype=np.float32)), mask_all_stages=True)
    if kind == "SyN":
        reg = ants.registration(fixed, m, type_of_transform="SyN", reg_iterations=tuple(reg_iterations), **kwargs)
        fwd, inv = list(reg["fwdtransforms"]), list(reg["invtransforms"])
        invert = [True, False]
    else:
        reg = ants.registration(fixed, m, type_of_transform="Affine", **kwargs)
        fwd, inv = list(reg["fwdtransforms"]), list(reg["invtransforms"])
        invert = [True]
    return Registration(kind, fwd, inv, invert, time.perf_counter() - t0)


def apply_forward(reg: Registration, template, img: nib.Nifti1Image, data: np.ndarray | None = None,
                  interpolator: str = "linear") -> np.ndarray:
    """A native-grid volume on the template grid (float32 array)."""
    ants = ants_module()
    out = ants.apply_transforms(template_image(template), to_ants(img, data), reg.forward, interpolator=interpolator)
    return np.asarray(out.numpy(), dtype=np.float32)


def apply_inverse(reg: Registration, native: nib.Nifti1Image, template, data: np.ndarray,
                  interpolator: str = "linear") -> np.ndarray:
    """A template-grid volume on the native grid of ``native`` (float32 array)."""
    ants = ants_module()
    fixed = to_ants(native, np.zeros(native.shape[:3], np.float32))
    moving = template_image(template).new_image_like(np.asarray(data, dtype=np.float32))
    out = ants.apply_transforms(fixed, moving, reg.inverse, whichtoinvert=reg.inverse_invert,
                                interpolator=interpolator)
    return np.asarray(out.numpy(), dtype=np.float32)


def template_brain_mask(native: nib.Nifti1Image, data: np.ndarray, template, kind: str, spacing_mm: float,
                        reg_iterations, seed: int) -> np.ndarray:
    """Brain mask of a non-skull-stripped head: the template brain mask warped back onto it.

    The head (Otsu foreground) is registered to the brain-only template T1 with the
    metric restricted to the dilated template brain mask, so skull and scalp weigh
    little; the template brain mask is then mapped back (linear, > 0.5) and kept inside
    the head. An approximation of BET: skull-strip beforehand when you can.
    """
    from gliotype.preprocessing.brain import head_mask

    head = head_mask(data)
    if head.sum() == 0:
        raise ValueError("no head found in the image (constant image?)")
    fixed_mask = ndi.binary_dilation(template.brain_mask > 0.5, iterations=3)
    reg = register_to_template(native, head, None, template, "Affine" if kind == "none" else kind, spacing_mm,
                               reg_iterations, seed, fixed_mask=fixed_mask)
    try:
        back = apply_inverse(reg, native, template, template.brain_mask, "linear") > 0.5
    finally:
        reg.cleanup()
    return back & head


__all__ = ["Registration", "apply_forward", "apply_inverse", "identity_registration", "metric_mask",
           "register_to_template", "resample_to", "rigid_coregister", "template_brain_mask"]
