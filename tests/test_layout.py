"""The work-folder layout (:mod:`gliotype.layout`): every path, spelled out, and the stages
writing exactly where it says.

The relative paths below are those of existing work folders: a renamed file breaks the
cache of every work folder already on disk, so it must show up here.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gliotype.layout import AtlasDir, CaseDir, SslDir, TransformsDir, WorkDir

# --------------------------------------------------------------------------- the paths

WORK_PATHS = {
    "patients": "patients",
    "preprocessing_status": "preprocessing.csv",
    "modalities_status": "modalities_status.csv",
    "brain_network_status": "brain_network_status.csv",
}
ATLAS_PATHS = {
    "sampling": "atlas/atlas_sampling.npz",
    "tract_matrix": "atlas/tract_matrix.npz",
    "tract_grid": "atlas/tract_grid.json",
}
SSL_PATHS = {
    "node_checkpoints": "ssl/node",
    "edge_checkpoints": "ssl/edge",
    "node_model": "ssl/node_autoencoder.safetensors",
    "edge_model": "ssl/edge_model.safetensors",
    "models": "ssl/models.json",
    "report": "ssl/report.json",
    "config": "ssl/config.yaml",
}
CASE_PATHS = {
    "done": "done.json",
    "preprocessed": "preprocessed",
    "mask": "preprocessed/mask.nii.gz",
    "brain_mask": "preprocessed/brain_mask.nii.gz",
    "fa": "preprocessed/fa.nii.gz",
    "qc": "preprocessed/qc.json",
    "preprocess_log": "preprocessed/preprocess.log",
    "modalities": "modalities",
    "tumor_image": "modalities/tumor_image.nii.gz",
    "point_cloud": "modalities/point_cloud.npz",
    "crossing": "modalities/crossing.npz",
    "atlas_samples": "modalities/atlas_samples.npz",
    "modalities_meta": "modalities/modalities.json",
    "brain_network": "brain_network.safetensors",
    "audit_descriptors": "audit/descriptors.json",
    "inspect_png": "inspect.png",
}
TRANSFORMS_PATHS = {
    "json": "transforms.json",
    "affine": "affine.mat",
    "warp": "warp.nii.gz",
    "inverse_warp": "inverse_warp.nii.gz",
}


def _rel(path: Path, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


@pytest.mark.parametrize("root", ["work", Path("/data/run/work")])
def test_work_folder_paths(root):
    work = WorkDir.of(root)
    base = Path(root)
    assert work.root == base
    for name, rel in WORK_PATHS.items():
        assert _rel(getattr(work, name), base) == rel, name
    assert isinstance(work.atlas, AtlasDir) and _rel(work.atlas.root, base) == "atlas"
    for name, rel in ATLAS_PATHS.items():
        assert _rel(getattr(work.atlas, name), base) == rel, name
    assert isinstance(work.ssl, SslDir) and _rel(work.ssl.root, base) == "ssl"
    for name, rel in SSL_PATHS.items():
        assert _rel(getattr(work.ssl, name), base) == rel, name


def test_case_paths():
    work = WorkDir(Path("w"))
    case = work.case("TCGA-1")
    assert isinstance(case, CaseDir) and _rel(case.root, work.root) == "patients/TCGA-1"
    assert case.patient_id == "TCGA-1" and work.case(7).patient_id == "7"
    for name, rel in CASE_PATHS.items():
        assert _rel(getattr(case, name), case.root) == rel, name
    assert [_rel(case.sequence(s), case.root) for s in ("t1", "t1c", "t2", "flair")] == [
        "preprocessed/t1.nii.gz", "preprocessed/t1c.nii.gz", "preprocessed/t2.nii.gz", "preprocessed/flair.nii.gz"]
    tdir = case.transforms
    assert isinstance(tdir, TransformsDir) and _rel(tdir.root, case.root) == "preprocessed/transforms"
    for name, rel in TRANSFORMS_PATHS.items():
        assert _rel(getattr(tdir, name), tdir.root) == rel, name
    assert _rel(tdir.coregistration("flair"), tdir.root) == "coreg_flair.mat"
    assert tdir.file("warp.nii.gz") == tdir.warp
    assert case.preprocessed_name(tdir.json) == "transforms/transforms.json"
    assert case.preprocessed_name(case.mask) == "mask.nii.gz"


def test_folders_take_str_path_or_themselves_and_behave_as_paths(tmp_path):
    work = WorkDir.of(str(tmp_path))
    assert WorkDir.of(tmp_path) == work and WorkDir.of(work) is work and WorkDir(str(tmp_path)).root == tmp_path
    assert Path(work) == tmp_path and os.fspath(work) == str(tmp_path)  # os.PathLike: Path(workdir) still works
    assert Path(work.case("P")) == tmp_path / "patients" / "P"
    assert AtlasDir.of(tmp_path / "atlas") == work.atlas and SslDir.of(str(tmp_path / "ssl")) == work.ssl
    assert pickle.loads(pickle.dumps(work.case("P"))) == work.case("P")  # process pools
    assert hash(work) == hash(WorkDir(tmp_path))
    with pytest.raises(AttributeError):
        work.root = tmp_path / "other"  # frozen


def test_case_ids_lists_patient_folders_sorted(tmp_path):
    work = WorkDir(tmp_path)
    assert work.case_ids() == []
    for pid in ("B", "A", "C"):
        work.case(pid).root.mkdir(parents=True)
    (work.patients / "notes.txt").write_text("not a patient")
    assert work.case_ids() == ["A", "B", "C"]


def test_coregistrations_lists_every_role(tmp_path):
    tdir = TransformsDir(tmp_path)
    for role in ("t2", "fa"):
        tdir.coregistration(role).write_text("")
    tdir.affine.write_text("")
    assert tdir.coregistrations() == [tdir.coregistration("fa"), tdir.coregistration("t2")]


# --------------------------------------------------------------------------- the stages write there


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _write_atlas(work: WorkDir, shape, affine) -> None:
    """A tiny atlas sampling (2 regions, 1 tract) on the template grid, as ``atlas_sampling`` stores it."""
    from scipy import sparse

    from gliotype.modalities.build import AtlasSampling
    from gliotype.modalities.crossing import tract_matrix

    n = int(np.prod(shape))
    centre = np.ravel_multi_index(tuple(s // 2 for s in shape), shape)
    node = (centre + np.arange(10)).reshape(2, 5)
    AtlasSampling(node, node[:1], np.array([[1, 2]]), np.array([[0], [1]]), key="tiny").save(work.atlas)
    voxels = np.arange(0, n, 7)
    sparse.save_npz(work.atlas.tract_matrix, tract_matrix([voxels], [np.full(len(voxels), 0.9)], n))
    work.atlas.tract_grid.write_text(json.dumps({"shape": list(shape), "affine": np.asarray(affine).tolist()}))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One template-space synthetic patient with FA, preprocessed and with its modalities built."""
    from gliotype.config import load_config
    from gliotype.modalities.build import build_case_modalities
    from gliotype.preprocessing import preprocess_cohort
    from gliotype.synthetic import SynthConfig, generate_cohort

    root = tmp_path_factory.mktemp("layout")
    data = root / "data"
    generate_cohort(data, SynthConfig(patients=1, fa_cases=1, seed=3, workers=1))
    (folder,) = [p for p in data.iterdir() if p.is_dir()]
    pid = folder.name
    files = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair", "mask": "seg", "fa": "fa"}
    row = {"patient_id": pid, **{role: str(folder / f"{pid}_{s}.nii.gz") for role, s in files.items()}}
    config = load_config("tiny")
    work = WorkDir(root / "work")
    status = preprocess_cohort(pd.DataFrame([row]), str(work.root), config)
    assert status["status"].tolist() == ["done"], status
    preprocessed = _files(work.root)
    mask = nib.load(work.case(pid).mask)
    _write_atlas(work, mask.shape, mask.affine)
    res = build_case_modalities(work.root, pid, config)
    assert res.status == "done", res.reason
    return work, pid, preprocessed


