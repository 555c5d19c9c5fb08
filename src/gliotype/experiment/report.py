"""Results of a run: the tables (CSV and Markdown), predictions, ROC curves (Fig. 6), the
reliability diagrams and conformal prediction sets of Table 3 (issue 16) and an HTML report.
Only patient IDs leave the run: no file paths, no image headers."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_curve

from gliotype.config import GliotypeConfig
from gliotype.experiment.ablations import FULL_MODEL
from gliotype.evaluation.calibration import brier_score, expected_calibration_error, reliability_curve
from gliotype.experiment.tables import (
    CALIBRATION_COLUMNS,
    CONFORMAL_COLUMNS,
    GNN_ROW,
    TABLE3_ROWS,
    TABLE_COLUMNS,
    to_markdown,
)
from gliotype.layout import ResultsDir
from gliotype.utils.io import atomic_path, atomic_write, write_csv_atomic
from gliotype.utils.plotting import pyplot

# Fig. 6 panels: title -> the keys of the models drawn (Table 4 rows, Table 3 rows)
FIG6 = {
    "A. hierarchical attention": [FULL_MODEL, "Multi-modal (no attention) + MLP"],
    "B. bi-level contrastive loss": [FULL_MODEL, "Multi-modal (no Lmulti) + MLP"],
    "C. population graph vs MLP / SVM": [GNN_ROW, "mlp", "svm"],
    "D. full framework vs 3D CNNs": [GNN_ROW, "densenet121", "resnet34"],
}


def plot_roc(models: dict, y_test: np.ndarray, path: Path) -> Path:
    """The four ROC panels of Fig. 6 (``models``: key -> ``Scored``; those missing from the run are left out)."""
    from sklearn.metrics import auc

    plt = pyplot()
    # 2 x 2 panels at about the width a report shows them (1100 px at 110 dpi): the legends stay readable
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.4))
    for ax, (title, keys) in zip(axes.ravel(), FIG6.items()):
        for key in keys:
            if key in models:
                fpr, tpr, _ = roc_curve(y_test, models[key].p_test)
                ax.plot(fpr, tpr, label=f"{models[key].name} ({auc(fpr, tpr):.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(title=title, xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def table3_models(tables: dict[str, pd.DataFrame], models: dict) -> list:
    """The scored models of Table 3's rows (``models``: key -> ``Scored``), in the table's order."""
    if "table3" not in tables:
        return []
    names = list(tables["table3"]["model"])
    found = [models[k] for k in TABLE3_ROWS if k in models and models[k].name in names]
    return sorted(found, key=lambda m: names.index(m.name))


def plot_reliability(models: list, y_test: np.ndarray, bins: int, path: Path) -> Path:
    """One reliability diagram per model (its test probabilities in ``bins`` equal-width bins):
    mean predicted probability against the observed fraction of mutants, the number of patients
    written beside each bin's point, the diagonal of perfect calibration dotted."""
    plt = pyplot()
    cols = max(1, min(len(models), 4))
    rows = max(1, math.ceil(len(models) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 4.3 * rows), squeeze=False)
    y_test = np.asarray(y_test, dtype=float)
    for ax, model in zip(axes.flat, models):
        p = np.asarray(model.p_test, dtype=float)
        used = np.isfinite(p)
        curve = reliability_curve(y_test[used], p[used], bins)
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.plot(curve.predicted, curve.observed, "-o", color="tab:blue", markersize=4)
        for x, o, n in zip(curve.predicted, curve.observed, curve.count):
            ax.annotate(f"n={n}", (x, o), textcoords="offset points", xytext=(4, -10), fontsize=7, color="tab:blue")
        ece = expected_calibration_error(y_test[used], p[used], bins)
        ax.set(title=f"{model.name}\nECE {ece:.3f}, Brier {brier_score(y_test[used], p[used]):.3f}",
               xlabel="mean predicted probability of mutant", ylabel="observed fraction mutant",
               xlim=(-0.02, 1.02), ylim=(-0.05, 1.05))
        ax.title.set_fontsize(9)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _figure(path: Path, alt: str, caption: str) -> str:
    """A PNG inlined (no file beside the report) with its caption."""
    return (f"<figure><img alt='{html.escape(alt)}' "
            f"src='data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}'>"
            f"<figcaption>{caption}</figcaption></figure>")


