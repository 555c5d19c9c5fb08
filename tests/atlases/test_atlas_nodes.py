"""The node atlas: AAL 1-90 on the 2 mm template grid, and user label atlases."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from gliotype.atlases import NodeAtlas, aal_names, load_node_atlas, load_template, resample_labels
from gliotype.errors import GliotypeError


def test_aal_has_90_named_nonempty_regions_on_the_template_grid(aal):
    tpl = load_template(2)
    assert isinstance(aal, NodeAtlas)
    assert aal.shape == tpl.shape == (99, 117, 95)
    np.testing.assert_allclose(aal.affine, tpl.affine)
    assert aal.labels.dtype == np.int16
    assert aal.regions == tuple(range(1, 91))
    assert aal.names[0] == "Precentral_L" and aal.name(1) == "Precentral_L"
    assert aal.name(90) == "Temporal_Inf_R" and aal.name(37) == "Hippocampus_L"
    counts = aal.counts()
    assert counts.shape == (90,) and counts.min() > 0
    assert set(np.unique(aal.labels)) == set(range(0, 91))  # no cerebellum (91-116)
    assert not np.any((aal.labels > 0) & (tpl.brain_mask <= 0.5))  # inside the brain only
    np.testing.assert_array_equal(aal.voxels(5), np.flatnonzero(aal.labels.ravel() == 5))


def test_aal_is_cached_and_read_only(aal):
    assert load_node_atlas() is aal
    assert load_node_atlas(None, n_regions=90) is aal
    with pytest.raises(ValueError):
        aal.labels[0, 0, 0] = 3


def test_left_regions_lie_left_of_the_midline(aal):
    x_mm = lambda lab: (np.argwhere(aal.labels == lab)[:, 0].mean() * 2.0) + aal.affine[0, 3]  # noqa: E731
    assert x_mm(1) < 0 < x_mm(2)  # Precentral_L / _R (RAS: x grows to the subject's right)


def test_fewer_aal_regions_and_bad_counts(aal):
    six = load_node_atlas(None, n_regions=6)
    assert six.regions == tuple(range(1, 7))
    np.testing.assert_array_equal(six.labels == 3, aal.labels == 3)
    with pytest.raises(GliotypeError, match="n_regions"):
        load_node_atlas(None, n_regions=500)


def test_helpers_moved_from_synthetic_anatomy():
    from gliotype.synthetic import anatomy

    assert anatomy.aal_names is aal_names
    assert anatomy.resample_labels is resample_labels
    assert aal_names()[1] == "Precentral_L" and len(aal_names()) == 116


def _user_atlas(path, affine, shape=(60, 72, 60), flip=False):
    """Three box regions (labels 5, 10, 200) on a 3 mm grid, plus one 1-voxel region 300."""
    data = np.zeros(shape, dtype=np.int32)
    inv = np.linalg.inv(affine)

    def vox(mm):
        return np.rint(inv[:3, :3] @ np.asarray(mm, float) + inv[:3, 3]).astype(int)

    for lab, centre in ((5, (-30, 10, 20)), (10, (30, 10, 20)), (200, (0, -60, 10))):
        lo, hi = np.sort(np.stack([vox(np.subtract(centre, 8)), vox(np.add(centre, 8))]), axis=0)
        data[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = lab
    data[tuple(vox((10, 20, 30)))] = 300
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _affine_3mm(flip=False):
    a = np.diag([3.0, 3.0, 3.0, 1.0])
    a[:3, 3] = [-90.0, -126.0, -72.0]
    if flip:  # LAS: x runs right to left
        a[0, 0] = -3.0
        a[0, 3] = 87.0
    return a


def test_user_node_atlas_any_grid_and_orientation(tmp_path):
    ras = load_node_atlas(_user_atlas(tmp_path / "ras.nii.gz", _affine_3mm()), n_regions=4)
    assert ras.regions == (5, 10, 200, 300)
    assert ras.names == ("region_5", "region_10", "region_200", "region_300")
    assert ras.source == "ras.nii.gz" and ras.shape == (99, 117, 95)
    assert ras.counts().min() >= 1  # the one-voxel region survives
    las = load_node_atlas(_user_atlas(tmp_path / "las.nii.gz", _affine_3mm(flip=True)), n_regions=4)
    assert las.regions == ras.regions
    for lab in (5, 10, 200):  # same MNI boxes whatever the voxel order
        c_ras = np.argwhere(ras.labels == lab).mean(0)
        c_las = np.argwhere(las.labels == lab).mean(0)
        np.testing.assert_allclose(c_ras, c_las, atol=1.0)
    left = np.argwhere(ras.labels == 5)[:, 0].mean() * 2 - 98
    assert left < 0  # label 5 was put at x = -30 mm


def test_user_node_atlas_names_from_a_sidecar(tmp_path):
    path = _user_atlas(tmp_path / "mine.nii.gz", _affine_3mm())
    (tmp_path / "mine.txt").write_text("5 FrontL\n10 FrontR\n200 Occ\n")
    atlas = load_node_atlas(path, n_regions=None)
    assert atlas.names == ("FrontL", "FrontR", "Occ", "region_300")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "not found"),
        (lambda p: (p.write_text("not a nifti"), p)[1], "not a readable NIfTI"),
        (lambda p: (nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.int16), np.eye(4)), str(p)), p)[1],
         "no labelled voxel"),
        (lambda p: (nib.save(nib.Nifti1Image(np.full((10, 10, 10), 0.5, np.float32), np.eye(4)), str(p)), p)[1],
         "whole numbers"),
        (lambda p: (nib.save(nib.Nifti1Image(np.full((10, 10, 10), -1, np.int16), np.eye(4)), str(p)), p)[1],
         "0..32767"),
        (lambda p: (nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 3), np.int16), np.eye(4)), str(p)), p)[1],
         "3D labels volume"),
    ],
    ids=["missing", "garbage", "empty", "float", "negative", "4d"],
)
def test_bad_user_node_atlas(tmp_path, make, message):
    path = make(tmp_path / "bad.nii.gz")
    with pytest.raises(GliotypeError, match=message):
        load_node_atlas(path)


def test_user_node_atlas_region_outside_the_brain(tmp_path):
    data = np.zeros((20, 20, 20), np.int16)
    data[2:5, 2:5, 2:5] = 1
    data[10:14, 10:14, 10:14] = 2
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-200.0, -20.0, 0.0]  # region 1 at x ~ -195 mm: outside the head
    affine2 = affine.copy()
    nib.save(nib.Nifti1Image(data, affine2), str(tmp_path / "out.nii.gz"))
    with pytest.raises(GliotypeError, match="region 1 has no voxel inside"):
        load_node_atlas(tmp_path / "out.nii.gz")
