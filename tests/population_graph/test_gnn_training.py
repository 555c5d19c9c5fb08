"""What train_population_gnn, out_of_fold_predictions and insert_nodes promise, pinned exactly.

Mutation testing of ``population_graph/train.py`` left these behaviours unchecked: the
default seed, the both-classes guards, the seeded validation split, the epoch loss (the
mean BCE over the fitted nodes), the seeded mini-batch order, the best-epoch rule, the
folds of the out-of-fold predictions and the edges, labels and IDs of inserted nodes.
Tiny graphs (30 nodes, one GAT layer of 4), a few epochs: the file runs in seconds.
"""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedKFold

from gliotype.config import load_config
from gliotype.population_graph import (
    PopulationGNN,
    build_population_graph,
    insert_nodes,
    out_of_fold_predictions,
    predict_proba,
    train_population_gnn,
    validation_nodes,
)
from gliotype.population_graph import train as train_module
from gliotype.population_graph.graph import PopulationGraph
from gliotype.utils.training import make_optimizer, make_scheduler, seed_everything

BASE = load_config("tiny").population_graph


def _cfg(**update):
    """The tiny section with one GAT layer of 4, 3 epochs, lr 0.05, batches of 4 labelled nodes."""
    return BASE.model_copy(update={"gat": [4], "epochs": 3, "lr": 0.05, "batch_size": 4, "dropout": 0.0,
                                   "residual": False, "weight_decay": 0.0, **update})


def _graph(n=30, seed=0, shift=0.5, labelled=None, y=None):
    """Every third patient mutant (features shifted by ``shift``); only ``labelled`` nodes (default all) keep
    their label, the others are -1. Edges: r >= 0 of the standardised features."""
    rng = np.random.default_rng(seed)
    if y is None:
        y = (np.arange(n) % 3 == 0).astype(float)
    u = rng.normal(size=(n, 4)) + shift * y[:, None]
    labels = y if labelled is None else np.where(np.isin(np.arange(n), labelled), y, -1.0)
    return build_population_graph(u, u[:, :3], labels, [f"P{i}" for i in range(n)], "uT", "uT", 0.0)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _losses(history, key="loss"):
    return [r[key] for r in history]


def _exactly(message):
    return "^" + re.escape(message) + "$"


# --- train_population_gnn: seed, guards, validation nodes ---


def test_the_default_seed_is_zero_and_the_seed_matters():
    g = _graph()
    cfg = _cfg()
    default, _ = train_population_gnn(g, cfg)
    zero, _ = train_population_gnn(g, cfg, seed=0)
    one, _ = train_population_gnn(g, cfg, seed=1)
    assert torch.equal(_weights(default), _weights(zero))
    assert predict_proba(default, g).tobytes() == predict_proba(zero, g).tobytes()
    assert not torch.allclose(_weights(zero), _weights(one))


def test_two_labelled_nodes_of_both_classes_are_enough():
    g = _graph(labelled=[0, 1])  # node 0 mutant, node 1 wild type, the rest unlabelled
    model, history = train_population_gnn(g, _cfg())
    assert len(history) == 3 and all(np.isfinite(_losses(history)))
    assert np.isfinite(predict_proba(model, g)).all()


@pytest.mark.parametrize("labelled", [[1, 2, 4, 5, 7], [0], []], ids=["one class", "one node", "none"])
def test_training_needs_labelled_nodes_of_both_classes(labelled):
    g = _graph(labelled=labelled)
    with pytest.raises(ValueError, match=_exactly("the population graph needs labelled patients of both classes")):
        train_population_gnn(g, _cfg())


def test_validation_nodes_must_be_labelled_and_leave_both_classes_to_fit():
    g = _graph(labelled=list(range(20)))  # nodes 20.. unlabelled
    with pytest.raises(ValueError, match=_exactly("validation nodes of the population graph must be labelled")):
        train_population_gnn(g, _cfg(), val_nodes=np.array([3, 4, 25]))
    mutants = np.flatnonzero(g.y.numpy() == 1)  # all of them validation: only wild types left to fit
    with pytest.raises(ValueError, match=_exactly(
            "the population graph needs fitted patients of both classes besides the validation ones")):
        train_population_gnn(g, _cfg(), val_nodes=mutants)


def test_the_validation_split_follows_the_seed():
    """Without ``val_nodes`` the held-out nodes are ``validation_nodes(graph, val_fraction, seed)`` of the seed
    given, not of the default seed."""
    g = _graph()
    cfg = _cfg(val_fraction=0.3)
    own, other = validation_nodes(g, 0.3, 3), validation_nodes(g, 0.3, 0)
    assert not np.array_equal(own, other)
    _, history = train_population_gnn(g, cfg, seed=3)
    _, explicit = train_population_gnn(g, cfg, seed=3, val_nodes=own)
    _, wrong = train_population_gnn(g, cfg, seed=3, val_nodes=other)
    assert history == explicit
    assert _losses(history) != _losses(wrong)


