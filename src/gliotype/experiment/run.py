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
from gliotype.config import GliotypeConfig, config_hash, save_config
from gliotype.errors import GliotypeError
from gliotype.experiment.ablations import ABLATIONS, FULL_MODEL
from gliotype.experiment.tables import (
    TABLE_COLUMNS,
    FEATURE_ROWS,
    Scored,
    chosen_population_graph,
    feature_models,
    population_graph_models,
    table,
    to_markdown,
)
from gliotype.layout import RunDir, WorkDir
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
                spent = time.perf_counter() - self.t0  # summed over repeats
                timer.seconds[name] = round(timer.seconds.get(name, 0.0) + spent, 1)

        return _Stage()


def prepare_cohort(data: Path | None, manifest: Path | None, out: str | Path | RunDir, workers: int) -> pd.DataFrame:
    """Scan (or read) and validate the cohort; returns the usable rows (``manifest.csv`` when
    scanned and ``validation.csv`` are written into the run folder ``out``)."""
    from gliotype.input import read_manifest, scan_cohort, validate_manifest, write_manifest

    run = RunDir.of(out)
    if manifest is None:
        if data is None:
            raise GliotypeError("give --data DIR or --manifest CSV")
        labels = data / "labels.csv" if (data / "labels.csv").exists() else None
        df = scan_cohort(data, labels=labels)
        manifest = run.manifest
        write_manifest(df, manifest)
    df = read_manifest(manifest)
    reports = validate_manifest(df, workers=workers)
    rows = [{"patient_id": r.patient_id, "status": r.status, "reason": r.reason} for r in reports]
    write_csv_atomic(pd.DataFrame(rows), run.validation)
    ok = {r.patient_id for r in reports if r.status == "ok"}
    for r in reports:
        if r.status != "ok":
            log.warning("patient %s skipped: %s", r.patient_id, r.reason)
    if not ok:
        raise GliotypeError("no usable case in the cohort")
    return df[df["patient_id"].astype(str).isin(ok)].reset_index(drop=True)


def _group(feats: pd.DataFrame, name: str) -> np.ndarray:
    from gliotype.multimodal.stage import feature_matrix

    return feature_matrix(feats, name)


def _tumor_and_brain(feats: pd.DataFrame) -> np.ndarray:
    parts = [m for m in (_group(feats, "u_T"), _group(feats, "u_B")) if m.size]
    return np.concatenate(parts, axis=1)


