"""Multi-modal + GNN of a finished run again, with other population-graph options (design.md point 51).

    python benchmarks/graph_options.py RUNDIR [NAME:KEY=VALUE[;KEY=VALUE]...]... [--out CSV]

Each variant ``NAME:KEY=VALUE;...`` overrides ``population_graph`` options of the run's own
config (``k10:max_neighbours=10``, ``twolayers:gat=[64, 128]``); the variant ``run`` (the
run's options unchanged) always comes first and gives back the run's Table 3 AUC. For every
split of the run (``--repeats``) and every fold it trained (both with cross-fitting), the
population graphs are built from the full model's cached features (``features.csv``, read
under the model's key as the run read them, so no encoder trains) and their GNNs trained with
the same seeds as in ``gliotype run``; nothing is written into the run folder but the CSV (and
the features, were they missing). The folds and the mean of their test probabilities are the
run's own (``folds_of``, ``across_folds``). Writes one row per variant and split (``variant``, ``split_seed``,
``auc``, ``table3_auc``: the run's own) to CSV (default
``RUNDIR/results/graph_options.csv``) and prints each variant's mean. Minutes on the demo
run; not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def variant(text: str) -> tuple[str, list[str]]:
    """``NAME:KEY=VALUE;KEY=VALUE`` -> ``(NAME, ["population_graph.KEY=VALUE", ...])``."""
    name, _, options = text.partition(":")
    overrides = [f"population_graph.{item.strip()}" for item in options.split(";") if item.strip()]
    if not name or not overrides or any("=" not in o for o in overrides):
        raise argparse.ArgumentTypeError(f"{text!r}: a variant is NAME:KEY=VALUE[;KEY=VALUE]")
    return name, overrides


def gnn_auc(run, config) -> float:
    """Test AUC of Table 3's Multi-modal + GNN of the split in ``run`` (a RunDir), retrained with ``config``."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from gliotype import stages
    from gliotype.experiment.ablations import FULL_MODEL
    from gliotype.experiment.split import across_folds, folds_of
    from gliotype.experiment.tables import chosen_population_graph, table2_tasks, train_table2
    from gliotype.multimodal.stage import feature_matrix
    from gliotype.population_graph import TABLE1

    splits = pd.read_csv(run.splits, dtype={"patient_id": str})
    labels = dict(zip(splits["patient_id"], splits["idh"]))
    ids = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("A", "B", "test")}
    pg = config.population_graph
    # only the row Table 3 reports, unless the run chooses it among all of them
    rows = TABLE1 if pg.choose == "out_of_fold" else [(pg.node_weight, pg.edge_weight)]
    chosen = []
    for encoders, classifiers in folds_of(config):
        graph_ids = ids[classifiers] + ids["test"]
        # the run's cached features (its key checked), as the run read them
        feats = stages.features(run.work, run.model_row(FULL_MODEL, encoders), graph_ids, config)
        y = np.array([labels[p] for p in graph_ids], dtype=float)
        in_train = np.arange(len(graph_ids)) < len(ids[classifiers])
        tasks = table2_tasks(feature_matrix(feats, "u_T"), feature_matrix(feats, "u_B"), y, in_train, graph_ids, pg,
                             config.seed, rows=rows)
        chosen.append([chosen_population_graph(train_table2(tasks), y[in_train], pg)])
    (gnn,) = across_folds(chosen)
    return float(roc_auc_score([labels[p] for p in ids["test"]], gnn.p_test))


def main(argv: list[str] | None = None):
    import pandas as pd
    import yaml

    from gliotype.config import load_config
    from gliotype.layout import RunDir
    from gliotype.utils.io import write_csv_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rundir", type=Path, help="a finished `gliotype run` folder")
    ap.add_argument("variants", nargs="*", type=variant, help="NAME:KEY=VALUE[;KEY=VALUE] (population_graph options)")
    ap.add_argument("--out", type=Path, default=None, help="CSV to write (default RUNDIR/results/graph_options.csv)")
    args = ap.parse_args(argv)

    top = RunDir(args.rundir)
    preset = (yaml.safe_load(top.config.read_text()) or {}).get("preset", "cpu")
    saved = load_config(preset, top.config)  # the run's config.yaml holds every option
    rows = []
    for run in [top, *top.repeats()]:
        table3 = pd.read_csv(run.results.table(3)).set_index("model")["auc"]
        seed = int(run.root.name.rsplit("-", 1)[1]) if run.is_repeat else int(saved.split.seed)
        for name, overrides in [("run", []), *args.variants]:
            config = load_config(preset, top.config, overrides)
            auc = gnn_auc(run, config)
            rows.append({"variant": name, "split_seed": seed, "auc": auc,
                         "table3_auc": float(table3["Multi-modal + GNN"])})
            print(f"split seed {seed}: {name} {auc:.3f} (the run's {rows[-1]['table3_auc']:.3f})", flush=True)
    df = pd.DataFrame(rows)
    out = args.out or top.results.root / "graph_options.csv"
    write_csv_atomic(df, out)
    for name, mean in df.groupby("variant", sort=False)["auc"].mean().items():
        print(f"{name}: mean test AUC {mean:.3f} over {int((df['variant'] == name).sum())} split(s)")
    print(f"written: {out}")
    return df


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