@pytest.mark.parametrize("as_given", [lambda v: [int(i) for i in v], lambda v: v.astype(np.float64),
                                      lambda v: v.astype(np.int32)], ids=["list", "float", "int32"])
def test_validation_nodes_of_any_integer_like_type(as_given):
    g = _graph()
    cfg = _cfg()
    val = validation_nodes(g, 0.3, 1)
    _, reference = train_population_gnn(g, cfg, seed=1, val_nodes=val)
    _, history = train_population_gnn(g, cfg, seed=1, val_nodes=as_given(val))
    assert history == reference


# --- train_population_gnn: the epoch loss and the mini-batch loop ---


@pytest.mark.parametrize("batch_size", [1, 4, 0], ids=["batch 1", "batch 4", "full graph"])
def test_the_epoch_loss_is_the_mean_bce_over_every_fitted_node(batch_size):
    """lr 0 (the weights never move, no dropout): every epoch's loss is the BCE of the initial model averaged
    over all labelled nodes (18 of 30 here: uneven batches of 4, a last one of 2), the unlabelled ones not
    counted."""
    labelled = list(range(18))
    g = _graph(labelled=labelled)
    model, history = train_population_gnn(g, _cfg(lr=0.0, batch_size=batch_size))
    model.train()
    with torch.no_grad():
        logit = model(g.x, g.edge_index, g.edge_weight)
    per_node = F.binary_cross_entropy_with_logits(logit[labelled], g.y[labelled], reduction="none")
    assert _losses(history) == pytest.approx([float(per_node.mean())] * 3, rel=1e-6)


def test_training_is_the_seeded_mini_batch_loop():
    """Adam steps on batches of ``batch_size`` labelled nodes in the order of a permutation drawn from the
    seed's own generator each epoch (so the order does not depend on what model initialisation drew from the
    global generator), the learning-rate schedule stepped every epoch."""
    g = _graph(labelled=list(range(22)))
    cfg = _cfg(epochs=4, batch_size=5, lr=0.05)
    model, history = train_population_gnn(g, cfg, seed=5)

    generator = seed_everything(5)
    ref = PopulationGNN(g.x.shape[1], cfg.gat, cfg.dropout, cfg.residual)
    optimizer = make_optimizer(ref.parameters(), cfg)
    scheduler = make_scheduler(optimizer, cfg)
    fit = torch.arange(22)
    expected = []
    for _ in range(cfg.epochs):
        perm = fit[torch.randperm(len(fit), generator=generator)]
        per_node = []
        for start in range(0, len(perm), cfg.batch_size):
            nodes = perm[start : start + cfg.batch_size]
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(ref(g.x, g.edge_index, g.edge_weight)[nodes], g.y[nodes])
            loss.backward()
            optimizer.step()
            per_node += [float(loss.detach())] * len(nodes)
        scheduler.step()
        expected.append(float(np.mean(per_node)))
    assert _losses(history) == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(_weights(model), _weights(ref))


# --- train_population_gnn: the best epoch ---


def test_equal_epochs_keep_the_first_and_patience_counts_from_it():
    """lr 0: every epoch has the same validation score, so none improves on epoch 1 (the best) and training
    stops ``patience`` epochs after it."""
    g = _graph()
    for metric in ("bce", "auc"):
        cfg = _cfg(lr=0.0, epochs=10, val_fraction=0.3, patience=2, val_metric=metric)
        _, history = train_population_gnn(g, cfg)
        assert [r["epoch"] for r in history] == [1, 2, 3]
        assert len(set(_losses(history, "val_loss"))) == 1
        assert [r.get("best", False) for r in history] == [True, False, False]
    _, history = train_population_gnn(g, _cfg(lr=0.0, epochs=4, val_fraction=0.3))  # patience 0: never stops
    assert [r.get("best", False) for r in history] == [True, False, False, False]


