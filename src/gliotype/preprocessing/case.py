"""The steps of one patient (paper section 4.2), from its input files to its volumes on the template grid.

:func:`run_case` runs them in the order of the paper (details in ``docs/preprocessing.md``):

1. :func:`read_inputs`: read and check the input files;
2. :func:`coregister`: every sequence, FA and the mask onto the T1c grid (the reference
   sequence's: t1c, or the first present of :data:`gliotype.input.REFERENCE_ORDER` for a case
   without it, ``input.missing_sequences``);
3. :func:`brain_mask`: skull stripping;
4. :func:`normalise`: optional denoising, then intensity normalisation inside the brain;
5. :func:`register` to the template and :func:`apply_transforms` (then, for the grey-matter
   methods, :func:`normalise_on_grey_matter`);
6. the QC (:mod:`gliotype.preprocessing.qc`), :func:`write_outputs` (also for a failed
   QC, for inspection) and the QC's verdict.

Each step says what it did to the patient's log, fills its part of ``qc.json`` and
raises a :class:`~gliotype.errors.CaseError` naming the patient, the file and the
problem. The cache, the log file and failure handling are
:func:`gliotype.preprocessing.cohort.preprocess_case`'s.

A sequence the patient lacks (``input.missing_sequences``) is skipped by every step and
written as an all-zero volume on the template grid, so every reader gets the same four
files; ``qc.json`` and ``done.json`` name it (``missing_sequences``). The registration moves
``preprocess.moving`` when present, else the reference sequence (docs/design.md point 37).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.errors import CaseError, one_line, stop_on_environment
from gliotype.input import InputRules, nonfinite_note
from gliotype.layout import CaseDir, TransformsDir
from gliotype.preprocessing import brain as brainmod
from gliotype.preprocessing import register as reg_mod
from gliotype.preprocessing.ants_runtime import ants_module
from gliotype.preprocessing.cache import PREPROCESS_VERSION
from gliotype.preprocessing.case_data import CaseContext, NativeCase, TemplateCase
from gliotype.preprocessing.helper import CaseHelper, Kept, case_helper
from gliotype.preprocessing.images import (
    grid_image,
    is_identity_order,
    reorder,
    voxel_order,
    voxel_volume,
)
from gliotype.preprocessing.inputs import load_inputs
from gliotype.preprocessing.normalize import GM_METHODS, normalize, normalize_on_template, pre_registration_method
from gliotype.preprocessing.outputs import SEQUENCES, write_volumes
from gliotype.preprocessing.qc import qc_verdict, quality_control
from gliotype.preprocessing.transforms import save_transforms
from gliotype.utils.io import make_folder
from gliotype.utils.logging import get_logger
from gliotype.utils.timing import Laps

log = get_logger("preprocessing")


def run_case(pid: str, inputs: dict[str, Path], case: CaseDir, config, say, qc: dict,
             helper_threads: int | None = None) -> dict:
    """The steps of section 4.2 for one patient; writes the outputs and fills and returns ``qc``.
    With ``helper_threads`` the sequences the registration does not move are normalised and warped
    beside it, in a second process on that many ITK threads (:mod:`gliotype.preprocessing.helper`):
    the same outputs."""
    from gliotype.atlases import load_template

    cfg = config.preprocess
    lap = Laps(ndigits=3)
    ctx = CaseContext(pid, inputs, cfg, load_template(int(round(cfg.spacing_mm))), say, qc, InputRules.of(config))
    make_folder(case.transforms.root)
    qc.update({"patient_id": pid, "version": PREPROCESS_VERSION, "missing_sequences": list(ctx.missing),
               "reference_sequence": ctx.reference})
    if ctx.missing:
        say(f"missing {', '.join(ctx.missing)}: written as zero volumes; native grid {ctx.reference}, "
            f"moving image {ctx.moving} (input.missing_sequences)", logging.WARNING)

    images = read_inputs(ctx)
    lap("load")
    native = coregister(ctx, images, case.transforms)
    lap("coregistration")
    brain = brain_mask(ctx, native)
    lap("brain_mask")
    with _helper(ctx, native, brain, helper_threads) as helper:
        importing = _import_ants_beside() if helper is not None else None
        metric_mask = _metric_mask_beside(ctx, native, helper)
        sequences, fa = normalise(ctx, native, brain, helper)
        lap("normalization")
        if importing is not None:
            importing.join()
        reg = register(ctx, native, brain, sequences, metric_mask)
        lap("registration")
        try:
            warped = apply_transforms(ctx, reg, native, brain, sequences, fa, helper)
            lap("apply_transforms")
        except BaseException:
            reg.cleanup()
            raise
    try:
        if cfg.normalization in GM_METHODS:
            warped.sequences = normalise_on_grey_matter(ctx, warped)
            lap("normalization_gm")
        dice, similarity = quality_control(ctx, reg, native, brain, warped)
        write_outputs(case, ctx.template, warped, reg, native)
        lap("write")
    finally:
        reg.cleanup()
    qc["steps_seconds"] = lap.seconds
    return qc_verdict(ctx, dice, similarity, native.on_template)


def read_inputs(ctx: CaseContext) -> dict[str, nib.Nifti1Image]:
    """1. The input images by role, read and checked (:func:`gliotype.preprocessing.inputs.load_inputs`);
    NaN or infinite voxels set to 0 (``preprocess.nonfinite: zero``) and the reader's warnings (a sform
    and a qform that disagree) go to the log, the patient's log and ``qc.json``."""
    images, repaired = load_inputs(ctx.inputs, ctx.pid, ctx.rules)
    ctx.qc["nonfinite"] = {"rule": ctx.rules.nonfinite, "set_to_zero": repaired}
    for role, count in repaired.items():
        note = nonfinite_note(role, count)
        ctx.say(note, logging.WARNING)
        log.warning("patient %s: %s", ctx.pid, note)
    warnings = [w for img in images.values() for w in img.extra.get("warnings", [])]
    for line in warnings:  # e.g. a sform and a qform that disagree: which one is used
        log.warning("%s", line)
        ctx.say(line, logging.WARNING)
    if warnings:
        ctx.qc["warnings"] = warnings
    ref = ctx.reference
    ctx.say(f"loaded {', '.join(images)}; {ref} grid {images[ref].shape} "
            f"voxel {np.round(nib.affines.voxel_sizes(images[ref].affine), 3).tolist()} mm")
    return images


