"""The paper's result tables from features and predictions (section 5, Tables 2-4).

Every model is scored the same way: a threshold chosen on its training predictions
(Youden's J, or 0.5), then AUC with a 95% bootstrap interval, ACC, SEN and SPE on the
test patients; the full model is compared with each other model by DeLong's test.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from gliotype.config.schema import EvaluationConfig, PopulationGraphConfig
from gliotype.evaluation import binary_metrics, bootstrap_auc_ci, delong_test, youden_threshold
from gliotype.evaluation.baselines import calibration_folds, mlp_classifier, svm_classifier
from gliotype.population_graph import (
    TABLE1,
    TABLE1_NAMES,
    build_population_graph,
    predict_proba,
    train_population_gnn,
)

TABLE_COLUMNS = ["model", "auc", "auc_low", "auc_high", "acc", "sen", "spe"]


@dataclass
class Scored:
    """Predictions of one model: training (for the threshold) and test."""

    name: str
    p_train: np.ndarray
    p_test: np.ndarray
    artifacts: dict = field(default_factory=dict)  # e.g. the trained GNN and its graph


def score(model: Scored, y_train: np.ndarray, y_test: np.ndarray, config: EvaluationConfig, seed: int = 0) -> dict:
    """One table row: the model's name, AUC with its interval, ACC, SEN, SPE, the threshold."""
    threshold = youden_threshold(y_train, model.p_train) if config.threshold == "youden" else 0.5
    m = binary_metrics(y_test, model.p_test, threshold)
    low, high = bootstrap_auc_ci(y_test, model.p_test, config.bootstrap, seed)
    return {"model": model.name, "auc": m["auc"], "auc_low": low, "auc_high": high, "acc": m["acc"],
            "sen": m["sen"], "spe": m["spe"], "threshold": threshold}


def table(models: list[Scored], y_train, y_test, config: EvaluationConfig, reference: str | None = None, seed=0):
    """Rows for ``models``; with ``reference``, DeLong's p-value of each model against it."""
    rows = [score(m, y_train, y_test, config, seed) for m in models]
    df = pd.DataFrame(rows)
    if reference is not None:
        ref = next(m for m in models if m.name == reference)
        df["delong_p"] = [np.nan if m.name == reference else delong_test(y_test, ref.p_test, m.p_test)["p_value"]
                          for m in models]
    return df


def population_graph_models(
    u_t: np.ndarray, u_b: np.ndarray, y: np.ndarray, train: np.ndarray, ids: list[str],
    config: PopulationGraphConfig, seed: int = 0, rows=TABLE1,
) -> list[Scored]:
    """Table 2: one GNN per row of Table 1 on the graph of B (labelled) + test (unlabelled) patients."""
    out = []
    labels = np.where(train, y, -1.0)
    for node, edge in rows:
        graph = build_population_graph(u_t, u_b, labels, ids, node, edge, config.theta, config.standardise,
                                       reference=np.flatnonzero(train))
        model, _ = train_population_gnn(graph, config, seed)
        p = predict_proba(model, graph)
        out.append(Scored(TABLE1_NAMES[(node, edge)], p[train], p[~train], {"model": model, "graph": graph,
                                                                             "node": node, "edge": edge}))
    return out


def feature_models(x_train, y_train, x_test, seed: int = 0) -> list[Scored]:
    """Table 3's "Multi-modal + MLP" and "+ SVM" on the same features."""
    out = []
    svm = partial(svm_classifier, folds=calibration_folds(y_train))
    for name, make in (("Multi-modal + MLP", mlp_classifier), ("Multi-modal + SVM", svm)):
        with warnings.catch_warnings():  # the MLP may stop at max_iter on tiny sets; its result still counts
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = make(seed=seed).fit(x_train, y_train)
        out.append(Scored(name, model.predict_proba(x_train)[:, 1], model.predict_proba(x_test)[:, 1]))
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A table as Markdown with three decimals (AUC with its 95% interval)."""
    lines = ["| model | AUC (95% CI) | ACC | SEN | SPE |" + (" DeLong p |" if "delong_p" in df else ""),
             "|---|---|---|---|---|" + ("---|" if "delong_p" in df else "")]
    for r in df.itertuples():
        cells = [r.model, f"{r.auc:.3f} ({r.auc_low:.3f}-{r.auc_high:.3f})", f"{r.acc:.3f}", f"{r.sen:.3f}",
                 f"{r.spe:.3f}"]
        if "delong_p" in df:
            cells.append("" if np.isnan(r.delong_p) else f"{r.delong_p:.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
