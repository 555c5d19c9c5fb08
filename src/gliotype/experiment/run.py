"""``gliotype run``: every stage of the method, cached and resumable (paper sections 3-5).

Stages: cohort (scan, validate) -> preprocessing -> modalities -> splits (section 4.1)
-> self-supervised brain networks -> multi-modal encoders on half A (+ the Table 4
ablations) -> population graphs on half B + test (Table 2) -> baselines (Table 3)
-> evaluation and report. Each stage reuses finished outputs; rerunning the same
command after an interruption continues where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype import __version__
from gliotype.config import GliotypeConfig, save_config
from gliotype.errors import GliotypeError
from gliotype.experiment.ablations import ABLATIONS, FULL_MODEL, slug
from gliotype.experiment.tables import (
    TABLE_COLUMNS,
    Scored,
    feature_models,
    population_graph_models,
    table,
    to_markdown,
)
from gliotype.population_graph import TABLE1_NAMES
from gliotype.utils.io import atomic_write, write_csv_atomic
from gliotype.utils.logging import get_logger

log = get_logger(__name__)


class Timer:
    """Wall time of each stage, kept for the report."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Stage:
            def __enter__(self):
                self.t0 = time.perf_counter()
                log.info("stage: %s", name)

            def __exit__(self, *exc):
                timer.seconds[name] = round(time.perf_counter() - self.t0, 1)

        return _Stage()


def prepare_cohort(data: Path | None, manifest: Path | None, out: Path, workers: int) -> pd.DataFrame:
    """Scan (or read) and validate the cohort; returns the usable rows."""
    from gliotype.input import read_manifest, scan_cohort, validate_manifest, write_manifest

    if manifest is None:
        if data is None:
            raise GliotypeError("give --data DIR or --manifest CSV")
        labels = data / "labels.csv" if (data / "labels.csv").exists() else None
        df = scan_cohort(data, labels=labels)
        manifest = out / "manifest.csv"
        write_manifest(df, manifest)
    df = read_manifest(manifest)
    reports = validate_manifest(df, workers=workers)
    rows = [{"patient_id": r.patient_id, "status": r.status, "reason": r.reason} for r in reports]
    write_csv_atomic(pd.DataFrame(rows), out / "validation.csv")
    ok = {r.patient_id for r in reports if r.status == "ok"}
    for r in reports:
        if r.status != "ok":
            log.warning("patient %s skipped: %s", r.patient_id, r.reason)
    if not ok:
        raise GliotypeError("no usable case in the cohort")
    return df[df["patient_id"].astype(str).isin(ok)].reset_index(drop=True)


def _features_for(workdir, model_dir, ids, config) -> pd.DataFrame:
    from gliotype.multimodal.stage import extract_features, load_multimodal, save_features

    path = Path(model_dir) / "features.csv"
    if path.exists():
        cached = pd.read_csv(path, dtype={"patient_id": str})
        if set(cached["patient_id"]) >= set(ids):
            return cached.set_index("patient_id").loc[list(ids)].reset_index()
    feats = extract_features(workdir, load_multimodal(model_dir, config), ids, config.multimodal)
    save_features(feats, path)
    return feats


def _group(feats: pd.DataFrame, name: str) -> np.ndarray:
    from gliotype.multimodal.stage import feature_matrix

    return feature_matrix(feats, name)


def _tumor_and_brain(feats: pd.DataFrame) -> np.ndarray:
    parts = [m for m in (_group(feats, "u_T"), _group(feats, "u_B")) if m.size]
    return np.concatenate(parts, axis=1)


