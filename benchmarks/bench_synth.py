"""Time ``generate_cohort`` (the ``gliotype synth`` target: 150 patients in <= 3 min on 2 cores).

    python benchmarks/bench_synth.py --patients 150 --workers 2 [--resolution 2] [--space mni]

Writes to a temporary folder (removed afterwards unless ``--keep DIR``) and prints the
wall time and seconds per patient. Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=2)
    ap.add_argument("--space", default="mni", choices=["mni", "native"])
    ap.add_argument("--fa-cases", type=int, default=20)
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the cohort")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from gliotype.synthetic import SynthConfig, generate_cohort

    config = SynthConfig(patients=args.patients, workers=args.workers, seed=args.seed,
                         resolution=args.resolution, space=args.space, fa_cases=args.fa_cases)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_synth_")) / "cohort"
    try:
        summary = generate_cohort(out, config, overwrite=True)
        total = time.perf_counter() - t0
    finally:
        if args.keep is None:
            shutil.rmtree(out.parent, ignore_errors=True)
    n = summary["patients"]
    print(f"patients={n} workers={args.workers} resolution={args.resolution} space={args.space}")
    print(f"generate_cohort: {summary['seconds']:.1f} s ({summary['seconds'] / n:.3f} s/patient); "
          f"with imports: {total:.1f} s")
    print(f"Bayes AUC of the cohort: {summary['bayes_auc']:.3f} "
          f"(population {summary['bayes_auc_expected']:.3f})")


if __name__ == "__main__":
    main()
