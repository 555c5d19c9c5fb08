"""The quality control of one preprocessed patient (gliotype.preprocessing.qc) on tiny synthetic volumes.

A 12^3 2 mm "template", a native patient with a known tumour and brain, a warped patient
whose brain mask is the template's shifted by one voxel (Dice 5/6), and a real ANTs
affine file whose determinant gives the linear scale. No registration is run.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gliotype.atlases.template import Template
from gliotype.config.schema import PreprocessConfig
from gliotype.errors import CaseError
from gliotype.preprocessing.ants_runtime import ants_module
from gliotype.preprocessing.case import CaseContext, NativeCase, TemplateCase
from gliotype.preprocessing.qc import qc_verdict, quality_control
from gliotype.preprocessing.register import Registration

SHAPE = (12, 12, 12)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])  # 8 mm^3 voxels
AFFINE[:3, 3] = -12.0


def _template() -> Template:
    brain = np.zeros(SHAPE, np.float32)
    brain[3:9, 3:9, 3:9] = 1.0  # 216 voxels
    x, y, z = np.indices(SHAPE, dtype=np.float32)
    t1 = (brain * (50.0 + 5.0 * x + 3.0 * y + 2.0 * z)).astype(np.float32)
    return Template(t1=t1, gm=brain * 0.5, wm=brain * 0.5, brain_mask=brain, affine=AFFINE.copy())


def _registration(folder, scale_x: float = 0.5, kind: str = "Affine") -> Registration:
    """A real ANTs affine file with matrix diag(scale_x, 1, 1): linear scale 1 / scale_x."""
    ants = ants_module()
    path = str(folder / "affine.mat")
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                                    matrix=np.diag([scale_x, 1.0, 1.0])), path)
    return Registration(kind, [path], [path], [True])


def _native(on_template: bool = False) -> tuple[NativeCase, np.ndarray]:
    """A native patient on a 1 mm grid: 64 tumour voxels (labels 1 and 4), a 2000-voxel brain."""
    mask = np.zeros((20, 10, 10), np.uint8)
    mask[2:6, 2:6, 2:4] = 1  # 32 voxels
    mask[2:6, 2:6, 4:6] = 4  # 32 voxels
    ref = nib.Nifti1Image(np.zeros(mask.shape, np.float32), np.eye(4))
    native = NativeCase(ref=ref, images={"t1c": ref}, coregistration={}, mask=mask, tumor=mask > 0, sequences={},
                        voxel_mm3=1.0, on_template=on_template)
    return native, np.ones(mask.shape, bool)


def _warped(template: Template, moving_image: np.ndarray | None = None) -> TemplateCase:
    """On the template grid: the template brain shifted one voxel along x, 10 tumour voxels (labels 1, 2)."""
    brain = np.zeros(SHAPE, bool)
    brain[4:10, 3:9, 3:9] = True  # overlap 5 x 6 x 6 = 180 of 216: Dice 2 * 180 / 432 = 5/6
    mask = np.zeros(SHAPE, np.uint8)
    mask[5, 5, 4:9] = 1
    mask[6, 5, 4:9] = 2
    seqs = np.stack([template.t1] * 4).astype(np.float32)
    if moving_image is not None:
        seqs = [seqs[0], moving_image, seqs[2], seqs[3]]  # index 1: t1c, the default moving sequence
    return TemplateCase(sequences=seqs, mask=mask, brain=brain, fa=None)


def _ctx(cfg: PreprocessConfig | None = None, template: Template | None = None):
    lines: list[str] = []
    inputs = {role: Path(f"P-7_{role}.nii.gz") for role in ("t1", "t1c", "t2", "flair", "mask")}  # the four sequences
    ctx = CaseContext(pid="P-7", inputs=inputs, cfg=cfg or PreprocessConfig(), template=template or _template(),
                      say=lines.append, qc={})
    return ctx, lines


def test_quality_control_fields_by_hand(tmp_path):
    ctx, lines = _ctx()
    native, brain = _native()
    dice, similarity = quality_control(ctx, _registration(tmp_path), native, brain, _warped(ctx.template))
    assert dice == pytest.approx(5 / 6)
    qc = ctx.qc
    assert qc["registration"] == "Affine" and qc["moving"] == "t1c"
    assert qc["brain_dice"] == round(5 / 6, 4) == 0.8333
    assert qc["similarity_mattes_mi"] == round(similarity, 4) and np.isfinite(similarity)
    assert qc["tumor_native_mm3"] == 64.0  # 64 voxels of 1 mm^3
    assert qc["tumor_template_mm3"] == 80.0  # 10 voxels of 8 mm^3
    assert qc["tumor_template_voxels"] == 10
    assert qc["tumor_volume_ratio"] == 1.25
    assert qc["linear_scale"] == 2.0  # 1 / det(diag(0.5, 1, 1))
    assert qc["tumor_volume_ratio_scaled"] == 0.625
    assert qc["brain_template_ml"] == 1.73  # 216 voxels x 8 mm^3 = 1.728 ml
    # tumour share of the brain, template (80 / 1.728) over native (64 / 2.0)
    assert qc["tumor_fraction_ratio"] == round((80 / 1.728) / (64 / 2.0), 4) == 1.4468
    assert qc["labels_native"] == [1, 4] and qc["labels_template"] == [1, 2]
    assert qc["tumor_masked_in_metric"] is True  # SyN, mask_tumor, not on the template grid
    assert lines == [f"QC: brain Dice 0.833, Mattes MI {similarity:.3f}, tumor 64 -> 80 mm3 "
                     "(ratio 1.250, linear scale 2.000)"]


def test_the_similarity_is_better_for_the_template_itself(tmp_path):
    """Mattes MI with the template T1 (lower = better): the T1 itself beats noise, and the moving
    sequence named by ``preprocess.moving`` is the one measured."""
    template = _template()
    noise = np.random.default_rng(0).uniform(0, 100, SHAPE).astype(np.float32)
    reg, (native, brain) = _registration(tmp_path), _native()
    _, same = quality_control(_ctx(template=template)[0], reg, native, brain, _warped(template))
    _, noisy = quality_control(_ctx(template=template)[0], reg, native, brain, _warped(template, noise))
    _, t1_moving = quality_control(_ctx(PreprocessConfig(moving="t1"), template)[0], reg, native, brain,
                                   _warped(template, noise))
    assert same < noisy
    assert t1_moving == pytest.approx(same)  # sequence 0 (t1) is the template T1, the noisy t1c is ignored
    # a patient without t1c (input.missing_sequences) moved its reference sequence, t1: that one is measured
    ctx = _ctx(template=template)[0]
    del ctx.inputs["t1c"]
    _, fallback = quality_control(ctx, reg, native, brain, _warped(template, np.zeros(SHAPE, np.float32)))
    assert ctx.qc["moving"] == "t1" and fallback == pytest.approx(same)


def test_the_similarity_reads_every_voxel(tmp_path):
    """The QC's Mattes MI samples every voxel (ITK's NONE strategy), not ANTsPy's default of every voxel
    jittered within it (``regular``): another number on the same images."""
    ants = ants_module()
    template = _template()
    moving = np.random.default_rng(1).uniform(0, 100, SHAPE).astype(np.float32) + template.t1
    _, similarity = quality_control(_ctx(template=template)[0], _registration(tmp_path), *_native(),
                                    _warped(template, moving))
    fixed = ants.from_numpy(template.t1, spacing=(2.0, 2.0, 2.0))
    every = {s: ants.image_similarity(fixed, fixed.new_image_like(moving), metric_type="MattesMutualInformation",
                                      sampling_strategy=s) for s in ("none", "regular")}
    assert similarity == pytest.approx(every["none"], abs=1e-6)
    assert abs(every["regular"] - every["none"]) > 1e-4


def test_metric_masking_flag_and_linear_scale_follow_the_settings(tmp_path):
    template = _template()
    native, brain = _native(on_template=True)
    ctx, _ = _ctx(template=template)
    quality_control(ctx, _registration(tmp_path, scale_x=2.0), native, brain, _warped(template))
    assert ctx.qc["tumor_masked_in_metric"] is False  # on the template grid: nothing was registered
    assert ctx.qc["linear_scale"] == 0.5 and ctx.qc["tumor_volume_ratio_scaled"] == 2.5
    native, brain = _native()
    for cfg in (PreprocessConfig(mask_tumor=False), PreprocessConfig(registration="Affine")):
        ctx, _ = _ctx(cfg, template)
        quality_control(ctx, _registration(tmp_path), native, brain, _warped(template))
        assert ctx.qc["tumor_masked_in_metric"] is False


def test_a_failed_similarity_is_recorded_as_none(tmp_path):
    """ANTs cannot compare images of different shapes: the similarity is NaN, stored as None."""
    template = _template()
    ctx, lines = _ctx(template=template)
    native, brain = _native()
    wrong = np.zeros((5, 5, 5), np.float32)
    _, similarity = quality_control(ctx, _registration(tmp_path), native, brain, _warped(template, wrong))
    assert np.isnan(similarity) and ctx.qc["similarity_mattes_mi"] is None
    assert "Mattes MI nan" in lines[0]


def _qc(voxels: int) -> dict:
    return {"tumor_template_voxels": voxels, "brain_dice": 0.9}


def test_verdict_passes_a_good_case():
    ctx, _ = _ctx(PreprocessConfig(min_tumor_voxels=10, qc_min_dice=0.8))
    ctx.qc.update(_qc(10))  # exactly the minimum
    out = qc_verdict(ctx, 0.8, -0.5, on_template=False)  # Dice exactly the minimum
    assert out is ctx.qc and out["passed"] is True and out["problems"] == []


def test_verdict_lists_every_problem_and_raises_the_first():
    ctx, _ = _ctx(PreprocessConfig(min_tumor_voxels=20, qc_min_dice=0.8))
    ctx.qc.update(_qc(10))
    with pytest.raises(CaseError) as err:
        qc_verdict(ctx, 0.5, float("nan"), on_template=False)
    assert str(err.value) == "patient P-7: tumor has 10 voxels on the template grid (< 20)"
    assert err.value.patient_id == "P-7" and err.value.file is None
    assert ctx.qc["passed"] is False
    assert ctx.qc["problems"] == [
        "tumor has 10 voxels on the template grid (< 20)",
        "registration diverged: the similarity metric is not a number",
        "registration diverged: brain mask Dice 0.500 with the template brain mask (< 0.8)",
    ]


@pytest.mark.parametrize("on_template, where", [
    (False, ""), (True, " (input on the template grid, registration skipped)")])
def test_verdict_low_dice_says_whether_registration_was_skipped(on_template, where):
    ctx, _ = _ctx(PreprocessConfig(qc_min_dice=0.9))
    ctx.qc.update(_qc(50))
    with pytest.raises(CaseError, match="registration diverged") as err:
        qc_verdict(ctx, 0.8999, -1.0, on_template=on_template)
    assert err.value.problem == f"registration diverged: brain mask Dice 0.900 with the template brain mask (< 0.9){where}"
    assert ctx.qc["problems"] == [err.value.problem]


def test_verdict_on_the_fields_quality_control_wrote(tmp_path):
    """The two halves together: too small a tumour on the template grid fails the patient."""
    ctx, _ = _ctx(PreprocessConfig(min_tumor_voxels=11))
    native, brain = _native()
    dice, similarity = quality_control(ctx, _registration(tmp_path), native, brain, _warped(ctx.template))
    with pytest.raises(CaseError, match=r"tumor has 10 voxels on the template grid \(< 11\)"):
        qc_verdict(ctx, dice, similarity, native.on_template)
    ctx.cfg = PreprocessConfig(min_tumor_voxels=10)
    assert qc_verdict(ctx, dice, similarity, native.on_template)["passed"] is True
