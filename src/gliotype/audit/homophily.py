"""Edge homophily of the population graphs (paper section 3.4, Table 1).

A GNN that averages over neighbours helps only when neighbours tend to share the label.
The edge homophily (Zhu et al., NeurIPS 2020; ``torch_geometric.utils.homophily``,
``method="edge"``) is the fraction of edges joining two nodes of the same label, counted
over edges whose two ends are labelled; it is compared with the fraction expected for
random pairs of distinct labelled nodes, sum_c n_c (n_c - 1) / (n (n - 1)). Above it,
the graph groups patients by IDH; at or below it, message passing mixes the classes.

:func:`table1_homophily` builds the five graphs of Table 1 exactly as ``gliotype run``
does (eq. 8 on the features of half B and the test patients, z-scored with half B's
statistics) and counts the edges between patients of half B, the labelled nodes of the
run; test labels are never read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch_geometric.utils import homophily, subgraph

from gliotype.config.schema import PopulationGraphConfig
from gliotype.population_graph import TABLE1, TABLE1_NAMES, table1_graph


def _labelled(y) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return np.isfinite(y) & (y >= 0)


def edge_homophily(edge_index, y) -> float:
    """Fraction of edges between labelled nodes (label >= 0, not NaN) that join the same label
    (NaN without such edges)."""
    y = np.asarray(y, dtype=np.float64)
    keep = torch.as_tensor(_labelled(y))
    sub, _ = subgraph(keep, torch.as_tensor(np.asarray(edge_index), dtype=torch.long), relabel_nodes=True,
                      num_nodes=len(y))
    if sub.shape[1] == 0:
        return float("nan")
    return float(homophily(sub, torch.as_tensor(y[keep.numpy()]).long(), method="edge"))


def random_pair_homophily(y) -> float:
    """Expected edge homophily of random pairs of distinct labelled nodes: sum_c n_c (n_c - 1) / (n (n - 1))."""
    y = np.asarray(y, dtype=np.float64)
    counts = np.unique(y[_labelled(y)], return_counts=True)[1].astype(np.float64)
    n = counts.sum()
    return float((counts * (counts - 1)).sum() / (n * (n - 1))) if n >= 2 else float("nan")


def table1_homophily(u_t: np.ndarray, u_b: np.ndarray, labels: np.ndarray,
                     config: PopulationGraphConfig | None = None) -> pd.DataFrame:
    """One row per Table 1 graph: edges, mean degree, isolated nodes, edges between labelled nodes,
    their homophily and the random-pair expectation. ``labels``: IDH of the labelled nodes, -1 (or
    NaN) for the others, whose rows also do not enter the z-scoring statistics. ``config``: the run's
    ``population_graph`` options (default: the schema's), so the graphs measured are built as its
    GNNs' were (:func:`~gliotype.population_graph.table1_graph`: theta, capping, ...)."""
    config = config or PopulationGraphConfig()
    labels = np.asarray(labels, dtype=np.float64)
    labelled = _labelled(labels)
    ids = [str(i) for i in range(len(labels))]
    rows = []
    for node, edge in TABLE1:
        graph = table1_graph(u_t, u_b, np.where(labelled, labels, -1.0), ids, node, edge, config,
                             reference=np.flatnonzero(labelled))
        ei = graph.edge_index.numpy()
        degree = np.bincount(ei[0], minlength=len(labels)) if ei.size else np.zeros(len(labels), int)
        both = labelled[ei[0]] & labelled[ei[1]] if ei.size else np.zeros(0, bool)
        rows.append({"graph": TABLE1_NAMES[(node, edge)], "node_weight": node, "edge_weight": edge,
                     "edges": int(ei.shape[1] // 2), "mean_degree": float(degree.mean()),
                     "isolated_fraction": float((degree == 0).mean()), "labelled_edges": int(both.sum() // 2),
                     "homophily": edge_homophily(ei, labels), "random_pairs": random_pair_homophily(labels)})
    return pd.DataFrame(rows)
