"""One draw of the split protocol (paper section 4.1): everything of ``gliotype run`` after
the modalities, for one split seed.

splits (ssl, A, B, test) -> self-supervised brain networks (on ssl) -> per fold, the
multi-modal encoders (+ the Table 4 ablations) on one half and the population graphs and
feature classifiers on the other -> the 3D CNN baselines -> Tables 2-4, the ceilings, the
predictions, the exported model, the report and the information audit. Table 3 also has
the rows the field expects (radiomics, age: :mod:`gliotype.experiment.expected_rows`).
Every stage is a :mod:`gliotype.stages` function; rows are selected by key (:attr:`Scored.key`).
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd

from gliotype import __version__, stages
from gliotype.config import GliotypeConfig
from gliotype.experiment import expected_rows
from gliotype.experiment.ablations import FULL_MODEL, table4_rows
from gliotype.experiment.ceilings import bayes_ceiling, ceiling_ratios
from gliotype.experiment.networks import train_networks
from gliotype.experiment.tables import GNN_ROW, TABLE3_ROWS, Scored, feature_models, with_empty_rows
from gliotype.experiment.timing import Timer
from gliotype.layout import RunDir, WorkDir
from gliotype.utils.environment import package_versions
from gliotype.utils.io import atomic_write, write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.training import TrainingDiverged

log = get_logger(__name__)


def run_split(run: RunDir, work: WorkDir, cohort: pd.DataFrame, ok: list[str], config: GliotypeConfig,
              truth: pd.DataFrame | None, ablations: bool | list[str], baselines: bool, timer: Timer, export: bool,
              audit: bool = True) -> dict:
    """Everything after the modalities for one draw of the split protocol (section 4.1).

    ``split.protocol: paper``: the encoders train on half A, the classifiers on half B.
    ``crossfit``: the same, and again with the halves swapped (encoders on B, classifiers
    on A); each test probability is the mean of the two folds' and each threshold is
    chosen on the predictions of A and B together, so every labelled training patient
    trains an encoder and a classifier. The Table 4 ablations run in the first fold only
    (the paper's protocol), which halves their cost; Table 4 is that fold's. ``truth``: the
    synthetic cohort's truth (the Bayes ceiling, the audit's latents) or None.
    Returns ``{"tables": {"table2", "table3", "table4"}, "summary": ...}``.
    """
    from gliotype.audit import observable_ids
    from gliotype.evaluation.splits import check_splits, make_splits
    from gliotype.multimodal.pretrain import pretrains_image

    run.root.mkdir(parents=True, exist_ok=True)
    results = run.results
    splits = make_splits(cohort, config.split.test_fraction, config.split.seed)
    check_splits(splits)
    write_csv_atomic(splits, run.splits)
    ids = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("ssl", "A", "B", "test")}
    labels = dict(zip(splits["patient_id"], splits["idh"]))
    log.info("splits: %s", ", ".join(f"{k} {len(v)}" for k, v in ids.items()))

    halves = folds_of(config)
    train_ids = [p for _, clf in halves for p in ids[clf]]  # the classifiers' training patients
    with timer("self-supervised brain networks"):  # and, beside them (workers > 1), the CNN baselines
        ahead = [functools.partial(stages.self_supervised, work, config, ids["ssl"], ok)]
        if pretrains_image(config.multimodal):  # x_I only as well (point 50)
            ahead.append(functools.partial(stages.image_pretraining, work, config, ok))
        if baselines:  # they need x_I only: they train while the edge model trains
            ahead += stages.baseline_trainings(work, run, ids["A"] + ids["B"], labels, config).values()
        # last: on the core the networks above leave first (the radiomics rows and the observable ceiling read them)
        ahead.append(functools.partial(stages.hand_made_features, work, config, train_ids + ids["test"],
                                       observable_ids(splits)))
        train_networks(ahead, config, "self-supervised models, CNN baselines and hand-made features")
        ssl_report = stages.self_supervised(work, config, ids["ssl"], ok)

    with timer("multi-modal encoders"):  # every fold's networks side by side (workers > 1), then reused
        stages.image_pretraining(work, config, ok)  # once (if not done above), before the networks that start from it
        train_networks([functools.partial(stages.multimodal, work, model_dir, ids[enc], labels, cfg,
                                          unlabelled_ids=unlabelled, pretrain_ids=ok,
                                          feature_ids=ids[clf] + ids["test"])  # _fold_features reads them back
                        for enc, clf in halves
                        for _, cfg, model_dir, unlabelled in _encoders(run, enc, config,
                                                                       ablations if enc == "A" else False, ok)],
                       config, "multi-modal networks")
    folds = [_fold_features(run, enc, work, ids[enc], ids[clf], ids["test"], labels, config,
                            ablations if enc == "A" else False, timer, others=ok) for enc, clf in halves]
    _fold_models(run, folds, config, timer, cohort)
    y_train = np.array([labels[p] for p in train_ids], dtype=float)
    y_test = np.array([labels[p] for p in ids["test"]], dtype=float)

    t2_models = across_folds([f["table2"] for f in folds])
    t2 = stages.evaluate(t2_models, y_train, y_test, config)
    gnn = across_folds([[f["gnn"]] for f in folds])[0]
    chosen = " / ".join(dict.fromkeys(f["gnn"].name for f in folds))

    t3_models: list[Scored] = []
    with timer("baselines"):
        if baselines:
            t3_models += stages.baselines(work, run, ids["A"] + ids["B"], train_ids, ids["test"], labels, config)
    with timer("radiomics and age rows"):  # issue 16: beside the paper's baselines, same training patients
        t3_models += expected_rows.before_model(work, cohort, train_ids, ids["test"], labels, config)
    t3_models += across_folds([f["classifiers"] for f in folds])
    t3_models.append(Scored(TABLE3_ROWS[GNN_ROW], gnn.p_train, gnn.p_test, p_threshold=gnn.p_threshold, key=GNN_ROW,
                            p_test_reference=gnn.p_test_reference))
    t3_models += expected_rows.age_with_model(cohort, train_ids, ids["test"], labels, gnn, config)
    t3 = stages.evaluate(t3_models, y_train, y_test, config, reference=GNN_ROW)
    t4_models = folds[0]["table4"]  # the ablations follow the paper's protocol (encoders on A) in both
    y_b = np.array([labels[p] for p in ids["B"]], dtype=float)
    t4 = with_empty_rows(stages.evaluate(t4_models, y_b, y_test, config, reference=FULL_MODEL), folds[0]["diverged"],
                         list(table4_rows(ablations)))

    bayes = bayes_ceiling(truth, ids["test"], y_test)
    with timer("observable ceiling"):
        from gliotype.audit import split_observable_ceiling

        observable = split_observable_ceiling(work, splits, config.seed, config.workers)
    tables = {"table2": t2, "table3": t3, "table4": t4}
    preds = _predictions(dict(zip(splits["patient_id"], splits["split"])), ids["test"], labels,
                         [(train_ids, t2_models + t3_models), (ids["B"], t4_models)])
    from gliotype.experiment.report import write_report

    gnn_row = t3.iloc[[m.key for m in t3_models].index(GNN_ROW)]
    gnn_auc = float(gnn_row["auc"])
    summary = {
        "gliotype_version": __version__,
        "split_seed": config.split.seed,
        "protocol": config.split.protocol,
        "patients": {k: len(v) for k, v in ids.items()},
        "ssl": ssl_report,
        "bayes_auc_test": bayes,
        "observable_auc_test": observable,
        "ceiling_ratio": ceiling_ratios(TABLE3_ROWS[GNN_ROW], gnn_auc, bayes, observable),
        "seconds": dict(timer.seconds),
        "chosen_population_graph": chosen,
        "table4_not_trained": folds[0]["diverged"],  # row -> why (a diverged training)
        "population_graph_out_of_fold_auc": [f["gnn"].artifacts.get("out_of_fold_auc") for f in folds],
        "calibration": gnn_calibration(gnn_row, config),
        "environment": package_versions(),  # what computed the numbers (utils/environment.py)
    }
    if export and config.population_graph.phenotype != "none":
        log.warning("no model exported: gliotype predict does not weight a new patient's edges by phenotype "
                    "(population_graph.phenotype %s)", config.population_graph.phenotype)
    elif export:
        from gliotype.experiment.export import export_model
        from gliotype.experiment.model_card import CardFacts

        first = folds[0]
        card = CardFacts.of_run(splits, cohort, synthetic=truth is not None, table3=t3, summary=summary)
        export_model(run.model, config, work, first["model_dir"], first["features"], first["graph_ids"],
                     first["in_train"], first["y"], first["gnn"], card=card)
    write_report(results, tables, preds, summary, config, {m.key: m for m in t2_models + t3_models + t4_models},
                 y_test)
    atomic_write(results.summary, json.dumps(summary, indent=2, default=float))
    if audit:
        with timer("information audit"):
            from gliotype.audit import audit_run

            audit_run(run, truth=truth, workers=config.workers, report=True)
    return {"tables": tables, "summary": summary}


def gnn_calibration(row: pd.Series, config: GliotypeConfig) -> dict:
    """The summary's calibration of Table 3's GNN row: Brier, ECE, and its conformal sets' coverage,
    mean size and fraction with both classes at the nominal coverage (None: no out-of-fit predictions
    to calibrate the sets on), so draws over several seeds can be pooled."""
    def value(key):
        v = float(row[key])
        return None if np.isnan(v) else v

    return {"model": row["model"], "brier": value("brier"), "ece": value("ece"),
            "nominal_coverage": 1 - config.evaluation.conformal_alpha,
            "class_conditional": config.evaluation.conformal_class_conditional,
            "conformal_coverage": value("coverage"), "conformal_set_size": value("set_size"),
            "conformal_both": value("both")}


def _fold_features(run: RunDir, fold: str, work: WorkDir, enc_ids: list[str], clf_ids: list[str],
                   test_ids: list[str], labels: dict, config: GliotypeConfig, ablations: bool | list[str],
                   timer: Timer, others: list[str] | None = None) -> dict:
    """The features of fold ``fold``: encoders (full model + Table 4 ablations) trained on ``enc_ids``
    (half ``fold``, stored in ``run.models(fold)``; with ``multimodal.unlabelled: cohort`` also on the
    patients of ``others`` outside ``enc_ids``, without labels) featurise the classifier patients
    ``clf_ids`` and the test patients; :func:`_fold_models` fits the fold's classifiers on them."""
    graph_ids = clf_ids + test_ids
    feature_sets: dict[str, pd.DataFrame] = {}
    diverged: dict[str, str] = {}
    with timer("multi-modal encoders"):
        for name, cfg, model_dir, unlabelled in _encoders(run, fold, config, ablations, others):
            try:
                stages.multimodal(work, model_dir, enc_ids, labels, cfg, unlabelled_ids=unlabelled,
                                  pretrain_ids=others)
            except TrainingDiverged as exc:
                if name == FULL_MODEL:
                    raise
                log.warning("Table 4 row %s (fold %s) is left empty: %s", name, fold, exc)
                diverged[name] = str(exc)
                continue
            feature_sets[name] = stages.features(work, model_dir, graph_ids, cfg)
    return {"fold": fold, "feature_sets": feature_sets, "features": feature_sets[FULL_MODEL], "graph_ids": graph_ids,
            "in_train": np.arange(len(graph_ids)) < len(clf_ids), "diverged": diverged,
            "y": np.array([labels[p] for p in graph_ids], dtype=float), "model_dir": run.model_row(FULL_MODEL, fold)}


