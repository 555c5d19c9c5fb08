"""`gliotype run` end to end on a tiny synthetic cohort (issue 6): every stage, every table,
two repeated splits, resumable reruns, nothing but patient IDs in the shared outputs, and
Multi-modal + GNN probabilities that are the exported GNN's, not noise."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_check import assert_reports_pass, needs_chromium

from gliotype.config import load_config
from gliotype.experiment import run_experiment
from gliotype.experiment.ablations import ABLATIONS
from gliotype.experiment.run import summarise_repeats
from gliotype.experiment.tables import TABLE_COLUMNS
from gliotype.synthetic import SynthConfig, generate_cohort

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    generate_cohort(root / "cohort", SynthConfig(patients=30, seed=3, prevalence=0.5, fa_cases=6, workers=2))
    config = load_config("tiny", overrides=["workers=2"])
    result = run_experiment(root / "run", config, data=root / "cohort", repeats=2)
    return root, config, result


def test_every_table_with_the_paper_rows(tiny_run):
    root, _, _ = tiny_run
    results = root / "run" / "results"
    t2, t3, t4 = (pd.read_csv(results / f"table{i}.csv") for i in (2, 3, 4))
    for t in (t2, t3, t4):
        assert set(TABLE_COLUMNS) <= set(t.columns)
        assert t["auc"].between(0, 1).all() and (t["auc_low"] <= t["auc_high"]).all()
    assert len(t2) == 5
    # the paper's rows and, beside them, the radiomics rows (on in tiny) and age alone (the synthetic
    # labels carry ages); "Age + full model" needs out-of-fit GNN predictions (the cross-fitted run)
    assert list(t3["model"]) == ["ResNet(3D)", "DenseNet(3D)", "Radiomics + LR", "Radiomics + SVM", "Age + LR",
                                 "Multi-modal + MLP", "Multi-modal + SVM", "Multi-modal + GNN"]
    assert t3["delong_p"].notna().sum() == len(t3) - 1
    assert list(t4["model"]) == list(ABLATIONS)
    for name in ("table3.md", "predictions.csv", "roc.png", "report.html", "summary.json"):
        assert (results / name).stat().st_size > 0
    # the software that computed the numbers (float rounding moves them between releases)
    import torch
    import torch_geometric

    environment = json.loads((results / "summary.json").read_text())["environment"]
    assert environment["torch"] == torch.__version__ and environment["torch_geometric"] == torch_geometric.__version__
    assert environment["python"].count(".") == 2 and "/" not in json.dumps(environment)
    preds = pd.read_csv(results / "predictions.csv")
    assert set(preds.columns) == {"patient_id", "split", "model", "probability", "label"}
    assert set(preds["split"]) == {"B", "test"}
    # issue 16: every row's Brier and ECE; no row of tiny has out-of-fit predictions, so no sets
    for t in (t2, t3, t4):
        assert t[["brier", "ece"]].notna().all().all() and t[["coverage", "set_size", "both"]].isna().all().all()
    report = (results / "report.html").read_text()
    assert "alt='reliability diagrams'" in report and "no coverage is reported" in report
    assert (results / "reliability.png").stat().st_size > 1000
    calibration = json.loads((results / "summary.json").read_text())["calibration"]
    gnn = t3.set_index("model").loc["Multi-modal + GNN"]
    assert calibration["model"] == "Multi-modal + GNN" and calibration["conformal_coverage"] is None
    assert (calibration["brier"], calibration["ece"]) == (gnn["brier"], gnn["ece"])


def test_the_synthetic_truth_gives_the_bayes_ceiling(tiny_run):
    """The run reads the generator's truth through gliotype.synthetic.truth (the file name lives there)."""
    from gliotype.synthetic.truth import read_truth

    root, _, result = tiny_run
    truth = read_truth(root / "cohort")
    assert truth is not None and "bayes_posterior" in truth
    summary = json.loads((root / "run" / "results" / "summary.json").read_text())
    assert 0.5 <= summary["bayes_auc_test"] <= 1 and summary["bayes_auc_test"] == result["summary"]["bayes_auc_test"]
    assert summary["ceiling_ratio"]["model"] == "Multi-modal + GNN"
    t3 = result["tables"]["table3"].set_index("model")
    assert summary["ceiling_ratio"]["auc"] == t3.loc["Multi-modal + GNN", "auc"]


