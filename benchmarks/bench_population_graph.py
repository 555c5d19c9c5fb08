"""Cost of the population graph (eq. 8) and of its GNN as the cohort grows (issues 6, 17).

    python benchmarks/bench_population_graph.py [--sizes 1000 10000 100000] [--dim 128] [-k 10]

Features are drawn from a few clusters (so correlations >= theta exist, like real encoder
features), each cluster spread along a few directions (``--intrinsic``, 16; 0 = isotropic noise
as in the first version of this script, where every patient of a cluster is about as near as any
other). u_T and u_B have ``--dim`` features each; the graph is the Table 1 row <u_T, u_B>, r(<u_T,
u_B>) (2 x dim features). Each (size, neighbours) pair runs in a fresh process, so the peak RSS
is its own. Printed per row:

- ``build s`` and ``peak MB`` (RSS growth while building) of :func:`build_population_graph`:
  ``exact`` = every pair (the paper's eq. 8; only at sizes <= ``--exact-max``), ``ann`` = HNSW
  candidates capped at k (``population_graph.neighbours: ann``, ``max_neighbours: k``);
- ``edges`` (directed, both directions counted) and edges per node;
- ``knn recall``: share of the k nearest r >= theta of 1,000 sampled patients (exact scan) that the
  ann graph links them to; ``edge recall``: of the exact capped graph's edges (sizes <= 10,000);
- ``step s``: one GNN training step (cpu preset sizes, a batch of ``--batch-size`` labelled nodes)
  on the batch's block (``sampling: neighbour``, ``--fanout`` in-edges per hop), the mean of
  ``--steps``; ``epoch s`` = that x the steps of an epoch (labelled nodes / batch size);
  ``full step s``: the same step on the whole graph (``sampling: full``, the paper's; sizes <=
  ``--full-max``);
- ``forward s``: one full-graph forward in evaluation mode (what validation and predict_proba run);
- ``insert ms``: linking one new patient to the stored graph (:class:`StoredNeighbours.link`,
  the index queried), the mean of 20 patients.

Not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def features(n: int, dim: int, intrinsic: int, seed: int = 0) -> np.ndarray:
    """(n, 2 dim) patients around 8 centres, spread along ``intrinsic`` directions per cluster (0: isotropic)."""
    rng = np.random.default_rng(seed)
    d = 2 * dim
    centres = rng.standard_normal((8, d))
    label = rng.integers(0, 8, n)
    if not intrinsic:
        return centres[label] + 0.8 * rng.standard_normal((n, d))
    spread = rng.standard_normal((8, intrinsic, d)) / 4
    z = centres[label].copy()
    for c in range(8):  # in blocks of a cluster: a (n, intrinsic, d) product would not fit at 100k
        rows = np.flatnonzero(label == c)
        z[rows] += rng.standard_normal((len(rows), intrinsic)) @ spread[c]
    return z + 0.3 * rng.standard_normal((n, d))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_seconds(graph, cfg, steps: int):
    """Seconds per training step (the steps of ``train_population_gnn``: logits of a batch of labelled
    nodes, BCE, backward, Adam), the mean of ``steps`` steps after one warm-up step; and the model."""
    import torch
    import torch.nn.functional as F

    from gliotype.population_graph import PopulationGNN
    from gliotype.population_graph.minibatch import batch_forward
    from gliotype.utils.training import make_optimizer

    torch.manual_seed(0)
    model = PopulationGNN(graph.x.shape[1], cfg.gat, cfg.dropout, cfg.residual).train()
    optimizer = make_optimizer(model.parameters(), cfg)
    forward = batch_forward(model, graph, cfg, 0)
    labelled = torch.nonzero(graph.y >= 0).flatten()
    perm = labelled[torch.randperm(len(labelled), generator=torch.Generator().manual_seed(0))]
    t0 = 0.0
    for step in range(steps + 1):
        if step == 1:
            t0 = time.perf_counter()
        nodes = perm[(step * cfg.batch_size) % len(perm):][: cfg.batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(forward(nodes)[nodes], graph.y[nodes])
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - t0) / steps, model.eval()


def one(n: int, mode: str, args) -> dict:
    import torch

    from gliotype.config import load_config
    from gliotype.population_graph import build_population_graph, predict_proba
    from gliotype.population_graph.graph import _row_standardise
    from gliotype.population_graph.neighbours import StoredNeighbours, edge_recall, neighbour_edges

    k = args.k
    z = features(n + 20, args.dim, args.intrinsic)
    z, new = z[:n], z[n:]
    u_t, u_b = z[:, : args.dim], z[:, args.dim:]
    y = np.random.default_rng(1).integers(0, 2, n).astype(float)
    y[n // 2:] = -1  # test nodes are unlabelled
    options = {"neighbours": "ann", "max_neighbours": k} if mode == "ann" else {}
    import faiss

    faiss.omp_get_max_threads()  # its libraries loaded before the RSS baseline
    before = _rss_mb()
    t0 = time.perf_counter()
    graph = build_population_graph(u_t, u_b, y, [str(i) for i in range(n)], "uT_uB", "uT_uB", args.theta,
                                   standardise=False, **options)
    row = {"patients": n, "mode": mode, "build_s": time.perf_counter() - t0, "peak_mb": _rss_mb() - before,
           "edges": int(graph.edge_index.shape[1])}
    if mode == "ann":
        zs = _row_standardise(z)
        rng = np.random.default_rng(2)
        sample = rng.choice(n, min(n, 1000), replace=False)
        r = zs[sample] @ zs.T
        r[np.arange(len(sample)), sample] = -np.inf
        top = np.argpartition(-r, k - 1, axis=1)[:, :k]
        ei = graph.edge_index.numpy()
        linked = set(zip(ei[0].tolist(), ei[1].tolist()))
        want = [(int(i), int(j)) for a, i in enumerate(sample) for j in top[a] if r[a, j] >= args.theta]
        row["knn_recall"] = float(np.mean([p in linked for p in want])) if want else float("nan")
        if n <= 10_000:
            exact, _ = neighbour_edges(z, args.theta, "exact", k)
            row["edge_recall"] = edge_recall(exact, ei, n)["recall"]
    torch.set_num_threads(args.threads)
    cfg = load_config("cpu", overrides=[f"population_graph.batch_size={args.batch_size}",
                                        "population_graph.sampling=neighbour",
                                        f"population_graph.fanout={json.dumps(args.fanout)}"]).population_graph
    steps = int(np.ceil(np.sum(y >= 0) / args.batch_size))
    row["step_s"], model = step_seconds(graph, cfg, args.steps)
    row["epoch_s"] = row["step_s"] * steps  # an epoch is `steps` such steps
    if n <= args.full_max:  # the paper's step: the whole graph forward and backward for 20 nodes
        row["full_step_s"], _ = step_seconds(graph, cfg.model_copy(update={"sampling": "full", "fanout": []}), 2)
    t0 = time.perf_counter()
    predict_proba(model, graph)
    row["forward_s"] = time.perf_counter() - t0
    if mode == "ann":
        stored = StoredNeighbours.of(z, graph.edge_index.numpy(), graph.edge_weight.numpy(), args.theta, "ann", k)
        t0 = time.perf_counter()
        links = [stored.link(p[None])[0].shape[1] for p in new]
        row["insert_ms"] = (time.perf_counter() - t0) / len(new) * 1000
        row["insert_edges"] = float(np.mean(links))
    row["peak_total_mb"] = _rss_mb()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--dim", type=int, default=128, help="features of u_T and of u_B each")
    ap.add_argument("--intrinsic", type=int, default=16, help="directions of a cluster's spread; 0 = isotropic")
    ap.add_argument("-k", type=int, default=10, help="max_neighbours of the ann graph")
    ap.add_argument("--theta", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--fanout", type=int, nargs="+", default=[10, 5, 5, 5])
    ap.add_argument("--exact-max", type=int, default=1000, help="largest size the exact graph is built at")
    ap.add_argument("--steps", type=int, default=30, help="mini-batch steps timed (the epoch: their mean x steps)")
    ap.add_argument("--full-max", type=int, default=10000, help="largest size a full-graph step is timed at")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--one", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], args)), flush=True)
        return
    cols = ["patients", "mode", "build_s", "peak_mb", "edges", "knn_recall", "edge_recall", "step_s", "epoch_s",
            "full_step_s", "forward_s", "insert_ms", "insert_edges", "peak_total_mb"]
    print(" | ".join(cols), flush=True)
    for n in args.sizes:
        for mode in (["exact"] if n <= args.exact_max else []) + ["ann"]:
            cmd = [sys.executable, __file__, "--one", str(n), mode, *sys.argv[1:]]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(f"{n} {mode}: failed\n{out.stderr[-2000:]}", flush=True)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(" | ".join(f"{row[c]:.3g}" if isinstance(row.get(c), float) else str(row.get(c, "-"))
                             for c in cols), flush=True)


if __name__ == "__main__":
    main()
