"""A native-space synthetic patient back onto the template grid; rigid co-registration;
the stored transforms map volumes both ways."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gliotype.atlases import load_template
from gliotype.preprocessing import dice, load_preprocessed, preprocess_cohort, to_native, to_template
from gliotype.preprocessing.register import resample_to, rigid_coregister
from pp_helpers import brats_row, config, once, synth

PID = "SYN-0000"


def _build(folder):
    root = synth(folder / "data", patients=1, fa_cases=1, space="native", seed=5)
    row = brats_row(root / PID)
    table = preprocess_cohort(pd.DataFrame([row]), folder / "work", config())
    return {"row": row, "table": table.to_dict("records")}


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """One native-space patient, preprocessed once per test run."""
    folder, res = once(tmp_path_factory, "native-patient", _build)
    return res["row"], folder / "work", pd.DataFrame(res["table"])


def test_native_patient_registered_to_the_template(native):
    row, work, table = native
    assert table["status"].tolist() == ["done"], table["reason"].tolist()
    tpl = load_template(2)
    case = load_preprocessed(work, PID)
    assert case["sequences"].shape == (4, *tpl.shape) and np.allclose(case["affine"], tpl.affine)
    assert dice(case["brain"], tpl.brain_mask > 0.5) >= 0.9
    assert case["fa"] is not None and case["fa"].max() > 0.3
    qc = json.loads((work / "patients" / PID / "preprocessed" / "qc.json").read_text())
    assert qc["registration"] == "SyN" and qc["brain_dice"] >= 0.9 and qc["tumor_masked_in_metric"]
    assert qc["coregistration"] == {"t1": "none", "t2": "none", "flair": "none", "fa": "none"}  # same grid
    assert 0.8 < qc["tumor_fraction_ratio"] < 1.2
    native_grid = nib.load(row["t1c"])
    assert native_grid.shape != tpl.shape  # it really was somewhere else


def test_transforms_go_both_ways(native):
    row, work, _ = native
    folder = work / "patients" / PID / "preprocessed" / "transforms"
    meta = json.loads((folder / "transforms.json").read_text())
    assert meta["forward"] == ["warp.nii.gz", "affine.mat"]
    assert meta["inverse"] == ["affine.mat", "inverse_warp.nii.gz"] and meta["inverse_invert"] == [True, False]
    seg = nib.load(row["mask"])
    stored = load_preprocessed(work, PID)["mask"]
    back = to_native(work / "patients" / PID / "preprocessed" / "mask.nii.gz", work, PID, row["mask"],
                     interpolator="genericLabel")
    assert back.shape == seg.shape and np.allclose(back.affine, seg.affine, atol=1e-4)
    assert dice(np.asarray(back.dataobj) > 0, np.asarray(seg.dataobj) > 0) > 0.8
    # an array on the template grid (a Grad-CAM map) goes to the stored native grid
    cam = to_native(stored.astype(np.float32), work, PID)
    assert cam.shape == seg.shape
    forward = to_template(row["mask"], work, PID, interpolator="genericLabel")
    assert dice(np.asarray(forward.dataobj) > 0, stored > 0) > 0.9


def test_rigid_coregistration_recovers_a_moved_sequence(native, tmp_path):
    row, _, _ = native
    t1c = nib.load(row["t1c"])
    t2 = nib.load(row["t2"])
    moved = _moved(t2)  # header moved: misaligned
    truth = np.asarray(t2.dataobj, np.float32)
    brain = truth > 0
    naive = np.asarray(resample_to(t1c, moved).dataobj)
    fixed = np.asarray(rigid_coregister(t1c, moved, 2.0, 0, tmp_path / "coreg_t2.mat").dataobj)

    def corr(x):
        return float(np.corrcoef(x[brain], truth[brain])[0, 1])

    assert corr(naive) < 0.8 and corr(fixed) > 0.95
    assert (tmp_path / "coreg_t2.mat").exists()


def _moved(image: nib.Nifti1Image, degrees: float = 6.0) -> nib.Nifti1Image:
    """``image`` with its header rotated about z and shifted: misaligned with its own grid's points."""
    a = np.deg2rad(degrees)
    move = np.eye(4)
    move[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    move[:3, 3] = [5.0, -4.0, 3.0]
    return nib.Nifti1Image(np.asarray(image.dataobj, np.float32), move @ image.affine)


#: In a fresh process on ONE ITK thread: rigid_coregister(t1c, t2, 2 mm, seed 0) into argv[3].
_ONE_THREAD_COREGISTRATION = """
import sys
import nibabel as nib
from gliotype.preprocessing.ants_runtime import use_itk_threads
from gliotype.preprocessing.register import rigid_coregister
use_itk_threads(1)
rigid_coregister(nib.load(sys.argv[1]), nib.load(sys.argv[2]), 2.0, 0, __import__("pathlib").Path(sys.argv[3]))
"""


def test_a_case_coregisters_on_one_itk_thread_whatever_its_process_runs(native, tmp_path):
    """Mattes (rigid co-registration) is the same bytes on one ITK thread only: a case run by a process
    on two threads co-registers in a one-thread helper, so its transform is the one-thread process's."""
    import subprocess
    import sys

    from gliotype.preprocessing import preprocess_case
    from gliotype.preprocessing.ants_runtime import itk_threads_here

    row, _, _ = native
    nib.save(_moved(nib.load(row["t2"])), tmp_path / "t2_moved.nii.gz")
    moved = {**row, "t2": str(tmp_path / "t2_moved.nii.gz")}
    if itk_threads_here() == 1:
        pytest.skip("this process runs ITK on one thread (an earlier test asked for it)")
    result = preprocess_case(moved, tmp_path / "work", config())
    assert result.status == "done", result.reason
    assert result.info["qc"]["coregistration"]["t2"] == "rigid"
    case_mat = tmp_path / "work" / "patients" / PID / "preprocessed" / "transforms" / "coreg_t2.mat"
    subprocess.run([sys.executable, "-c", _ONE_THREAD_COREGISTRATION, row["t1c"], moved["t2"],
                    str(tmp_path / "one.mat")], check=True)
    assert case_mat.read_bytes() == (tmp_path / "one.mat").read_bytes()


def _head(row, out):
    """The native patient with a skull, a scalp and noisy air around the brain (not skull-stripped)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    out.mkdir()
    new = dict(row, patient_id="HEAD", fa=None)
    pad = 8
    for role in ("t1", "t1c", "t2", "flair", "mask"):
        img = nib.load(row[role])
        data = np.pad(np.asarray(img.dataobj, np.float32), pad)
        affine = img.affine.copy()
        affine[:3, 3] -= affine[:3, :3] @ np.full(3, pad)
        if role != "mask":
            brain = data > 0
            inner, outer, skin = (ndi.binary_dilation(brain, iterations=k) for k in (2, 4, 6))
            med = float(np.median(data[brain]))
            data[outer & ~inner] = 0.2 * med if role == "t2" else 1.6 * med  # skull
            data[skin & ~outer] = 1.1 * med  # scalp
            data += np.abs(rng.normal(0, 0.03 * med, data.shape)).astype(np.float32)  # air
            if role == "t1c":
                nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), out / "true_brain.nii.gz")
        nib.save(nib.Nifti1Image(data.astype(np.uint8 if role == "mask" else np.float32), affine),
                 out / f"{role}.nii.gz")
        new[role] = str(out / f"{role}.nii.gz")
    return new


def test_head_that_is_not_skull_stripped(native, tmp_path):
    from gliotype.preprocessing import preprocess_case

    row, _, _ = native
    head = _head(row, tmp_path / "head")
    result = preprocess_case(head, tmp_path / "work", config(registration="Affine"))
    assert result.status == "done", result.reason
    qc = result.info["qc"]
    assert qc["skull_stripped"]["detected"] is False and "warped back" in qc["skull_stripped"]["brain_mask"]
    assert qc["brain_dice"] >= 0.9
    truth = tmp_path / "head" / "true_brain.nii.gz"
    brain = to_native(tmp_path / "work" / "patients" / "HEAD" / "preprocessed" / "brain_mask.nii.gz",
                      tmp_path / "work", "HEAD", truth)
    assert dice(np.asarray(brain.dataobj) > 0.5, np.asarray(nib.load(truth).dataobj) > 0) >= 0.9


def test_ants_seed_is_never_zero():
    """ANTs reads --random-seed 0 as "seed from the clock": config seed 0 must not reach it."""
    from gliotype.preprocessing.ants_runtime import ants_module, seed_ants

    seed_ants(0)
    assert ants_module().config._random_seed == 1


#: Run in a fresh process whose user environment asks ITK for 5 threads of its Pool threader: prints
#: the variable after importing gliotype.preprocessing, then the count and threader ITK read when
#: ANTs ran (ITK's Platform threader ends its threads with each call: no thread is left to count).
_THREADS_PROBE = """
import os, sys
import nibabel as nib, numpy as np
import gliotype.preprocessing
print(os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"))
from gliotype.preprocessing.ants_runtime import use_itk_threads
from gliotype.preprocessing.images import to_ants
if sys.argv[1] != "default":
    use_itk_threads(int(sys.argv[1]))
to_ants(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)))
print(os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"), os.environ.get("ITK_GLOBAL_DEFAULT_THREADER"))
"""


def test_itk_threads_is_an_argument_not_the_environment():
    """Importing gliotype.preprocessing leaves the environment alone; ITK runs on ``itk_threads``
    (default 2) of ITK's Platform threader, whatever ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS and
    ITK_GLOBAL_DEFAULT_THREADER the user set."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "5", "ITK_GLOBAL_DEFAULT_THREADER": "Pool",
           "OMP_NUM_THREADS": "1"}
    seen = {}
    for arg in ("default", "1", "2", "3"):
        out = subprocess.run([sys.executable, "-c", _THREADS_PROBE, arg], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        assert out[0] == "5", "importing gliotype.preprocessing changed the environment"
        seen[arg] = out[1]
        assert out[2] == "Platform", "ITK started with the user's threader"
    assert seen == {"default": "2", "1": "1", "2": "2", "3": "3"}