RELIABILITY_CAPTION = (
    "How to read it: each point is one bin of test patients grouped by the model's probability of IDH "
    "mutant ({bins} equal-width bins on [0, 1]; n = the number of patients in the bin). Across: the mean "
    "probability the model gave them; up: the fraction of them who are mutant. On the dotted diagonal the "
    "model is calibrated: of the patients it calls 70 % mutant, 70 % are. A point <b>below</b> the diagonal: "
    "the model says more mutant than the patients are (overestimates the mutant probability); <b>above</b>: "
    "it says less (underestimates). Points far from 0.5 on both sides of the diagonal mean overconfidence. "
    "A bin of a few patients is noise: judge the points with large n. ECE: the distance of the points from "
    "the diagonal, averaged over patients; even a perfectly calibrated model has an ECE far from 0 on few "
    "patients (about 0.18 on 30 test patients, 0.13 on 60, 0.07 on 200 with 10 bins), so compare the models "
    "with each other, not with 0. Brier: the mean squared difference between probability and label "
    "(0 perfect, 0.25 for always saying 50 %).")

CONFORMAL_CAPTION = (
    "A prediction set is the list of IDH classes the model cannot rule out at error rate alpha = {alpha:g}: "
    "{{mutant}}, {{wild-type}}, or both (the model cannot tell for this patient; rarely none, when neither class "
    "is plausible enough). Split-conformal sets are calibrated on the model's out-of-fit predictions of the "
    "training patients (patients it did not fit), so that over patients like them a set holds the true class "
    "at least {nominal:.0%} of the time whatever the model: a weaker model gives more sets with both classes, "
    "not a lower coverage. <i>coverage</i>: the fraction of test patients whose set holds their true class "
    "(near the nominal {nominal:.0%}; on a few dozen test patients it varies by several points); "
    "<i>set_size</i>: the mean number of classes in a set; <i>both</i>: the fraction of test patients left "
    "undecided.{mondrian} Rows without out-of-fit training predictions have no sets: calibrating on fitted "
    "predictions would void the guarantee.")

NO_CONFORMAL = ("No Table 3 model of this run has out-of-fit training predictions (they come with "
                "population_graph.threshold_folds or val_fraction, feature_classifiers.threshold: out_of_fold), "
                "so no prediction sets were made and no coverage is reported.")


def conformal_html(df: pd.DataFrame, config: GliotypeConfig) -> str:
    """Table 3's conformal columns (rows with prediction sets) beside the nominal coverage, with the caption."""
    ev = config.evaluation
    nominal = 1 - ev.conformal_alpha
    mondrian = (" Sets use one threshold per class (class-conditional), so the coverage holds among mutants "
                "and among wild-types alone." if ev.conformal_class_conditional else "")
    parts = [f"<h2>Conformal prediction sets of the Table 3 models (nominal coverage {nominal:.0%})</h2>"]
    rows = df[df["coverage"].notna()] if "coverage" in df else df.iloc[:0]
    if len(rows):
        show = rows[["model", *CONFORMAL_COLUMNS]].copy()
        show.insert(1, "nominal", nominal)
        parts.append(html_table(show, HEADERS))
    else:
        parts.append(f"<p>{NO_CONFORMAL}</p>")
    parts.append("<p>" + CONFORMAL_CAPTION.format(alpha=ev.conformal_alpha, nominal=nominal, mondrian=mondrian)
                 + "</p>")
    return "\n".join(parts)


#: column headers of the report's tables (the CSV files keep the column names)
HEADERS = {"model": "model", "auc": "AUC", "auc_low": "AUC 95% CI low", "auc_high": "AUC 95% CI high", "acc": "ACC",
           "sen": "SEN", "spe": "SPE", "delong_p": "DeLong p", "brier": "Brier", "ece": "ECE"}

CSS = ("body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1200px;margin:2em auto;"
       "padding:0 1em;color:#222;line-height:1.4}"
       "table{border-collapse:collapse;margin:.6em 0;font-size:.92em}"
       "td,th{padding:3px 9px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
       "th{background:#f3f3f3} .scroll{max-width:100%;overflow-x:auto} .audit table{font-size:.85em}"
       "figure{margin:1em 0} figure img{max-width:100%;height:auto;display:block}"
       "figcaption{color:#555;font-size:.92em;margin-top:.4em}"
       "details{margin:1em 0} summary{cursor:pointer;font-weight:600;font-size:1.15em}"
       "pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}")