def coregister(ctx: CaseContext, images: dict[str, nib.Nifti1Image], tdir: TransformsDir) -> NativeCase:
    """2. Everything onto the T1c grid (the reference sequence's, :attr:`CaseContext.reference`): a
    sequence or FA on another grid is rigidly co-registered (``preprocess.coregister``; transform in
    ``tdir``), the mask resampled in world coordinates; an image on the T1c grid's points in another
    voxel order (LPI against RAS) is reordered, exactly. The case is ``on_template`` when the T1c
    grid holds the template grid's points, in any order."""
    from gliotype.preprocessing.register import one_itk_thread, resample_to

    name = ctx.reference
    ref = images[name]
    out = {name: ref}
    record: dict[str, str | None] = {}
    with one_itk_thread() as on_one_thread:  # Mattes: the same bytes on one ITK thread only
        for role in ("t1c", "t1", "t2", "flair", "fa"):
            if role in images and role != name:
                out[role], record[role] = _on_reference(ctx, images[role], role, ref, tdir, on_one_thread)
    mask = images["mask"]
    on_ref = _in_order_of(mask, ref)
    if on_ref is not None:
        out["mask"] = on_ref
    else:
        ctx.say(f"mask: resampled onto the {name} grid (world coordinates, generic label interpolation)")
        res = resample_to(ref, nib.Nifti1Image(np.asarray(mask.dataobj, np.float32), mask.affine), "genericLabel")
        out["mask"] = nib.Nifti1Image(np.rint(np.asarray(res.dataobj)).astype(np.uint8), res.affine)

    labels = np.asarray(out["mask"].dataobj).astype(np.uint8)
    if not (labels > 0).any():
        raise CaseError(ctx.pid, ctx.inputs["mask"], f"mask is empty on the {name} grid")
    ctx.qc["coregistration"] = {k: ("rigid" if v else "none") for k, v in record.items()}
    order = voxel_order(ref, ctx.template.shape, ctx.template.affine)
    return NativeCase(ref, out, record, labels, labels > 0,
                      {r: np.asarray(out[r].dataobj, dtype=np.float32) for r in ctx.present},
                      voxel_volume(ref.affine), order is not None,
                      None if order is None or is_identity_order(order) else order)


