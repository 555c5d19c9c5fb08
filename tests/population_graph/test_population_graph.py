"""Eq. 8 edges, Table 1 graphs, GNN training and inductive insertion (section 3.4)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from gliotype.config import load_config
from gliotype.population_graph import (
    TABLE1,
    build_population_graph,
    correlation_edges,
    insert_nodes,
    predict_proba,
    train_population_gnn,
)
from gliotype.population_graph.graph import select_features, standardise_columns


def _loop_edges(f, theta):
    """Eq. 8 by a double loop with numpy's Pearson correlation."""
    out = {}
    for i in range(len(f)):
        for j in range(len(f)):
            if i != j:
                r = np.corrcoef(f[i], f[j])[0, 1]
                if r >= theta:
                    out[(i, j)] = r
    return out


@pytest.mark.parametrize("theta, block", [(0.5, 2048), (0.2, 3), (0.0, 7)])
def test_correlation_edges_match_the_loop(theta, block):
    f = np.random.default_rng(0).normal(size=(25, 6))
    ei, w = correlation_edges(f, theta, block=block)
    got = {(int(i), int(j)): float(x) for (i, j), x in zip(ei.T, w)}
    expected = _loop_edges(f, theta)
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-5)


def test_edges_to_stored_nodes_only():
    rng = np.random.default_rng(1)
    stored, new = rng.normal(size=(10, 5)), rng.normal(size=(3, 5))
    ei, w = correlation_edges(new, 0.3, others=stored)
    full_ei, full_w = correlation_edges(np.concatenate([stored, new]), 0.3)
    full = {(int(i), int(j)): x for (i, j), x in zip(full_ei.T, full_w)}
    for (i, j), x in zip(ei.T, w):
        assert full[(i + 10, j)] == pytest.approx(x, rel=1e-6)
    assert len(ei.T) == sum(1 for (i, j) in full if i >= 10 and j < 10)


@pytest.mark.parametrize("node, edge", TABLE1)
def test_table1_graphs_use_the_right_features(node, edge):
    rng = np.random.default_rng(2)
    u_t, u_b = rng.normal(size=(12, 4)), rng.normal(size=(12, 3))
    g = build_population_graph(u_t, u_b, np.zeros(12), [str(i) for i in range(12)], node, edge, 0.3, standardise=False)
    assert g.x.shape == (12, select_features(u_t, u_b, node).shape[1])
    ei, _ = correlation_edges(select_features(u_t, u_b, edge), 0.3)
    assert torch.equal(g.edge_index, torch.as_tensor(ei))


def test_standardisation_uses_the_reference_rows_only():
    a = np.arange(12, dtype=float).reshape(6, 2)
    train, full = standardise_columns(a[:3], a)
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-12)
    assert full[3:].mean() > 1  # test rows not centred on their own statistics


def _cohort(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    u_t = rng.normal(size=(n, 6)) + 1.2 * y[:, None] * np.array([1, -1, 1, 0, 0, 0])
    u_b = rng.normal(size=(n, 5)) + 1.2 * y[:, None] * np.array([0, 1, -1, 1, 0])
    return u_t, u_b, y


@pytest.fixture(scope="module")
def trained():
    u_t, u_b, y = _cohort()
    labels = y.copy()
    labels[50:] = -1  # the last 30 are test patients, unlabelled in the graph
    cfg = load_config("tiny", overrides=["population_graph.epochs=60", "population_graph.lr=0.01",
                                         "population_graph.gat=[16, 16]", "population_graph.theta=0.2"])
    g = build_population_graph(u_t, u_b, labels, [f"P{i}" for i in range(80)], "uT_uB", "uT_uB", 0.2,
                               reference=slice(0, 50))
    model, history = train_population_gnn(g, cfg.population_graph, seed=0)
    return g, model, history, y


def test_gnn_learns_the_labelled_nodes_and_generalises(trained):
    g, model, history, y = trained
    assert history[-1]["loss"] < history[0]["loss"]
    p = predict_proba(model, g)
    assert roc_auc_score(y[50:], p[50:]) > 0.8


def test_inductive_insertion_matches_the_transductive_probability(trained):
    """A test node removed from the graph and inserted as new gets the same probability."""
    g, model, _, _ = trained
    p_full = predict_proba(model, g)
    k = 79
    keep = (g.edge_index[0] != k) & (g.edge_index[1] != k)
    from gliotype.population_graph.graph import PopulationGraph

    without = PopulationGraph(g.x[:k], g.edge_index[:, keep], g.edge_weight[keep], g.y[:k], g.patient_id[:k])
    feats = g.x.numpy()  # uT_uB graph with standardised features: edge features = node features
    back = insert_nodes(without, feats[k:], feats[k:], feats[:k], 0.2, ["P79"])
    p_back = predict_proba(model, back)
    assert back.num_nodes == 80
    assert p_back[k] == pytest.approx(p_full[k], abs=1e-5)


def test_training_needs_both_classes():
    u_t, u_b, _ = _cohort(10)
    g = build_population_graph(u_t, u_b, np.zeros(10), [str(i) for i in range(10)])
    with pytest.raises(ValueError, match="both classes"):
        train_population_gnn(g, load_config("tiny").population_graph)