def html_table(df: pd.DataFrame, headers: dict | None = None) -> str:
    """A table of the report: three decimals, wide columns wrapped in a horizontal scroller (never the page)."""
    show = df.rename(columns=headers or {})
    return ("<div class='scroll'>" + show.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0,
                                                  classes="table") + "</div>")


def _table_html(df: pd.DataFrame) -> str:
    show = df[[c for c in [*TABLE_COLUMNS, "delong_p", *CALIBRATION_COLUMNS] if c in df]].copy()
    return html_table(show, HEADERS)


def _rounded(values: dict) -> dict:
    """Floats to 4 significant digits, for a person to read."""
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in values.items()}


ABLATIONS_SKIPPED = ("Only the full model was trained: this run skipped the ablations (--no-ablations, as "
                     "make demo does). The same command without it, or make ablations, trains the other rows "
                     "and reuses every other stage.")


def write_report(
    results: str | Path | ResultsDir,
    tables: dict[str, pd.DataFrame],
    predictions: pd.DataFrame,
    summary: dict,
    config: GliotypeConfig,
    models: dict,
    y_test: np.ndarray,
) -> Path:
    """Write ``table{2,3,4}.csv/.md``, ``predictions.csv``, ``roc.png``, ``reliability.png`` (with a
    Table 3) and ``report.html`` into the results folder ``results``
    (:class:`~gliotype.layout.ResultsDir`; ``models``: every scored model by key, for Fig. 6 and
    the reliability diagrams); returns the report's path."""
    results = ResultsDir.of(results)
    results.root.mkdir(parents=True, exist_ok=True)
    columns = [*TABLE_COLUMNS, "delong_p", "threshold", *CALIBRATION_COLUMNS, *CONFORMAL_COLUMNS]
    for name, df in tables.items():
        write_csv_atomic(df[[c for c in columns if c in df]], results.table(name))
        atomic_write(results.table(name, "md"), to_markdown(df) + "\n")
    write_csv_atomic(predictions, results.predictions)
    roc = plot_roc(models, y_test, results.roc)
    calibrated = table3_models(tables, models)
    bins = config.evaluation.calibration_bins
    titles = {"table2": "Table 2. Population graphs (node weights, edge weights)",
              "table3": "Table 3. Comparison with baselines", "table4": "Table 4. Ablation experiments"}
    bayes = summary.get("bayes_auc_test")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>gliotype report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>gliotype: IDH genotype prediction</h1>",
        f"<p>gliotype {html.escape(str(summary.get('gliotype_version')))}, preset "
        f"<b>{html.escape(config.preset)}</b>. Patients per split: "
        + ", ".join(f"{html.escape(k)} {v}" for k, v in summary.get("patients", {}).items()) + ".</p>",
    ]
    if bayes is not None:
        parts.append(f"<p>Synthetic cohort: the Bayes-optimal AUC on the test patients is <b>{bayes:.3f}</b> "
                     "(the ceiling any model can reach).</p>")
    parts.append(f"<p>Population graph used for prediction: {html.escape(summary.get('chosen_population_graph', ''))}."
                 " Thresholds are chosen on training predictions (Youden's J); AUC intervals are 95% bootstrap;"
                 " DeLong p-values compare each model with the reference row.</p>")
    for name, df in tables.items():
        parts += [f"<h2>{titles[name]}</h2>", _table_html(df)]
        if name == "table4" and len(df) <= 1:
            parts.append(f"<p>{ABLATIONS_SKIPPED}</p>")
    parts += ["<h2>Fig. 6. ROC curves on the test patients</h2>",
              _figure(roc, "Fig. 6: ROC curves",
                      "Fig. 6. ROC curves of the test patients (sensitivity against 1 - specificity), each "
                      "model's test AUC in its legend; the dotted diagonal is chance. A: hierarchical attention; B: "
                      "the bi-level contrastive loss (Table 4 rows, when the run trained them); C: the population "
                      "graph against the MLP and SVM on the same features; D: the full framework against the 3D "
                      "CNNs.")]
    if calibrated:
        reliability = plot_reliability(calibrated, y_test, bins, results.reliability)
        parts += ["<h2>Reliability diagrams of the Table 3 models (test patients)</h2>",
                  _figure(reliability, "reliability diagrams", RELIABILITY_CAPTION.format(bins=bins)),
                  conformal_html(tables["table3"], config)]
    parts += ["<h2>Timing (seconds)</h2><pre>" + html.escape(yaml.safe_dump(_rounded(summary.get("seconds", {}))))
              + "</pre>",
              "<h2>Self-supervised brain network</h2><pre>"
              + html.escape(yaml.safe_dump(_rounded({k: v for k, v in summary.get("ssl", {}).items()
                                                     if not k.endswith("patients")}))) + "</pre>",
              "<details><summary>Configuration (the run's config.yaml)</summary><pre>"
              + html.escape(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)) + "</pre></details>",
              "</body></html>"]
    path = results.report
    atomic_write(path, "\n".join(parts))
    return path


