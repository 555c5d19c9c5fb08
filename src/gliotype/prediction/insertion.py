"""A new patient inserted into the stored population graph (section 3.4, inductive).

Owns the last step of a prediction: the patient's u_T and u_B, z-scored with the
stored training statistics, become a new node linked by eq. 8 edges to the stored
nodes (:func:`gliotype.population_graph.insert_nodes`, no retraining); the stored GNN
gives P(IDH mutant), the model's threshold the decision (:data:`DECISIONS`), and
re-predicting in :data:`DRAWS` random subsets of :data:`NODE_FRACTION` of the stored
nodes the interval.
"""

from __future__ import annotations

import numpy as np

from gliotype.prediction.model import TrainedModel

#: Uncertainty defaults: re-predictions with random subsets of the stored graph nodes.
DRAWS = 100
NODE_FRACTION = 0.8
#: The decision below / at or above the model's threshold.
DECISIONS = ("IDH-wildtype", "IDH-mutant")


def _graph_prediction(model: TrainedModel, node_x: np.ndarray, edge_x: np.ndarray, pid: str,
                      keep: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """P(mutant) of the new patient inserted into the stored graph (or its subgraph ``keep``),
    and the stored-node rows it is linked to."""
    from gliotype.population_graph import insert_nodes, predict_proba

    g = model.graph
    stored = model.edge_features
    neighbours = model.neighbours  # a capped or ann graph: its index links the patient
    if keep is not None:
        g = g.subgraph(keep)
        stored = stored[keep]
        neighbours = None if neighbours is None else neighbours.subset(keep)
    full = insert_nodes(g, node_x, edge_x, stored, model.theta, [pid], neighbours=neighbours)
    if neighbours is None:
        p = float(predict_proba(model.gnn, full)[-1])
    else:  # a capped or ann graph, maybe of 100,000 patients: the GNN on the new node's block only
        from gliotype.population_graph.minibatch import block_proba

        p = float(block_proba(model.gnn, full, [g.num_nodes])[0])
    new_edges = full.edge_index[:, g.edge_index.shape[1]:]
    neighbours = np.unique(new_edges[1][new_edges[0] == g.num_nodes].numpy())
    if keep is not None:
        neighbours = np.asarray(keep)[neighbours]
    return p, neighbours


def graph_predict(model: TrainedModel, u_t: np.ndarray, u_b: np.ndarray, pid: str, *, draws: int = DRAWS,
                  node_fraction: float = NODE_FRACTION, seed: int = 0) -> dict:
    """Insert one patient (features ``u_T``, ``u_B``, shape ``(1, d)``) into the stored graph and predict.

    Returns the probability, its subsampling interval and the graph neighbourhood.
    """
    from gliotype.population_graph import select_features

    node = select_features(np.atleast_2d(u_t), np.atleast_2d(u_b), model.meta["node_weight"])
    edge = select_features(np.atleast_2d(u_t), np.atleast_2d(u_b), model.meta["edge_weight"])
    node_x, edge_x = model.standardise(node, edge)
    p, neighbours = _graph_prediction(model, node_x, edge_x, pid)
    n = model.graph.num_nodes
    k = max(1, int(round(node_fraction * n)))
    rng = np.random.default_rng(seed)
    ps = np.array([_graph_prediction(model, node_x, edge_x, pid, np.sort(rng.choice(n, k, replace=False)))[0]
                   for _ in range(int(draws))]) if draws > 0 else np.array([p])
    lo, hi = np.percentile(ps, [2.5, 97.5])
    labels = model.labels[neighbours] if len(neighbours) else np.array([])
    decision = DECISIONS[int(p >= model.threshold)]
    return {
        "probability": p,
        "decision": decision,
        "interval": (float(lo), float(hi)),
        "draws": ps,
        "decision_agreement": float(np.mean((ps >= model.threshold) == (p >= model.threshold))),
        "neighbours": int(len(neighbours)),
        "neighbour_labels": {"IDH-mutant": int(np.sum(labels == 1)), "IDH-wildtype": int(np.sum(labels == 0)),
                             "unlabelled": int(np.sum(labels < 0))},
        "node_fraction": node_fraction,
        "subset_nodes": k,
        "seed": seed,
    }


__all__ = ["DECISIONS", "DRAWS", "NODE_FRACTION", "graph_predict"]