def test_the_best_epoch_has_the_best_validation_metric():
    """``val_metric: auc`` keeps the epoch of the highest validation AUC, ties broken by the lower BCE;
    ``bce`` the epoch of the lowest BCE. On this graph the two differ and several epochs share the best AUC."""
    g = _graph(shift=0.5, seed=0)
    chosen = {}
    for metric in ("auc", "bce"):
        cfg = _cfg(lr=0.03, epochs=25, val_fraction=0.3, val_metric=metric)
        model, history = train_population_gnn(g, cfg, seed=0)
        best = [r for r in history if r.get("best")]
        assert len(best) == 1
        key = (lambda r: (r["val_auc"], -r["val_loss"])) if metric == "auc" else (lambda r: -r["val_loss"])
        assert best[0] is max(history, key=key)  # max: the first of equal rows
        val = torch.as_tensor(validation_nodes(g, 0.3, 0))
        with torch.no_grad():
            logit = model(g.x, g.edge_index, g.edge_weight)[val]
        assert float(F.binary_cross_entropy_with_logits(logit, g.y[val])) == pytest.approx(best[0]["val_loss"],
                                                                                            abs=1e-6)
        chosen[metric] = (best[0]["epoch"], history)
    history = chosen["auc"][1]
    top = max(r["val_auc"] for r in history)
    tied = [r for r in history if r["val_auc"] == top]
    # the test's power: the AUC choice is neither the BCE one, nor the first, nor the worst-BCE of the tied rows
    assert chosen["auc"][0] != chosen["bce"][0]
    worst = max(tied, key=lambda r: r["val_loss"])
    assert len(tied) > 2 and chosen["auc"][0] not in (tied[0]["epoch"], worst["epoch"])


# --- out_of_fold_predictions ---


def _reference_out_of_fold(g, cfg, folds, seed):
    """Each fold of a seeded stratified k-fold split of the labelled nodes predicted by the GNN trained, with
    the same seed and no validation nodes, on the graph whose labels of that fold are hidden."""
    labelled = np.flatnonzero(g.y.numpy() >= 0)
    y = g.y.numpy()[labelled].astype(int)
    out = np.full(g.num_nodes, np.nan)
    for _, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(labelled, y):
        hidden = g.y.clone()
        hidden[labelled[held]] = -1.0
        part = PopulationGraph(g.x, g.edge_index, g.edge_weight, hidden, g.patient_id)
        model, _ = train_population_gnn(part, cfg.model_copy(update={"val_fraction": 0.0}), seed)
        out[labelled[held]] = predict_proba(model, part)[labelled[held]]
    return out


def test_out_of_fold_predictions_match_the_reference_folds():
    """Also with ``val_fraction`` set: the fold GNNs fit every labelled node outside the fold."""
    g = _graph(n=30, labelled=list(range(24)))
    cfg = _cfg(epochs=2, val_fraction=0.25)
    oof = out_of_fold_predictions(g, cfg, folds=3, seed=2)
    np.testing.assert_array_equal(oof, _reference_out_of_fold(g, cfg, 3, 2))
    assert np.isfinite(oof[:24]).all() and np.isnan(oof[24:]).all()


def test_out_of_fold_predictions_of_the_unlabelled_nodes_are_the_fold_gnns_mean():
    g = _graph(n=30, labelled=list(range(24)))
    cfg = _cfg(epochs=2)
    default = out_of_fold_predictions(g, cfg, folds=3, seed=2)
    both = out_of_fold_predictions(g, cfg, folds=3, seed=2, unlabelled=True)
    np.testing.assert_array_equal(both[:24], default[:24])  # the labelled nodes: unchanged
    labelled = np.arange(24)
    y = g.y.numpy()[labelled].astype(int)
    folds = []
    for _, held in StratifiedKFold(3, shuffle=True, random_state=2).split(labelled, y):
        hidden = g.y.clone()
        hidden[labelled[held]] = -1.0
        part = PopulationGraph(g.x, g.edge_index, g.edge_weight, hidden, g.patient_id)
        model, _ = train_population_gnn(part, cfg, 2)
        folds.append(predict_proba(model, part)[24:])
    np.testing.assert_allclose(both[24:], np.mean(folds, axis=0), rtol=1e-6)
    assert np.ptp(np.array(folds), axis=0).max() > 0  # the folds differ: a single fold's would fail


def test_each_fold_graph_is_the_graph_with_the_folds_labels_hidden(monkeypatch):
    g = _graph(n=30, labelled=list(range(24)))
    calls = []
    real = train_module.train_population_gnn

    def spy(graph, config, seed=0, val_nodes=None):
        calls.append((graph, seed, val_nodes))
        return real(graph, config, seed, val_nodes=val_nodes)

    monkeypatch.setattr(train_module, "train_population_gnn", spy)
    out_of_fold_predictions(g, _cfg(epochs=1), folds=3, seed=4)
    assert len(calls) == 3
    held = []
    for part, seed, val_nodes in calls:
        assert seed == 4 and len(val_nodes) == 0
        assert torch.equal(part.x, g.x) and torch.equal(part.edge_index, g.edge_index)
        assert torch.equal(part.edge_weight, g.edge_weight)
        assert part.patient_id == g.patient_id
        changed = np.flatnonzero((part.y != g.y).numpy())
        assert (part.y[changed] == -1.0).all() and (g.y[changed] >= 0).all()
        assert (g.y[changed] == 1).sum() in (2, 3)  # stratified: 8 mutants over 3 folds
        held.append(changed)
    assert sorted(np.concatenate(held).tolist()) == list(range(24))  # every labelled node held out once