def test_the_gnn_probabilities_are_the_exported_models_not_noise(tiny_run):
    """Table 3's Multi-modal + GNN probabilities (predictions.csv) are those of the exported GNN on
    the stored population graph, which the loaded model re-predicts; the GNN's output follows its
    input: relabelling the patients of the graph relabels the probabilities (message passing is
    permutation-equivariant, noise is not). A GNN that outputs random probabilities fails here."""
    import torch

    from gliotype.layout import RunDir
    from gliotype.population_graph import predict_proba
    from gliotype.population_graph.graph import PopulationGraph
    from gliotype.prediction import load_model

    root, _, _ = tiny_run
    run = RunDir(root / "run")
    preds = pd.read_csv(run.results.predictions, dtype={"patient_id": str})
    gnn = preds[preds["model"] == "Multi-modal + GNN"].set_index("patient_id")
    trained = load_model(run.model.root)
    ids = list(trained.graph.patient_id)
    assert sorted(ids) == sorted(gnn.index) and trained.stored_probability is not None
    np.testing.assert_allclose(trained.stored_probability, gnn.loc[ids, "probability"], atol=1e-6)
    p = predict_proba(trained.gnn, trained.graph)
    np.testing.assert_allclose(p, trained.stored_probability, atol=1e-5)
    assert np.ptp(p) > 1e-3  # not one constant either

    g = trained.graph
    perm = np.random.default_rng(0).permutation(g.num_nodes)  # new node j is old node perm[j]
    new_index = torch.as_tensor(np.argsort(perm))
    shuffled = PopulationGraph(x=g.x[perm], edge_index=new_index[g.edge_index], edge_weight=g.edge_weight, y=g.y[perm],
                               patient_id=[g.patient_id[i] for i in perm])
    np.testing.assert_allclose(predict_proba(trained.gnn, shuffled), p[perm], atol=1e-5)


def test_the_run_folder_is_where_the_layout_says(tiny_run):
    """Every file and folder `gliotype run` wrote is one :class:`gliotype.layout.RunDir` names (issue 13)."""
    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.layout import ResultsDir, RunDir

    root, config, _ = tiny_run
    run = RunDir(root / "run")

    def names(folder) -> set[str]:
        return {p.name for p in Path(folder).iterdir()}

    rep = run.repeat(config.split.seed + 1)
    assert run.repeats() == [rep] and rep.is_repeat and rep.work == run.work
    assert names(run.root) == {p.name for p in (run.config, run.manifest, run.validation, run.work.root, run.splits,
                                                run.models(), run.model.root, run.results.root, rep.root.parent,
                                                run.graph_row("uT_uB", "uB").root.parent, run.lock)}
    assert names(rep.root) == {p.name for p in (rep.splits, rep.models(), rep.results.root,
                                                rep.graph_row("uT_uB", "uB").root.parent)}
    baselines = set(config.baselines.models)
    r = run.results
    split_results = {p.name for p in (*(r.table(t, ext) for t in ResultsDir.TABLES for ext in ("csv", "md")),
                                      r.predictions, r.roc, r.reliability, r.report, r.summary, *r.audit_files)}
    for folder in (run, rep):
        rows = {folder.model_row(n).root.name for n in ABLATIONS}
        assert names(folder.models()) == rows | {folder.baseline(b).name for b in baselines}
        for name in ABLATIONS:
            assert folder.model_row(name).weights.is_file() and folder.model_row(name).meta.is_file(), name
        assert folder.model_row(FULL_MODEL).features.is_file()
        assert all(folder.baseline(b).is_dir() for b in baselines)
        assert folder.splits.is_file()
        from gliotype.population_graph import TABLE1

        for node, edge in TABLE1:  # every Table 2 row, stored under its key
            assert folder.graph_row(node, edge).meta.is_file() and folder.graph_row(node, edge).weights.is_file()
    assert names(run.results.root) == split_results | {run.results.repeats_table(t, ext).name
                                                      for t in ResultsDir.TABLES for ext in ("csv", "md")}
    assert names(rep.results.root) == split_results
    assert all((run.model.root / rel).is_file() for rel in run.model.required()) and run.model.manifest.is_file()
    assert run.work.case_ids() and run.work.ssl.models.is_file() and run.work.atlas.sampling.is_file()


