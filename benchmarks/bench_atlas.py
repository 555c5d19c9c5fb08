"""Time the built-in tract atlas (90 AAL regions, 2,309 tracts; target: under ~3 min on 2 cores).

    python benchmarks/bench_atlas.py [--tracts 2309] [--regions 90] [--cache DIR] [--keep]

Builds into a temporary cache folder (removed afterwards unless ``--keep`` or ``--cache``),
then loads it back from the cache, and prints the node-atlas load time, the build time
(paths and tubes), the cache-hit load time, the cache file size and the position
sampling time. Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracts", type=int, default=2309)
    ap.add_argument("--regions", type=int, default=90, help="AAL labels 1..N")
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (kept)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary cache folder")
    args = ap.parse_args()

    tmp = None
    if args.cache is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_atlas_"))
    cache = args.cache if args.cache is not None else tmp
    try:
        from gliotype.atlases import (
            cached_tract_atlas_path,
            load_node_atlas,
            load_template,
            load_tract_atlas,
            sample_node_positions,
            sample_tract_positions,
        )

        t0 = time.perf_counter()
        load_template(2)
        nodes = load_node_atlas(None, n_regions=args.regions)
        t_nodes = time.perf_counter() - t0
        path = cached_tract_atlas_path(nodes, args.tracts, cache_dir=cache)
        existed = path.exists()
        t0 = time.perf_counter()
        tracts = load_tract_atlas(None, node_atlas=nodes, n_tracts=args.tracts, cache_dir=cache)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = load_tract_atlas(None, node_atlas=nodes, n_tracts=args.tracts, cache_dir=cache)
        t_hit = time.perf_counter() - t0
        assert len(again) == len(tracts)
        t0 = time.perf_counter()
        sample_node_positions(nodes, 1000, seed=0)
        sample_tract_positions(tracts, 1000, seed=0)
        t_sample = time.perf_counter() - t0

        sizes = [b - a for a, b in zip(tracts.offsets[:-1], tracts.offsets[1:])]
        info = tracts.info
        print(f"node atlas: {len(nodes)} regions, loaded in {t_nodes:.1f} s (template included)")
        print(f"tract atlas: {len(tracts)} tracts of {info.get('n_pairs')} pairs, "
              f"{'loaded from an existing cache' if existed else 'built'} in {t_build:.1f} s "
              f"(paths {info.get('path_seconds')} s, build {info.get('build_seconds')} s)")
        print(f"  voxels per tract: min {min(sizes)}, median {sorted(sizes)[len(sizes) // 2]}, max {max(sizes)}; "
              f"nnz {int(tracts.offsets[-1])}; min support kept {info.get('min_support_kept'):.3f}")
        print(f"cache hit: {t_hit:.2f} s; cache file {path.name}: {path.stat().st_size / 1e6:.1f} MB")
        print(f"positions (nodes + tracts, 1000 each): {t_sample:.2f} s")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"cache kept in {tmp}")


if __name__ == "__main__":
    main()
