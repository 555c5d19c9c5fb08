"""The paper's result tables from features and predictions (section 5, Tables 2-4).

Every model is scored the same way: a threshold chosen on its training predictions
(Youden's J, or 0.5), then AUC with a 95% bootstrap interval, ACC, SEN and SPE on the
test patients; the full model is compared with each other model by DeLong's test.
Beside them (issue 16): the Brier score and the expected calibration error of the test
probabilities, and, for a model with out-of-fit training predictions, the split-conformal
prediction sets of the test patients (coverage, mean size, fraction with both classes;
:mod:`gliotype.evaluation.conformal`), calibrated on those predictions only.
A model may carry out-of-fit predictions of the training patients (``p_threshold``:
the population GNN's validation nodes, the feature classifiers' out-of-fold
predictions); the threshold is then chosen on those, never on fitted patients. A
probability that is NaN leaves that patient out of the model's row (a radiomics
extraction that failed, an unknown age): its threshold, its metrics and its DeLong test
use the other patients.

Every row has a stable key (:attr:`Scored.key`: ``gnn``, ``mlp``, ``resnet34``, a Table 1
graph's ``uT:uB``, a Table 4 row's name) that selects it; its display name is printed only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from gliotype.config.schema import EvaluationConfig, FeatureClassifiersConfig, PopulationGraphConfig
from gliotype.evaluation import binary_metrics, bootstrap_auc_ci, delong_test, transfer_threshold, youden_threshold
from gliotype.evaluation.baselines import feature_classifier, out_of_fold_proba, outer_folds, selected
from gliotype.evaluation.calibration import brier_score, expected_calibration_error
from gliotype.evaluation.conformal import fit_conformal, set_summary
from gliotype.population_graph import (
    TABLE1,
    TABLE1_NAMES,
    out_of_fold_predictions,
    predict_proba,
    table1_graph,
    train_population_gnn,
    validation_nodes,
)
from gliotype.utils.logging import get_logger
from gliotype.utils.parallel import parallel_map

log = get_logger(__name__)

TABLE_COLUMNS = ["model", "auc", "auc_low", "auc_high", "acc", "sen", "spe"]
#: after the threshold: calibration of the test probabilities, then the conformal sets (NaN for a
#: model without out-of-fit training predictions)
CALIBRATION_COLUMNS = ["brier", "ece"]
CONFORMAL_COLUMNS = ["coverage", "set_size", "both"]

#: Table 3's rows, key -> display name: the 3D CNNs (``baselines.models``), the radiomics
#: classifiers (``radiomics``) and age alone (issue 16, :mod:`gliotype.experiment.expected_rows`),
#: the feature classifiers on the multi-modal features (``feature_classifiers.rows``), the GNN
#: and age stacked on the GNN.
CNN_ROWS = {"resnet34": "ResNet(3D)", "densenet121": "DenseNet(3D)"}
RADIOMICS_ROWS = {"radiomics_lr": "Radiomics + LR", "radiomics_svm": "Radiomics + SVM"}
AGE_ROW, AGE_MODEL_ROW = "age_lr", "age_gnn"
FEATURE_ROWS = {"mlp": "Multi-modal + MLP", "svm": "Multi-modal + SVM", "lr": "Multi-modal + LR"}
GNN_ROW = "gnn"
TABLE3_ROWS = {**CNN_ROWS, **RADIOMICS_ROWS, AGE_ROW: "Age + LR", **FEATURE_ROWS, GNN_ROW: "Multi-modal + GNN",
               AGE_MODEL_ROW: "Age + full model"}


def graph_row(node: str, edge: str) -> str:
    """The key of a Table 2 row (a Table 1 graph): ``node:edge``, e.g. ``uT_uB:uB``."""
    return f"{node}:{edge}"


@dataclass
class Scored:
    """Predictions of one model: training (for the threshold) and test.

    ``name`` is printed (tables, report, predictions); ``key`` selects the row (default: the
    name). ``p_threshold``: out-of-fit predictions of the training patients, NaN where a
    patient was fitted; when given, the threshold is chosen on its finite entries only.
    ``p_test_reference``: the test patients' probabilities from the models that gave
    ``p_threshold``; when given, the threshold is carried over to ``p_test`` by rank
    (:func:`~gliotype.evaluation.metrics.transfer_threshold`), not by value.
    """

    name: str
    p_train: np.ndarray
    p_test: np.ndarray
    artifacts: dict = field(default_factory=dict)  # e.g. the trained GNN and its graph
    p_threshold: np.ndarray | None = None
    key: str = ""
    p_test_reference: np.ndarray | None = None

    def __post_init__(self):
        self.key = self.key or self.name


def decision_threshold(model, y_train: np.ndarray, config: EvaluationConfig) -> float:
    """Youden's J on the model's out-of-fit training predictions if it has them, else on all (or 0.5);
    carried over to the model's test probabilities by rank when it has ``p_test_reference``."""
    if config.threshold != "youden":
        return 0.5
    p = getattr(model, "p_threshold", None)
    p = np.asarray(model.p_train if p is None else p, dtype=float)
    used = np.isfinite(p)
    threshold = youden_threshold(np.asarray(y_train)[used], np.asarray(p)[used])
    reference = getattr(model, "p_test_reference", None)
    if reference is None:
        return threshold
    return transfer_threshold(threshold, reference, model.p_test)