def test_splits_are_disjoint_and_repeats_differ(tiny_run):
    root, _, result = tiny_run
    first = pd.read_csv(root / "run" / "splits.csv", dtype={"patient_id": str})
    second = pd.read_csv(root / "run" / "repeats" / "split-seed-1" / "splits.csv", dtype={"patient_id": str})
    for s in (first, second):
        assert not s["patient_id"].duplicated().any()
    test_1 = set(first.loc[first["split"] == "test", "patient_id"])
    test_2 = set(second.loc[second["split"] == "test", "patient_id"])
    assert test_1 != test_2
    assert set(first.loc[first["split"] == "ssl", "patient_id"]) == set(second.loc[second["split"] == "ssl",
                                                                               "patient_id"])
    rep = pd.read_csv(root / "run" / "results" / "repeats_table3.csv")
    assert (rep["repeats"] == 2).all() and rep["auc_sd"].notna().all()
    assert "Repeated splits" in (root / "run" / "results" / "report.html").read_text()


@needs_chromium
def test_the_run_report_passes_the_browser_check(tiny_run, tmp_path):
    """report.html as a person sees it (`make check-reports`): no script error, no network request, every
    image loaded and captioned, nothing wider than a 1366 or 1280 px laptop screen."""
    root, _, _ = tiny_run
    assert_reports_pass([root / "run" / "results" / "report.html"], tmp_path / "png")


def test_shared_outputs_name_no_input_path(tiny_run):
    root, _, _ = tiny_run
    results = root / "run" / "results"
    for name in ("report.html", "predictions.csv", "table3.md", "summary.json"):
        text = (results / name).read_text()
        assert str(root) not in text and "cohort/" not in text


def test_model_folder_is_hashed_and_loads_without_pickle(tiny_run):
    root, _, _ = tiny_run
    model = root / "run" / "model"
    manifest = json.loads((model / "manifest.json").read_text())
    assert {"config.yaml", "population_graph/gnn.safetensors", "multimodal/model.safetensors"} <= set(
        manifest["files"])
    assert not list(model.rglob("*.pt")) and not list(model.rglob("*.pkl"))


def test_the_model_card_describes_the_exported_model(tiny_run, tmp_path):
    """MODEL_CARD.md (issue 16): the synthetic warning first, every section, the cohort's counts per split
    role, the run's Table 3 and ceilings, the versions; no patient ID, no path; listed in the manifest, so
    load_model loads the folder and refuses it once the card is edited."""
    from gliotype.bundle import ModelError
    from gliotype.config import config_hash
    from gliotype.experiment.model_card import SYNTHETIC_WARNING
    from gliotype.layout import RunDir
    from gliotype.prediction import load_model

    root, config, result = tiny_run
    run = RunDir(root / "run")
    text = run.model.card.read_text()
    assert text.splitlines()[0] == f"**WARNING: {SYNTHETIC_WARNING}.**"
    for section in ("## Intended use", "## Limits", "## Training cohort", "## Test performance", "## Ceilings",
                    "## Software"):
        assert section in text, section
    assert "Research use only" in text and "Single-split model" in text and "transductive" in text
    assert "Missing sequences" in text and f"Preset `{config.preset}`" in text and config_hash(config) in text
    splits = pd.read_csv(run.splits, dtype={"patient_id": str})
    for role, rows in splits.groupby("split"):
        line = next(x for x in text.splitlines() if x.startswith(f"| {role}: "))
        cells = [c.strip() for c in line.split("|")[2:6]]
        assert cells == [str(len(rows)), str(int((rows["idh"] == 1).sum())), str(int((rows["idh"] == 0).sum())),
                         str(int(rows["idh"].isna().sum()))], line
    assert "Acquisition sites: 3." in text  # the synthetic cohort's, with their patients
    for site, n in pd.read_csv(root / "cohort" / "labels.csv")["site"].value_counts().items():
        assert f"| {site} | {n} |" in text
    t3 = result["tables"]["table3"].set_index("model")
    for model in t3.index:
        r = t3.loc[model]
        assert f"| {model} | {r.auc:.3f} ({r.auc_low:.3f}-{r.auc_high:.3f}) | {r.acc:.3f} | {r.sen:.3f} | " \
               f"{r.spe:.3f} |" in text, model
    summary = result["summary"]
    assert f"| {summary['bayes_auc_test']:.3f} | {summary['ceiling_ratio']['bayes']:.2f} |" in text
    assert f"| {summary['observable_auc_test']:.3f} | {summary['ceiling_ratio']['observable']:.2f} |" in text
    import torch
    import torch_geometric

    assert f"| torch | {torch.__version__} |" in text and f"| torch_geometric | {torch_geometric.__version__} |" in text
    assert not set(splits["patient_id"]) & set(re.findall(r"[A-Za-z0-9_-]+", text))  # no patient ID
    assert str(root) not in text and "cohort/" not in text and "/tmp" not in text

    manifest = json.loads(run.model.manifest.read_text())
    assert "MODEL_CARD.md" in manifest["files"]
    assert load_model(run.model.root).model_id
    edited = tmp_path / "model"
    shutil.copytree(run.model.root, edited)
    (edited / "MODEL_CARD.md").write_text(text.replace("Research use only", "Clinical use"))
    with pytest.raises(ModelError, match="MODEL_CARD.md does not match its sha256"):
        load_model(edited)
    data = json.loads((edited / "manifest.json").read_text())
    del data["files"]["MODEL_CARD.md"]
    (edited / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="MODEL_CARD.md is not listed in manifest.json"):
        load_model(edited)


