"""A population graph for large cohorts: capped and approximate eq. 8 neighbours, insertion through
the index, mini-batch logits on a batch's block (docs/scale-out.md)."""

import numpy as np
import pytest
import torch

from gliotype.config import load_config
from gliotype.config.schema import PopulationGraphConfig
from gliotype.errors import GliotypeError
from gliotype.population_graph import (
    PopulationGNN,
    build_population_graph,
    correlation_edges,
    insert_nodes,
    train_population_gnn,
)
from gliotype.population_graph.graph import _row_standardise
from gliotype.population_graph.minibatch import NeighbourSampler, batch_forward, block_proba
from gliotype.population_graph.neighbours import (
    StoredNeighbours,
    build_index,
    edge_recall,
    neighbour_edges,
)

THETA = 0.5


def _clustered(n, d=32, clusters=6, seed=0, noise=0.7):
    """Patients drawn around a few centres, so many pairs have r >= theta (like encoder features)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    return centres[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, d))


def _pairs(ei, w=None):
    return {(int(i), int(j)): (None if w is None else float(x)) for (i, j), x in
            zip(np.asarray(ei).T, np.zeros(np.asarray(ei).shape[1]) if w is None else w)}


@pytest.fixture(scope="module")
def cohort():
    return _clustered(500)


# --- the default: the paper's graph ---


def test_the_defaults_give_the_exact_graph_byte_for_byte(cohort):
    config = PopulationGraphConfig()
    assert (config.neighbours, config.max_neighbours, config.candidates, config.sampling, config.fanout) == \
        ("exact", 0, 0, "full", [])
    ei, w = correlation_edges(cohort, THETA)
    got_ei, got_w = neighbour_edges(cohort, THETA)
    assert got_ei.dtype == ei.dtype and got_w.dtype == w.dtype
    assert got_ei.tobytes() == ei.tobytes() and got_w.tobytes() == w.tobytes()
    g = build_population_graph(cohort[:, :16], cohort[:, 16:], np.zeros(500), [str(i) for i in range(500)],
                               "uT_uB", "uT_uB", THETA, standardise=False)
    assert torch.equal(g.edge_index, torch.as_tensor(ei)) and torch.equal(g.edge_weight, torch.as_tensor(w))


# --- the cap ---


@pytest.mark.parametrize("k", [1, 4, 10])
def test_each_patient_keeps_its_k_highest_r_and_an_edge_stays_when_either_end_keeps_it(k):
    x = _clustered(120, d=16, seed=1)
    z = _row_standardise(x)
    r = z @ z.T
    np.fill_diagonal(r, -np.inf)
    kept = set()
    for i in range(len(x)):
        top = [j for j in np.argsort(-r[i], kind="stable")[:k] if r[i, j] >= THETA]
        kept |= {(i, int(j)) for j in top}
    expected = kept | {(j, i) for i, j in kept}
    ei, w = neighbour_edges(x, THETA, "exact", k)
    got = _pairs(ei, w)
    assert set(got) == expected
    assert all(abs(got[(i, j)] - r[i, j]) < 1e-6 for i, j in got)
    assert all(got[(i, j)] == got[(j, i)] for i, j in got)  # one weight per pair
    assert np.all(np.diff(ei[0] * len(x) + ei[1]) > 0)  # sorted by (row, column), no duplicates
    degree = np.bincount(ei[0], minlength=len(x))
    assert np.all(degree >= np.minimum(k, (r >= THETA).sum(1)))
    assert degree.max() > k or k >= 10  # a patient kept by others has more than k edges


def test_a_cap_above_every_degree_is_the_exact_graph(cohort):
    ei, w = correlation_edges(cohort, THETA)
    capped, cw = neighbour_edges(cohort, THETA, "exact", len(cohort))
    assert np.array_equal(capped, ei)
    np.testing.assert_allclose(cw, w, rtol=0, atol=1e-6)


# --- ann ---


def test_ann_finds_the_true_edges_with_their_exact_weights(cohort):
    exact_ei, exact_w = neighbour_edges(cohort, THETA, "exact", 10)
    ann_ei, ann_w = neighbour_edges(cohort, THETA, "ann", 10)
    score = edge_recall(exact_ei, ann_ei, len(cohort))
    assert score["recall"] >= 0.95 and score["reference_edges"] > 4000
    # every ann edge is an eq. 8 pair (r >= theta) with the exact weight
    every = _pairs(*correlation_edges(cohort, THETA))
    assert all((i, j) in every for i, j in _pairs(ann_ei))
    np.testing.assert_allclose(ann_w, [every[p] for p in _pairs(ann_ei)], rtol=0, atol=1e-6)
    # without a cap: every eq. 8 pair among the candidates, and nothing else
    uncapped, _ = neighbour_edges(cohort, THETA, "ann", 0, 400)
    assert edge_recall(correlation_edges(cohort, THETA)[0], uncapped, len(cohort))["precision"] == 1.0
    assert edge_recall(correlation_edges(cohort, THETA)[0], uncapped, len(cohort))["recall"] >= 0.95


def test_edge_recall_counts_found_and_missed_edges():
    ref = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
    got = np.array([[0, 1, 3], [1, 0, 0]])
    assert edge_recall(ref, got) == {"recall": 0.5, "precision": pytest.approx(2 / 3), "reference_edges": 4,
                                     "found_edges": 3}


def test_the_index_and_the_ann_graph_are_deterministic(cohort):
    import faiss

    z = _row_standardise(cohort)
    a, b = faiss.serialize_index(build_index(z)), faiss.serialize_index(build_index(z))
    assert np.array_equal(a, b)
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        one = neighbour_edges(cohort, THETA, "ann", 5)
        faiss.omp_set_num_threads(2)
        two = neighbour_edges(cohort, THETA, "ann", 5)
    finally:
        faiss.omp_set_num_threads(threads)
    assert one[0].tobytes() == two[0].tobytes() and one[1].tobytes() == two[1].tobytes()
    assert faiss.omp_get_max_threads() == threads  # the build's one thread is given back


# --- inserting a new patient ---


@pytest.mark.parametrize("k", [3, 8])
def test_an_inserted_patient_gets_the_edges_of_the_graph_rebuilt_with_it(k):
    """Exact scan with a cap: the new patient keeps its k highest r, a stored patient keeps the new one
    when it beats its own k-th edge; the index (ann) gives the same edges on a small cohort."""
    x = _clustered(300, seed=3)
    new = _clustered(330, seed=3)[300:]  # from the same clusters
    ei, w = neighbour_edges(x, THETA, "exact", k)
    exact = StoredNeighbours.of(x, ei, w, THETA, "exact", k)
    # the same stored graph, the new patient's candidates from the index: the stored patients that keep
    # it beyond its own k must be among them, so this small cohort searches 60
    ann = StoredNeighbours.of(x, ei, w, THETA, "ann", k, candidates=60)
    accepted_by_stored = 0
    for m, patient in enumerate(new):
        rebuilt, rw = neighbour_edges(np.concatenate([x, patient[None]]), THETA, "exact", k)
        expected = rebuilt[1][rebuilt[0] == len(x)]
        got, gw = exact.link(patient[None])
        assert np.array_equal(got[1], expected), m
        assert np.all(got[0] == 0)
        np.testing.assert_allclose(gw, rw[rebuilt[0] == len(x)], rtol=0, atol=1e-6)
        via_index, iw = ann.link(patient[None])
        assert np.array_equal(via_index, got) and np.array_equal(iw, gw)
        accepted_by_stored += len(expected) > k
    assert accepted_by_stored > 0  # some stored patients kept a new one beyond its own k
    # several new patients at once: each linked to the stored ones only
    both, _ = ann.link(new[:2])
    one, _ = ann.link(new[1:2])
    assert np.array_equal(both[:, both[0] == 1][1], one[1])


def test_insertion_into_a_subgraph_links_only_its_nodes():
    x = _clustered(200, seed=4)
    patient = _clustered(201, seed=4)[200:]
    ei, w = neighbour_edges(x, THETA, "exact", 5)
    keep = np.sort(np.random.default_rng(0).choice(200, 150, replace=False))
    for kind in ("exact", "ann"):
        stored = StoredNeighbours.of(x, ei, w, THETA, kind, 5, candidates=40 if kind == "ann" else 0)
        got, gw = stored.subset(keep).link(patient)
        # the same as the neighbours of the subgraph itself (kth edges among the kept nodes only)
        import torch_geometric.utils as pyg

        sub, sw = pyg.subgraph(torch.as_tensor(keep), torch.as_tensor(ei), torch.as_tensor(w), relabel_nodes=True,
                               num_nodes=200)
        expected, ew = StoredNeighbours.of(x[keep], sub.numpy(), sw.numpy(), THETA, "exact", 5).link(patient)
        assert np.array_equal(got, expected) and len(got[1]) >= 5
        np.testing.assert_allclose(gw, ew, rtol=0, atol=1e-6)


def test_insert_nodes_uses_the_stored_neighbours():
    x = _clustered(100, d=8, seed=5)
    new = _clustered(102, d=8, seed=5)[100:]
    ei, w = neighbour_edges(x, THETA, "ann", 4)
    g = build_population_graph(x[:, :4], x[:, 4:], np.zeros(100), [str(i) for i in range(100)], "uT_uB", "uT_uB",
                               THETA, standardise=False, neighbours="ann", max_neighbours=4)
    assert torch.equal(g.edge_index, torch.as_tensor(ei))
    stored = StoredNeighbours.of(x, ei, w, THETA, "ann", 4)
    full = insert_nodes(g, new, new, None, THETA, ["a", "b"], neighbours=stored)
    link, lw = stored.link(new)
    added = full.edge_index[:, g.edge_index.shape[1]:].numpy()
    e = link.shape[1]
    assert np.array_equal(added[:, :e], np.stack([link[0] + 100, link[1]]))
    assert np.array_equal(added[:, e:], np.stack([link[1], link[0] + 100]))
    assert torch.equal(full.edge_weight[g.edge_index.shape[1]:], torch.as_tensor(np.concatenate([lw, lw])))
    assert full.patient_id[-2:] == ["a", "b"] and full.num_nodes == 102


# --- mini-batch logits ---


@pytest.fixture(scope="module")
def big_graph():
    x = _clustered(400, d=24, seed=6)
    y = (np.arange(400) % 2).astype(float)
    y[300:] = -1
    return build_population_graph(x[:, :12], x[:, 12:], y, [str(i) for i in range(400)], "uT_uB", "uT_uB",
                                  THETA, neighbours="ann", max_neighbours=6)


@pytest.mark.parametrize("residual", [False, True])
def test_a_batchs_block_gives_the_full_graph_logits_of_its_seeds(big_graph, residual):
    g = big_graph
    torch.manual_seed(0)
    model = PopulationGNN(g.x.shape[1], [16, 16, 8], residual=residual).eval()
    full = model(g.x, g.edge_index, g.edge_weight)
    seeds = torch.tensor([3, 150, 17, 299])
    sampler = NeighbourSampler(g, hops=3)
    nodes, _, _, rows = sampler.block(seeds)
    assert len(nodes) < g.num_nodes and torch.equal(nodes[rows], seeds)
    torch.testing.assert_close(sampler.logits(model, seeds), full[seeds], rtol=0, atol=1e-5)
    # one hop fewer than layers is not enough: the block must reach len(gat) hops
    assert (NeighbourSampler(g, hops=2).logits(model, seeds) - full[seeds]).abs().max() > 1e-3
    torch.testing.assert_close(block_proba(model, g, seeds), torch.sigmoid(full[seeds]), rtol=0, atol=1e-6)


def test_a_fanout_bounds_the_block_and_follows_its_seed(big_graph):
    g = big_graph
    seeds = torch.tensor([0, 1, 2, 3, 4])
    a = NeighbourSampler(g, 2, [3, 2], seed=1).block(seeds)
    b = NeighbourSampler(g, 2, [3, 2], seed=1).block(seeds)
    c = NeighbourSampler(g, 2, [3, 2], seed=2).block(seeds)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[1], c[1])
    nodes, edge_index, _, _ = a
    assert len(nodes) <= 5 + 5 * 3 + 5 * 3 * 2
    in_degree = torch.bincount(edge_index[1], minlength=len(nodes))
    assert in_degree.max() <= 3


def test_neighbour_sampling_trains_like_the_full_graph(big_graph):
    """No fanout and no dropout: each step's loss and gradient are those of the full-graph forward."""
    config = PopulationGraphConfig(gat=[8, 8], epochs=3, batch_size=25, lr=0.01)
    full_model, full_history = train_population_gnn(big_graph, config, seed=3)
    sampled = config.model_copy(update={"sampling": "neighbour"})
    model, history = train_population_gnn(big_graph, sampled, seed=3)
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in full_history], rel=1e-5)
    for p, q in zip(model.parameters(), full_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    forward = batch_forward(model, big_graph, sampled)
    out = forward(torch.tensor([5, 9]))
    assert out.shape == (big_graph.num_nodes,) and torch.count_nonzero(out[torch.tensor([0, 1, 2])]) == 0


# --- configuration and cache keys ---


@pytest.mark.parametrize("overrides, message", [
    (["population_graph.neighbours=ann", "population_graph.max_neighbours=0"],
     "needs max_neighbours > 0 or candidates > 0"),
    (["population_graph.candidates=20"], "set neighbours: ann"),
    (["population_graph.neighbours=ann", "population_graph.max_neighbours=10", "population_graph.candidates=5"],
     "must be at least max_neighbours"),
    (["population_graph.fanout=[5, 5, 5, 5]"], "set sampling: neighbour"),
    (["population_graph.sampling=neighbour", "population_graph.fanout=[5, 5]"], "one count >= 0 per GAT layer"),
    (["population_graph.max_neighbours=-1"], "max_neighbours"),
])
def test_invalid_neighbour_options_are_one_line_errors(overrides, message):
    with pytest.raises(GliotypeError, match=message.replace("(", r"\(")):
        load_config("cpu", overrides=overrides)


def test_ann_with_candidates_only_or_a_cap_is_valid():
    assert load_config("cpu", overrides=["population_graph.neighbours=ann",
                                         "population_graph.candidates=32"]).population_graph.candidates == 32
    pg = load_config("cpu", overrides=["population_graph.neighbours=ann", "population_graph.max_neighbours=8",
                                       "population_graph.sampling=neighbour",
                                       "population_graph.fanout=[4, 4, 4, 4]"]).population_graph
    assert (pg.neighbours, pg.max_neighbours, pg.fanout) == ("ann", 8, [4, 4, 4, 4])


def test_the_row_key_sees_the_neighbour_options():
    from gliotype.population_graph.store import row_key

    rng = np.random.default_rng(2)
    u_t, u_b, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), np.array([0, 1, 0, 1, 0, 1.0])
    args = (u_t, u_b, y, np.arange(6) < 4, [f"P{i}" for i in range(6)])
    keys = {row_key(*args, PopulationGraphConfig(**options), 0, "uT", "uB") for options in (
        {}, {"max_neighbours": 5}, {"neighbours": "ann", "max_neighbours": 5},
        {"neighbours": "ann", "max_neighbours": 5, "candidates": 20}, {"sampling": "neighbour"},
        {"sampling": "neighbour", "fanout": [3, 3, 3, 3]})}
    assert len(keys) == 6


def test_the_benchmark_reports_every_column_on_a_small_cohort():
    """benchmarks/bench_population_graph.py runs for minutes at 100,000 patients: its code must not
    break unnoticed."""
    import argparse
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_population_graph.py"
    spec = importlib.util.spec_from_file_location("bench_population_graph", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(dim=8, intrinsic=4, k=5, theta=0.5, batch_size=10, fanout=[3, 3, 3, 3], steps=2,
                              full_max=1000, threads=1)
    row = bench.one(300, "ann", args)
    assert row["edges"] > 0 and row["knn_recall"] >= 0.9 and row["edge_recall"] >= 0.9
    assert all(row[c] > 0 for c in ("build_s", "step_s", "epoch_s", "full_step_s", "forward_s", "insert_ms"))