def score(model: Scored, y_train: np.ndarray, y_test: np.ndarray, config: EvaluationConfig, seed: int = 0) -> dict:
    """One table row: the model's name, AUC with its interval, ACC, SEN, SPE, the threshold, the
    Brier score and ECE of its test probabilities, and its conformal sets' coverage, mean size and
    fraction with both classes (:func:`conformal_columns`)."""
    threshold = decision_threshold(model, y_train, config)
    used = np.isfinite(np.asarray(model.p_test, dtype=float))  # NaN: a patient left out of this row
    y, p = np.asarray(y_test)[used], np.asarray(model.p_test, dtype=float)[used]
    m = binary_metrics(y, p, threshold)
    low, high = bootstrap_auc_ci(y, p, config.bootstrap, seed)
    return {"model": model.name, "auc": m["auc"], "auc_low": low, "auc_high": high, "acc": m["acc"],
            "sen": m["sen"], "spe": m["spe"], "threshold": threshold, "brier": brier_score(y, p),
            "ece": expected_calibration_error(y, p, config.calibration_bins),
            **conformal_columns(model, y_train, y_test, config)}


def out_of_fit(model) -> np.ndarray | None:
    """The model's out-of-fit training predictions (NaN where fitted), or None when it has none."""
    p = getattr(model, "p_threshold", None)
    if p is None:
        return None
    p = np.asarray(p, dtype=float)
    return p if np.isfinite(p).any() else None


def conformal_columns(model, y_train: np.ndarray, y_test: np.ndarray, config: EvaluationConfig) -> dict:
    """Coverage, mean size and fraction with both classes of the model's split-conformal sets
    (error rate ``config.conformal_alpha``) on the test patients. Calibrated on the finite
    entries of its out-of-fit training predictions (:func:`out_of_fit`) with their labels; the
    test probabilities put in the sets are ``p_test_reference`` when given (the same out-of-fit
    models, so the same scale as the calibration scores), else ``p_test``. NaN without
    out-of-fit predictions: fitted predictions are overconfident and would void the guarantee."""
    p_cal = out_of_fit(model)
    if p_cal is None:
        return dict.fromkeys(CONFORMAL_COLUMNS, float("nan"))
    used = np.isfinite(p_cal)
    predictor = fit_conformal(np.asarray(y_train, dtype=float)[used], p_cal[used], config.conformal_alpha,
                              config.conformal_class_conditional)
    reference = getattr(model, "p_test_reference", None)
    p = np.asarray(model.p_test if reference is None else reference, dtype=float)
    tested = np.isfinite(p)
    summary = set_summary(predictor.sets(p[tested]), np.asarray(y_test)[tested])
    return {key: summary[key] for key in CONFORMAL_COLUMNS}


def table(models: list[Scored], y_train, y_test, config: EvaluationConfig, reference: str | None = None, seed=0):
    """Rows for ``models``; with ``reference`` (a row's key), DeLong's p-value of each model against it."""
    rows = [score(m, y_train, y_test, config, seed) for m in models]
    df = pd.DataFrame(rows)
    if reference is not None:
        ref = by_key(models, reference)
        df["delong_p"] = [np.nan if m.key == reference else _paired_delong(y_test, ref.p_test, m.p_test)
                          for m in models]
    return df


def with_empty_rows(df: pd.DataFrame, empty: Mapping[str, str], order: Sequence[str]) -> pd.DataFrame:
    """``df`` (rows of :func:`table`) with a row of NaN metrics for each model of ``empty`` (name ->
    why it has no predictions, e.g. a Table 4 ablation whose training diverged), rows in the order of
    the model names ``order``. A mean over repeated splits then counts the splits the model has."""
    if not empty:
        return df
    blank = pd.DataFrame([{"model": name} for name in empty], columns=df.columns)
    out = pd.concat([df, blank], ignore_index=True)
    position = out["model"].map({name: i for i, name in enumerate(order)}).fillna(len(order))
    return out.iloc[position.argsort(kind="stable")].reset_index(drop=True)