def test_rerun_reuses_every_stage(tiny_run):
    root, config, result = tiny_run
    stamp = {p: p.stat().st_mtime_ns for p in (root / "run" / "models").rglob("model.safetensors")}
    rows = {p: p.stat().st_mtime_ns for p in (root / "run").glob("population_graphs*/*/gnn.safetensors")}
    assert len(rows) >= 4  # every Table 2 row of every fold is stored
    card = (root / "run" / "model" / "MODEL_CARD.md").read_bytes()
    again = run_experiment(root / "run", config, data=root / "cohort", repeats=1)
    assert (root / "run" / "model" / "MODEL_CARD.md").read_bytes() == card  # re-exported: same bytes, no date
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # nothing retrained
    assert {p: p.stat().st_mtime_ns for p in rows} == rows  # no population graph either
    pd.testing.assert_frame_equal(again["tables"]["table3"], result["tables"]["table3"])


def test_summarise_repeats_mean_and_sd():
    a = pd.DataFrame({"model": ["m", "n"], "auc": [0.6, 0.8], "acc": [0.5, 0.5], "sen": [1.0, 0.0],
                      "spe": [0.0, 1.0]})
    b = a.assign(auc=[0.8, 0.8])
    df = summarise_repeats([a, b]).set_index("model")
    assert df.loc["m", "auc_mean"] == pytest.approx(0.7)
    assert df.loc["m", "auc_sd"] == pytest.approx(0.1414, abs=1e-4)
    assert df.loc["n", "auc_sd"] == 0 and (df["repeats"] == 2).all()