def add_repeats_section(report: Path, repeats: dict[str, pd.DataFrame]) -> Path:
    """Insert the mean +- SD tables over repeated splits into an existing ``report.html``."""
    titles = {"table2": "Table 2", "table3": "Table 3", "table4": "Table 4"}
    n = int(next(iter(repeats.values()))["repeats"].iloc[0])
    parts = [f"<h2>Repeated splits: mean and SD over {n} draws of the split protocol</h2>"]
    for name, df in repeats.items():
        show = df.drop(columns="repeats")
        parts += [f"<h3>{titles.get(name, name)}</h3>",
                  html_table(show, {c: c.replace("_", " ") for c in show.columns})]
    text = Path(report).read_text()
    atomic_write(report, text.replace("</body></html>", "\n".join(parts) + "\n</body></html>"))
    return Path(report)


AUDIT_BEGIN, AUDIT_END = "<!-- information audit -->", "<!-- /information audit -->"


def add_audit_section(report: Path, audit) -> Path:
    """Insert the information audit (:class:`gliotype.audit.InformationAudit`) into an existing
    ``report.html``; an audit section already there is replaced, so reruns do not stack."""
    p = audit.patients
    spaced = lambda df: {c: c.replace("_", " ") for c in df.columns}  # noqa: E731 (headers may wrap)
    parts = [AUDIT_BEGIN, "<div class='audit'>", "<h2>Information audit: where the IDH signal is</h2>",
             f"<p>Linear-probe AUC for IDH of every feature group, cross-validated on the training patients only "
             f"(ssl {p.get('ssl', 0)}, A {p.get('A', 0)}, B {p.get('B', 0)}; <i>probe auc b</i>: half B alone, "
             "the patients every group has). Latent columns (synthetic cohorts): Spearman rho of the latent with "
             "its cross-validated prediction; <i>location</i> is an AUC, <i>site</i> a balanced accuracy "
             "(docs/audit.md).</p>",
             html_table(audit.groups, spaced(audit.groups))]
    if len(audit.homophily):
        cols = ["graph", "edges", "mean_degree", "labelled_edges", "homophily", "random_pairs", "node_probe_auc_b",
                "edge_probe_auc_b"]
        parts += ["<h3>Edge homophily of the Table 1 graphs (edges between half-B patients)</h3>",
                  html_table(audit.homophily[cols], spaced(audit.homophily[cols]))]
    lines = []
    if audit.observable_ceiling is not None:
        lines.append(f"Observable ceiling (the probe on hand-made descriptors, training to test patients): "
                     f"<b>{audit.observable_ceiling:.3f}</b>.")
    if audit.bayes_auc is not None:
        lines.append(f"Bayes-optimal AUC on the same test patients: <b>{audit.bayes_auc:.3f}</b>.")
    if audit.stability is not None:  # a cross-fitted run
        from gliotype.audit.stability import stability_sentence

        lines.append(html.escape(stability_sentence(audit.stability), quote=False) + ".")
    if lines:
        parts.append("<p>" + " ".join(lines) + "</p>")
    parts += ["</div>", AUDIT_END]
    text = Path(report).read_text()
    if AUDIT_BEGIN in text and AUDIT_END in text:
        head, rest = text.split(AUDIT_BEGIN, 1)
        text = head + rest.split(AUDIT_END, 1)[1].lstrip("\n")
    atomic_write(report, text.replace("</body></html>", "\n".join(parts) + "\n</body></html>"))
    return Path(report)
