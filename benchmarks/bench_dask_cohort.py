"""Time preprocessing a native-space synthetic cohort through a Dask ``LocalCluster`` of 1 and
2 worker processes (one thread each), beside the local process pool with 1 and 2 workers, and
check that every run writes the same preprocessed volumes.

    python benchmarks/bench_dask_cohort.py [--patients 8] [--preset cpu] [--space native]

Every run preprocesses into a fresh work folder (no cache hit); the cohort is synthesised once
(local pool). The load average printed after each run tells how much of the cores other jobs took. Writes to a temporary folder (removed afterwards unless ``--keep DIR``). Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _rows(root: Path) -> list[dict]:
    rows = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        pid = d.name

        def f(s, pid=pid, d=d):
            p = d / f"{pid}_{s}.nii.gz"
            return str(p) if p.exists() else None

        rows.append({"patient_id": pid, "t1": f("t1"), "t1c": f("t1ce"), "t2": f("t2"), "flair": f("flair"),
                     "mask": f("seg"), "fa": f("fa")})
    return rows


def _volumes(work: Path) -> dict[str, str]:
    return {str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(work.rglob("*.nii.gz"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=8)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--space", default="native", help="native (registration runs) or mni (identity)")
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the outputs")
    args = ap.parse_args()
    os.environ.setdefault("GLIOTYPE_PROGRESS", "0")

    import pandas as pd
    from distributed import LocalCluster

    from gliotype.config import load_config
    from gliotype.preprocessing import preprocess_cohort
    from gliotype.synthetic import SynthConfig, generate_cohort
    from gliotype.utils.executor import use_executor

    config = load_config(args.preset)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_dask_cohort_"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        cohort = out / "cohort"
        generate_cohort(cohort, SynthConfig(patients=args.patients, fa_cases=1, space=args.space, workers=2))
        rows = pd.DataFrame(_rows(cohort))
        print(f"{len(rows)} {args.space}-space synthetic patients, preset {args.preset} "
              f"(registration {config.preprocess.registration}), {os.cpu_count()} CPU cores on this machine")
        runs, reference = [], None
        for engine, n in (("local", 1), ("local", 2), ("dask", 1), ("dask", 2)):
            work = out / f"work-{engine}-{n}"
            shutil.rmtree(work, ignore_errors=True)
            if engine == "local":
                t0 = time.perf_counter()
                table = preprocess_cohort(rows, work, config, workers=n)
                seconds, start = time.perf_counter() - t0, 0.0
            else:
                t0 = time.perf_counter()
                with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
                    start = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    with use_executor(cl.scheduler_address):
                        table = preprocess_cohort(rows, work, config, workers=1)
                    seconds = time.perf_counter() - t0
            done = int((table["status"] == "done").sum())
            volumes = _volumes(work)
            reference = reference or volumes
            same = volumes == reference
            runs.append((engine, n, seconds))
            print(f"  {engine:5s} {n} worker(s): {seconds:6.1f} s ({seconds / len(rows):.1f} s/patient), {done} done"
                  + (f", cluster start {start:.1f} s" if engine == "dask" else "")
                  + f", volumes {'identical to' if same else 'DIFFERENT from'} the first run"
                  + f", load average {os.getloadavg()[0]:.1f}")
            if not same:
                return 1
        by = {(e, n): s for e, n, s in runs}
        for engine in ("local", "dask"):
            print(f"  {engine}: 2 workers {by[engine, 1] / by[engine, 2]:.2f}x faster than 1")
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
