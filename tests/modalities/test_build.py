"""Building the stored modalities of a patient: regions, coordinates, margin, cache keys.

A preprocessed patient is written by hand on a small 2 mm grid (a core of labels 1 and 4
inside an edema shell of label 2) with a tiny atlas sampling, so each build takes
milliseconds and the real :func:`build_case_modalities` runs.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from gliotype.config import load_config
from gliotype.modalities.build import AtlasSampling, build_case_modalities, load_case_modalities
from gliotype.modalities.crossing import tract_matrix
from gliotype.preprocessing import SEQUENCES

SHAPE = (30, 30, 30)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
AFFINE[:3, 3] = [-30.0, -40.0, -20.0]
CENTRE = np.array([15, 14, 16])
CORE_R, WHOLE_R = 4.0, 8.0  # voxels


def _labels(core: bool = True) -> np.ndarray:
    dist = np.linalg.norm(np.indices(SHAPE) - CENTRE[:, None, None, None], axis=0)
    mask = np.where(dist <= WHOLE_R, 2, 0).astype(np.uint8)
    if core:
        mask[dist <= CORE_R] = 4
        mask[dist <= CORE_R / 2] = 1
    return mask


def _write_patient(work, pid: str, mask: np.ndarray) -> None:
    out = work / "patients" / pid / "preprocessed"
    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for role in SEQUENCES:
        nib.save(nib.Nifti1Image(rng.random(SHAPE).astype(np.float32) + 1.0, AFFINE), out / f"{role}.nii.gz")
    nib.save(nib.Nifti1Image(mask, AFFINE), out / "mask.nii.gz")
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), AFFINE), out / "brain_mask.nii.gz")
    (work / "patients" / pid / "done.json").write_text(json.dumps({"key": "k", "has_fa": False}))


def _write_atlas(work) -> None:
    folder = work / "atlas"
    folder.mkdir(parents=True)
    n = int(np.prod(SHAPE))
    AtlasSampling(np.arange(10).reshape(2, 5), np.arange(5).reshape(1, 5), np.array([[1, 2]]),
                  np.array([[0], [1]]), key="tiny").save(folder)
    from scipy import sparse

    voxels = np.arange(0, n, 7)  # one tract through every 7th voxel
    sparse.save_npz(folder / "tract_matrix.npz", tract_matrix([voxels], [np.full(len(voxels), 0.9)], n))
    (folder / "tract_grid.json").write_text(json.dumps({"shape": list(SHAPE), "affine": AFFINE.tolist()}))


@pytest.fixture
def work(tmp_path):
    work = tmp_path / "work"
    _write_patient(work, "P1", _labels())
    _write_patient(work, "NOCORE", _labels(core=False))
    _write_atlas(work)
    return work


def _config(*sets):
    return load_config("tiny", overrides=list(sets))


def _radius_vox(points_mm):
    return np.linalg.norm((points_mm - AFFINE[:3, 3]) / 2.0 - CENTRE, axis=1)


def test_core_cloud_excludes_edema_and_image_labels_are_separate(work):
    res = build_case_modalities(work, "P1", _config("modalities.point_cloud_labels=core"))
    assert res.status == "done" and res.reason == ""
    assert res.info["point_cloud_region"] == "core" and res.info["image_region"] == "whole"
    case = load_case_modalities(work, "P1", ("point_cloud", "tumor_image"))
    assert _radius_vox(case["points_mm"]).max() <= CORE_R + 1.0  # no point on the edema surface
    whole_voxels = int((_labels() > 0).sum())
    assert np.count_nonzero(case["tumor_image"][0]) == whole_voxels  # x_I keeps the whole tumour
    build_case_modalities(work, "P1", _config())
    default = load_case_modalities(work, "P1", ("point_cloud",))
    assert _radius_vox(default["points_mm"]).min() >= WHOLE_R - 1.0  # 'whole': the edema surface


def test_image_labels_margin_and_ring_channel_reach_the_stored_image(work):
    res = build_case_modalities(work, "P1", _config("modalities.image_labels=core", "modalities.image_margin_mm=4",
                                                    "modalities.image_ring_channel=true"))
    assert res.status == "done" and res.info["image_region"] == "core"
    img = load_case_modalities(work, "P1", ("tumor_image",))["tumor_image"]
    assert img.shape[0] == 5
    core = int(np.isin(_labels(), (1, 3, 4)).sum())
    assert np.count_nonzero(img[4]) == core  # the ring channel: the undilated core
    assert np.count_nonzero(img[0]) > core  # the sequences: the core dilated by 4 mm


def _crossing(work, pid):
    with np.load(work / "patients" / pid / "modalities" / "crossing.npz") as z:
        return z["crossing"]


def test_mni_points_are_template_millimetres_and_eq2_crossings_do_not_change(work):
    build_case_modalities(work, "P1", _config())
    ball, ball_crossing = load_case_modalities(work, "P1", ("point_cloud",)), _crossing(work, "P1")
    build_case_modalities(work, "P1", _config("modalities.point_coordinates=mni", "modalities.point_scale_mm=50"))
    pc = load_case_modalities(work, "P1", ("point_cloud",))
    np.testing.assert_allclose(pc["points"], pc["points_mm"] / 50.0, rtol=1e-6)
    np.testing.assert_allclose(pc["points"].mean(0) * 50.0, pc["centre"], atol=1e-3)
    assert np.abs(ball["points"].mean(0)).max() < 1e-5 and np.abs(pc["points"].mean(0)).max() > 0.1
    # eq. 2 maps the millimetre points onto the tracts whatever f_P's coordinates
    np.testing.assert_array_equal(pc["points_mm"], ball["points_mm"])
    assert _crossing(work, "P1").shape[1] > 0
    np.testing.assert_array_equal(_crossing(work, "P1"), ball_crossing)


def test_an_empty_core_falls_back_to_the_whole_tumor_and_says_so(work):
    config = _config("modalities.tumor_labels=core")
    res = build_case_modalities(work, "NOCORE", config)
    assert res.status == "done"
    assert res.reason == ("whole tumour used: point cloud region core has 0 voxels, "
                          "image region core has 0 voxels (< 10)")
    assert res.info["point_cloud_region"] == "whole" and res.info["image_region"] == "whole"
    pc = load_case_modalities(work, "NOCORE", ("point_cloud",))
    assert _radius_vox(pc["points_mm"]).min() >= WHOLE_R - 1.0
    again = build_case_modalities(work, "NOCORE", config)  # cached: the note stays in the status
    assert again.status == "skipped" and again.reason == res.reason
    assert build_case_modalities(work, "P1", config).reason == ""  # a patient with a core: no fallback


@pytest.mark.parametrize("option", [
    "modalities.tumor_labels=core",
    "modalities.point_cloud_labels=[1,4]",
    "modalities.image_labels=core",
    "modalities.point_coordinates=mni",
    "modalities.point_scale_mm=50",
    "modalities.image_margin_mm=6",
    "modalities.image_ring_channel=true",
    "preprocess.min_tumor_voxels=5",
])
def test_changing_an_option_rebuilds(work, option):
    base = _config()
    assert build_case_modalities(work, "P1", base).status == "done"
    assert build_case_modalities(work, "P1", base).status == "skipped"
    assert build_case_modalities(work, "P1", _config(option)).status == "done"
    assert build_case_modalities(work, "P1", _config(option)).status == "skipped"
    assert build_case_modalities(work, "P1", base).status == "done"


@pytest.mark.parametrize("value", ["wholes", "[]", "[0]", "true"])
def test_bad_region_labels_are_one_clear_line(value):
    from gliotype.errors import GliotypeError

    with pytest.raises(GliotypeError, match=r"modalities.image_labels: .*'whole', 'core' or a list of mask labels"):
        _config(f"modalities.image_labels={value}")
    assert _config("modalities.image_labels=4").modalities.image_labels == [4]


# --------------------------------------------------------------------------- the atlas it samples with
def _stored(work, pid):
    """Every array a build writes, and modalities.json."""
    case = load_case_modalities(work, pid)
    arrays = {k: v for k, v in case.items() if isinstance(v, np.ndarray)}
    arrays["crossing"] = _crossing(work, pid)
    return arrays, json.loads((work / "patients" / pid / "modalities" / "modalities.json").read_text())


def test_a_given_atlas_replaces_the_work_folders(work, tmp_path):
    """A prediction passes the model's loaded atlas: a work folder without atlas/ builds the same files."""
    import shutil

    from gliotype.modalities.atlas import LoadedAtlas

    config = _config()
    assert build_case_modalities(work, "P1", config).status == "done"
    bare = tmp_path / "bare"
    shutil.copytree(work / "patients" / "P1" / "preprocessed", bare / "patients" / "P1" / "preprocessed")
    shutil.copy(work / "patients" / "P1" / "done.json", bare / "patients" / "P1" / "done.json")
    model_atlas = tmp_path / "model" / "atlas"
    shutil.copytree(work / "atlas", model_atlas)
    res = build_case_modalities(bare, "P1", config, atlas=LoadedAtlas.load(model_atlas))
    assert res.status == "done" and not (bare / "atlas").exists()
    (a, meta_a), (b, meta_b) = _stored(work, "P1"), _stored(bare, "P1")
    assert meta_a == meta_b and a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_the_cached_atlas_is_never_stale(work):
    """The per-process cache is keyed on the folder and the stored sampling key: an atlas drawn
    again in the same folder is read again (and the patients are rebuilt)."""
    from gliotype.modalities.atlas import LoadedAtlas

    config = _config()
    first = LoadedAtlas.cached(work / "atlas")
    assert first.key == "tiny" and LoadedAtlas.cached(work / "atlas") is first
    assert build_case_modalities(work, "P1", config).status == "done"
    assert build_case_modalities(work, "P1", config).status == "skipped"
    AtlasSampling(np.arange(10, 20).reshape(2, 5), np.arange(5, 10).reshape(1, 5), np.array([[1, 2]]),
                  np.array([[0], [1]]), key="redrawn").save(work / "atlas")
    again = LoadedAtlas.cached(work / "atlas")
    assert again.key == "redrawn"
    np.testing.assert_array_equal(again.sampling.node_positions, np.arange(10, 20).reshape(2, 5))
    assert build_case_modalities(work, "P1", config).status == "done"


@pytest.mark.parametrize("workers", [1, 2])
def test_build_modalities_keeps_the_order_in_one_or_more_processes(work, workers, monkeypatch):
    import gliotype.modalities.build as build

    monkeypatch.setattr(build, "atlas_sampling", lambda workdir, config: None)  # keep the hand-made atlas
    table = build.build_modalities(work, ["P1", "NOCORE", "GONE"], _config(), workers=workers)
    assert table["patient_id"].tolist() == ["P1", "NOCORE", "GONE"]
    assert table["status"].tolist() == ["done", "done", "failed"]
    assert "\n" not in table["reason"].iloc[2] and table["reason"].iloc[2]
    assert (work / "modalities_status.csv").exists()