def run_experiment(
    out: str | Path,
    config: GliotypeConfig,
    data: str | Path | None = None,
    manifest: str | Path | None = None,
    ablations: bool = True,
    baselines: bool = True,
) -> dict:
    """Run the whole method and write ``results/`` and ``model/`` under ``out``; returns the tables."""
    from gliotype.evaluation.splits import check_splits, make_splits
    from gliotype.input import is_blank
    from gliotype.modalities.build import build_modalities
    from gliotype.multimodal.stage import train_multimodal
    from gliotype.preprocessing import preprocess_cohort
    from gliotype.self_supervised import encode_brain_networks, train_self_supervised

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results"
    work = out / "work"
    save_config(config, out / "config.yaml")
    timer = Timer()
    workers = config.workers

    with timer("cohort"):
        cohort = prepare_cohort(Path(data) if data else None, Path(manifest) if manifest else None, out, workers)
    with timer("preprocessing"):
        status = preprocess_cohort(cohort, work, config, workers=workers)
        ok = status.loc[status["status"].isin(["done", "skipped"]), "patient_id"].astype(str).tolist()
    with timer("modalities"):
        mstatus = build_modalities(work, ok, config, workers=workers)
        ok = mstatus.loc[mstatus["status"].isin(["done", "skipped"]), "patient_id"].astype(str).tolist()
    cohort = cohort[cohort["patient_id"].astype(str).isin(ok)].copy()
    cohort["patient_id"] = cohort["patient_id"].astype(str)
    cohort["has_fa"] = [not is_blank(v) for v in cohort["fa"]] if "fa" in cohort else False

    splits_path = out / "splits.csv"
    splits = make_splits(cohort, config.split.test_fraction, config.split.seed)
    check_splits(splits)
    write_csv_atomic(splits, splits_path)
    ids = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("ssl", "A", "B", "test")}
    labels = dict(zip(splits["patient_id"], splits["idh"]))
    log.info("splits: %s", ", ".join(f"{k} {len(v)}" for k, v in ids.items()))

    with timer("self-supervised brain networks"):
        ssl_report = train_self_supervised(work, config, ids["ssl"])
        encode_brain_networks(work, ok)

    y_b = np.array([labels[p] for p in ids["B"]], dtype=float)
    y_test = np.array([labels[p] for p in ids["test"]], dtype=float)
    graph_ids = ids["B"] + ids["test"]
    in_b = np.arange(len(graph_ids)) < len(ids["B"])
    ev, seed = config.evaluation, config.seed

    # Stage 2: the full model and the ablations of Table 4, all trained on half A.
    feature_sets: dict[str, pd.DataFrame] = {}
    rows = ABLATIONS if ablations else {FULL_MODEL: {}}
    with timer("multi-modal encoders"):
        for name, overrides in rows.items():
            cfg = config.model_copy(deep=True)
            for k, v in overrides.items():
                setattr(cfg.multimodal, k, v)
            model_dir = out / "models" / slug(name)
            train_multimodal(work, model_dir, ids["A"], labels, cfg)
            feature_sets[name] = _features_for(work, model_dir, graph_ids, cfg)
    full = feature_sets[FULL_MODEL]
    u_t, u_b = _group(full, "u_T"), _group(full, "u_B")

    with timer("population graphs"):
        t2_models = population_graph_models(u_t, u_b, np.r_[y_b, y_test], in_b, graph_ids, config.population_graph,
                                            seed)
        t2 = table(t2_models, y_b, y_test, ev, seed=seed)
    chosen = TABLE1_NAMES[(config.population_graph.node_weight, config.population_graph.edge_weight)]
    gnn = next(m for m in t2_models if m.name == chosen)

    t3_models: list[Scored] = []
    with timer("baselines"):
        if baselines:
            t3_models += _cnn_baselines(work, out, ids, labels, config)
        x = _tumor_and_brain(full)
        t3_models += feature_models(x[in_b], y_b, x[~in_b], seed)
        t3_models.append(Scored("Multi-modal + GNN", gnn.p_train, gnn.p_test))
        t3 = table(t3_models, y_b, y_test, ev, reference="Multi-modal + GNN", seed=seed)

    with timer("ablations"):
        t4_models = []
        for name, feats in feature_sets.items():
            x = _tumor_and_brain(feats)
            mlp = feature_models(x[in_b], y_b, x[~in_b], seed)[0]
            t4_models.append(Scored(name, mlp.p_train, mlp.p_test))
        t4 = table(t4_models, y_b, y_test, ev, reference=FULL_MODEL, seed=seed)

    bayes = _bayes_ceiling(Path(data) if data else None, ids["test"], y_test)
    tables = {"table2": t2, "table3": t3, "table4": t4}
    preds = _predictions(ids, labels, t2_models + t3_models + t4_models)
    from gliotype.experiment.export import export_model

    export_model(out / "model", config, work, out / "models" / slug(FULL_MODEL), full, graph_ids, in_b,
                 np.r_[y_b, y_test], gnn)
    from gliotype.experiment.report import write_report

    summary = {
        "gliotype_version": __version__,
        "patients": {k: len(v) for k, v in ids.items()},
        "ssl": ssl_report,
        "bayes_auc_test": bayes,
        "seconds": timer.seconds,
        "chosen_population_graph": chosen,
    }
    write_report(results, tables, preds, summary, config, {m.name: m for m in t2_models + t3_models + t4_models},
                 y_test)
    atomic_write(results / "summary.json", json.dumps(summary, indent=2, default=float))
    return {"tables": tables, "summary": summary}


def _cnn_baselines(work, out, ids, labels, config) -> list[Scored]:
    """Table 3's 3D CNNs on the tumor image, trained on halves A and B together."""
    from gliotype.evaluation.baselines import predict_cnn, train_cnn

    models = []
    train_ids = ids["A"] + ids["B"]
    for name, label in (("resnet34", "ResNet(3D)"), ("densenet121", "DenseNet(3D)")):
        folder = out / "models" / name
        model = train_cnn(name, work, folder, train_ids, labels, config.multimodal, config.seed)
        models.append(Scored(label, predict_cnn(model, work, ids["B"]), predict_cnn(model, work, ids["test"])))
    return models


def _bayes_ceiling(data: Path | None, test_ids: list[str], y_test: np.ndarray) -> float | None:
    """AUC of the generator's Bayes posterior on the test patients (synthetic cohorts only)."""
    if data is None or not (data / "truth.csv").exists():
        return None
    from sklearn.metrics import roc_auc_score

    truth = pd.read_csv(data / "truth.csv", dtype={"patient_id": str}).set_index("patient_id")
    return float(roc_auc_score(y_test, truth.loc[test_ids, "bayes_posterior"].to_numpy()))


def _predictions(ids, labels, models: list[Scored]) -> pd.DataFrame:
    rows = []
    for m in models:
        for split, pids, p in (("B", ids["B"], m.p_train), ("test", ids["test"], m.p_test)):
            rows += [{"patient_id": pid, "split": split, "model": m.name, "probability": float(q),
                      "label": int(labels[pid])} for pid, q in zip(pids, p)]
    return pd.DataFrame(rows).drop_duplicates(["patient_id", "model"])


__all__ = ["TABLE_COLUMNS", "run_experiment", "to_markdown"]