def _on_reference(ctx: CaseContext, image: nib.Nifti1Image, role: str, ref: nib.Nifti1Image, tdir: TransformsDir,
                  on_one_thread) -> tuple[nib.Nifti1Image, str | None]:
    """One sequence of :func:`coregister` on the reference grid, and its transform file's name (None
    when it was not registered); ``on_one_thread`` runs the rigid registration
    (:func:`~gliotype.preprocessing.register.one_itk_thread`)."""
    from gliotype.preprocessing.register import resample_to, rigid_coregister

    cfg, name = ctx.cfg, ctx.reference
    img = _in_order_of(image, ref)
    aligned = img is not None
    if cfg.coregister == "always" or (cfg.coregister == "auto" and not aligned):
        ctx.say(f"{role}: rigid co-registration to {name}")
        path = tdir.coregistration(role)
        try:
            moved = on_one_thread(rigid_coregister, ref, img if aligned else image, cfg.spacing_mm, cfg.seed, path)
        except Exception as exc:
            stop_on_environment(exc)
            raise CaseError(ctx.pid, ctx.inputs[role],
                            f"rigid co-registration of {role} to {name} failed ({one_line(exc)})")
        return moved, path.name
    if aligned:
        return img, None
    ctx.say(f"{role}: resampled onto the {name} grid (coregister=never)")
    return resample_to(ref, image, "linear"), None


def _in_order_of(img: nib.Nifti1Image, ref: nib.Nifti1Image) -> nib.Nifti1Image | None:
    """``img`` on ``ref``'s grid when both grids hold the same voxel centres (in any voxel order),
    reordered exactly (``img`` itself when the grids are the same); else None."""
    order = voxel_order(img, ref.shape[:3], ref.affine)
    if order is None or is_identity_order(order):
        return None if order is None else img
    return nib.Nifti1Image(reorder(np.asarray(img.dataobj), order), ref.affine, extra=img.extra)


def brain_mask(ctx: CaseContext, native: NativeCase) -> np.ndarray:
    """3. Skull stripping: the brain on the T1c grid, the non-zero T1c of a skull-stripped input
    (``preprocess.skull_stripped``) or else the template's brain mask; checks its size and that
    the tumour lies in it. T1c: the reference sequence (:attr:`CaseContext.reference`)."""
    cfg, ref, vox = ctx.cfg, ctx.reference, native.voxel_mm3
    t1c = native.sequences[ref]
    filled = brainmod.filled_foreground(t1c)  # once: the statistics and the brain of a stripped input
    stats = brainmod.skull_strip_stats(t1c, vox, filled)
    stripped = {"yes": True, "no": False}.get(cfg.skull_stripped)
    if stripped is None:
        stripped = brainmod.is_skull_stripped(t1c, vox, stats)
    if stripped:
        brain = brainmod.nonzero_brain_mask(t1c, filled)
        how = f"non-zero {ref} (skull-stripped input)"
    elif native.on_template:
        brain = native.from_template_order(ctx.template.brain_mask > 0.5) & brainmod.head_mask(t1c)
        how = "template brain mask (input on the template grid, not skull-stripped)"
    else:
        brain = reg_mod.template_brain_mask(native.ref, native.sequences[ctx.moving], ctx.template,
                                            cfg.registration, cfg.spacing_mm, cfg.reg_iterations, cfg.seed)
        how = "template brain mask warped back (input not skull-stripped)"
    brain_ml = float(brain.sum() * vox / 1000.0)
    ctx.say(f"skull stripped: {stripped} (zero fraction {stats['zero_fraction']:.2f}, foreground "
            f"{stats['foreground_ml']:.0f} ml); brain mask from {how}: {brain_ml:.0f} ml")
    ctx.qc["skull_stripped"] = {"setting": cfg.skull_stripped, "detected": bool(stripped), **stats,
                                "brain_mask": how, "brain_native_ml": round(brain_ml, 2)}
    if brain.sum() * vox < 100_000:  # 100 ml
        raise CaseError(ctx.pid, ctx.inputs[ref],
                        f"brain mask is only {brain_ml:.0f} ml (expected about 1,000-2,000 ml)")
    tumor = native.tumor
    inside = float((tumor & brain).sum() / tumor.sum())
    ctx.qc["tumor_inside_brain"] = round(inside, 4)
    if inside < cfg.min_tumor_in_brain:
        raise CaseError(ctx.pid, ctx.inputs["mask"],
                        f"mask lies outside the brain: {inside:.0%} of tumor voxels inside the brain mask "
                        f"(< {cfg.min_tumor_in_brain:.0%}); is it the mask of this patient and space?")
    return brain


