"""PopulationGraph.subgraph: the graph on some of its nodes (the prediction's node subsets and
TrainedModel.without both use it)."""

import numpy as np
import pytest
import torch

from gliotype.population_graph import build_population_graph


def _graph(n=12, seed=0):
    rng = np.random.default_rng(seed)
    u_t, u_b = rng.normal(size=(n, 5)), rng.normal(size=(n, 4))
    labels = np.where(np.arange(n) % 3 == 0, -1.0, (np.arange(n) % 2).astype(float))
    return build_population_graph(u_t, u_b, labels, [f"P{i:02d}" for i in range(n)], "uT_uB", "uB", theta=0.2)


@pytest.mark.parametrize("keep", [[0, 2, 3, 5, 8, 11], [11, 4, 0, 7, 1], list(range(12)), [6]])
def test_subgraph_keeps_the_right_nodes_edges_weights_labels_and_ids(keep):
    g = _graph()
    assert g.edge_index.shape[1] > 10  # enough edges to drop some
    sub = g.subgraph(np.array(keep))
    assert sub.patient_id == [g.patient_id[i] for i in keep]
    torch.testing.assert_close(sub.x, g.x[keep], rtol=0, atol=0)
    torch.testing.assert_close(sub.y, g.y[keep], rtol=0, atol=0)
    row = {old: new for new, old in enumerate(keep)}
    expected = [(row[int(i)], row[int(j)], float(w)) for (i, j), w in zip(g.edge_index.T, g.edge_weight)
                if int(i) in row and int(j) in row]  # every edge between two kept nodes, in the stored order
    got = [(int(i), int(j), float(w)) for (i, j), w in zip(sub.edge_index.T, sub.edge_weight)]
    assert got == expected
    assert sub.num_nodes == len(keep) and sub.edge_index.dtype == torch.long


def test_subgraph_accepts_lists_and_leaves_the_graph_alone():
    g = _graph()
    edges, ids = g.edge_index.clone(), list(g.patient_id)
    a, b = g.subgraph([1, 3, 5]), g.subgraph(np.array([1, 3, 5]))
    assert a.patient_id == b.patient_id and torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(g.edge_index, edges) and g.patient_id == ids
