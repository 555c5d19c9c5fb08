"""The stored transforms of a patient (gliotype.preprocessing.transforms), without a registration.

``save_transforms`` is fed a :class:`Registration` whose files are written here (a real
ANTs translation ``.mat`` and placeholder warp files), and ``to_template`` / ``to_native``
map tiny volumes through that known translation: 4 mm along z = 2 voxels of the 2 mm grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gliotype.atlases.template import Template
from gliotype.errors import CaseError
from gliotype.layout import TransformsDir, WorkDir
from gliotype.preprocessing.ants_runtime import ants_module
from gliotype.preprocessing.register import Registration
from gliotype.preprocessing.transforms import save_transforms, to_native, to_template

PID = "P-1"
SHAPE = (10, 10, 10)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
AFFINE[:3, 3] = -10.0


def _template(shape=SHAPE, affine=AFFINE) -> Template:
    zeros = np.zeros(shape, np.float32)
    return Template(t1=zeros, gm=zeros, wm=zeros, brain_mask=zeros, affine=np.asarray(affine, np.float64))


def _native_image(shape=(8, 9, 10)) -> nib.Nifti1Image:
    aff = np.array([[1.0, 0, 0, -4], [0, 1.2, 0, -5], [0, 0, 1.5, -6], [0, 0, 0, 1]])
    return nib.Nifti1Image(np.zeros(shape, np.float32), aff)


def _translation(path, dz_mm: float = 4.0) -> str:
    ants = ants_module()
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                                    translation=(0.0, 0.0, dz_mm)), str(path))
    return str(path)


def _syn_files(tmp_path) -> Registration:
    """The files of a SyN registration as ANTs names them (temporary names, placeholder contents)."""
    src = tmp_path / "ants_out"
    src.mkdir()
    affine = _translation(src / "tmpab0GenericAffine.mat")
    warp, inverse = src / "tmpab1Warp.nii.gz", src / "tmpab1InverseWarp.nii.gz"
    warp.write_bytes(b"forward warp")
    inverse.write_bytes(b"inverse warp")
    return Registration("SyN", [str(warp), affine], [affine, str(inverse)], [True, False])


def _ramp(shape=SHAPE) -> np.ndarray:
    """Value = z voxel index."""
    return np.broadcast_to(np.arange(shape[2], dtype=np.float32), shape).copy()


def test_save_transforms_copies_under_stable_names_and_writes_the_json(tmp_path):
    reg = _syn_files(tmp_path)
    folder = tmp_path / "case" / "transforms"  # created on the way
    native, template = _native_image(), _template()
    coreg = {"t1": "coreg_t1.mat", "t2": None}
    meta = save_transforms(reg, folder, native, template, coreg)

    assert meta["type"] == "SyN"
    assert meta["forward"] == ["warp.nii.gz", "affine.mat"]
    assert meta["inverse"] == ["affine.mat", "inverse_warp.nii.gz"] and meta["inverse_invert"] == [True, False]
    assert meta["native_grid"] == {"shape": [8, 9, 10], "affine": native.affine.tolist()}
    assert meta["template_grid"] == {"shape": [10, 10, 10], "affine": AFFINE.tolist(), "resolution_mm": 2.0}
    assert meta["coregistration"] == coreg
    assert "whichtoinvert=inverse_invert" in meta["usage"]
    assert json.loads((folder / "transforms.json").read_text()) == meta  # the file is what is returned
    # every file copied once, bytes unchanged; the sources stay
    assert sorted(p.name for p in folder.iterdir()) == ["affine.mat", "inverse_warp.nii.gz", "transforms.json",
                                                      "warp.nii.gz"]
    assert (folder / "warp.nii.gz").read_bytes() == b"forward warp"
    assert (folder / "inverse_warp.nii.gz").read_bytes() == b"inverse warp"
    assert (folder / "affine.mat").read_bytes() == Path(reg.forward[1]).read_bytes()
    assert all(Path(p).exists() for p in reg.forward + reg.inverse)


def test_an_affine_run_removes_the_files_of_an_earlier_syn_run(tmp_path):
    tdir = TransformsDir(tmp_path / "transforms")
    tdir.root.mkdir()
    for stale in (tdir.warp, tdir.inverse_warp, tdir.coregistration("t2"), tdir.coregistration("t1")):
        stale.write_bytes(b"old")
    mat = _translation(tmp_path / "tmp0GenericAffine.mat")
    meta = save_transforms(Registration("Affine", [mat], [mat], [True]), tdir, _native_image(), _template(),
                           {"t1": "coreg_t1.mat", "t2": None, "flair": None})
    assert meta["forward"] == meta["inverse"] == ["affine.mat"]
    # the warps and the t2 co-registration are gone; t1's co-registration (still named) is kept
    assert sorted(p.name for p in tdir.root.iterdir()) == ["affine.mat", "coreg_t1.mat", "transforms.json"]
    assert tdir.coregistration("t1").read_bytes() == b"old"


def _stored(tmp_path, dz_mm: float = 4.0, native=None):
    """A work folder whose patient has the stored translation transform (native = template grid unless given)."""
    work = tmp_path / "work"
    mat = _translation(tmp_path / "tmpGenericAffine.mat", dz_mm)
    native = native if native is not None else nib.Nifti1Image(np.zeros(SHAPE, np.float32), AFFINE)
    save_transforms(Registration("Affine", [mat], [mat], [True]), WorkDir(work).case(PID).transforms, native,
                    _template(), {})
    return work


def test_to_template_and_back_follow_the_stored_translation(tmp_path):
    work = _stored(tmp_path)
    ramp = _ramp()
    fwd = to_template(ramp, work, PID)
    assert isinstance(fwd, nib.Nifti1Image) and fwd.shape == SHAPE
    np.testing.assert_allclose(fwd.affine, AFFINE, atol=1e-5)  # on the stored template grid
    out = np.asarray(fwd.dataobj)
    np.testing.assert_allclose(out[5, 5, :8], np.arange(2, 10), atol=1e-4)  # template z reads native z + 2
    np.testing.assert_array_equal(out[5, 5, 8:], 0)  # beyond the native grid
    back = np.asarray(to_native(fwd, work, PID).dataobj)
    np.testing.assert_allclose(back[:, :, 2:8], ramp[:, :, 2:8], atol=1e-4)  # the round trip, where both cover
    np.testing.assert_array_equal(back[:, :, :2], 0)


def test_inputs_may_be_a_path_an_image_or_an_array(tmp_path):
    work = _stored(tmp_path)
    ramp = _ramp()
    path = tmp_path / "ramp.nii.gz"
    nib.save(nib.Nifti1Image(ramp, AFFINE), str(path))
    ref = np.asarray(to_template(ramp, work, PID).dataobj)
    np.testing.assert_allclose(np.asarray(to_template(path, work, PID).dataobj), ref, atol=1e-5)
    np.testing.assert_allclose(np.asarray(to_template(str(path), work, PID).dataobj), ref, atol=1e-5)
    np.testing.assert_allclose(np.asarray(to_template(nib.Nifti1Image(ramp, AFFINE), work, PID).dataobj), ref,
                               atol=1e-5)


def test_labels_stay_labels_with_generic_label(tmp_path):
    work = _stored(tmp_path, dz_mm=3.0)  # 1.5 voxels: linear interpolation would blend the labels
    labels = np.zeros(SHAPE, np.float32)
    labels[3:7, 3:7, 4:7] = 2.0
    labels[3:7, 3:7, 7:9] = 4.0
    lin = np.asarray(to_template(labels, work, PID).dataobj)
    lab = np.asarray(to_template(labels, work, PID, interpolator="genericLabel").dataobj)
    assert set(np.round(np.unique(lab), 4)) <= {0.0, 2.0, 4.0} and (lab == 4).any() and (lab == 2).any()
    assert not set(np.round(np.unique(lin), 4)) <= {0.0, 2.0, 4.0}


def test_to_native_onto_a_reference_grid(tmp_path):
    work = _stored(tmp_path, dz_mm=0.0)  # identity
    ref_aff = np.diag([1.0, 1.0, 1.0, 1.0])
    ref_aff[:3, 3] = -6.0
    ref_path = tmp_path / "reference.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((12, 12, 12), np.float32), ref_aff), str(ref_path))
    out = to_native(_ramp(), work, PID, reference_path=ref_path)
    assert out.shape == (12, 12, 12)
    np.testing.assert_allclose(out.affine, ref_aff, atol=1e-5)
    # world z = -6 + k (1 mm reference voxels) is template voxel (z + 10) / 2 of the ramp
    np.testing.assert_allclose(np.asarray(out.dataobj)[6, 6, :], (np.arange(12) - 6 + 10) / 2, atol=1e-4)


def test_an_array_off_the_stored_grid_is_refused(tmp_path):
    work = _stored(tmp_path, native=nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), AFFINE))
    with pytest.raises(ValueError, match=r"native volume array has shape \(10, 10, 10\), expected \(8, 8, 8\)"):
        to_template(_ramp(), work, PID)
    with pytest.raises(ValueError, match=r"template volume array has shape \(8, 8, 8\), expected \(10, 10, 10\)"):
        to_native(np.zeros((8, 8, 8), np.float32), work, PID)


def test_a_patient_without_stored_transforms(tmp_path):
    for fn in (to_template, to_native):
        with pytest.raises(CaseError) as err:
            fn(_ramp(), tmp_path / "work", "Q-9")
        assert str(err.value) == "patient Q-9: no stored transforms (run preprocessing first)"
