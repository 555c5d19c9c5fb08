"""Time preprocessing (section 4.2): the real TCGA case with SyN (goal: <= 60 s) and a
3-patient native-space synthetic cohort.

    python benchmarks/bench_preprocess.py [--workers 2] [--preset cpu] [--real DIR] [--patients 3]

Writes to a temporary folder (removed afterwards unless ``--keep DIR``) and prints the
seconds and the QC figures (brain Dice, tumour volume ratios) per patient. The real case
is skipped when ``../shared/data/real`` (or ``--real``) is absent. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REAL_ID = "TCGA-DU-7294"
QC_KEYS = ("brain_dice", "tumor_volume_ratio", "linear_scale", "tumor_volume_ratio_scaled",
           "tumor_fraction_ratio", "similarity_mattes_mi", "seconds")


def _real_dir(arg: Path | None) -> Path | None:
    cands = [arg] if arg else [Path(__file__).resolve().parents[2] / "shared" / "data" / "real",
                               Path("/work/shared/data/real")]
    for c in cands:
        if c and (c / REAL_ID).is_dir():
            return c
    return None


def _brats_rows(root: Path) -> list[dict]:
    rows = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        pid = d.name

        def f(s, pid=pid, d=d):
            p = d / f"{pid}_{s}.nii.gz"
            return str(p) if p.exists() else None

        rows.append({"patient_id": pid, "t1": f("t1"), "t1c": f("t1ce"), "t2": f("t2"), "flair": f("flair"),
                     "mask": f("seg"), "fa": f("fa")})
    return rows


def _report(work: Path, table) -> None:
    from gliotype.layout import WorkDir

    for r in table.itertuples():
        qc_path = WorkDir(work).case(r.patient_id).qc
        qc = json.loads(qc_path.read_text()) if qc_path.exists() else {}
        figures = ", ".join(f"{k}={qc[k]}" for k in QC_KEYS if qc.get(k) is not None)
        steps = qc.get("steps_seconds", {})
        print(f"  {r.patient_id}: {r.status} {r.reason} {figures}")
        if steps:
            print("    steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="processes for the synthetic cohort")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--patients", type=int, default=3)
    ap.add_argument("--real", type=Path, default=None, help="folder holding TCGA-DU-7294/")
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the outputs")
    args = ap.parse_args()
    os.environ.setdefault("GLIOTYPE_PROGRESS", "0")

    import pandas as pd

    from gliotype.config import load_config
    from gliotype.preprocessing import preprocess_cohort
    from gliotype.synthetic import SynthConfig, generate_cohort

    config = load_config(args.preset)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    out.mkdir(parents=True, exist_ok=True)
    slow = False
    try:
        real = _real_dir(args.real)
        if real is None:
            print("real case: skipped (../shared/data/real is absent)")
        else:
            base = real / REAL_ID / REAL_ID
            row = {"patient_id": REAL_ID, "t1": f"{base}_t1.nii.gz", "t1c": f"{base}_t1ce.nii.gz",
                   "t2": f"{base}_t2.nii.gz", "flair": f"{base}_flair.nii.gz", "mask": f"{base}_seg.nii.gz",
                   "fa": None}
            work = out / "real"
            shutil.rmtree(work, ignore_errors=True)
            t0 = time.perf_counter()
            table = preprocess_cohort(pd.DataFrame([row]), work, config, workers=1)
            seconds = time.perf_counter() - t0
            slow = seconds > 60
            print(f"real case {REAL_ID} (240x240x155 1 mm -> 2 mm MNI, registration "
                  f"{config.preprocess.registration}): {seconds:.1f} s (goal <= 60 s)")
            _report(work, table)

        cohort = out / "synthetic"
        shutil.rmtree(cohort, ignore_errors=True)
        generate_cohort(cohort, SynthConfig(patients=args.patients, fa_cases=1, space="native",
                                            workers=args.workers))
        work = out / "synthetic-work"
        shutil.rmtree(work, ignore_errors=True)
        rows = _brats_rows(cohort)
        t0 = time.perf_counter()
        table = preprocess_cohort(pd.DataFrame(rows), work, config, workers=args.workers)
        seconds = time.perf_counter() - t0
        print(f"native synthetic cohort: {len(rows)} patients, {args.workers} workers: {seconds:.1f} s "
              f"({seconds / len(rows):.1f} s/patient)")
        _report(work, table)
        t0 = time.perf_counter()
        again = preprocess_cohort(pd.DataFrame(rows), work, config, workers=args.workers)
        print(f"rerun (cache): {time.perf_counter() - t0:.2f} s, statuses {sorted(set(again['status']))}")
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
