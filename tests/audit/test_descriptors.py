"""Hand-made tumour descriptors on small volumes written with nibabel (issue 12, audit)."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest

from gliotype.atlases import load_template
from gliotype.audit import DESCRIPTOR_COLUMNS, descriptor_table, descriptors_from_arrays, tumor_descriptors
from gliotype.audit.asymmetry import mirror_index, mirror_volume, perilesional_asymmetry
from gliotype.audit.shape import shape_descriptors

N = 40
#: 2 mm grid centred on x = 0 (x = 2 i - 39): the mirror of voxel i is voxel 39 - i.
AFFINE = np.array([[2.0, 0, 0, -39.0], [0, 2.0, 0, -39.0], [0, 0, 2.0, -39.0], [0, 0, 0, 1]])
ML = 0.008  # one 2 mm voxel


def _grid_mm():
    idx = np.indices((N, N, N)).reshape(3, -1).T
    return (idx @ AFFINE[:3, :3].T + AFFINE[:3, 3]).reshape(N, N, N, 3)


def _ball(centre_mm, radius_mm):
    return np.linalg.norm(_grid_mm() - np.asarray(centre_mm), axis=-1) <= radius_mm


def _lobulated(centre_mm, radius_mm, lobes=5, depth=0.4):
    d = _grid_mm() - np.asarray(centre_mm)
    r = np.linalg.norm(d, axis=-1)
    theta = np.arctan2(d[..., 1], d[..., 0])
    phi = np.arccos(np.clip(d[..., 2] / np.maximum(r, 1e-9), -1, 1))
    return r <= radius_mm * (1 + depth * np.cos(lobes * theta) * np.sin(phi))


def write_patient(work, pid, mask, sequences=None):
    """A preprocessed patient as the pipeline writes it (``preprocessed/*.nii.gz`` + ``done.json``)."""
    out = work / "patients" / pid / "preprocessed"
    out.mkdir(parents=True)
    if sequences is None:
        sequences = {s: np.full(mask.shape, 50.0, np.float32) for s in ("t1", "t1c", "t2", "flair")}
    for name, data in sequences.items():
        nib.save(nib.Nifti1Image(np.asarray(data, np.float32), AFFINE), out / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(mask, np.uint8), AFFINE), out / "mask.nii.gz")
    nib.save(nib.Nifti1Image(np.ones(mask.shape, np.uint8), AFFINE), out / "brain_mask.nii.gz")
    (work / "patients" / pid / "done.json").write_text(json.dumps({"key": pid, "has_fa": False}))


def test_sphere_is_more_spherical_and_less_lobulated_than_a_lobulated_blob(tmp_path):
    ball = np.where(_ball((0, 0, 0), 14), 4, 0)
    blob = np.where(_lobulated((0, 0, 0), 14), 4, 0)
    write_patient(tmp_path, "BALL", ball)
    write_patient(tmp_path, "BLOB", blob)
    b, lob = tumor_descriptors(tmp_path, "BALL"), tumor_descriptors(tmp_path, "BLOB")
    assert list(b) == list(DESCRIPTOR_COLUMNS)
    assert b["core_sphericity"] > 0.85 > lob["core_sphericity"] + 0.1
    assert b["core_lobulation"] < 0.05 < lob["core_lobulation"]
    assert b["core_surface_mm2"] == pytest.approx(4 * np.pi * 14**2, rel=0.15)
    assert b["vol_whole_ml"] == pytest.approx(4 / 3 * np.pi * 14**3 / 1000, rel=0.05)


def test_roughness_grows_with_an_irregular_margin():
    rng = np.random.default_rng(0)
    ball = _ball((0, 0, 0), 14)
    shell = _ball((0, 0, 0), 17) & ~_ball((0, 0, 0), 11)
    rough = ball ^ (shell & (rng.random(ball.shape) < 0.3))
    assert shape_descriptors(rough, AFFINE)["roughness"] > shape_descriptors(ball, AFFINE)["roughness"] + 0.2


def test_compartment_volumes_fractions_and_means(tmp_path):
    mask = np.zeros((N, N, N), np.uint8)
    mask[10:14, 10:15, 10:17] = 4  # 140 enhancing voxels
    mask[14:17, 10:15, 10:14] = 1  # 60 necrotic / non-enhancing voxels
    mask[20:22, 10:15, 10:15] = 2  # 50 edema voxels
    seqs = {s: np.full(mask.shape, 50.0, np.float32) for s in ("t1", "t1c", "t2", "flair")}
    seqs["t1c"][mask == 4] = 90.0
    seqs["t2"][mask == 1] = 80.0
    seqs["flair"][mask == 1] = 40.0
    write_patient(tmp_path, "P1", mask, seqs)
    d = tumor_descriptors(tmp_path, "P1")
    assert d["vol_et_ml"] == pytest.approx(140 * ML)
    assert d["vol_ncr_ml"] == pytest.approx(60 * ML)
    assert d["vol_ed_ml"] == pytest.approx(50 * ML)
    assert d["enhancing_fraction"] == pytest.approx(0.7)
    assert d["ncr_fraction"] == pytest.approx(60 / 250)
    assert d["mean_t1c_et"] == pytest.approx(90.0) and d["mean_t1c_ncr"] == pytest.approx(50.0)
    assert d["t2_flair_ratio_ncr"] == pytest.approx(2.0)


def test_location_in_mni_mm_with_the_hemisphere_apart(tmp_path):
    write_patient(tmp_path, "LEFT", np.where(_ball((-21, 5, -9), 6), 1, 0))
    d = tumor_descriptors(tmp_path, "LEFT")
    assert d["centroid_abs_x_mm"] == pytest.approx(21, abs=0.5)
    assert d["centroid_y_mm"] == pytest.approx(5, abs=0.5) and d["centroid_z_mm"] == pytest.approx(-9, abs=0.5)
    assert d["hemisphere_left"] == 1.0


def test_mirror_of_the_template_grid_is_exact_and_the_template_symmetric():
    t = load_template(2)
    idx = mirror_index(t.shape, t.affine)
    assert idx is not None and list(idx[:3]) == [98, 97, 96] and idx[49] == 49
    assert np.abs(mirror_volume(t.wm, t.affine) - t.wm).max() < 1e-6
    assert mirror_index((N, N, N), AFFINE) is not None
    shifted = AFFINE.copy()
    shifted[0, 3] += 1.0  # x = 2 i - 38: mirrors fall between voxels -> interpolation
    assert mirror_index((N, N, N), shifted) is None


def test_perilesional_asymmetry_finds_a_one_sided_change_in_its_bin_with_its_sign():
    tumour = _ball((-21, 0, 0), 6)
    seqs = {s: np.full((N, N, N), 50.0, np.float32) for s in ("t1", "t1c", "t2", "flair")}
    dist = np.linalg.norm(_grid_mm() - np.array([-21, 0, 0]), axis=-1) - 6  # about the distance to the ball
    left = _grid_mm()[..., 0] < 0
    seqs["t2"][left & (dist > 13) & (dist < 22)] *= 1.2  # T2 prolongation 10-25 mm from the lesion
    seqs["t1"][left & (dist > 1) & (dist < 8)] *= 0.8  # T1 drop next to it
    wm = np.ones((N, N, N), np.float32)
    out = perilesional_asymmetry(seqs, tumour, wm, AFFINE)
    assert out["wm_logratio_t2_10_25mm"] > 0.5 * np.log(1.2)
    assert abs(out["wm_logratio_t2_0_10mm"]) < 0.02 and abs(out["wm_logratio_t2_25_50mm"]) < 0.02
    assert out["wm_logratio_t1_0_10mm"] < 0.5 * np.log(0.8)
    assert abs(out["wm_logratio_flair_10_25mm"]) < 1e-9  # untouched sequence: symmetric
    # only white matter counts: the same change outside white matter is invisible
    assert np.isnan(perilesional_asymmetry(seqs, tumour, np.zeros_like(wm), AFFINE)["wm_logratio_t2_10_25mm"])
    # a change mirrored on the healthy side cancels
    shell = ((dist > 13) & (dist < 22)).astype(np.float32)
    both = dict(seqs, t2=np.where(np.maximum(shell, mirror_volume(shell, AFFINE)) > 0, 60.0, 50.0).astype(np.float32))
    assert abs(perilesional_asymmetry(both, tumour, wm, AFFINE)["wm_logratio_t2_10_25mm"]) < 0.02


def test_voxels_whose_mirror_is_tumour_are_left_out():
    # main lesion on the left; a small satellite on the right whose mirror lies 6 mm outside the lesion
    tumour = _ball((-21, 0, 0), 6) | _ball((21, 0, 12), 3)
    seqs = {s: np.full((N, N, N), 50.0, np.float32) for s in ("t1", "t1c", "t2", "flair")}
    seqs["t2"][_ball((21, 0, 12), 3)] = 10.0  # tumour intensity: would give log(50 / 10) at its mirror
    out = perilesional_asymmetry(seqs, tumour, np.ones((N, N, N)), AFFINE)
    assert out["wm_logratio_t2_0_10mm"] == pytest.approx(0.0, abs=1e-9)
    all_of = descriptors_from_arrays(np.stack(list(seqs.values())), tumour.astype(np.uint8), AFFINE, np.ones((N, N, N)))
    assert all_of["wm_logratio_t2_0_10mm"] == pytest.approx(out["wm_logratio_t2_0_10mm"])


def test_descriptor_table_skips_a_broken_patient_with_one_warning_and_caches(tmp_path, caplog):
    write_patient(tmp_path, "OK", np.where(_ball((10, 0, 0), 8), 4, 0))
    (tmp_path / "patients" / "GONE" / "preprocessed").mkdir(parents=True)
    (tmp_path / "patients" / "GONE" / "done.json").write_text(json.dumps({"has_fa": False}))
    with caplog.at_level(logging.WARNING):
        df = descriptor_table(tmp_path, ["OK", "GONE", "NOBODY"])
    assert df["patient_id"].tolist() == ["OK"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and all("\n" not in w for w in warned) and any("GONE" in w for w in warned)
    cache = tmp_path / "patients" / "OK" / "audit" / "descriptors.json"
    assert cache.exists()
    stored = json.loads(cache.read_text())
    stored["values"]["vol_et_ml"] = 123.0  # a cached value is what the next call returns ...
    cache.write_text(json.dumps(stored))
    assert descriptor_table(tmp_path, ["OK"])["vol_et_ml"].iloc[0] == 123.0
    (tmp_path / "patients" / "OK" / "done.json").write_text(json.dumps({"key": "new", "has_fa": False}))
    assert descriptor_table(tmp_path, ["OK"])["vol_et_ml"].iloc[0] != 123.0  # ... until preprocessing changes


def _dies(work, pid):
    """``tumor_descriptors`` whose worker process dies, as the OOM killer would end it."""
    import os

    os._exit(1)


def test_descriptor_table_in_workers_keeps_the_order_and_survives_dead_workers(tmp_path, monkeypatch, caplog):
    from gliotype.audit import descriptors

    for pid, x in (("A", 10), ("B", -10)):
        write_patient(tmp_path, pid, np.where(_ball((x, 0, 0), 8), 4, 0))
    serial = descriptor_table(tmp_path, ["B", "A"], cache=False)
    assert descriptor_table(tmp_path, ["B", "A"], workers=2, cache=False).equals(serial)
    monkeypatch.setattr(descriptors, "tumor_descriptors", _dies)
    with caplog.at_level(logging.WARNING):
        df = descriptor_table(tmp_path, ["B", "A"], workers=2, cache=False)
    assert df.empty and list(df.columns) == list(serial.columns)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and all("worker process crashed" in w for w in warned)


def test_the_hand_made_features_computed_ahead_leave_nothing_to_compute_after(tmp_path, monkeypatch):
    """``stages.hand_made_features`` (given to the self-supervision stage's pool by ``gliotype run``)
    caches every patient's radiomics and descriptors: the radiomics rows and the observable ceiling
    then extract nothing."""
    import gliotype.audit.descriptors as descriptors
    import gliotype.evaluation.radiomics as radiomics
    from gliotype import stages
    from gliotype.config import load_config
    from gliotype.config.schema import RadiomicsConfig

    rng = np.random.default_rng(0)
    for pid, centre in (("P0", (20, 0, 0)), ("P1", (-20, 10, 0))):
        mask = np.where(_ball(centre, 10), 2, 0)
        mask[_ball(centre, 5)] = 1
        noise = {s: 50.0 + rng.normal(0, 10, mask.shape) for s in ("t1", "t1c", "t2", "flair")}
        write_patient(tmp_path, pid, mask, noise)
    config = load_config("tiny").model_copy(update={"workers": 2, "radiomics": RadiomicsConfig(
        enabled=True, features=["shape", "firstorder"], sequences=["t1c"])})
    stages.hand_made_features(tmp_path, config, ["P0", "P1"], ["P1", "P0"])
    calls = []
    monkeypatch.setattr(radiomics, "extract_case", lambda *a, **k: calls.append(("radiomics", a[1])))
    monkeypatch.setattr(descriptors, "tumor_descriptors", lambda *a, **k: calls.append(("descriptors", a[1])))
    assert list(stages.radiomics(tmp_path, ["P0", "P1"], config).index) == ["P0", "P1"]
    assert descriptor_table(tmp_path, ["P0", "P1"])["patient_id"].tolist() == ["P0", "P1"]
    assert calls == []
