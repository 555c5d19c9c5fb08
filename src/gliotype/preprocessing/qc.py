"""The quality control of one preprocessed patient (paper section 4.2, step 6).

:func:`quality_control` measures the registration (``qc.json`` fields, described in
``docs/preprocessing.md``): the brain mask's Dice with the template brain mask, the
Mattes mutual information with the template T1, the tumour volume before and after
(with the linear part's scale) and the labels kept. :func:`qc_verdict` turns them into
``passed`` and ``problems``; a failed QC fails the patient with its first problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gliotype.errors import CaseError
from gliotype.preprocessing import brain as brainmod
from gliotype.preprocessing.ants_runtime import ants_module
from gliotype.preprocessing.images import to_ants, voxel_volume
from gliotype.preprocessing.outputs import SEQUENCES

if TYPE_CHECKING:
    from gliotype.preprocessing.case_data import CaseContext, NativeCase, TemplateCase


def quality_control(ctx: CaseContext, reg, native: NativeCase, brain: np.ndarray,
                    warped: TemplateCase) -> tuple[float, float]:
    """The QC fields of the registration (``docs/preprocessing.md``) into ``ctx.qc``, and one line to the
    log; returns (brain Dice with the template brain mask, Mattes MI with the template T1)."""
    cfg, template = ctx.cfg, ctx.template
    dice = brainmod.dice(warped.brain, template.brain_mask > 0.5)
    similarity = _similarity(template, warped.sequences[SEQUENCES.index(ctx.moving)])
    linear_scale = reg.linear_scale()
    vox_t = voxel_volume(template.affine)
    tumor_native_mm3 = float(native.tumor.sum() * native.voxel_mm3)
    tumor_t_mm3 = float((warped.mask > 0).sum() * vox_t)
    ratio = tumor_t_mm3 / tumor_native_mm3
    brain_ml = float(brain.sum() * native.voxel_mm3 / 1000.0)
    brain_t_ml = float(warped.brain.sum() * vox_t / 1000.0)
    ctx.qc.update({
        "registration": reg.kind,
        "moving": ctx.moving,
        "tumor_masked_in_metric": bool(cfg.mask_tumor and not native.on_template and cfg.registration == "SyN"),
        "brain_dice": round(dice, 4),
        "similarity_mattes_mi": None if not np.isfinite(similarity) else round(similarity, 4),
        "tumor_native_mm3": round(tumor_native_mm3, 1),
        "tumor_template_mm3": round(tumor_t_mm3, 1),
        "tumor_volume_ratio": round(ratio, 4),
        "linear_scale": round(linear_scale, 4),
        "tumor_volume_ratio_scaled": round(ratio / linear_scale, 4) if linear_scale > 0 else None,
        "brain_template_ml": round(brain_t_ml, 2),
        # the tumour's share of the (patient's, warped) brain, template / native
        "tumor_fraction_ratio": round((tumor_t_mm3 / brain_t_ml) / (tumor_native_mm3 / brain_ml), 4)
        if brain_t_ml > 0 else None,
        "tumor_template_voxels": int((warped.mask > 0).sum()),
        "labels_native": sorted(int(v) for v in np.unique(native.mask) if v),
        "labels_template": sorted(int(v) for v in np.unique(warped.mask) if v),
    })
    ctx.say(f"QC: brain Dice {dice:.3f}, Mattes MI {similarity:.3f}, tumor {tumor_native_mm3:.0f} -> "
            f"{tumor_t_mm3:.0f} mm3 (ratio {ratio:.3f}, linear scale {linear_scale:.3f})")
    return dice, similarity


#: The QC's Mattes MI reads every voxel (ITK's ``NONE`` sampling). ANTsPy's default, ``regular`` at 100%,
#: jitters each sample within its voxel and took 0.45 s a patient against 0.24 s, half of the
#: preprocessing of a patient already on the template grid (PREPROCESS_VERSION 3).
SIMILARITY_SAMPLING = "none"


def _similarity(template, warped: np.ndarray) -> float:
    """ANTs Mattes mutual information between the template T1 and the registered sequence (lower = better),
    over every voxel (:data:`SIMILARITY_SAMPLING`)."""
    ants = ants_module()

    fixed = to_ants(template.image(template.t1))
    try:
        return float(ants.image_similarity(fixed, fixed.new_image_like(np.asarray(warped, np.float32)),
                                           metric_type="MattesMutualInformation",
                                           sampling_strategy=SIMILARITY_SAMPLING))
    except Exception:
        return float("nan")


def qc_verdict(ctx: CaseContext, dice: float, similarity: float, on_template: bool) -> dict:
    """``ctx.qc`` with ``passed`` and ``problems`` (too small a tumour on the template grid, a diverged
    registration); the first problem is raised as a CaseError."""
    cfg, qc = ctx.cfg, ctx.qc
    problems = []
    if qc["tumor_template_voxels"] < cfg.min_tumor_voxels:
        problems.append(f"tumor has {qc['tumor_template_voxels']} voxels on the template grid "
                        f"(< {cfg.min_tumor_voxels})")
    if not np.isfinite(similarity):
        problems.append("registration diverged: the similarity metric is not a number")
    if dice < cfg.qc_min_dice:
        where = " (input on the template grid, registration skipped)" if on_template else ""
        problems.append(f"registration diverged: brain mask Dice {dice:.3f} with the template brain mask "
                        f"(< {cfg.qc_min_dice}){where}")
    qc["passed"] = not problems
    qc["problems"] = problems
    if problems:
        raise CaseError(ctx.pid, None, problems[0])
    return qc


__all__ = ["qc_verdict", "quality_control"]