def test_inspect_writes_a_png_and_names_an_unknown_patient(tiny_run):
    from typer.testing import CliRunner

    from gliotype.cli import app

    root, _, _ = tiny_run
    work = root / "run" / "work"
    pid = sorted(p.name for p in (work / "patients").iterdir())[0]
    res = CliRunner().invoke(app, ["inspect", str(work), pid, "--out", str(root / "inspect.png")])
    assert res.exit_code == 0, res.output
    assert (root / "inspect.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(app, ["inspect", str(work), "NOBODY"])
    assert bad.exit_code != 0 and "NOBODY" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_changed_encoder_setting_refreshes_the_cached_features(tiny_run):
    """A --set multimodal.* retrains the encoders; the tables must use the NEW model's features
    (features.csv is keyed on the model key, not reused because it covers the patients)."""
    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.layout import row_slug
    from gliotype.multimodal.stage import extract_features, load_multimodal

    import yaml

    from gliotype.layout import RunDir

    root, config, _ = tiny_run
    run = RunDir(root / "run")
    folder = root / "run" / "models" / row_slug(FULL_MODEL)
    before = pd.read_csv(folder / "features.csv", dtype={"patient_id": str})
    predictions = pd.read_csv(run.results.predictions, dtype={"patient_id": str})
    exported = {p.relative_to(run.model.root): p.read_bytes() for p in run.model.root.rglob("*") if p.is_file()}
    changed = config.model_copy(deep=True)
    changed.multimodal.lr = config.multimodal.lr * 3
    run_experiment(root / "run", changed, data=root / "cohort", repeats=1, ablations=False, baselines=False)
    after = pd.read_csv(folder / "features.csv", dtype={"patient_id": str})
    fresh = extract_features(root / "run" / "work", load_multimodal(folder, changed), after["patient_id"].tolist(),
                             changed.multimodal)
    assert not after.drop(columns="patient_id").equals(before.drop(columns="patient_id"))
    pd.testing.assert_frame_equal(after, fresh, check_dtype=False, atol=1e-5)
    # downstream of the features: the tables' predictions and every trained part of the exported model
    new_predictions = pd.read_csv(run.results.predictions, dtype={"patient_id": str})
    for row in ("Multi-modal + GNN", "Multi-modal + MLP"):
        old_p = predictions[predictions["model"] == row].set_index("patient_id")["probability"]
        new_p = new_predictions[new_predictions["model"] == row].set_index("patient_id")["probability"]
        assert not old_p.sort_index().equals(new_p.sort_index()), row
    for name in ("multimodal/model.safetensors", "population_graph/nodes.npz", "manifest.json", "config.yaml"):
        assert (run.model.root / name).read_bytes() != exported[Path(name)], name
    assert yaml.safe_load(run.model.config.read_text())["multimodal"]["lr"] == changed.multimodal.lr


def test_a_run_whose_networks_start_from_one_pretrained_image_encoder(tiny_run, tmp_path, monkeypatch):
    """``multimodal.image.pretrain_epochs`` (docs/design.md point 50): f_I is pretrained once, on every
    patient of the cohort, beside the self-supervised models, and every network with f_I of both
    folds and of the Table 4 rows starts from it (its key in theirs); a network without f_I does not.
    Each network's features are extracted where it trained, side by side (``workers: 2``): the run's
    own process reads them back and extracts none."""
    import gliotype.multimodal.stage as stage
    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.layout import WorkDir, row_slug
    from gliotype.multimodal.pretrain import pretraining_key
    from gliotype.multimodal.stage import model_key

    extracted_here = []
    monkeypatch.setattr(stage, "save_features", lambda feats, path: extracted_here.append(path))

    root, config, _ = tiny_run
    cfg = config.model_copy(deep=True)
    cfg.modalities.image_label_channels = True
    cfg.multimodal.image.pretrain_epochs = 2
    cfg.split.protocol = "crossfit"
    out = tmp_path / "pretrained"
    shutil.copytree(root / "run" / "work", out / "work")
    run_experiment(out, cfg, data=root / "cohort", repeats=1, ablations=["fI + MLP", "fB + MLP"], baselines=False,
                   audit=False)
    assert extracted_here == []
    work = WorkDir(out / "work")
    splits = pd.read_csv(out / "splits.csv", dtype={"patient_id": str})
    cohort = splits["patient_id"].tolist()
    pretrained = pretraining_key(work, cfg, cohort)
    assert json.loads(work.image_pretraining.record.read_text())["key"] == pretrained
    half = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("A", "B")}
    for folder, fold, row, overrides in (("models", "A", FULL_MODEL, {}), ("models-B", "B", FULL_MODEL, {}),
                                         ("models", "A", "fI + MLP", {"encoders": ["image"], "use_contrastive": False}),
                                         ("models", "A", "fB + MLP", {"encoders": ["brain_network"],
                                                                       "use_contrastive": False})):
        row_cfg = cfg.model_copy(deep=True)
        for k, v in overrides.items():
            setattr(row_cfg.multimodal, k, v)
        with_f_i = "image" in row_cfg.multimodal.encoders
        want = model_key(work, row_cfg, half[fold], None, None, pretrained if with_f_i else "")
        assert json.loads((out / folder / row_slug(row) / "model.json").read_text())["key"] == want, (folder, row)


def test_cross_fitting_averages_test_and_joins_training_predictions():
    from gliotype.experiment.split import across_folds
    from gliotype.experiment.tables import Scored

    a = [Scored("m", np.array([0.1, 0.2]), np.array([0.4, 0.8]), p_threshold=np.array([np.nan, 0.3]), key="k")]
    b = [Scored("m", np.array([0.5, 0.6, 0.7]), np.array([0.6, 0.2]), key="k")]
    (m,) = across_folds([a, b])
    assert (m.name, m.key) == ("m", "k")
    np.testing.assert_allclose(m.p_test, [0.5, 0.5])
    np.testing.assert_allclose(m.p_train, [0.1, 0.2, 0.5, 0.6, 0.7])
    np.testing.assert_allclose(m.p_threshold, [np.nan, 0.3, 0.5, 0.6, 0.7])
    assert across_folds([a]) is a and m.p_test_reference is None
    c = [Scored("m", np.array([0.5, 0.6, 0.7]), np.array([0.6, 0.2]), key="k")]
    assert across_folds([b, c])[0].p_threshold is None  # no fold has out-of-fit predictions: none, not fitted ones
    a[0].p_test_reference, b[0].p_test_reference = np.array([0.2, 0.4]), np.array([0.4, 0.0])
    np.testing.assert_allclose(across_folds([a, b])[0].p_test_reference, [0.3, 0.2])


