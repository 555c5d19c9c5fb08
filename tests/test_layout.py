"""The work-folder and run-folder layout (:mod:`gliotype.layout`): every path, spelled out, and
the stages writing exactly where it says.

The relative paths below are those of existing work and run folders: a renamed file breaks the
cache of every work folder already on disk (and every script reading a run folder), so it must
show up here. ``tests/experiment/test_run.py`` checks a real run folder against :class:`RunDir`.
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

from gliotype.layout import (
    AtlasDir,
    CaseDir,
    ExplainDir,
    ModelDir,
    MultiModalDir,
    ResultsDir,
    RunDir,
    SslDir,
    TransformsDir,
    WorkDir,
    row_slug,
)

# --------------------------------------------------------------------------- the paths

WORK_PATHS = {
    "patients": "patients",
    "preprocessing_status": "preprocessing.csv",
    "modalities_status": "modalities_status.csv",
    "brain_network_status": "brain_network_status.csv",
    "lock": ".gliotype.lock",
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
    "radiomics": "radiomics",
    "radiomics_features": "radiomics/features.json",
    "radiomics_record": "radiomics/radiomics.json",
    "audit_descriptors": "audit/descriptors.json",
    "inspect_png": "inspect.png",
}
TRANSFORMS_PATHS = {
    "json": "transforms.json",
    "affine": "affine.mat",
    "warp": "warp.nii.gz",
    "inverse_warp": "inverse_warp.nii.gz",
}

# the run folder (gliotype run --out RUNDIR)
RUN_PATHS = {
    "config": "config.yaml",
    "manifest": "manifest.csv",
    "validation": "validation.csv",
    "splits": "splits.csv",
    "lock": ".gliotype.lock",
}
RESULTS_PATHS = {
    "predictions": "predictions.csv",
    "roc": "roc.png",
    "reliability": "reliability.png",
    "report": "report.html",
    "summary": "summary.json",
    "audit": "audit.csv",
    "audit_homophily": "audit_homophily.csv",
    "audit_descriptors": "audit_descriptors.csv",
    "audit_markdown": "audit.md",
    "audit_json": "audit.json",
}
EXPLAIN_PATHS = {
    "edge_density": "edge_density.csv",
    "edge_density_groups": "edge_density_groups.csv",
    "edge_density_png": "edge_density.png",
    "summary": "summary.json",
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
    run = RunDir.of(str(tmp_path))
    assert RunDir.of(run) is run and Path(run) == tmp_path and Path(run.results) == tmp_path / "results"
    assert pickle.loads(pickle.dumps(run.repeat(1))) == run.repeat(1)
    with pytest.raises(AttributeError):
        work.root = tmp_path / "other"  # frozen


@pytest.mark.parametrize("root", ["run", Path("/data/run")])
def test_run_folder_paths(root):
    run = RunDir.of(root)
    base = Path(root)
    assert run.root == base and not run.is_repeat and run.top == run
    for name, rel in RUN_PATHS.items():
        assert _rel(getattr(run, name), base) == rel, name
    assert isinstance(run.work, WorkDir) and _rel(run.work.root, base) == "work"
    assert _rel(run.work.atlas.sampling, base) == "work/atlas/atlas_sampling.npz"
    assert [_rel(run.models(f), base) for f in ("A", "B")] == ["models", "models-B"] and run.models() == run.models("A")
    full = run.model_row("Multi-modal (full model) + MLP")
    assert isinstance(full, MultiModalDir) and _rel(full.root, base) == "models/Multi_modal_full_model_MLP"
    assert _rel(full.features, base) == "models/Multi_modal_full_model_MLP/features.csv"
    assert _rel(full.weights, base) == "models/Multi_modal_full_model_MLP/model.safetensors"
    assert _rel(run.model_row("fI + fP + MLP + Lcontr", "B").root, base) == "models-B/fI_fP_MLP_Lcontr"
    assert run.model_row("fI_fP_MLP_Lcontr") == run.model_row("fI + fP + MLP + Lcontr")  # a slug or a name
    assert [_rel(run.baseline(n), base) for n in ("resnet34", "densenet121")] == ["models/resnet34",
                                                                                  "models/densenet121"]
    row = run.graph_row("uT_uB", "uB", "B")
    assert _rel(row.root, base) == "population_graphs-B/uT_uB-uB"
    assert [_rel(p, base).split("/")[-1] for p in (row.weights, row.predictions, row.meta)] == [
        "gnn.safetensors", "predictions.npz", "row.json"]
    assert _rel(run.graph_row("uT", "uB").root, base) == "population_graphs/uT-uB"
    assert isinstance(run.model, ModelDir) and _rel(run.model.root, base) == "model"
    assert _rel(run.model.manifest, base) == "model/manifest.json"
    assert isinstance(run.results, ResultsDir) and _rel(run.results.root, base) == "results"
    assert isinstance(run.explain, ExplainDir) and _rel(run.explain.root, base) == "explain"


def test_results_and_explain_paths():
    results = ResultsDir(Path("r"))
    for name, rel in RESULTS_PATHS.items():
        assert _rel(getattr(results, name), results.root) == rel, name
    assert ResultsDir.TABLES == ("table2", "table3", "table4")
    assert [_rel(results.table(t), results.root) for t in ResultsDir.TABLES] == ["table2.csv", "table3.csv",
                                                                                 "table4.csv"]
    assert _rel(results.table("table3", "md"), results.root) == "table3.md"
    assert results.table(3) == results.table("table3")
    assert _rel(results.repeats_table("table2"), results.root) == "repeats_table2.csv"
    assert _rel(results.repeats_table(4, "md"), results.root) == "repeats_table4.md"
    assert [_rel(p, results.root) for p in results.audit_files] == [
        "audit.csv", "audit_homophily.csv", "audit_descriptors.csv", "audit.md", "audit.json"]
    explain = ExplainDir(Path("e"))
    for name, rel in EXPLAIN_PATHS.items():
        assert _rel(getattr(explain, name), explain.root) == rel, name
    assert _rel(explain.case("TCGA-1"), explain.root) == "TCGA-1"
    assert _rel(explain.case_json(7), explain.root) == "7/explain.json"


def test_row_slug_is_the_folder_name_of_every_table4_row():
    from gliotype.experiment.ablations import ABLATIONS

    assert row_slug("fI + fP + MLP + Lcontr") == "fI_fP_MLP_Lcontr"
    assert row_slug("Multi-modal (no attention) + MLP") == "Multi_modal_no_attention_MLP"
    for name in ABLATIONS:
        assert row_slug(name) == row_slug(row_slug(name))


def test_repeat_folders_share_the_top_folders_work_config_and_manifest(tmp_path):
    run = RunDir(tmp_path)
    rep = run.repeat(12)
    assert _rel(rep.root, tmp_path) == "repeats/split-seed-12" and rep.is_repeat and rep.top == run
    assert (rep.work, rep.config, rep.manifest, rep.validation) == (run.work, run.config, run.manifest, run.validation)
    assert _rel(rep.splits, tmp_path) == "repeats/split-seed-12/splits.csv"
    assert _rel(rep.models("B"), tmp_path) == "repeats/split-seed-12/models-B"
    assert _rel(rep.results.summary, tmp_path) == "repeats/split-seed-12/results/summary.json"
    assert _rel(rep.model.root, tmp_path) == "repeats/split-seed-12/model"
    assert rep.repeat(13) == run.repeat(13)
    # the repeats present, sorted by path as learning_curves.py always sorted them
    assert run.repeats() == []
    for seed in (2, 10, 1):
        run.repeat(seed).root.mkdir(parents=True)
    assert [r.root.name for r in run.repeats()] == ["split-seed-1", "split-seed-10", "split-seed-2"]
    assert run.repeats() == [RunDir(p) for p in sorted((tmp_path / "repeats").glob("split-seed-*"))]
    assert rep.repeats() == run.repeats()
    # a run folder that merely sits in a folder named repeats is no repeat
    other = RunDir(tmp_path / "repeats" / "mine")
    assert not other.is_repeat and other.work == WorkDir(other.root / "work")


def test_the_audit_reads_a_repeat_folder_where_the_layout_says(tmp_path):
    from gliotype.audit import read_run_folder

    run = RunDir(tmp_path / "run")
    run.work.patients.mkdir(parents=True)
    run.config.write_text("seed: 5\n")
    run.manifest.write_text("patient_id,site\nP1,a\n")
    rep = run.repeat(1)
    rep.root.mkdir(parents=True)
    pd.DataFrame({"patient_id": ["P1"], "split": ["A"], "idh": [1.0]}).to_csv(rep.splits, index=False)
    folder = read_run_folder(str(rep.root))
    assert folder.root == rep.root and folder.work == run.work.root and folder.config == {"seed": 5}
    assert folder.features is None and folder.manifest["site"].tolist() == ["a"]
    features = rep.model_row("Multi-modal (full model) + MLP").features
    features.parent.mkdir(parents=True)
    pd.DataFrame({"patient_id": ["P1"], "u_T_0": [0.5]}).to_csv(features, index=False)
    assert read_run_folder(rep).features["patient_id"].tolist() == ["P1"]


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
    from gliotype.self_supervised.inputs import available_patients, fa_patients, load_atlas_samples

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