def run_experiment(
    out: str | Path | RunDir,
    config: GliotypeConfig,
    data: str | Path | None = None,
    manifest: str | Path | None = None,
    ablations: bool | list[str] = True,
    baselines: bool = True,
    repeats: int | None = None,
    audit: bool = True,
) -> dict:
    """Run the whole method and write ``results/`` and ``model/`` under ``out``; returns the tables.

    ``ablations``: every Table 4 row (True), none but the full model (False), or the named
    rows (and the full model). With ``repeats`` K > 1 (default ``split.repeats``) the
    split protocol is redrawn with seeds ``split.seed + k``; repeat 0 writes ``out/results``, the others
    ``out/repeats/split-seed-S/results``, and ``out/results/repeats_table{2,3,4}.csv``
    give each model's mean and standard deviation over the repeats. Preprocessing,
    modalities and the self-supervised models are shared (the FA set does not change).
    """
    from gliotype.input import is_blank
    from gliotype.modalities.build import build_modalities
    from gliotype.preprocessing import preprocess_cohort

    run = RunDir.of(out)
    table4_rows(ablations)  # an unknown row name fails before any work
    run.root.mkdir(parents=True, exist_ok=True)
    work = run.work
    save_config(config, run.config)
    timer = Timer()
    workers = config.workers
    repeats = int(repeats or config.split.repeats)

    with timer("cohort"):
        cohort = prepare_cohort(Path(data) if data else None, Path(manifest) if manifest else None, run, workers)
    with timer("preprocessing"):
        status = preprocess_cohort(cohort, work, config, workers=workers)
        ok = status.loc[status["status"].isin(["done", "skipped"]), "patient_id"].astype(str).tolist()
    with timer("modalities"):
        mstatus = build_modalities(work, ok, config, workers=workers)
        ok = mstatus.loc[mstatus["status"].isin(["done", "skipped"]), "patient_id"].astype(str).tolist()
    cohort = cohort[cohort["patient_id"].astype(str).isin(ok)].copy()
    cohort["patient_id"] = cohort["patient_id"].astype(str)
    cohort["has_fa"] = [not is_blank(v) for v in cohort["fa"]] if "fa" in cohort else False

    runs = []
    for k in range(repeats):
        cfg = config.model_copy(deep=True)
        cfg.split.seed = config.split.seed + k
        run_out = run if k == 0 else run.repeat(cfg.split.seed)
        if repeats > 1:
            log.info("repeat %d of %d (split seed %d)", k + 1, repeats, cfg.split.seed)
        runs.append(_run_split(run_out, work, cohort, ok, cfg, Path(data) if data else None, ablations, baselines,
                               timer, export=k == 0, audit=audit))
    result = runs[0]
    if repeats > 1:
        result["repeats"] = {name: summarise_repeats([r["tables"][name] for r in runs])
                             for name in result["tables"]}
        for name, df in result["repeats"].items():
            write_csv_atomic(df, run.results.repeats_table(name))
            atomic_write(run.results.repeats_table(name, "md"), repeats_markdown(df) + "\n")
        from gliotype.experiment.report import add_repeats_section

        add_repeats_section(run.results.report, result["repeats"])
        result["summary"]["repeats"] = {
            "split_seeds": [config.split.seed + k for k in range(repeats)],
            **{key: [r["summary"][key] for r in runs] for key in ("bayes_auc_test", "observable_auc_test",
                                                                   "ceiling_ratio")}}
    result["summary"]["seconds"] = timer.seconds
    atomic_write(run.results.summary, json.dumps(result["summary"], indent=2, default=float))
    return result


