"""Results of a run: the tables (CSV and Markdown), predictions, ROC curves (Fig. 6) and
an HTML report. Only patient IDs leave the run: no file paths, no image headers."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_curve

from gliotype.config import GliotypeConfig
from gliotype.experiment.ablations import FULL_MODEL
from gliotype.experiment.tables import GNN_ROW, TABLE_COLUMNS, to_markdown
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
    show = df[[c for c in [*TABLE_COLUMNS, "delong_p"] if c in df]].copy()
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
    """Write ``table{2,3,4}.csv/.md``, ``predictions.csv``, ``roc.png`` and ``report.html`` into
    the results folder ``results`` (:class:`~gliotype.layout.ResultsDir`; ``models``: every
    scored model by key, for Fig. 6); returns the report's path."""
    results = ResultsDir.of(results)
    results.root.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        write_csv_atomic(df[[c for c in [*TABLE_COLUMNS, "delong_p", "threshold"] if c in df]], results.table(name))
        atomic_write(results.table(name, "md"), to_markdown(df) + "\n")
    write_csv_atomic(predictions, results.predictions)
    roc = plot_roc(models, y_test, results.roc)
    png = base64.b64encode(roc.read_bytes()).decode()
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
              f"<figure><img alt='Fig. 6: ROC curves' src='data:image/png;base64,{png}'>"
              "<figcaption>Fig. 6. ROC curves of the test patients (sensitivity against 1 - specificity), each "
              "model's test AUC in its legend; the dotted diagonal is chance. A: hierarchical attention; B: the "
              "bi-level contrastive loss (Table 4 rows, when the run trained them); C: the population graph against "
              "the MLP and SVM on the same features; D: the full framework against the 3D CNNs.</figcaption>"
              "</figure>",
              "<h2>Timing (seconds)</h2><pre>" + html.escape(yaml.safe_dump(_rounded(summary.get("seconds", {}))))
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
    if lines:
        parts.append("<p>" + " ".join(lines) + "</p>")
    parts += ["</div>", AUDIT_END]
    text = Path(report).read_text()
    if AUDIT_BEGIN in text and AUDIT_END in text:
        head, rest = text.split(AUDIT_BEGIN, 1)
        text = head + rest.split(AUDIT_END, 1)[1].lstrip("\n")
    atomic_write(report, text.replace("</body></html>", "\n".join(parts) + "\n</body></html>"))
    return Path(report)