def test_out_of_fold_predictions_default_seed_and_determinism():
    g = _graph(n=24)
    cfg = _cfg(epochs=1)
    default = out_of_fold_predictions(g, cfg, folds=2)
    assert np.array_equal(default, out_of_fold_predictions(g, cfg, folds=2, seed=0))
    assert np.array_equal(default, out_of_fold_predictions(g, cfg, folds=2))
    assert not np.array_equal(default, out_of_fold_predictions(g, cfg, folds=2, seed=1))


def test_folds_need_that_many_labelled_nodes_of_each_class():
    y = np.zeros(12)
    y[[0, 4, 8]] = 1  # 3 mutants
    g = _graph(n=12, y=y)
    oof = out_of_fold_predictions(g, _cfg(epochs=1), folds=3)
    assert np.isfinite(oof).all()
    with pytest.raises(ValueError, match=_exactly(
            "population_graph.threshold_folds=4 needs at least 4 labelled patients of each class")):
        out_of_fold_predictions(g, _cfg(epochs=1), folds=4)
    wild_type_only = _graph(n=12, y=np.zeros(12))
    with pytest.raises(ValueError, match=_exactly(
            "population_graph.threshold_folds=2 needs at least 2 labelled patients of each class")):
        out_of_fold_predictions(wild_type_only, _cfg(epochs=1), folds=2)


# --- insert_nodes ---


def _stored_graph(rng, n=10):
    feats = rng.normal(size=(n, 5))
    return build_population_graph(feats, feats, (np.arange(n) % 2).astype(float), [f"S{i}" for i in range(n)],
                                  "uT", "uT", 0.3, standardise=False), feats


@pytest.mark.parametrize("theta, ids", [(0.2, ["N0", "N1", "N2", "N3"]), (0.8, [7, 8, 9, 10])])
def test_inserted_nodes_get_eq8_edges_to_the_stored_nodes_only(theta, ids):
    rng = np.random.default_rng(3)
    g, stored = _stored_graph(rng)
    new = rng.normal(size=(4, 5))
    new[3] = stored[2] + 0.05 * rng.normal(size=5)  # one close to a stored patient: edges at both thresholds
    node_x = rng.normal(size=(4, 2))
    g = PopulationGraph(torch.as_tensor(rng.normal(size=(10, 2)), dtype=torch.float32), g.edge_index,
                        g.edge_weight, g.y, g.patient_id)
    out = insert_nodes(g, node_x, new, stored, theta, ids)

    e = g.edge_index.shape[1]
    assert torch.equal(out.edge_index[:, :e], g.edge_index) and torch.equal(out.edge_weight[:e], g.edge_weight)
    assert out.edge_weight.dtype == torch.float32 and out.edge_weight.shape == (out.edge_index.shape[1],)
    got = {(int(i), int(j)): float(w) for (i, j), w in zip(out.edge_index[:, e:].T, out.edge_weight[e:])}
    expected = {}
    for i in range(4):
        for j in range(10):
            r = np.corrcoef(new[i], stored[j])[0, 1]
            if r >= theta:
                expected[(10 + i, j)] = expected[(j, 10 + i)] = r
    assert len(got) == out.edge_index.shape[1] - e  # no pair twice
    assert got.keys() == expected.keys() and len(expected) > 0
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-5)

    assert out.x.dtype == torch.float32
    torch.testing.assert_close(out.x, torch.cat([g.x, torch.tensor(node_x, dtype=torch.float32)]))
    assert out.y.dtype == torch.float32 and torch.equal(out.y[:10], g.y) and (out.y[10:] == -1.0).all()
    assert out.patient_id == g.patient_id + [str(p) for p in ids] and out.num_nodes == 14


def test_the_threshold_of_inserted_edges_is_the_one_given():
    rng = np.random.default_rng(3)
    g, stored = _stored_graph(rng)
    new = rng.normal(size=(4, 5))
    counts = {t: insert_nodes(g, rng.normal(size=(4, 5)), new, stored, t, list("abcd")).edge_index.shape[1]
              for t in (0.2, 0.5, 0.8)}
    assert counts[0.2] > counts[0.5] > counts[0.8] >= g.edge_index.shape[1]


def test_validation_by_auc_needs_both_classes_among_the_validation_nodes():
    """An AUC of one class is undefined (NaN): no epoch could be chosen, so it is refused up front."""
    g = _graph(labelled=list(range(20)))
    y = g.y.numpy()
    one_class = np.flatnonzero(y[:20] == 0)[:3]
    with pytest.raises(ValueError, match=_exactly("population_graph.val_metric=auc needs validation nodes of both "
                                                  "classes")):
        train_population_gnn(g, _cfg(val_metric="auc"), val_nodes=one_class)
    train_population_gnn(g, _cfg(val_metric="bce", epochs=1), val_nodes=one_class)  # BCE is defined: fine