def summarise_repeats(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Mean and standard deviation of every metric of each model over repeated splits."""
    metrics = ["auc", "acc", "sen", "spe"]
    both = pd.concat(tables, keys=range(len(tables)), names=["repeat"]).reset_index(level=0)
    grouped = both.groupby("model", sort=False)[metrics]
    df = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_sd")).reset_index()
    df["repeats"] = len(tables)
    return df[["model", *[f"{m}_{s}" for m in metrics for s in ("mean", "sd")], "repeats"]]


def repeats_markdown(df: pd.DataFrame) -> str:
    """Mean +- SD over the repeats as Markdown."""
    lines = [f"| model | AUC | ACC | SEN | SPE |  (mean +- SD over {int(df['repeats'].iloc[0])} splits)",
             "|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        cells = [f"{r[m + '_mean']:.3f} +- {r[m + '_sd']:.3f}" for m in ("auc", "acc", "sen", "spe")]
        lines.append("| " + " | ".join([r["model"], *cells]) + " |")
    return "\n".join(lines)


def _run_split(run: RunDir, work: WorkDir, cohort: pd.DataFrame, ok: list[str], config: GliotypeConfig,
               data: Path | None, ablations: bool | list[str], baselines: bool, timer: Timer, export: bool,
               audit: bool = True) -> dict:
    """Everything after the modalities for one draw of the split protocol (section 4.1).

    ``split.protocol: paper``: the encoders train on half A, the classifiers on half B.
    ``crossfit``: the same, and again with the halves swapped (encoders on B, classifiers
    on A); each test probability is the mean of the two folds' and each threshold is
    chosen on the predictions of A and B together, so every labelled training patient
    trains an encoder and a classifier. The Table 4 ablations run in the first fold only
    (the paper's protocol), which halves their cost; Table 4 is that fold's.
    """
    from gliotype.evaluation.splits import check_splits, make_splits
    from gliotype.self_supervised import encode_brain_networks, train_self_supervised

    run.root.mkdir(parents=True, exist_ok=True)
    results = run.results
    splits = make_splits(cohort, config.split.test_fraction, config.split.seed)
    check_splits(splits)
    write_csv_atomic(splits, run.splits)
    ids = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("ssl", "A", "B", "test")}
    labels = dict(zip(splits["patient_id"], splits["idh"]))
    log.info("splits: %s", ", ".join(f"{k} {len(v)}" for k, v in ids.items()))

    with timer("self-supervised brain networks"):
        ssl_report = train_self_supervised(work, config, ids["ssl"])
        encode_brain_networks(work, ok)

    halves = [("A", "B")] if config.split.protocol == "paper" else [("A", "B"), ("B", "A")]
    folds = [_fold(run, enc, work, ids[enc], ids[clf], ids["test"], labels, config,
                   ablations if enc == "A" else False, timer, others=ok) for enc, clf in halves]
    train_ids = [p for _, clf in halves for p in ids[clf]]
    y_train = np.array([labels[p] for p in train_ids], dtype=float)
    y_test = np.array([labels[p] for p in ids["test"]], dtype=float)
    ev, seed = config.evaluation, config.seed

    t2_models = _across_folds([f["table2"] for f in folds])
    t2 = table(t2_models, y_train, y_test, ev, seed=seed)
    gnn = _across_folds([[f["gnn"]] for f in folds])[0]
    chosen = " / ".join(dict.fromkeys(f["gnn"].name for f in folds))

    t3_models: list[Scored] = []
    with timer("baselines"):
        if baselines:
            t3_models += _cnn_baselines(work, run, ids, train_ids, labels, config)
    t3_models += _across_folds([f["classifiers"] for f in folds])
    t3_models.append(Scored("Multi-modal + GNN", gnn.p_train, gnn.p_test, p_threshold=gnn.p_threshold))
    t3 = table(t3_models, y_train, y_test, ev, reference="Multi-modal + GNN", seed=seed)
    t4_models = folds[0]["table4"]  # the ablations follow the paper's protocol (encoders on A) in both
    y_b = np.array([labels[p] for p in ids["B"]], dtype=float)
    t4 = table(t4_models, y_b, y_test, ev, reference=FULL_MODEL, seed=seed)

    bayes = _bayes_ceiling(data, ids["test"], y_test)
    with timer("observable ceiling"):
        from gliotype.audit import split_observable_ceiling

        observable = split_observable_ceiling(work, splits, seed, config.workers)
    tables = {"table2": t2, "table3": t3, "table4": t4}
    preds = _predictions(dict(zip(splits["patient_id"], splits["split"])), ids["test"], labels,
                         [(train_ids, t2_models + t3_models), (ids["B"], t4_models)])
    if export:
        from gliotype.experiment.export import export_model

        first = folds[0]
        export_model(run.model, config, work, first["model_dir"], first["features"], first["graph_ids"],
                     first["in_train"], first["y"], first["gnn"])
    from gliotype.experiment.report import write_report

    summary = {
        "gliotype_version": __version__,
        "split_seed": config.split.seed,
        "protocol": config.split.protocol,
        "patients": {k: len(v) for k, v in ids.items()},
        "ssl": ssl_report,
        "bayes_auc_test": bayes,
        "observable_auc_test": observable,
        "ceiling_ratio": _ceiling_ratios(t3, "Multi-modal + GNN", bayes, observable),
        "seconds": dict(timer.seconds),
        "chosen_population_graph": chosen,
        "population_graph_out_of_fold_auc": [f["gnn"].artifacts.get("out_of_fold_auc") for f in folds],
    }
    write_report(results, tables, preds, summary, config, {m.name: m for m in t2_models + t3_models + t4_models},
                 y_test)
    atomic_write(results.summary, json.dumps(summary, indent=2, default=float))
    if audit:
        with timer("information audit"):
            from gliotype.audit import audit_run
            from gliotype.experiment.report import add_audit_section

            truth = data / "truth.csv" if data is not None and (data / "truth.csv").exists() else None
            add_audit_section(results.report, audit_run(run, truth=truth, workers=config.workers))
    return {"tables": tables, "summary": summary}


def ceiling_lines(summary: dict) -> str:
    """The ceilings of the test patients and the full model's share of each (printed by ``gliotype run``)."""
    ratio = summary.get("ceiling_ratio") or {}
    lines = []
    for key, name in (("bayes", "Bayes-optimal AUC (generator latents)"),
                      ("observable", "observable ceiling (hand-made descriptors, docs/audit.md)")):
        value = summary.get(f"{key}_auc_test")
        if value is not None:
            share = f"; {ratio['model']} reaches {ratio[key]:.2f} x it" if ratio.get(key) is not None else ""
            lines.append(f"{name} of the test patients: {value:.3f}{share}")
    rep = summary.get("repeats")
    if rep and rep.get("ceiling_ratio"):
        for key in ("bayes", "observable"):
            shares = [r[key] for r in rep["ceiling_ratio"] if r and r.get(key) is not None]
            if shares:
                lines.append(f"over {len(shares)} splits, {key} ratio {np.mean(shares):.2f} +- "
                             f"{np.std(shares, ddof=1) if len(shares) > 1 else 0:.2f}")
    return "\n".join(lines)


def _ceiling_ratios(table3: pd.DataFrame, model: str, bayes: float | None, observable: float | None) -> dict:
    """The model's test AUC over each ceiling (what the issue's targets are stated in)."""
    auc = float(table3.set_index("model").loc[model, "auc"])
    return {"model": model, "auc": auc, "bayes": None if not bayes else auc / bayes,
            "observable": None if not observable else auc / observable}


def _fold(run: RunDir, fold: str, work: WorkDir, enc_ids: list[str], clf_ids: list[str], test_ids: list[str],
          labels: dict, config: GliotypeConfig, ablations: bool | list[str], timer: Timer,
          others: list[str] | None = None) -> dict:
    """Encoders (full model + Table 4 ablations) trained on ``enc_ids`` (half ``fold``, stored in
    ``run.models(fold)``; with ``multimodal.unlabelled: cohort`` also on the patients of
    ``others`` outside ``enc_ids``, without labels); population graphs and feature classifiers
    fitted on ``clf_ids``; every model scores ``test_ids``."""
    from gliotype.multimodal.stage import features_for, train_multimodal

    graph_ids = clf_ids + test_ids
    in_train = np.arange(len(graph_ids)) < len(clf_ids)
    y = np.array([labels[p] for p in graph_ids], dtype=float)
    y_clf = y[in_train]
    seed, pg, fc = config.seed, config.population_graph, config.feature_classifiers

    feature_sets: dict[str, pd.DataFrame] = {}
    rows = table4_rows(ablations)
    with timer("multi-modal encoders"):
        for name, overrides in rows.items():
            cfg = config.model_copy(deep=True)
            for k, v in overrides.items():
                setattr(cfg.multimodal, k, v)
            model_dir = run.model_row(name, fold)
            unlabelled = others if cfg.multimodal.unlabelled == "cohort" else None
            train_multimodal(work, model_dir, enc_ids, labels, cfg, unlabelled_ids=unlabelled)
            feature_sets[name] = features_for(work, model_dir, graph_ids, cfg)
    full = feature_sets[FULL_MODEL]

    with timer("population graphs"):
        t2 = population_graph_models(_group(full, "u_T"), _group(full, "u_B"), y, in_train, graph_ids, pg, seed,
                                     workers=config.workers)
        gnn = chosen_population_graph(t2, y_clf, pg)
    with timer("feature classifiers"):
        x = _tumor_and_brain(full)
        classifiers = feature_models(x[in_train], y_clf, x[~in_train], seed, fc)
        # the full model's Table 4 row is Table 3's "+ MLP" on the same features: fitted once
        fitted = {FULL_MODEL: m for m in classifiers if m.name == FEATURE_ROWS["mlp"]}
        t4 = []
        for name, feats in feature_sets.items():
            if (mlp := fitted.get(name)) is None:
                x = _tumor_and_brain(feats)
                mlp = feature_models(x[in_train], y_clf, x[~in_train], seed, fc, rows=["mlp"])[0]
            t4.append(Scored(name, mlp.p_train, mlp.p_test, p_threshold=mlp.p_threshold))
    return {"table2": t2, "gnn": gnn, "classifiers": classifiers, "table4": t4, "features": full, "graph_ids": graph_ids,
            "in_train": in_train, "y": y, "model_dir": run.model_row(FULL_MODEL, fold)}


def table4_rows(ablations: bool | list[str]) -> dict[str, dict]:
    """The Table 4 rows to train (name -> overrides of ``multimodal``); the full model always."""
    if ablations is True:
        return dict(ABLATIONS)
    names = list(ablations or [])
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise GliotypeError(f"unknown Table 4 row {unknown[0]!r}: choose from {', '.join(ABLATIONS)}")
    return {n: ABLATIONS[n] for n in ABLATIONS if n in names or n == FULL_MODEL}


def _across_folds(folds: list[list[Scored]]) -> list[Scored]:
    """One model per name from the folds of the cross-fitting: training predictions (and
    out-of-fit threshold predictions) concatenated in fold order, test probabilities averaged."""
    if len(folds) == 1:
        return folds[0]
    out = []
    for same in zip(*folds):
        thresholds = [m.p_train if m.p_threshold is None else m.p_threshold for m in same]
        out.append(Scored(same[0].name, np.concatenate([m.p_train for m in same]),
                          np.mean([m.p_test for m in same], axis=0), same[0].artifacts,
                          np.concatenate(thresholds)))
    return out


def _cnn_baselines(work: WorkDir, run: RunDir, ids, threshold_ids, labels, config) -> list[Scored]:
    """Table 3's 3D CNNs on the tumor image, trained on halves A and B together; their
    threshold is chosen on their (fitted) predictions of ``threshold_ids``."""
    from gliotype.evaluation.baselines import predict_cnn, train_cnn

    models = []
    train_ids = ids["A"] + ids["B"]
    labels_of = {"resnet34": "ResNet(3D)", "densenet121": "DenseNet(3D)"}
    for name in config.baselines.models:
        folder = run.baseline(name)
        model = train_cnn(name, work, folder, train_ids, labels, config.baselines, config.seed,
                          inputs_key=config_hash(config, "modalities", "preprocess"))
        models.append(Scored(labels_of[name], predict_cnn(model, work, threshold_ids),
                             predict_cnn(model, work, ids["test"])))
    return models


def _bayes_ceiling(data: Path | None, test_ids: list[str], y_test: np.ndarray) -> float | None:
    """AUC of the generator's Bayes posterior on the test patients (synthetic cohorts only)."""
    if data is None or not (data / "truth.csv").exists():
        return None
    from sklearn.metrics import roc_auc_score

    truth = pd.read_csv(data / "truth.csv", dtype={"patient_id": str}).set_index("patient_id")
    return float(roc_auc_score(y_test, truth.loc[test_ids, "bayes_posterior"].to_numpy()))


def _predictions(split_of: dict, test_ids, labels, groups: list[tuple[list[str], list[Scored]]]) -> pd.DataFrame:
    """Every model's probability of every classifier-training (half B; A too when cross-fitted)
    and test patient; ``groups`` pairs each list of models with the training patients they scored."""
    rows = []
    for train_ids, m in ((t, m) for t, models in groups for m in models):
        if len(train_ids) != len(m.p_train):
            raise ValueError(f"{m.name}: {len(m.p_train)} training predictions for {len(train_ids)} patients")
        for pids, p in ((train_ids, m.p_train), (test_ids, m.p_test)):
            rows += [{"patient_id": pid, "split": split_of[pid], "model": m.name, "probability": float(q),
                      "label": int(labels[pid])} for pid, q in zip(pids, p)]
    return pd.DataFrame(rows).drop_duplicates(["patient_id", "model"])


__all__ = ["TABLE_COLUMNS", "run_experiment", "to_markdown"]