def _fold_models(run: RunDir, folds: list[dict], config: GliotypeConfig, timer: Timer,
                 cohort: pd.DataFrame | None = None) -> None:
    """Every fold's population graphs (Table 2; the chosen one is Table 3's GNN) and feature
    classifiers (Table 3's ``+ MLP / SVM / LR``, Table 4), fitted on its classifier patients and
    scoring its test patients, added to each fold's dict. The graphs of all folds train in one pool
    (``workers`` processes) while this process fits the classifiers: the classifiers are timed
    inside the population graphs' stage."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    graph_folds = [stages.GraphFold(f["features"], f["y"], f["in_train"], f["graph_ids"],
                                    functools.partial(run.graph_row, fold=f["fold"])) for f in folds]
    with timer("population graphs"), ThreadPoolExecutor(1) as beside:
        graphs = beside.submit(contextvars.copy_context().run, stages.population_graphs, graph_folds, config, cohort)
        for f in folds:
            f.update(_classifiers(f, config))
        for f, (t2, gnn) in zip(folds, graphs.result()):
            f.update(table2=t2, gnn=gnn)


def _classifiers(fold: dict, config: GliotypeConfig) -> dict:
    """Table 3's feature classifiers on <u_T, u_B> of the fold's full model, and Table 4's ``+ MLP``
    row of every encoder of the fold."""
    in_train, y_clf = fold["in_train"], fold["y"][fold["in_train"]]
    seed, fc = config.seed, config.feature_classifiers
    x = _tumor_and_brain(fold["features"])
    classifiers = feature_models(x[in_train], y_clf, x[~in_train], seed, fc)
    # the full model's Table 4 row is Table 3's "+ MLP" on the same features: fitted once
    fitted = {FULL_MODEL: m for m in classifiers if m.key == "mlp"}
    t4 = []
    for name, feats in fold["feature_sets"].items():
        if (mlp := fitted.get(name)) is None:
            x = _tumor_and_brain(feats)
            mlp = feature_models(x[in_train], y_clf, x[~in_train], seed, fc, rows=["mlp"])[0]
        t4.append(Scored(name, mlp.p_train, mlp.p_test, p_threshold=mlp.p_threshold, key=name))
    return {"classifiers": classifiers, "table4": t4}


def _encoders(run: RunDir, fold: str, config: GliotypeConfig, ablations: bool | list[str],
              others: list[str] | None):
    """``(row name, config, model folder, unlabelled patients)`` of every network fold ``fold`` trains:
    the full model and the ``ablations`` (Table 4 rows), in Table 4 order."""
    for name, overrides in table4_rows(ablations).items():
        cfg = config.model_copy(deep=True)
        for k, v in overrides.items():
            setattr(cfg.multimodal, k, v)
        yield name, cfg, run.model_row(name, fold), others if cfg.multimodal.unlabelled == "cohort" else None


def _tumor_and_brain(feats: pd.DataFrame) -> np.ndarray:
    """<u_T, u_B>: the features the classifiers of Tables 3 and 4 take."""
    from gliotype.multimodal.stage import feature_matrix

    parts = [m for m in (feature_matrix(feats, "u_T"), feature_matrix(feats, "u_B")) if m.size]
    return np.concatenate(parts, axis=1)


def folds_of(config: GliotypeConfig) -> list[tuple[str, str]]:
    """``(encoder half, classifier half)`` of each fold of ``split.protocol``: ``paper`` A -> B only,
    ``crossfit`` A -> B and B -> A."""
    return [("A", "B")] if config.split.protocol == "paper" else [("A", "B"), ("B", "A")]


def across_folds(folds: list[list[Scored]]) -> list[Scored]:
    """One model per row from the folds of the cross-fitting: training predictions (and
    out-of-fit threshold predictions) concatenated in fold order, test probabilities (and their
    references on the threshold predictions' scale) averaged."""
    if len(folds) == 1:
        return folds[0]
    out = []
    for same in zip(*folds):
        # a fold without out-of-fit predictions gives its fitted ones to the threshold; none: None
        thresholds = None if all(m.p_threshold is None for m in same) else np.concatenate(
            [m.p_train if m.p_threshold is None else m.p_threshold for m in same])
        references = None if same[0].p_test_reference is None else np.mean([m.p_test_reference for m in same], axis=0)
        out.append(Scored(same[0].name, np.concatenate([m.p_train for m in same]),
                          np.mean([m.p_test for m in same], axis=0), same[0].artifacts,
                          thresholds, same[0].key, references))
    return out


def _predictions(split_of: dict, test_ids, labels, groups: list[tuple[list[str], list[Scored]]]) -> pd.DataFrame:
    """Every model's probability of every classifier-training (half B; A too when cross-fitted)
    and test patient; ``groups`` pairs each list of models with the training patients they scored."""
    rows = []
    for train_ids, m in ((t, m) for t, models in groups for m in models):
        if len(train_ids) != len(m.p_train):
            raise ValueError(f"{m.name}: {len(m.p_train)} training predictions for {len(train_ids)} patients")
        for pids, p in ((train_ids, m.p_train), (test_ids, m.p_test)):
            rows += [{"patient_id": pid, "split": split_of[pid], "model": m.name, "probability": float(q),
                      "label": int(labels[pid])} for pid, q in zip(pids, p) if np.isfinite(q)]
    return pd.DataFrame(rows).drop_duplicates(["patient_id", "model"])


__all__ = ["run_split"]
