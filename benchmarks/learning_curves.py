"""Learning curves (issue 12, point 7): the full model and the baselines at growing cohort sizes.

    python benchmarks/learning_curves.py --sizes 200 400 800 --repeats 3 --out lc/ [--seed 11]
        [--split-seeds 1 2] [--ablations] [--set population_graph.residual=true ...]

For every size N a synthetic cohort ``gliotype synth --patients N --seed S`` is generated
(each size its own seed, ``seed + N``, so no cohort is a subset of another) and, for every
split seed (``--split-seeds``, default 0 .. R - 1), ``gliotype run --preset cpu --repeats 1
--set split.seed=K --no-ablations`` is run on it in one run folder, so the stages before the
split are computed once (``--ablations`` adds Table 4). Every model's test AUC, the Bayes
ceiling and the observable ceiling of each split are appended to ``OUT/learning_curves.csv``
as soon as that split is done, so an interrupted run keeps what it finished and a rerun
resumes (finished (size, split) pairs are skipped; ``gliotype run`` resumes its own stages).
``benchmarks/learning_curves.csv`` holds the rows measured so far (docs/results.md): copy it
into ``--out`` to add splits to it.
A split of 800 patients takes about 1.5 hours on 2 cores: run it in the background
(``nohup ... > lc.log &``), one split per sitting if need be (``--split-seeds 1``), and keep
the CSV. Not a test.
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
    """One row per model of the split a run folder's top level holds (``--repeats 1``)."""
    results = RunDir.of(run).results
    summary = json.loads(results.summary.read_text())
    return [{"patients": size, "cohort_seed": cohort_seed, "split_seed": summary["split_seed"], "table": name,
             "model": r["model"], "auc": r["auc"], "bayes_auc": summary.get("bayes_auc_test"),
             "observable_auc": summary.get("observable_auc_test")}
            for name in ResultsDir.TABLES for r in pd.read_csv(results.table(name)).to_dict("records")]


def pending(done: pd.DataFrame, sizes: list[int], split_seeds: list[int]) -> list[tuple[int, int]]:
    """The (size, split seed) pairs not yet in ``done`` (rows of ``learning_curves.csv``), in order."""
    have = set(zip(done["patients"], done["split_seed"])) if len(done) else set()
    return [(n, k) for n in sizes for k in split_seeds if (n, k) not in have]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 400, 800])
    ap.add_argument("--repeats", type=int, default=3, help="split seeds 0 .. R - 1 (unless --split-seeds)")
    ap.add_argument("--split-seeds", type=int, nargs="+", default=None, help="only these split seeds")
    ap.add_argument("--seed", type=int, default=11, help="cohort seed base (the cohort of size N uses seed + N)")
    ap.add_argument("--out", type=Path, default=Path("learning_curves"))
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override, as gliotype run --set")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ablations", action="store_true", help="also the Table 4 ablations (11 more encoders a split)")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    table_path = args.out / "learning_curves.csv"
    done = pd.read_csv(table_path) if table_path.exists() else pd.DataFrame(columns=["patients", "split_seed"])
    split_seeds = args.split_seeds if args.split_seeds is not None else list(range(args.repeats))
    for size, split_seed in pending(done, args.sizes, split_seeds):
        cohort_seed = args.seed + size
        cohort, run = args.out / f"cohort-{size}", args.out / f"run-{size}"
        t0 = time.perf_counter()
        subprocess.run([*_gliotype(), "synth", "--out", str(cohort), "--patients", str(size), "--seed",
                        str(cohort_seed), "--workers", str(args.workers)], check=True)
        cmd = [*_gliotype(), "run", "--data", str(cohort), "--out", str(run), "--preset", "cpu", "--repeats", "1",
               *([] if args.ablations else ["--no-ablations"])]
        for s in [*args.sets, f"split.seed={split_seed}"]:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True)
        rows = pd.DataFrame(_split_rows(run, size, cohort_seed))
        done = pd.concat([done, rows], ignore_index=True) if len(done) else rows
        write_csv_atomic(done, table_path)
        print(f"{size} patients, split seed {split_seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    summary = (done.groupby(["patients", "table", "model"], sort=False)["auc"].agg(["mean", "std", "count"])
               .reset_index()) if len(done) else done
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
