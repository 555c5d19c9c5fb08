"""Edge homophily of population graphs, against a hand count and a Python loop."""

from __future__ import annotations

import numpy as np
import pytest

from gliotype.audit import edge_homophily, random_pair_homophily, table1_homophily
from gliotype.config.schema import PopulationGraphConfig
from gliotype.population_graph import TABLE1, TABLE1_NAMES, correlation_edges


def _loop_homophily(edge_index, y):
    same = total = 0
    for a, b in zip(*edge_index):
        if y[a] >= 0 and y[b] >= 0:
            total += 1
            same += y[a] == y[b]
    return same / total


def test_edge_homophily_on_a_hand_made_graph():
    # path 0-1-2-3-4 (both directions) and a chord 0-4; node 4 unlabelled
    pairs = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)]
    a, b = np.array(pairs).T
    edge_index = np.stack([np.r_[a, b], np.r_[b, a]])
    y = np.array([0, 0, 1, 1, -1])
    # labelled edges: 0-1 same, 1-2 different, 2-3 same -> 2 of 3
    assert edge_homophily(edge_index, y) == pytest.approx(2 / 3, abs=1e-6)
    assert edge_homophily(edge_index, np.array([0, 0, 1, 1, np.nan])) == pytest.approx(2 / 3, abs=1e-6)
    assert np.isnan(edge_homophily(edge_index, np.array([0, -1, 1, -1, -1])))  # no labelled edge
    # random pairs of 4 labelled nodes, 2 per class: 2 * (2 * 1) / (4 * 3) = 1/3
    assert random_pair_homophily(y) == pytest.approx(1 / 3)
    assert random_pair_homophily(np.array([1, 1, 1, 0, -1])) == pytest.approx((3 * 2) / (4 * 3))


def test_edge_homophily_matches_a_loop_on_a_random_graph():
    rng = np.random.default_rng(1)
    edge_index = rng.integers(0, 30, size=(2, 200))
    y = rng.integers(-1, 2, size=30)
    assert edge_homophily(edge_index, y) == pytest.approx(_loop_homophily(edge_index, y), abs=1e-6)


def test_table1_homophily_follows_the_graph_the_features_build():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(10), np.ones(10), -np.ones(6)]
    centre = np.where(y[:, None] == 1, 1.0, -1.0) * np.linspace(-2, 2, 8)[None]
    u_t = centre + 0.3 * rng.normal(size=(26, 8))  # u_T groups patients by label
    u_b = rng.normal(size=(26, 8))  # u_B does not
    df = table1_homophily(u_t, u_b, y)
    assert df["graph"].tolist() == [TABLE1_NAMES[r] for r in TABLE1]
    rows = df.set_index("graph")
    assert rows.loc["uB, r(uT)", "homophily"] > 0.95
    assert rows.loc["uT, r(uB)", "homophily"] < 0.75
    assert np.allclose(df["random_pairs"], 2 * 10 * 9 / (20 * 19))
    # edges are those of eq. 8 on the features z-scored with the labelled rows' statistics
    labelled = y >= 0
    z = (u_t - u_t[labelled].mean(0)) / u_t[labelled].std(0)
    ei, _ = correlation_edges(z, 0.5)
    assert rows.loc["uB, r(uT)", "edges"] == ei.shape[1] // 2
    assert rows.loc["uB, r(uT)", "homophily"] == pytest.approx(_loop_homophily(ei, y), abs=1e-6)


def test_table1_homophily_measures_the_capped_graph_the_run_trains():
    """With ``population_graph.max_neighbours`` the audit counts the capped eq. 8 graph, not every pair."""
    from gliotype.population_graph.neighbours import neighbour_edges

    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(15), np.ones(15), -np.ones(10)]
    u_t = rng.normal(size=(40, 6)) + np.where(y[:, None] == 1, 0.8, 0.0)
    u_b = rng.normal(size=(40, 6))
    full = table1_homophily(u_t, u_b, y, PopulationGraphConfig(theta=0.0)).set_index("graph")
    capped = table1_homophily(u_t, u_b, y, PopulationGraphConfig(theta=0.0, max_neighbours=3)).set_index("graph")
    labelled = y >= 0
    z = (u_t - u_t[labelled].mean(0)) / u_t[labelled].std(0)
    ei, _ = neighbour_edges(z, 0.0, "exact", 3, 0)
    assert capped.loc["uB, r(uT)", "edges"] == ei.shape[1] // 2 < full.loc["uB, r(uT)", "edges"]
    assert capped.loc["uB, r(uT)", "homophily"] == pytest.approx(_loop_homophily(ei, y), abs=1e-6)