@contextmanager
def _helper(ctx: CaseContext, native: NativeCase, brain: np.ndarray, itk_threads: int | None):
    """The helper of :func:`run_case` for the block (None without ``itk_threads`` or when nothing is
    registered): it starts with the brain, the tumour and the sequences it will normalise, and
    imports ANTs and reads the template while this process normalises the moving sequence."""
    if itk_threads is None or native.on_template:
        yield None
        return
    state = {"brain": brain, "tumor": native.tumor,
             **{role: native.sequences[role] for role in ctx.present if role != ctx.moving}}
    with case_helper(itk_threads, state) as helper:
        helper.submit(_prepare_helper, int(round(ctx.cfg.spacing_mm)))  # its answer is read with a later one's
        yield helper


def _import_ants_beside() -> threading.Thread:
    """Import ANTs in a thread while this process normalises the moving sequence (numpy, mostly
    outside the interpreter lock): about 0.3 s off the registration's start on the real case. Only
    after the helper is forked: it forks while ANTs has not started here (:class:`CaseHelper`)."""
    thread = threading.Thread(target=_try_import_ants, name="gliotype-import-ants", daemon=True)
    thread.start()
    return thread


def _try_import_ants() -> None:
    try:
        ants_module()
    except Exception:  # noqa: BLE001 (the registration imports it again and reports the problem)
        pass


def _prepare_helper(spacing_mm: int) -> None:
    """In the helper: import ANTs and read the template before the first warp needs them."""
    from gliotype.atlases import load_template

    ants_module()
    load_template(spacing_mm)


def normalise(ctx: CaseContext, native: NativeCase, brain: np.ndarray,
              helper: CaseHelper | None = None) -> tuple[dict[str, np.ndarray | InHelper], np.ndarray | None]:
    """4. Each sequence inside the brain, denoised (``preprocess.denoise``) and normalised with the tumour
    left out (the grey-matter methods z-score here, :func:`normalise_on_grey_matter` after registration);
    FA clipped to [0, 1] inside the brain. Returns (role -> sequence, FA or None); a missing
    sequence is skipped (it has no entry). With a ``helper`` the sequences the registration does not
    move are normalised there, beside the registration, and kept there to be warped (their entry: an
    :class:`InHelper`); their errors are raised by :func:`apply_transforms`, after the registration."""
    cfg = ctx.cfg
    out: dict[str, np.ndarray | InHelper] = {}
    method = pre_registration_method(cfg.normalization)
    for role in ctx.present:
        if helper is not None and role != ctx.moving:  # the helper holds the arrays (_helper)
            job = helper.submit(normalised_sequence, native.ref.affine, Kept(role), Kept("brain"), Kept("tumor"),
                                method, cfg.denoise, keep=role)
            out[role] = InHelper(role, job)
            continue
        try:
            out[role] = normalised_sequence(native.ref.affine, native.sequences[role], brain, native.tumor, method,
                                            cfg.denoise)
        except ValueError as exc:
            raise CaseError(ctx.pid, ctx.inputs[role], f"{role}: {exc}") from None
    fa = None
    if "fa" in native.images:
        fa = np.clip(np.where(brain, np.asarray(native.images["fa"].dataobj, dtype=np.float32), 0.0), 0.0, 1.0)
    ctx.say(f"normalisation: {cfg.normalization}; denoise: {cfg.denoise}")
    return out, fa


