"""Cost of the population graph (eq. 8) and one GNN epoch as the cohort grows (issue 6).

    python benchmarks/bench_population_graph.py [--sizes 250 1000 4000] [--dim 32]

Features are drawn from a few clusters (so correlations >= theta exist, like real
encoder features); the edge search is blockwise and sparse, so memory stays
O(block x N) rather than O(N^2). Prints, per size: build seconds, edges, peak RSS
growth, one GNN training epoch (cpu preset sizes) with mini-batches of 20 labelled nodes
(each step is a full-graph forward, so the epoch grows as N x E) and with
``batch_size: 0`` (one full-graph step). Not a test.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 4000])
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--preset", default="cpu")
    args = ap.parse_args()

    from gliotype.config import load_config
    from gliotype.population_graph import build_population_graph
    from gliotype.population_graph.train import train_population_gnn

    cfg = load_config(args.preset, overrides=["population_graph.epochs=1"]).population_graph
    rng = np.random.default_rng(0)
    full = cfg.model_copy(update={"batch_size": 0})
    print(f"{'patients':>9} {'build s':>8} {'edges':>10} {'edges/node':>10} {'RSS MB':>8} {'epoch s (20)':>12}"
          f" {'epoch s (full)':>14}", flush=True)
    for n in args.sizes:
        centres = rng.standard_normal((8, 2 * args.dim))
        z = centres[rng.integers(0, 8, n)] + 0.8 * rng.standard_normal((n, 2 * args.dim))
        u_t, u_b = z[:, : args.dim], z[:, args.dim:]
        y = rng.integers(0, 2, n).astype(float)
        y[n // 2:] = -1  # test nodes are unlabelled
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        graph = build_population_graph(u_t, u_b, y, [str(i) for i in range(n)], cfg.node_weight, cfg.edge_weight,
                                       cfg.theta, reference=np.arange(n // 2))
        t_build = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
        t0 = time.perf_counter()
        train_population_gnn(graph, full, seed=0)
        t_full = time.perf_counter() - t0
        t_epoch = float("nan")
        if n <= 2000:  # beyond, a mini-batch epoch takes minutes
            t0 = time.perf_counter()
            train_population_gnn(graph, cfg, seed=0)
            t_epoch = time.perf_counter() - t0
        e = graph.edge_index.shape[1]
        print(f"{n:>9} {t_build:>8.2f} {e:>10} {e / n:>10.1f} {max(rss, 0):>8.0f} {t_epoch:>12.2f} {t_full:>14.2f}",
              flush=True)


if __name__ == "__main__":
    main()
