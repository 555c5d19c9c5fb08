"""The template-grid shortcut is decided in world space (issue 14, case 7): a case whose voxels are
the template grid's points in another order (LPI, or with axes permuted) skips registration and is
reordered exactly, like the same case in the template's own order; a sequence or mask on the T1c
grid's points in another order is reordered, not co-registered."""

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gliotype.atlases import load_template
from gliotype.preprocessing import SEQUENCES, load_preprocessed, preprocess_cohort
from gliotype.preprocessing.images import inverse_order, reorder, voxel_order

from pp_helpers import BRATS, brats_row, config, once, synth

SRC = "SYN-0000"
#: patient -> the voxel order of its files (role -> axis codes; the others keep the template's RAS)
CASES = {
    "LPI": {role: "LPI" for role in BRATS},
    "PERMUTED": {role: "PIL" for role in BRATS},  # axes permuted: shape (109, 91, 91)
    "MIXED": {"t1": "LPI", "t2": "SAR", "mask": "ILA"},  # t1c (the native grid) stays RAS
}


def _reoriented(img: nib.Nifti1Image, codes: str) -> nib.Nifti1Image:
    """The same voxels (same world points, same values) stored in the voxel order ``codes``."""
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine),
                                           nib.orientations.axcodes2ornt(tuple(codes)))
    data = nib.orientations.apply_orientation(np.asarray(img.dataobj), ornt)
    out = nib.Nifti1Image(data, img.affine @ nib.orientations.inv_ornt_aff(ornt, img.shape), img.header)
    assert "".join(nib.aff2axcodes(out.affine)) == codes
    return out


def _build(folder):
    root = synth(folder / "data", patients=1, fa_cases=0, seed=11)
    for pid, orders in CASES.items():
        (root / pid).mkdir()
        for role, suffix in BRATS.items():
            src = root / SRC / f"{SRC}_{suffix}.nii.gz"
            if not src.exists():
                continue
            dst = root / pid / f"{pid}_{suffix}.nii.gz"
            if role in orders:
                nib.save(_reoriented(nib.load(src), orders[role]), dst)
            else:
                shutil.copyfile(src, dst)
    rows = [brats_row(root / pid) for pid in (SRC, *CASES)]
    table = preprocess_cohort(pd.DataFrame(rows), folder / "work", config(), workers=2)
    return {"status": table.to_dict("records")}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder, res = once(tmp_path_factory, "voxel-order", _build)
    return folder / "data", folder / "work", {r["patient_id"]: r for r in res["status"]}


def test_voxel_order_is_exact_for_any_permutation_and_flip():
    tpl = load_template(2)
    data = np.random.default_rng(0).random(tpl.shape).astype(np.float32)
    for codes in ("RAS", "LPI", "PIL", "SAR", "ILA", "ASL"):
        img = _reoriented(nib.Nifti1Image(data, tpl.affine), codes)
        order = voxel_order(img, tpl.shape, tpl.affine)
        assert order is not None, codes
        assert np.array_equal(reorder(np.asarray(img.dataobj), order), data), codes
        assert np.array_equal(reorder(data, inverse_order(order)), np.asarray(img.dataobj)), codes
    # other points: half a voxel off, another voxel size, another field of view
    shifted = tpl.affine.copy()
    shifted[0, 3] += 1.0
    finer = tpl.affine @ np.diag([0.5, 0.5, 0.5, 1.0])
    for shape, affine in ((tpl.shape, shifted), (tpl.shape, finer), ((90, 109, 91), tpl.affine)):
        assert voxel_order(nib.Nifti1Image(np.zeros(shape, np.float32), affine), tpl.shape, tpl.affine) is None


def test_every_voxel_order_skips_registration(cohort):
    _, work, status = cohort
    for pid in (SRC, *CASES):
        assert status[pid]["status"] == "done", status[pid]
        out = work / "patients" / pid / "preprocessed"
        qc = json.loads((out / "qc.json").read_text())
        assert qc["registration"].startswith("identity (input on the template grid"), (pid, qc["registration"])
        assert json.loads((out / "transforms" / "transforms.json").read_text())["type"] == qc["registration"]
        assert "registration skipped" in (out / "preprocess.log").read_text()
        assert set(qc["coregistration"].values()) == {"none"}, (pid, qc["coregistration"])  # MIXED: reordered
    assert "in LPI voxel order: reordered" in json.loads(
        (work / "patients" / "LPI" / "preprocessed" / "qc.json").read_text())["registration"]


def test_every_voxel_order_gives_the_same_preprocessed_case(cohort):
    _, work, _ = cohort
    ref = load_preprocessed(work, SRC)
    tumor = ref["mask"] > 0
    for pid in CASES:
        case = load_preprocessed(work, pid)
        assert np.allclose(case["affine"], ref["affine"])
        dice = 2 * (tumor & (case["mask"] > 0)).sum() / (tumor.sum() + (case["mask"] > 0).sum())
        assert dice == 1.0 and np.array_equal(case["mask"], ref["mask"]), pid
        assert np.array_equal(case["brain"], ref["brain"]), pid
        for i, role in enumerate(SEQUENCES):  # the same voxels, normalised with percentiles of the same values
            assert np.array_equal(case["sequences"][i], ref["sequences"][i]), (pid, role)


def test_the_stored_transforms_map_back_onto_the_patients_own_voxel_order(cohort):
    """The native space stays the patient's T1c grid, in its own voxel order."""
    from gliotype.preprocessing.transforms import to_native

    data, work, _ = cohort
    mask = load_preprocessed(work, "LPI")["mask"].astype(np.float32)
    back = to_native(mask, work, "LPI", interpolator="genericLabel")
    given = nib.load(data / "LPI" / "LPI_seg.nii.gz")
    assert np.allclose(back.affine, given.affine)
    assert np.array_equal(np.rint(np.asarray(back.dataobj)).astype(np.uint8), np.asarray(given.dataobj))
