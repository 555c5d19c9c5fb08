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


# --- options beyond the paper: root term, dropout, weight decay, validation nodes ---


def _cfg(*overrides):
    base = ["population_graph.gat=[16, 16]", "population_graph.lr=0.01", "population_graph.batch_size=0"]
    return load_config("tiny", overrides=base + list(overrides)).population_graph


def _complete_graph(seed, n=40):
    """Labels readable from x (mutant: |x0| in [1.5, 2.5], wild type: |x0| < 0.5), but every node is joined
    to every other: the neighbourhood (half of it of the opposite label) is the same for all nodes and tells
    nothing. The first half is labelled, the second half is the test."""
    rng = np.random.default_rng(seed)
    y = np.tile([0.0, 1.0], n // 2)
    x = rng.normal(size=(n, 3))
    x[:, 0] = np.where(y == 1, rng.choice([-1, 1], n) * rng.uniform(1.5, 2.5, n), rng.uniform(-0.5, 0.5, n))
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    labels = np.where(np.arange(n) < n // 2, y, -1.0)
    from gliotype.population_graph.graph import PopulationGraph

    g = PopulationGraph(torch.tensor(x, dtype=torch.float32), torch.tensor(np.stack([i, j])), torch.ones(len(i)),
                        torch.tensor(labels, dtype=torch.float32), [str(k) for k in range(n)])
    return g, y


@pytest.mark.parametrize("seed", [0, 1])
def test_root_term_keeps_the_nodes_own_signal(seed):
    """Without the root term a node's own features are 1 of 40 attention-weighted messages: chance. With it: learnt."""
    g, y = _complete_graph(seed)
    test = np.arange(len(y)) >= len(y) // 2
    auc = {}
    for residual in (False, True):
        model, _ = train_population_gnn(g, _cfg("population_graph.epochs=100", f"population_graph.residual={residual}"),
                                        seed=seed)
        auc[residual] = roc_auc_score(y[test], predict_proba(model, g)[test])
    assert auc[False] < 0.7 and auc[True] > 0.95, auc


def test_dropout_reaches_inputs_attention_and_layers():
    from gliotype.population_graph import PopulationGNN

    g, _ = _complete_graph(0, n=10)
    model = PopulationGNN(3, [8, 8], dropout=0.5, residual=True)
    assert all(conv.dropout == 0.5 for conv in model.convs) and model.convs[0].res is not None
    model.train()
    torch.manual_seed(0)
    a = model(g.x, g.edge_index, g.edge_weight)
    b = model(g.x, g.edge_index, g.edge_weight)
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(g.x, g.edge_index, g.edge_weight), model(g.x, g.edge_index, g.edge_weight))


def test_weight_decay_reaches_the_optimiser():
    g, _ = _complete_graph(0, n=20)

    def norm(wd):
        model, _ = train_population_gnn(g, _cfg("population_graph.epochs=40", f"population_graph.weight_decay={wd}"))
        return float(torch.cat([p.detach().flatten() for p in model.parameters()]).norm())

    assert norm(0.5) < 0.7 * norm(0.0)


def _noisy_graph(n=60, seed=0):
    """Labels independent of the features: any fit beyond the first epochs is overfitting."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(float)
    u = rng.normal(size=(n, 8))
    return build_population_graph(u, u[:, :4], y, [str(i) for i in range(n)], "uT", "uT", 0.0), y


def test_validation_nodes_are_stratified_seeded_and_labelled():
    from gliotype.population_graph import validation_nodes

    g, y = _noisy_graph()
    val = validation_nodes(g, 0.25, seed=3)
    assert len(val) == 15 and y[val].sum() == 5  # a quarter of each class
    assert np.array_equal(val, validation_nodes(g, 0.25, seed=3))
    assert not np.array_equal(val, validation_nodes(g, 0.25, seed=4))
    assert len(validation_nodes(g, 0.0)) == 0
    g.y[np.flatnonzero(y == 1)[1:]] = -1  # one mutant left
    with pytest.raises(ValueError, match="val_fraction"):
        validation_nodes(g, 0.25)


def test_validation_labels_never_enter_the_fit():
    """Flipping the validation nodes' labels leaves the fitted loss of every epoch unchanged."""
    from gliotype.population_graph import validation_nodes

    g, _ = _noisy_graph()
    cfg = _cfg("population_graph.epochs=15", "population_graph.val_fraction=0.25", "population_graph.dropout=0.2")
    val = validation_nodes(g, 0.25, seed=1)
    _, h1 = train_population_gnn(g, cfg, seed=1, val_nodes=val)
    g.y[val] = 1 - g.y[val]
    _, h2 = train_population_gnn(g, cfg, seed=1, val_nodes=val)
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    assert [r["val_loss"] for r in h1] != [r["val_loss"] for r in h2]


def test_early_stopping_keeps_the_best_epoch():
    from gliotype.population_graph import validation_nodes

    g, _ = _noisy_graph()
    cfg = _cfg("population_graph.epochs=300", "population_graph.lr=0.03", "population_graph.val_fraction=0.25",
               "population_graph.patience=15")
    model, history = train_population_gnn(g, cfg, seed=0)
    best = [r for r in history if r.get("best")]
    assert len(best) == 1 and best[0]["val_loss"] == min(r["val_loss"] for r in history)
    assert len(history) == best[0]["epoch"] + 15 < 300  # stopped `patience` epochs after the best
    assert history[-1]["val_loss"] > best[0]["val_loss"]
    val = torch.as_tensor(validation_nodes(g, 0.25, seed=0))
    with torch.no_grad():
        logit = model(g.x, g.edge_index, g.edge_weight)[val]
    assert float(torch.nn.functional.binary_cross_entropy_with_logits(logit, g.y[val])) == pytest.approx(
        best[0]["val_loss"], abs=1e-6)


def test_training_with_all_options_is_deterministic():
    g, _ = _noisy_graph()
    cfg = _cfg("population_graph.epochs=10", "population_graph.val_fraction=0.25", "population_graph.dropout=0.3",
               "population_graph.residual=true", "population_graph.weight_decay=5e-4")
    p = [predict_proba(train_population_gnn(g, cfg, seed=2)[0], g).tobytes() for _ in range(2)]
    assert p[0] == p[1]


def test_out_of_fold_predictions_are_not_fitted():
    """Labels independent of x: the GNN fits its labelled nodes, its out-of-fold predictions are chance."""
    from gliotype.population_graph import out_of_fold_predictions

    g, y = _noisy_graph()
    cfg = _cfg("population_graph.epochs=60", "population_graph.lr=0.03", "population_graph.residual=true")
    fitted = predict_proba(train_population_gnn(g, cfg)[0], g)
    oof = out_of_fold_predictions(g, cfg, folds=3)
    assert np.isfinite(oof).all()
    assert roc_auc_score(y, fitted) > 0.9 and roc_auc_score(y, oof) < 0.7
    with pytest.raises(ValueError, match="threshold_folds"):
        out_of_fold_predictions(g, cfg, folds=30)