def _paired_delong(y, p1, p2) -> float:
    """DeLong's p-value on the patients both models scored."""
    p1, p2 = np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)
    both = np.isfinite(p1) & np.isfinite(p2)
    return delong_test(np.asarray(y)[both], p1[both], p2[both])["p_value"]


def by_key(models: list[Scored], key: str) -> Scored:
    """The model whose row is ``key``."""
    return next(m for m in models if m.key == key)


def population_graph_models(
    u_t: np.ndarray, u_b: np.ndarray, y: np.ndarray, train: np.ndarray, ids: list[str],
    config: PopulationGraphConfig, seed: int = 0, rows=TABLE1, workers: int = 1, store=None,
    phenotypes: dict[str, np.ndarray] | None = None,
) -> list[Scored]:
    """Table 2: one GNN per row of Table 1 on the graph of B (labelled) + test (unlabelled) patients.

    With ``config.val_fraction`` the validation nodes (the same patients for every row)
    are left out of the fit and the threshold is chosen on their predictions; with
    ``config.threshold_folds`` on out-of-fold predictions of every labelled patient.
    With ``workers`` > 1 the rows train in that many processes (one torch thread each);
    every row is seeded on its own, so the result does not depend on ``workers``.
    ``store(node, edge)`` (e.g. ``RunDir.graph_row`` of a fold) gives each row's folder: a
    row whose key is stored there is read back, not trained (:mod:`gliotype.population_graph.store`).
    ``phenotypes`` (``age``, ``sex`` per node) weight the edges with ``config.phenotype: age_sex``.
    """
    return train_table2(table2_tasks(u_t, u_b, y, train, ids, config, seed, rows, store, phenotypes), workers)


def table2_tasks(u_t: np.ndarray, u_b: np.ndarray, y: np.ndarray, train: np.ndarray, ids: list[str],
                 config: PopulationGraphConfig, seed: int = 0, rows=TABLE1, store=None,
                 phenotypes: dict[str, np.ndarray] | None = None) -> list[tuple]:
    """The rows of :func:`population_graph_models` as tasks of :func:`train_table2`, so the rows of
    several folds can share one pool."""
    known = [np.isfinite(v).any() for v in (phenotypes or {}).values()]
    if config.phenotype != "none" and not any(known):
        log.info("population_graph.phenotype %s: no patient of the graph has an age or a sex; the eq. 8 weights "
                 "are used unchanged", config.phenotype)
    return [(u_t, u_b, y, train, ids, config, seed, node, edge, None if store is None else store(node, edge),
             phenotypes) for node, edge in rows]


def train_table2(tasks: list[tuple], workers: int = 1) -> list[Scored]:
    """One ``Scored`` per task of :func:`table2_tasks`, in order, ``workers`` rows at a time (in this
    process when every row is stored under its key: reading them back needs no pool)."""
    if all(_stored(task) for task in tasks):
        workers = 1
    # spawn: the parent has run OpenMP (the encoders); a forked child could hang in it
    return parallel_map(_table2_row, tasks, workers, desc="population graphs", unit="graph", start="spawn")


def _stored(task: tuple) -> bool:
    """Whether the task's folder holds a row under the task's key (its files are checked when it is read)."""
    from gliotype.population_graph.store import row_key
    from gliotype.utils.records import holds_key

    u_t, u_b, y, train, ids, config, seed, node, edge, folder, phenotypes = task
    return folder is not None and holds_key(folder.meta, row_key(u_t, u_b, y, train, ids, config, seed, node, edge,
                                                                 phenotypes))


def _table2_row(task: tuple) -> Scored:
    """One row of Table 2: the population graph of (node, edge), its GNN and its threshold predictions
    (read back from ``folder`` when stored there with this row's key)."""
    from gliotype.population_graph.store import load_row, row_key, save_row

    u_t, u_b, y, train, ids, config, seed, node, edge, folder, phenotypes = task
    labels = np.where(train, y, -1.0)
    graph = table1_graph(u_t, u_b, labels, ids, node, edge, config, reference=np.flatnonzero(train),
                         phenotypes=phenotypes)
    key = row_key(u_t, u_b, y, train, ids, config, seed, node, edge, phenotypes)
    row = None if folder is None else load_row(folder, key)
    if row is None:
        row = _train_row(graph, train, config, seed)
        if folder is not None:
            save_row(folder, key, row)
    p = row.probability
    return Scored(TABLE1_NAMES[(node, edge)], p[train], p[~train],
                  {"model": row.model, "graph": graph, "node": node, "edge": edge, "history": row.history,
                   "validation_nodes": row.validation_nodes}, row.p_threshold, graph_row(node, edge), row.p_reference)


