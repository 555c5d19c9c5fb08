"""A trained Table 2 row is cached under its key: reused byte for byte, retrained on any change."""

from __future__ import annotations

import numpy as np
import pytest

from gliotype.config import load_config
from gliotype.experiment.tables import population_graph_models
from gliotype.layout import RunDir
from gliotype.population_graph.store import load_row, row_key


@pytest.fixture()
def features():
    rng = np.random.default_rng(0)
    n = 24
    y = (np.arange(n) % 2).astype(float)
    u_t = rng.normal(size=(n, 6)) + y[:, None]
    u_b = rng.normal(size=(n, 4)) + 0.5 * y[:, None]
    train = np.arange(n) < 16
    return u_t, u_b, y, train, [f"P{i:02d}" for i in range(n)]


def test_a_stored_row_is_read_back_not_retrained(tmp_path, features):
    u_t, u_b, y, train, ids = features
    config = load_config("tiny", overrides=["population_graph.epochs=8"]).population_graph
    run = RunDir(tmp_path / "run")
    rows = [("uT_uB", "uB")]
    first = population_graph_models(u_t, u_b, y, train, ids, config, seed=3, rows=rows, store=run.graph_row)[0]
    folder = run.graph_row("uT_uB", "uB")
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.root.iterdir()}
    again = population_graph_models(u_t, u_b, y, train, ids, config, seed=3, rows=rows, store=run.graph_row)[0]
    assert {p.name: p.stat().st_mtime_ns for p in folder.root.iterdir()} == stamp  # nothing rewritten
    np.testing.assert_array_equal(again.p_train, first.p_train)
    np.testing.assert_array_equal(again.p_test, first.p_test)
    # the loaded GNN is the trained one: it re-predicts the stored probabilities
    from gliotype.population_graph import predict_proba

    np.testing.assert_array_equal(predict_proba(again.artifacts["model"], again.artifacts["graph"]),
                                  np.concatenate([first.p_train, first.p_test]))
    assert again.artifacts["history"] == first.artifacts["history"]
    # without a store the same row trains to the same numbers
    fresh = population_graph_models(u_t, u_b, y, train, ids, config, seed=3, rows=rows)[0]
    np.testing.assert_array_equal(fresh.p_test, first.p_test)


@pytest.mark.parametrize("change", ["features", "labels", "seed", "option", "row", "order"])
def test_the_key_changes_with_everything_the_row_depends_on(features, change):
    u_t, u_b, y, train, ids = features
    config = load_config("tiny").population_graph
    args = dict(u_t=u_t, u_b=u_b, y=y, train=train, ids=ids, config=config, seed=0, node="uT_uB", edge="uB")
    base = row_key(**args)
    if change == "features":
        args["u_b"] = u_b.copy()
        args["u_b"][0, 0] += 1e-9
    elif change == "labels":
        args["y"] = y[::-1].copy()
    elif change == "seed":
        args["seed"] = 1
    elif change == "option":
        args["config"] = config.model_copy(update={"theta": config.theta + 0.1})
    elif change == "row":
        args["edge"] = "uT"
    else:
        args["ids"] = ids[::-1]
    assert row_key(**args) != base


def test_a_row_stored_under_another_key_is_not_used(tmp_path, features):
    u_t, u_b, y, train, ids = features
    config = load_config("tiny", overrides=["population_graph.epochs=4"]).population_graph
    run = RunDir(tmp_path / "run")
    rows = [("uT_uB", "uB")]
    population_graph_models(u_t, u_b, y, train, ids, config, seed=0, rows=rows, store=run.graph_row)
    folder = run.graph_row("uT_uB", "uB")
    assert load_row(folder, "not-the-key") is None
    changed = config.model_copy(update={"epochs": 6})
    population_graph_models(u_t, u_b, y, train, ids, changed, seed=0, rows=rows, store=run.graph_row)
    assert load_row(folder, row_key(u_t, u_b, y, train, ids, changed, 0, "uT_uB", "uB")) is not None
    assert load_row(folder, row_key(u_t, u_b, y, train, ids, config, 0, "uT_uB", "uB")) is None


def test_a_rank_transfer_row_stores_the_fold_gnns_test_predictions(tmp_path, features):
    """``threshold_transfer: rank`` keeps the fold GNNs' mean P(mutant) of the unlabelled nodes with the
    row (read back, not retrained), under a key of its own; ``value`` keeps none."""
    u_t, u_b, y, train, ids = features
    value = load_config("tiny", overrides=["population_graph.epochs=4",
                                           "population_graph.threshold_folds=2"]).population_graph
    rank = value.model_copy(update={"threshold_transfer": "rank"})
    run = RunDir(tmp_path / "run")
    rows = [("uT_uB", "uB")]
    first = population_graph_models(u_t, u_b, y, train, ids, rank, seed=1, rows=rows, store=run.graph_row)[0]
    assert first.p_test_reference.shape == first.p_test.shape and np.isfinite(first.p_test_reference).all()
    assert not np.allclose(first.p_test_reference, first.p_test)  # two models' scales
    again = population_graph_models(u_t, u_b, y, train, ids, rank, seed=1, rows=rows, store=run.graph_row)[0]
    np.testing.assert_array_equal(again.p_test_reference, first.p_test_reference)
    np.testing.assert_array_equal(again.p_threshold, first.p_threshold)
    assert row_key(u_t, u_b, y, train, ids, value, 1, *rows[0]) != row_key(u_t, u_b, y, train, ids, rank, 1, *rows[0])
    plain = population_graph_models(u_t, u_b, y, train, ids, value, seed=1, rows=rows, store=run.graph_row)[0]
    assert plain.p_test_reference is None
    np.testing.assert_array_equal(plain.p_threshold, first.p_threshold)  # the same fold GNNs
