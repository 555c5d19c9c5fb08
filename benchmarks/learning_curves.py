"""Learning curves (issue 12, point 7): the full model and the baselines at growing cohort sizes.

    python benchmarks/learning_curves.py --sizes 200 400 800 --repeats 3 --out lc/ [--seed 11]
        [--ablations] [--set population_graph.residual=true ...]

For every size N a synthetic cohort ``gliotype synth --patients N --seed S`` is generated
(each size its own seed, ``seed + N``, so no cohort is a subset of another) and
``gliotype run --preset cpu --repeats R --no-ablations`` is run on it (``--ablations``
adds Table 4 on the first split); every model's test AUC per split,
the Bayes ceiling and the observable ceiling of each split are appended to
``OUT/learning_curves.csv`` as soon as a size is done, so an interrupted run keeps what it
finished and a rerun resumes (finished sizes are skipped; ``gliotype run`` resumes its own
stages). It takes hours on 2 cores: run it in the background (``nohup ... > lc.log &``).
Not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from gliotype.layout import ResultsDir, RunDir
from gliotype.utils.io import write_csv_atomic


def _gliotype() -> list[str]:
    return [sys.executable, "-m", "gliotype"]


def _split_rows(run: Path | RunDir, size: int, cohort_seed: int) -> list[dict]:
    """One row per (split, model) from a finished run folder."""
    rows = []
    run = RunDir.of(run)
    for folder in [run, *run.repeats()]:
        results = folder.results
        summary = json.loads(results.summary.read_text())
        for name in ResultsDir.TABLES:
            table = pd.read_csv(results.table(name))
            for r in table.to_dict("records"):
                rows.append({"patients": size, "cohort_seed": cohort_seed, "split_seed": summary["split_seed"],
                             "table": name, "model": r["model"], "auc": r["auc"],
                             "bayes_auc": summary.get("bayes_auc_test"),
                             "observable_auc": summary.get("observable_auc_test")})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 400, 800])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=11, help="cohort seed base (the cohort of size N uses seed + N)")
    ap.add_argument("--out", type=Path, default=Path("learning_curves"))
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override, as gliotype run --set")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ablations", action="store_true", help="also the Table 4 ablations (split 0; 11 more encoders)")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    table_path = args.out / "learning_curves.csv"
    done = pd.read_csv(table_path) if table_path.exists() else pd.DataFrame(columns=["patients"])
    for size in args.sizes:
        if size in set(done["patients"]):
            print(f"{size} patients: done before, skipped", flush=True)
            continue
        cohort_seed = args.seed + size
        cohort, run = args.out / f"cohort-{size}", args.out / f"run-{size}"
        t0 = time.perf_counter()
        subprocess.run([*_gliotype(), "synth", "--out", str(cohort), "--patients", str(size), "--seed",
                        str(cohort_seed), "--workers", str(args.workers)], check=True)
        cmd = [*_gliotype(), "run", "--data", str(cohort), "--out", str(run), "--preset", "cpu",
               "--repeats", str(args.repeats), *([] if args.ablations else ["--no-ablations"])]
        for s in args.sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True)
        rows = pd.DataFrame(_split_rows(run, size, cohort_seed))
        done = pd.concat([done, rows], ignore_index=True) if len(done) else rows
        write_csv_atomic(done, table_path)
        print(f"{size} patients: {time.perf_counter() - t0:.0f} s", flush=True)
    summary = (done.groupby(["patients", "table", "model"], sort=False)["auc"].agg(["mean", "std", "count"])
               .reset_index())
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