def _train_row(graph, train: np.ndarray, config: PopulationGraphConfig, seed: int):
    """Fit the row's GNN; its predictions of every node and of the threshold patients."""
    from gliotype.population_graph.store import TrainedRow
    from gliotype.utils.training import torch_threads

    val = validation_nodes(graph, config.val_fraction, seed)
    with torch_threads(1):  # ~100-node graphs: the thread hand-over costs more than it saves
        model, history = train_population_gnn(graph, config, seed, val_nodes=val)
        p = predict_proba(model, graph)
        p_threshold = p_reference = None
        if len(val):
            p_threshold = np.full(graph.num_nodes, np.nan)
            p_threshold[val] = p[val]
            p_threshold = p_threshold[train]
        elif config.threshold_folds:
            rank = config.threshold_transfer == "rank"
            oof = out_of_fold_predictions(graph, config, config.threshold_folds, seed, unlabelled=rank)
            p_threshold = oof[train]
            p_reference = oof[~train] if rank else None
    return TrainedRow(model, p, p_threshold, np.asarray(val, dtype=np.int64), history, p_reference)


def chosen_population_graph(models: list[Scored], y_train: np.ndarray, config: PopulationGraphConfig) -> Scored:
    """The Table 2 model that is "Multi-modal + GNN": the paper's fixed row, or (``choose:
    out_of_fold``) the row whose out-of-fold predictions of the labelled patients have the
    best AUC (ties: the first in Table 1 order). Only training patients decide."""
    if config.choose == "fixed":
        return by_key(models, graph_row(config.node_weight, config.edge_weight))
    from sklearn.metrics import roc_auc_score

    def oof_auc(m: Scored) -> float:
        used = np.isfinite(m.p_threshold)
        return float(roc_auc_score(np.asarray(y_train)[used], m.p_threshold[used]))

    aucs = [oof_auc(m) for m in models]
    best = models[int(np.argmax(aucs))]
    best.artifacts["out_of_fold_auc"] = dict(zip([m.name for m in models], aucs))
    return best


def feature_models(x_train, y_train, x_test, seed: int = 0, config: FeatureClassifiersConfig | None = None,
                   rows=None) -> list[Scored]:
    """Table 3's "Multi-modal + MLP", "+ SVM" (and "+ LR") on the same features.

    ``rows`` (default ``config.rows``) picks the classifiers, in that order. With
    ``config.threshold: out_of_fold`` each model also carries out-of-fold predictions of
    the training patients (its chosen regularisation refitted on each fold) for the
    threshold.
    """
    config = config or FeatureClassifiersConfig()
    out = []
    for kind in rows or config.rows:
        oof = config.threshold == "out_of_fold"
        with warnings.catch_warnings():  # the MLP may stop at max_iter on tiny sets; its result still counts
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = feature_classifier(kind, y_train, config, seed, out_of_fold=oof).fit(x_train, y_train)
            p_oof = (out_of_fold_proba(selected(model), x_train, y_train, outer_folds(kind, y_train, config), seed)
                     if oof else None)
        artifacts = {"model": model}
        if hasattr(model, "best_params_"):
            artifacts["chosen"] = model.best_params_
        out.append(Scored(FEATURE_ROWS[kind], model.predict_proba(x_train)[:, 1], model.predict_proba(x_test)[:, 1],
                          artifacts, p_oof, kind))
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A table as Markdown with three decimals (AUC with its 95% interval; Brier and ECE when scored)."""
    calibrated = all(c in df for c in CALIBRATION_COLUMNS)
    lines = ["| model | AUC (95% CI) | ACC | SEN | SPE |" + (" DeLong p |" if "delong_p" in df else "")
             + (" Brier | ECE |" if calibrated else ""),
             "|---|---|---|---|---|" + ("---|" if "delong_p" in df else "") + ("---|---|" if calibrated else "")]
    for r in df.itertuples():
        empty = np.isnan(r.auc) and np.isnan(r.acc)  # a row of with_empty_rows: no predictions
        cells = [r.model, "not trained", "-", "-", "-"] if empty else [
            r.model, f"{r.auc:.3f} ({r.auc_low:.3f}-{r.auc_high:.3f})", f"{r.acc:.3f}", f"{r.sen:.3f}", f"{r.spe:.3f}"]
        if "delong_p" in df:
            cells.append("" if np.isnan(r.delong_p) else f"{r.delong_p:.3g}")
        if calibrated:
            cells += ["-", "-"] if empty else [f"{r.brier:.3f}", f"{r.ece:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
