"""Test AUC of a finished run's exported model with each sequence dropped at test time (issue 15).

    python benchmarks/missing_sequences.py RUNDIR [--out CSV]

For the model ``gliotype run`` exported (``RUNDIR/model``: the encoders of half A and the
population-graph GNN of the first fold), every test patient of ``RUNDIR/splits.csv`` is
inserted alone as a new node into the stored graph without the test nodes (as ``gliotype
predict`` inserts a new patient), once as it is and once per sequence with that sequence
dropped. Dropping happens **after preprocessing**: the preprocessed sequence is taken as zero,
i.e. its x_I channel is zeroed and x_B is encoded with it imputed, exactly what a patient
without that sequence gets after preprocessing (its registration and brain mask, which
preprocessing takes from the reference sequence, are those of the complete case here). Writes
one row per condition (``dropped`` none / t1 / t1c / t2 / flair, ``auc``, ``test_patients``,
``mean_abs_logit_change`` against none) to CSV (default ``RUNDIR/results/missing_sequences.csv``)
and the same table as markdown next to it (``.md``). Not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None):
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from gliotype.input import SEQUENCES
    from gliotype.layout import RunDir
    from gliotype.multimodal.stage import extract_features, features_without
    from gliotype.prediction import load_model
    from gliotype.prediction.missing import insert_each, logit
    from gliotype.utils.io import atomic_write, write_csv_atomic
    from gliotype.utils.training import torch_threads

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rundir", type=Path, help="a finished `gliotype run` folder")
    ap.add_argument("--out", type=Path, default=None, help="CSV to write (default RUNDIR/results/missing_sequences.csv)")
    args = ap.parse_args(argv)
    run = RunDir.of(args.rundir)
    out = args.out or run.results.root / "missing_sequences.csv"

    splits = pd.read_csv(run.splits, dtype={"patient_id": str})
    test = splits[splits["split"] == "test"]
    ids, y = test["patient_id"].tolist(), test["idh"].to_numpy(dtype=float)
    model = load_model(run.model)
    graph = model.without([p for p in ids if p in set(model.patient_ids)])  # test nodes out, each re-inserted
    cfg = model.config.multimodal
    rows, base = [], None
    with torch_threads(1):
        for dropped in ("none", *SEQUENCES):
            feats = (extract_features(run.work, model.multimodal, ids, cfg) if dropped == "none" else
                     features_without(run.work, model.multimodal, model.self_supervised, ids, dropped, cfg))
            p = insert_each(graph, feats, ids)
            z = logit(p)
            base = z if base is None else base
            rows.append({"dropped": dropped, "auc": round(float(roc_auc_score(y, p)), 4), "test_patients": len(ids),
                         "mean_abs_logit_change": round(float(np.mean(np.abs(z - base))), 4)})
            print(f"{dropped:>6}: AUC {rows[-1]['auc']:.3f}, mean |logit change| {rows[-1]['mean_abs_logit_change']:.3f}",
                  flush=True)
    table = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(table, out)
    lines = ["| dropped | test AUC | test patients | mean abs logit change |", "|---|---|---|---|"]
    lines += [f"| {r.dropped} | {r.auc:.3f} | {r.test_patients} | {r.mean_abs_logit_change:.3f} |"
              for r in table.itertuples()]
    atomic_write(out.with_suffix(".md"), "\n".join(lines) + "\n\nDropped after preprocessing: the preprocessed "
                 "sequence is zero (x_I channel zeroed, x_B encoded with it imputed); test patients inserted one at a "
                 "time into the exported model's graph without the test nodes.\n")
    print(f"written to {out} and {out.with_suffix('.md')}")
    return table


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