def normalised_sequence(affine: np.ndarray, data: np.ndarray, brain: np.ndarray, tumor: np.ndarray,
                        method: str, denoise: bool) -> np.ndarray:
    """One sequence of :func:`normalise` (``affine``: of its grid; a ValueError when it cannot be
    normalised)."""
    data = np.where(brain, data, 0.0).astype(np.float32)
    if denoise:
        data = _denoise(affine, data, brain)
    return normalize(data, brain, method, exclude=tumor)


@dataclass(frozen=True)
class InHelper:
    """A sequence :func:`normalise` left to the helper: normalised and kept there by job ``job``."""

    role: str
    job: int


def _normalised_in_helper(ctx: CaseContext, helper: CaseHelper, seq: InHelper) -> None:
    """Wait for the helper's normalisation of ``seq``; a sequence it could not normalise is that
    sequence's CaseError, as without the helper."""
    try:
        helper.result(seq.job)
    except ValueError as exc:  # normalised_sequence's, raised again here
        raise CaseError(ctx.pid, ctx.inputs[seq.role], f"{seq.role}: {exc}") from None


def _denoise(affine: np.ndarray, data: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """ANTs non-local means inside the brain (Rician model: on values shifted to >= 0)."""
    ants = ants_module()

    shifted = data - data[brain].min() if data[brain].min() < 0 else data
    den = ants.denoise_image(grid_image(data.shape, affine, shifted),
                             grid_image(data.shape, affine, brain.astype(np.float32))).numpy()
    return np.where(brain, den + (data - shifted), 0.0).astype(np.float32)


def _metric_mask_beside(ctx: CaseContext, native: NativeCase, helper: CaseHelper | None):
    """With a helper and a SyN registration that leaves the tumour out: the tumour metric mask
    (:func:`gliotype.preprocessing.register.metric_mask`) asked of the helper now, as the function
    of :func:`register` that waits for it; else None."""
    cfg = ctx.cfg
    if helper is None or not cfg.mask_tumor or cfg.registration != "SyN":
        return None
    job = helper.submit(reg_mod.metric_mask, native.ref.affine, Kept("brain"), Kept("tumor"), cfg.spacing_mm)
    return lambda: helper.result(job)


def register(ctx: CaseContext, native: NativeCase, brain: np.ndarray, sequences: dict[str, np.ndarray | InHelper],
             tumor_metric_mask=None):
    """5. ``preprocess.moving`` onto the template T1 (``preprocess.registration``), the tumour left out of
    the metric (``preprocess.mask_tumor``); the identity for an input already on the template grid.
    A patient without ``preprocess.moving`` moves its reference sequence (:attr:`CaseContext.moving`).
    ``tumor_metric_mask``: :func:`_metric_mask_beside`'s."""
    cfg = ctx.cfg
    if native.on_template:
        reg = reg_mod.identity_registration()
        reg.kind = "identity (input on the template grid)"
        if native.template_order is None:
            ctx.say("input is on the template grid: registration skipped")
        else:  # the same points in another voxel order: reordered exactly by apply_transforms
            axes = "".join(nib.aff2axcodes(native.ref.affine))
            reg.kind = f"identity (input on the template grid in {axes} voxel order: reordered)"
            ctx.say(f"input is on the template grid in {axes} voxel order: voxels reordered, registration skipped")
        return reg
    moving = nib.Nifti1Image(sequences[ctx.moving], native.ref.affine)
    try:
        reg = reg_mod.register_to_template(moving, brain, native.tumor if cfg.mask_tumor else None, ctx.template,
                                           cfg.registration, cfg.spacing_mm, cfg.reg_iterations, cfg.seed,
                                           tumor_metric_mask=tumor_metric_mask)
    except Exception as exc:
        stop_on_environment(exc)
        raise CaseError(ctx.pid, ctx.inputs[ctx.moving], f"registration to the template failed ({one_line(exc)})")
    ctx.say(f"registration {ctx.moving} -> template: {reg.kind} in {reg.seconds:.1f}s")
    return reg


def apply_transforms(ctx: CaseContext, reg, native: NativeCase, brain: np.ndarray,
                     sequences: dict[str, np.ndarray | InHelper], fa: np.ndarray | None,
                     helper: CaseHelper | None = None) -> TemplateCase:
    """5. The sequences, labels, brain mask and FA onto the template grid (zero outside the warped brain;
    a missing sequence all zero). The sequences :func:`normalise` left to the ``helper`` are warped
    there, beside the others here."""
    zeros = np.zeros(ctx.template.shape, np.float32)
    if native.on_template:  # the same voxels in the template's order: exact, no interpolation
        order = native.to_template_order
        return TemplateCase(np.stack([order(sequences[r]) if r in sequences else zeros
                                      for r in SEQUENCES]).astype(np.float32), order(native.mask),
                            order(brain), None if fa is None else order(fa))
    template, ref = ctx.template, native.ref
    helped = {r: s for r, s in sequences.items() if isinstance(s, InHelper)}
    for seq in helped.values():
        _normalised_in_helper(ctx, helper, seq)
    for r in helped:  # kept there: a large answer would hold the helper until this process reads it
        helper.submit(_warped, reg, int(round(ctx.cfg.spacing_mm)), ref.affine, Kept(r), keep=f"warped {r}")
    together = helper.submit(_together, *[Kept(f"warped {r}") for r in helped]) if helped else None
    wbrain = reg_mod.apply_forward(reg, template, ref, brain.astype(np.float32), "linear") > 0.5
    here = {r: reg_mod.apply_forward(reg, template, ref, s, "linear") for r, s in sequences.items() if r not in helped}
    wmask = np.rint(reg_mod.apply_forward(reg, template, ref, native.mask.astype(np.float32), "genericLabel"))
    wfa = None
    if fa is not None:
        wfa = np.clip(np.where(wbrain, reg_mod.apply_forward(reg, template, ref, fa, "linear"), 0.0), 0.0, 1.0)
    # the helper's last: its warps ran beside the ones above
    here.update(zip(helped, helper.result(together)) if helped else ())
    seqs = np.stack([here[r] if r in here else zeros for r in SEQUENCES])
    seqs = np.where(wbrain[None], seqs, 0.0).astype(np.float32)
    return TemplateCase(seqs, wmask.astype(np.uint8), wbrain, wfa)


def _together(*values) -> tuple:
    """In the helper: kept values sent back in one answer."""
    return values


def _warped(reg, spacing_mm: int, affine: np.ndarray, data: np.ndarray) -> np.ndarray:
    """A normalised sequence (native grid ``affine``) warped onto the template grid in the helper
    (what :func:`apply_transforms` computes here)."""
    from gliotype.atlases import load_template

    return reg_mod.apply_forward(reg, load_template(spacing_mm), nib.Nifti1Image(data, affine), data, "linear")


def normalise_on_grey_matter(ctx: CaseContext, warped: TemplateCase) -> np.ndarray:
    """4, for ``histogram_gm`` / ``zscore_gm``: statistics on the template's grey matter, tumour left out
    (a missing sequence stays all zero)."""
    method, gm = ctx.cfg.normalization, ctx.template.gm
    try:
        return np.stack([normalize_on_template(warped.sequences[i], warped.brain, method, gm, warped.mask > 0)
                         if s in ctx.present else warped.sequences[i]
                         for i, s in enumerate(SEQUENCES)]).astype(np.float32)
    except ValueError as exc:
        raise CaseError(ctx.pid, None, f"{method} normalisation: {exc}") from None


def write_outputs(case: CaseDir, template, warped: TemplateCase, reg, native: NativeCase) -> None:
    """6. The volumes on the template grid and the transforms, written also when the QC fails (for
    inspection; ``done.json`` is what marks success)."""
    write_volumes(case, template.affine, warped.sequences, warped.mask, warped.brain, warped.fa)
    save_transforms(reg, case.transforms, native.ref, template, native.coregistration)


__all__ = ["CaseContext", "InHelper", "NativeCase", "TemplateCase", "apply_transforms", "brain_mask", "coregister",
           "normalise", "normalise_on_grey_matter", "normalised_sequence", "read_inputs", "register", "run_case",
           "write_outputs"]
