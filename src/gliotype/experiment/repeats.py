"""Repeated draws of the split protocol (``gliotype run --repeats K``, ``split.repeats``):
each model's mean and standard deviation over the draws, as tables, Markdown and a report
section, and the ceilings of every draw in the summary."""

from __future__ import annotations

import pandas as pd

from gliotype.layout import RunDir
from gliotype.utils.io import atomic_write, write_csv_atomic

METRICS = ["auc", "acc", "sen", "spe"]


def summarise_repeats(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Mean and standard deviation of every metric of each model over repeated splits."""
    both = pd.concat(tables, keys=range(len(tables)), names=["repeat"]).reset_index(level=0)
    grouped = both.groupby("model", sort=False)[METRICS]
    df = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_sd")).reset_index()
    df["repeats"] = len(tables)
    return df[["model", *[f"{m}_{s}" for m in METRICS for s in ("mean", "sd")], "repeats"]]


def repeats_markdown(df: pd.DataFrame) -> str:
    """Mean +- SD over the repeats as Markdown."""
    lines = [f"| model | AUC | ACC | SEN | SPE |  (mean +- SD over {int(df['repeats'].iloc[0])} splits)",
             "|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        cells = [f"{r[m + '_mean']:.3f} +- {r[m + '_sd']:.3f}" for m in METRICS]
        lines.append("| " + " | ".join([r["model"], *cells]) + " |")
    return "\n".join(lines)


def write_repeats(run: RunDir, runs: list[dict], split_seeds: list[int]) -> tuple[dict[str, pd.DataFrame], dict]:
    """Summarise the draws ``runs`` (each ``{"tables", "summary"}`` of one split, seeds
    ``split_seeds``) into ``results/repeats_table{2,3,4}.csv/.md`` and the report of ``run``;
    returns the tables and the summary's ``repeats`` entry."""
    from gliotype.experiment.report import add_repeats_section

    tables = {name: summarise_repeats([r["tables"][name] for r in runs]) for name in runs[0]["tables"]}
    for name, df in tables.items():
        write_csv_atomic(df, run.results.repeats_table(name))
        atomic_write(run.results.repeats_table(name, "md"), repeats_markdown(df) + "\n")
    add_repeats_section(run.results.report, tables)
    summary = {"split_seeds": split_seeds,
               **{key: [r["summary"][key] for r in runs] for key in ("bayes_auc_test", "observable_auc_test",
                                                                      "ceiling_ratio")}}
    return tables, summary


__all__ = ["repeats_markdown", "summarise_repeats", "write_repeats"]