def test_cross_fitted_run_trains_encoders_on_both_halves(tiny_run, tmp_path):
    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.layout import row_slug
    from gliotype.multimodal.stage import model_key

    root, config, _ = tiny_run
    cfg = config.model_copy(deep=True)
    cfg.split.protocol = "crossfit"
    cfg.population_graph.threshold_folds = 2
    cfg.population_graph.choose = "out_of_fold"
    out = tmp_path / "crossfit"
    for done in ("work", "models"):  # fold A's encoders and every stage before them are the paper run's
        shutil.copytree(root / "run" / done, out / done)
    result = run_experiment(out, cfg, data=root / "cohort", repeats=1, ablations=True, baselines=False,
                            audit=False)
    splits = pd.read_csv(out / "splits.csv", dtype={"patient_id": str})
    half = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("A", "B")}
    for folder, ids in (("models", half["A"]), ("models-B", half["B"])):
        meta = json.loads((out / folder / row_slug(FULL_MODEL) / "model.json").read_text())
        assert meta["key"] == model_key(out / "work", cfg, ids)
    preds = pd.read_csv(out / "results" / "predictions.csv", dtype={"patient_id": str})
    gnn = preds[preds["model"] == "Multi-modal + GNN"]
    assert set(gnn["split"]) == {"A", "B", "test"}
    # the rows of issue 16 train on both halves too; age stacks on the GNN's out-of-fold predictions
    t3 = list(result["tables"]["table3"]["model"])
    assert t3[:3] == ["Radiomics + LR", "Radiomics + SVM", "Age + LR"] and t3[-2:] == ["Multi-modal + GNN",
                                                                                        "Age + full model"]
    for row in ("Radiomics + SVM", "Age + full model"):
        assert set(preds.loc[preds["model"] == row, "split"]) == {"A", "B", "test"}, row
    assert result["summary"]["protocol"] == "crossfit"
    # out-of-fold GNN predictions of both halves calibrate the GNN's prediction sets (issue 16)
    gnn_row = result["tables"]["table3"].set_index("model").loc["Multi-modal + GNN"]
    calibration = json.loads((out / "results" / "summary.json").read_text())["calibration"]
    assert 0 <= calibration["conformal_coverage"] == gnn_row["coverage"] <= 1 and 1 <= gnn_row["set_size"] <= 2
    report = (out / "results" / "report.html").read_text().split("Conformal prediction sets")[1]
    assert f"<td>Multi-modal + GNN</td>\n      <td>0.900</td>\n      <td>{gnn_row['coverage']:.3f}</td>" in report
    # the ablations run in fold A only (Table 4 is that fold's, scored on half B's thresholds)
    assert sorted(p.name for p in (out / "models-B").iterdir()) == [row_slug(FULL_MODEL)]
    assert list(result["tables"]["table4"]["model"]) == list(ABLATIONS)
    assert {row_slug(name) for name in ABLATIONS} <= {p.name for p in (out / "models").iterdir()}
    t4 = preds[preds["model"] == FULL_MODEL]
    assert set(t4["split"]) == {"B", "test"}
    # each fold chose its GNN row on out-of-fold AUCs of its own labelled half
    oof = result["summary"]["population_graph_out_of_fold_auc"]
    assert len(oof) == 2 and all(len(fold) == 5 for fold in oof)
    chosen = [max(fold, key=fold.get) for fold in oof]
    assert result["summary"]["chosen_population_graph"] == " / ".join(dict.fromkeys(chosen))


def test_table4_rows_all_none_or_named_with_the_full_model():
    from gliotype.errors import GliotypeError
    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.experiment.run import table4_rows

    assert list(table4_rows(True)) == list(ABLATIONS)
    assert list(table4_rows(False)) == [FULL_MODEL]
    assert list(table4_rows(["fB + MLP", "fI + MLP"])) == ["fI + MLP", "fB + MLP", FULL_MODEL]  # Table 4 order
    assert table4_rows(["fP + MLP"])["fP + MLP"] == ABLATIONS["fP + MLP"]
    with pytest.raises(GliotypeError, match="unknown Table 4 row 'fX'"):
        table4_rows(["fX"])


