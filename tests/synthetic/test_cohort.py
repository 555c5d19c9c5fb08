"""``generate_cohort`` on tiny cohorts: file layout, truth.csv, determinism, resume, native space,
tumour location and contrasts of the written files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from gliotype.atlases import load_template
from gliotype.errors import GliotypeError
from gliotype.synthetic import SynthConfig, expected_auc, generate_cohort
from gliotype.synthetic.config import GENERATOR_VERSION
from gliotype.synthetic.anatomy import location_atlas
from gliotype.synthetic.render import rotation_matrix

SEQ = ("t1", "t1ce", "t2", "flair")
MNI = SynthConfig(patients=3, seed=3, fa_cases=1, workers=1)
#: seed 2 draws one 1 x 1 x 3 mm grid and two 2 mm ones, one of them flipped, one FA case
NATIVE = SynthConfig(patients=3, seed=2, fa_cases=1, workers=1, space="native")


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mni(shared_cohort):
    return shared_cohort("mni", MNI)


@pytest.fixture(scope="module")
def native(shared_cohort):
    return shared_cohort("native", NATIVE)


def load(folder: Path, pid: str, name: str) -> nib.Nifti1Image:
    return nib.load(folder / pid / f"{pid}_{name}.nii.gz")


def centroid_mm(img: nib.Nifti1Image, labels=(1, 4)) -> np.ndarray:
    idx = np.argwhere(np.isin(np.asarray(img.dataobj), labels))
    return (np.c_[idx, np.ones(len(idx))] @ img.affine.T)[:, :3].mean(0)


# --------------------------------------------------------------------------- layout and truth

def test_layout_labels_and_summary(mni):
    out, summary = mni
    truth = pd.read_csv(out / "truth.csv")
    labels = pd.read_csv(out / "labels.csv")
    ids = MNI.patient_ids()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ids
    assert list(labels.columns) == ["patient_id", "idh", "age", "site"]
    assert list(labels["patient_id"]) == ids == list(truth["patient_id"])
    assert (labels["idh"].to_numpy() == truth["idh"].to_numpy()).all()
    for pid, fa in zip(truth["patient_id"], truth["fa"]):
        names = {p.name for p in (out / pid).iterdir()}
        want = {f"{pid}_{q}.nii.gz" for q in (*SEQ, "seg")} | ({f"{pid}_fa.nii.gz"} if fa else set())
        assert names == want, pid
    assert truth["fa"].sum() == 1
    assert summary["patients"] == 3 and summary["fa_cases"] == 1
    assert summary["rendered"] in (0, 3)  # 0 when another test worker wrote the shared cohort
    assert summary["idh_mutant"] + summary["idh_wildtype"] == 3
    assert summary["bayes_auc_expected"] == pytest.approx(expected_auc(MNI.signal)["bayes"])
    doc = json.loads((out / "synth_config.json").read_text())
    assert doc["config"] == MNI.output_fields()
    assert doc["generator_version"] == GENERATOR_VERSION == 3
    assert "workers" not in doc["config"]
    assert len(doc["sites"]) == MNI.sites


def test_truth_volumes_match_the_masks(mni):
    out, _ = mni
    truth = pd.read_csv(out / "truth.csv")
    for col in ("z_image", "z_shape", "z_network", "location_group", "centre_x", "bayes_posterior",
                "enhancing_fraction", "vol_ncr_ml", "vol_ed_ml", "vol_et_ml", "enhancing_fraction_measured",
                "infiltration_mm", "infiltration_amplitude", "paths_involved", "path_extent_mm", "path_amplitude"):
        assert col in truth.columns, col
    assert "remote_wm_change" not in truth.columns
    for row in truth.itertuples():
        seg = np.asarray(load(out, row.patient_id, "seg").dataobj)
        assert row.vol_ncr_ml == pytest.approx((seg == 1).sum() * 0.008, abs=1e-3)
        assert row.vol_ed_ml == pytest.approx((seg == 2).sum() * 0.008, abs=1e-3)
        assert row.vol_et_ml == pytest.approx((seg == 4).sum() * 0.008, abs=1e-3)
        # a core of radius 8-20 mm: roughly 2-34 ml (lobulation and the brain boundary aside)
        core = row.vol_ncr_ml + row.vol_et_ml
        assert 0.5 * 4 / 3 * np.pi * (row.radius_core_mm / 10) ** 3 < core < 2.5 * 4 / 3 * np.pi * (row.radius_core_mm / 10) ** 3


def test_mni_files_are_on_the_template_grid(mni):
    out, _ = mni
    tpl = load_template(2)
    brain = tpl.brain_mask > 0.5
    # the smooth warp and the mass effect move the brain surface by up to ~10 mm
    outside = ~ndi.binary_dilation(brain, iterations=6)
    interior = ndi.binary_erosion(brain, iterations=6)
    truth = pd.read_csv(out / "truth.csv")
    for pid, fa in zip(truth["patient_id"], truth["fa"]):
        for q in SEQ:
            img = load(out, pid, q)
            data = np.asarray(img.dataobj)
            assert data.dtype == np.int16
            assert img.shape == tpl.shape
            assert np.allclose(img.affine, tpl.affine)
            assert (data[outside] == 0).all()
            assert (data[interior] >= 1).all()  # int16 with the brain >= 1
        seg = load(out, pid, "seg")
        assert seg.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(seg.dataobj))) == {0, 1, 2, 4}
        if fa:
            f = np.asarray(load(out, pid, "fa").dataobj)
            assert 0 <= f.min() and f.max() <= 1 and f.max() > 0.5
            assert (f[outside] == 0).all()


# --------------------------------------------------------------------------- where the tumour sits

def test_tumour_sits_where_the_location_latent_puts_it(mni):
    out, _ = mni
    truth = pd.read_csv(out / "truth.csv")
    atlas = location_atlas()
    agree = 0
    for row in truth.itertuples():
        c = centroid_mm(load(out, row.patient_id, "seg"))
        centre = np.array([row.centre_x, row.centre_y, row.centre_z])
        # the random warp moves the tumour by a few mm at most
        assert np.linalg.norm(c - centre) < 6.0, (row.patient_id, c, centre)
        assert atlas.group_at_mm(centre) == row.location_group
        agree += atlas.group_at_mm(c) == row.location_group
    # near a border between groups the few-mm shift can cross it (about 1 patient in 10)
    assert agree >= len(truth) - 1


def test_native_tumour_maps_back_to_its_mni_centre(native):
    out, _ = native
    truth = pd.read_csv(out / "truth.csv")
    atlas = location_atlas()
    agree = 0
    for row in truth.itertuples():
        scan = centroid_mm(load(out, row.patient_id, "seg"))
        Q = rotation_matrix([row.native_rot_x_deg, row.native_rot_y_deg, row.native_rot_z_deg])
        t = np.array([row.native_shift_x_mm, row.native_shift_y_mm, row.native_shift_z_mm])
        mni_mm = Q.T @ (scan - t)
        centre = np.array([row.centre_x, row.centre_y, row.centre_z])
        assert np.linalg.norm(mni_mm - centre) < 7.0, (row.patient_id, mni_mm, centre)
        agree += atlas.group_at_mm(mni_mm) == row.location_group
    assert agree >= len(truth) - 1


# --------------------------------------------------------------------------- contrasts of the files

def _local_log_ratio(v: np.ndarray, a: np.ndarray, b: np.ndarray, block: int = 8, min_vox: int = 15) -> float:
    """Median over 16 mm blocks of log(median v in a / median v in b): insensitive to the smooth
    site bias field, which can shift whole-brain medians by 10-20 %."""
    out = []
    for i in range(0, v.shape[0], block):
        for j in range(0, v.shape[1], block):
            for k in range(0, v.shape[2], block):
                s = np.s_[i:i + block, j:j + block, k:k + block]
                va, vb = v[s][a[s]], v[s][b[s]]
                if len(va) >= min_vox and len(vb) >= min_vox:
                    out.append(np.log(np.median(va) / np.median(vb)))
    assert len(out) >= 5
    return float(np.median(out))


def test_written_files_keep_the_tissue_contrasts(mni):
    out, _ = mni
    tpl = load_template(2)
    truth = pd.read_csv(out / "truth.csv")
    for pid in truth["patient_id"]:
        seg = np.asarray(load(out, pid, "seg").dataobj)
        away = ~ndi.binary_dilation(seg > 0, structure=np.ones((3, 3, 3), bool), iterations=5) & (tpl.brain_mask > 0.5)
        gm, wm, csf = (away & (getattr(tpl, c) > 0.9) for c in ("gm", "wm", "csf"))
        img = {q: np.asarray(load(out, pid, q).dataobj).astype(np.float64) for q in SEQ}
        inside = np.all([v > 0 for v in img.values()], axis=0)  # the warped brain
        gm, wm, csf = gm & inside, wm & inside, csf & inside
        for q in ("t1", "t1ce"):
            assert _local_log_ratio(img[q], wm, gm) > 0.15, (pid, q)
            assert np.median(img[q][gm]) > 1.3 * np.median(img[q][csf]), (pid, q)
        assert _local_log_ratio(img["t2"], gm, wm) > 0.15, pid
        assert np.median(img["t2"][csf]) > 1.3 * np.median(img["t2"][gm]), pid
        assert _local_log_ratio(img["flair"], gm, wm) > 0.03, pid
        assert np.median(img["flair"][wm]) > 1.6 * np.median(img["flair"][csf]), pid  # fluid suppressed


# --------------------------------------------------------------------------- determinism and resume

def test_workers_do_not_change_a_single_byte(mni, tmp_path):
    out, _ = mni
    parallel = tmp_path / "parallel"
    cfg = MNI.model_copy(update={"workers": 2})
    generate_cohort(parallel, cfg)
    a, b = digests(out), digests(parallel)
    assert set(a) == set(b)
    assert "labels.csv" in a and "truth.csv" in a and "synth_config.json" in a
    assert a == b


def test_another_seed_gives_other_files(mni, tmp_path):
    out, _ = mni
    other = tmp_path / "other"
    generate_cohort(other, SynthConfig(patients=1, seed=4, fa_cases=0, workers=1))
    a, b = digests(out), digests(other)
    for pid in SynthConfig(patients=1).patient_ids():
        for q in (*SEQ, "seg"):
            name = f"{pid}/{pid}_{q}.nii.gz"
            assert a[name] != b[name], name
    assert a["truth.csv"] != b["truth.csv"]


def test_a_cohort_of_another_generator_version_is_not_resumed(mni, tmp_path):
    src, _ = mni
    out = tmp_path / "old"
    shutil.copytree(src, out)
    doc = json.loads((out / "synth_config.json").read_text())
    doc["generator_version"] = GENERATOR_VERSION - 1
    (out / "synth_config.json").write_text(json.dumps(doc))
    with pytest.raises(GliotypeError, match=f"by generator version {GENERATOR_VERSION - 1} "):
        generate_cohort(out, MNI)
    generate_cohort(out, MNI, overwrite=True)  # what `make demo` does with a demo/ folder of an older version
    assert json.loads((out / "synth_config.json").read_text())["generator_version"] == GENERATOR_VERSION
    assert digests(out) == digests(src)


def test_rerun_skips_finished_patients_and_touches_nothing(mni, tmp_path):
    src, _ = mni
    out = tmp_path / "copy"
    shutil.copytree(src, out)  # copy2 keeps the mtimes
    before_hash, before_time = digests(out), mtimes(out)
    summary = generate_cohort(out, MNI.model_copy(update={"workers": 2}))  # workers do not matter
    assert summary["rendered"] == 0
    assert summary["patients"] == 3
    assert digests(out) == before_hash
    assert mtimes(out) == before_time


def test_rerun_completes_an_interrupted_cohort(mni, tmp_path):
    src, _ = mni
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    pid = MNI.patient_ids()[1]
    (out / pid / f"{pid}_seg.nii.gz").unlink()  # the mask is written last: as if killed before it
    keep = MNI.patient_ids()[0]
    t_keep = (out / keep / f"{keep}_t1.nii.gz").stat().st_mtime_ns
    summary = generate_cohort(out, MNI)
    assert summary["rendered"] == 1
    assert digests(out) == digests(src)
    assert (out / keep / f"{keep}_t1.nii.gz").stat().st_mtime_ns == t_keep


def test_other_config_needs_overwrite(mni, tmp_path):
    src, _ = mni
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    before = digests(out)
    for change in ({"seed": 4}, {"patients": 4}, {"signal": {"image": 0.0}}, {"space": "native"}):
        with pytest.raises(GliotypeError, match="other arguments"):
            generate_cohort(out, MNI.model_copy(update=change) if "signal" not in change
                            else SynthConfig(**{**MNI.model_dump(), **change}))
    assert digests(out) == before  # nothing touched
    # overwrite replaces the previous cohort's patients
    summary = generate_cohort(out, SynthConfig(patients=1, seed=9, fa_cases=0, workers=1, id_prefix="NEW"),
                              overwrite=True)
    assert summary["rendered"] == 1
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["NEW-0000"]
    assert list(pd.read_csv(out / "labels.csv")["patient_id"]) == ["NEW-0000"]


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GliotypeError, match="not empty"):
        generate_cohort(tmp_path, SynthConfig(patients=1))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# --------------------------------------------------------------------------- native space

def test_native_space_files(native):
    out, summary = native
    tpl = load_template(2)
    truth = pd.read_csv(out / "truth.csv")
    assert summary["patients"] == 3
    zooms_seen = []
    for row in truth.itertuples():
        pid = row.patient_id
        seg_img = load(out, pid, "seg")
        seg = np.asarray(seg_img.dataobj)
        assert set(np.unique(seg)) <= {0, 1, 2, 4}
        assert {1, 2}.issubset(set(np.unique(seg)))
        assert not np.allclose(seg_img.affine, tpl.affine)
        zooms = np.array(seg_img.header.get_zooms())
        zooms_seen.append(zooms)
        assert np.allclose(zooms, [row.native_spacing_x_mm, row.native_spacing_y_mm, row.native_spacing_z_mm],
                           atol=1e-4)
        assert (seg_img.affine[0, 0] < 0) == bool(row.native_flip_x)
        for q in SEQ:
            img = load(out, pid, q)
            data = np.asarray(img.dataobj)
            assert data.dtype == np.int16
            assert img.shape == seg.shape and np.allclose(img.affine, seg_img.affine)
            assert data.min() == 0 and (data > 0).mean() > 0.1
            # zero background: the grid covers the brain with a margin, its faces are empty
            for face in (data[0], data[-1], data[:, 0], data[:, -1], data[:, :, 0], data[:, :, -1]):
                assert not face.any(), (pid, q)
            assert (data[seg > 0] >= 1).all()
        fa_file = out / pid / f"{pid}_fa.nii.gz"
        assert fa_file.exists() == bool(row.fa)
        if row.fa:
            f = np.asarray(nib.load(fa_file).dataobj)
            assert f.shape == seg.shape
            assert 0 <= f.min() and f.max() <= 1 and f.max() > 0.5
    anisotropic = [z for z in zooms_seen if np.ptp(z) > 0.5]
    assert anisotropic, zooms_seen  # NATIVE's seed draws some thick-slice grids
    assert any(np.ptp(z) < 1e-6 for z in zooms_seen)
    doc = json.loads((out / "synth_config.json").read_text())
    assert doc["config"]["space"] == "native"