def test_preprocessing_writes_where_the_layout_says(built):
    work, pid, files = built
    case = work.case(pid)
    meta = json.loads(case.transforms.json.read_text())
    transforms = {case.transforms.file(f) for f in meta["forward"] + meta["inverse"]}
    expected = {work.preprocessing_status, case.done, case.mask, case.brain_mask, case.fa, case.qc,
                case.preprocess_log, case.transforms.json, *transforms, *(case.sequence(s) for s in
                                                                         ("t1", "t1c", "t2", "flair"))}
    assert files == {_rel(p, work.root) for p in expected}
    # done.json lists the outputs relative to preprocessed/, as every cached work folder does
    done = json.loads(case.done.read_text())
    assert done["outputs"] == ["t1.nii.gz", "t1c.nii.gz", "t2.nii.gz", "flair.nii.gz", "mask.nii.gz",
                               "brain_mask.nii.gz", "fa.nii.gz", "transforms/transforms.json", "qc.json"]
    assert all((case.preprocessed / f).is_file() for f in done["outputs"])


def test_modalities_write_where_the_layout_says(built):
    from gliotype.modalities.build import load_case_modalities
    from gliotype.self_supervised.stage import available_patients, fa_patients, load_atlas_samples

    work, pid, before = built
    case = work.case(pid)
    new = _files(work.root) - before
    atlas = {work.atlas.sampling, work.atlas.tract_matrix, work.atlas.tract_grid}
    assert new == {_rel(p, work.root) for p in atlas | {case.tumor_image, case.point_cloud, case.crossing,
                                                        case.atlas_samples, case.modalities_meta}}
    # and every reader finds them there, given a WorkDir, a Path or a str
    for w in (work, work.root, str(work.root)):
        assert load_case_modalities(w, pid, ("point_cloud",))["points_mm"].shape[1] == 3
        assert available_patients(w) == [pid] and fa_patients(w, [pid]) == [pid]
        assert "tract_fa" in load_atlas_samples(w, pid)


def test_inspection_and_descriptor_cache_write_where_the_layout_says(built):
    from gliotype.audit import descriptor_table
    from gliotype.modalities.inspect import render_inspection

    work, pid, _ = built
    case = work.case(pid)
    before = _files(work.root)
    try:
        assert render_inspection(str(work.root), pid) == case.inspect_png
        assert len(descriptor_table(work.root, [pid])) == 1
        assert _files(work.root) - before == {_rel(case.inspect_png, work.root),
                                              _rel(case.audit_descriptors, work.root)}
    finally:  # the other tests of the module compare the files they find
        for p in (case.inspect_png, case.audit_descriptors):
            p.unlink(missing_ok=True)
        if case.audit_descriptors.parent.is_dir():
            case.audit_descriptors.parent.rmdir()