def test_a_damaged_cache_file_is_rebuilt_not_trusted(tiny_run):
    """Issue 14, case 5: a truncated preprocessed sequence, x_I, x_B, network weights or Table 2
    row on a rerun is named in a warning and rebuilt, and the results equal the undamaged run's."""
    import logging

    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.layout import RunDir, WorkDir

    class Warnings(logging.Handler):  # the gliotype logger does not propagate to pytest's caplog
        def __init__(self):
            super().__init__(logging.WARNING)
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    root, config, _ = tiny_run
    config = config.model_copy(update={"workers": 1})  # the warnings of worker processes go to their stderr
    reference = run_experiment(root / "run", config, data=root / "cohort", repeats=1)  # every stage cached
    run, work = RunDir(root / "run"), WorkDir(root / "run" / "work")
    x, y, z = pd.read_csv(run.splits, dtype={"patient_id": str}).query("split == 'A'")["patient_id"].iloc[:3]
    damaged = [work.case(x).sequence("t1"), work.case(y).tumor_image, work.case(z).brain_network,
               run.model_row(FULL_MODEL, "A").weights, sorted(run.root.glob("population_graphs/*/gnn.safetensors"))[0]]
    intact = {f: f.read_bytes() for f in damaged}
    for f in damaged:
        f.write_bytes(intact[f][: len(intact[f]) // 2])
    seen = Warnings()
    logging.getLogger("gliotype").addHandler(seen)
    try:
        again = run_experiment(root / "run", config, data=root / "cohort", repeats=1)
    finally:
        logging.getLogger("gliotype").removeHandler(seen)
    for f in damaged:
        assert any(f"cached file {f.name} changed since it was written" in line for line in seen.lines), f.name
        assert f.read_bytes() == intact[f], f"{f.name} was not rebuilt to the same bytes"
    assert len([line for line in seen.lines if "changed since it was written" in line]) == len(damaged)
    for name in ("table2", "table3", "table4"):
        pd.testing.assert_frame_equal(again["tables"][name], reference["tables"][name])


def test_a_changed_input_of_one_patient_reaches_every_downstream_file(tiny_run, tmp_path):
    """A patient's input file replaced under the same ID: its preprocessing, modalities and x_B
    are rebuilt and every network trained on it retrains (the keys cover the patients' data,
    not only their IDs); the other patients' files are reused."""
    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.layout import RunDir, WorkDir

    import nibabel as nib

    root, config, _ = tiny_run
    shutil.copytree(root / "cohort", tmp_path / "cohort")
    for part in ("work", "models", "splits.csv"):
        copy = shutil.copytree if (root / "run" / part).is_dir() else shutil.copy
        copy(root / "run" / part, tmp_path / "run" / part)
    run, work = RunDir(tmp_path / "run"), WorkDir(tmp_path / "run" / "work")
    split = pd.read_csv(run.splits, dtype={"patient_id": str})
    changed, other = split.query("split == 'A'")["patient_id"].iloc[:2]
    before = {f: f.read_bytes() for pid in (changed, other)
              for f in (work.case(pid).sequence("t2"), work.case(pid).brain_network)}
    model_before = run.model_row(FULL_MODEL, "A").meta.read_text()
    t2 = next((tmp_path / "cohort" / changed).glob("*_t2.nii.gz"))
    img = nib.load(t2)
    data = np.asarray(img.dataobj, dtype=np.float32)
    nib.save(nib.Nifti1Image(np.roll(data, 3, axis=0), img.affine), t2)  # intensity scalings normalise away
    run_experiment(tmp_path / "run", config, data=tmp_path / "cohort", repeats=1, ablations=False, baselines=False,
                   audit=False)
    for f in (work.case(changed).sequence("t2"), work.case(changed).brain_network):
        assert f.read_bytes() != before[f], f"{f.name} of the changed patient is stale"
    for f in (work.case(other).sequence("t2"), work.case(other).brain_network):
        assert f.read_bytes() == before[f], f"{f.name} of an unchanged patient was rebuilt"
    assert json.loads(run.model_row(FULL_MODEL, "A").meta.read_text())["key"] != json.loads(model_before)["key"]


def test_graph_options_benchmark_gives_back_the_runs_gnn_and_scores_a_variant(tiny_run, tmp_path):
    """benchmarks/graph_options.py retrains Table 3's GNN of every split from the stored features: with the
    run's own options it is the run's AUC, to rounding; a variant is scored beside it (design.md point 51)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "graph_options.py"
    spec = importlib.util.spec_from_file_location("graph_options", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root, _, _ = tiny_run
    df = module.main([str(root / "run"), "k1:max_neighbours=1;epochs=3", "--out", str(tmp_path / "g.csv")])
    assert sorted(df["split_seed"].unique()) == [0, 1] and list(df["variant"].unique()) == ["run", "k1"]
    own = df[df["variant"] == "run"]
    assert np.allclose(own["auc"], own["table3_auc"], atol=1e-12)
    assert df["auc"].between(0, 1).all() and pd.read_csv(tmp_path / "g.csv").shape == (4, 4)
    with pytest.raises(SystemExit):
        module.main([str(root / "run"), "k1:max_neighbours"])  # not KEY=VALUE


def _row_config(config, row: str):
    """The config a Table 4 row trains with (its overrides of the run's)."""
    from gliotype.experiment.ablations import table4_rows

    cfg = config.model_copy(deep=True)
    for k, v in table4_rows([row])[row].items():
        setattr(cfg.multimodal, k, v)
    return cfg


def test_a_diverged_training_is_recorded_and_not_tried_again(tiny_run, tmp_path):
    """A loss that becomes NaN raises TrainingDiverged and writes diverged.json under the network's key;
    the same training is not tried again (deterministic), another key trains."""
    from gliotype import stages
    from gliotype.layout import MultiModalDir
    from gliotype.multimodal.stage import model_key
    from gliotype.utils.training import TrainingDiverged

    root, config, _ = tiny_run
    splits = pd.read_csv(root / "run" / "splits.csv", dtype={"patient_id": str})
    ids = splits.loc[splits["split"] == "A", "patient_id"].tolist()
    labels = dict(zip(splits["patient_id"], splits["idh"]))
    work = root / "run" / "work"
    cfg = config.model_copy(deep=True)
    cfg.multimodal.lr = 1e30  # SGD's first step sends the weights to infinity
    folder = MultiModalDir(tmp_path / "net")
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf)") as first:
        stages.multimodal(work, folder.root, ids, labels, cfg)
    record = json.loads(folder.diverged.read_text())
    assert (record["key"], record["reason"]) == (model_key(work, cfg, ids), str(first.value))
    shutil.rmtree(folder.checkpoints, ignore_errors=True)
    with pytest.raises(TrainingDiverged) as again:
        stages.multimodal(work, folder.root, ids, labels, cfg)
    assert str(again.value) == str(first.value) and not folder.checkpoints.exists()  # not trained again
    cfg.multimodal.lr = 1e-3  # another key: trained
    stages.multimodal(work, folder.root, ids, labels, cfg)
    assert folder.weights.exists()


def test_a_diverged_ablation_leaves_its_table4_row_empty(tiny_run, tmp_path):
    """A Table 4 ablation whose training diverged is one warning and an empty row ("not trained"), not
    the end of the run; a diverged full model still stops it with the one line."""
    from gliotype.errors import GliotypeError
    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.layout import MultiModalDir, row_slug
    from gliotype.multimodal.stage import model_key
    from gliotype.utils.records import write_record

    root, config, _ = tiny_run
    out = tmp_path / "diverged"
    shutil.copytree(root / "run" / "work", out / "work")
    splits = pd.read_csv(root / "run" / "splits.csv", dtype={"patient_id": str})
    half_a = splits.loc[splits["split"] == "A", "patient_id"].tolist()
    row, reason = "fP + MLP", "multi-modal training (models/fP_MLP): the loss became nan in epoch 2; training diverged"
    net = MultiModalDir(out / "models" / row_slug(row))
    net.root.mkdir(parents=True)
    write_record(net.diverged, model_key(out / "work", _row_config(config, row), half_a), reason=reason)
    result = run_experiment(out, config, data=root / "cohort", repeats=1, ablations=[row, "fI + MLP"],
                            baselines=False, audit=False)
    t4 = result["tables"]["table4"].set_index("model")
    assert list(t4.index) == ["fI + MLP", row, FULL_MODEL]  # Table 4's order, the empty row in its place
    assert np.isnan(t4.loc[row, "auc"]) and np.isfinite(t4.loc["fI + MLP", "auc"]) and np.isfinite(t4.loc[FULL_MODEL, "auc"])
    assert result["summary"]["table4_not_trained"] == {row: reason}
    assert f"| {row} | not trained | - |" in (out / "results" / "table4.md").read_text()
    assert not net.weights.exists()

    full = MultiModalDir(out / "models" / row_slug(FULL_MODEL))
    key = json.loads(full.meta.read_text())["key"]
    full.meta.unlink()
    write_record(full.diverged, key, reason="the loss became nan in epoch 3")
    with pytest.raises(GliotypeError, match="the loss became nan in epoch 3"):
        run_experiment(out, config, data=root / "cohort", repeats=1, ablations=[row], baselines=False, audit=False)
