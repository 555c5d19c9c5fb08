"""Phenotypic edge weights of the population graph (``population_graph.phenotype: age_sex``,
issue 16): w_ij = r_ij * (1 + [same sex] + [|age difference| < 2 years]) on the eq. 8 edges."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from gliotype.config.schema import PopulationGraphConfig
from gliotype.population_graph import build_population_graph
from gliotype.population_graph.graph import phenotype_factor, phenotypes_of


def _reference(edge_index, age, sex):
    """The formula, one edge at a time."""
    out = []
    for i, j in edge_index.T:
        f = 1.0
        if not (np.isnan(age[i]) or np.isnan(age[j])) and abs(age[i] - age[j]) < 2:
            f += 1
        if not (np.isnan(sex[i]) or np.isnan(sex[j])) and sex[i] == sex[j]:
            f += 1
        out.append(f)
    return np.array(out)


def test_the_factor_equals_a_loop_over_edges():
    rng = np.random.default_rng(0)
    n = 40
    age = rng.uniform(20, 30, n).round(1)
    age[[3, 17]] = np.nan
    sex = rng.integers(0, 2, n).astype(float)
    sex[[5, 17, 30]] = np.nan
    ei = np.array([(i, j) for i in range(n) for j in range(n) if i != j]).T
    f = phenotype_factor(ei, age, sex)
    np.testing.assert_array_equal(f, _reference(ei, age, sex))
    assert set(np.unique(f)) == {1.0, 2.0, 3.0}
    # exactly 2 years apart is not similar; no phenotype at all leaves the weights alone
    assert phenotype_factor(np.array([[0], [1]]), np.array([40.0, 42.0]), None)[0] == 1.0
    assert phenotype_factor(np.array([[0], [1]]), np.array([40.0, 41.9]), None)[0] == 2.0
    np.testing.assert_array_equal(phenotype_factor(ei), np.ones(ei.shape[1]))


def test_the_graph_keeps_the_eq8_edges_and_scales_their_weights():
    rng = np.random.default_rng(1)
    n = 30
    u_t, u_b = rng.normal(size=(n, 6)), rng.normal(size=(n, 5))
    labels = np.where(np.arange(n) < 20, rng.integers(0, 2, n), -1).astype(float)
    ids = [f"P{i}" for i in range(n)]
    pheno = {"age": rng.uniform(30, 36, n), "sex": rng.integers(0, 2, n).astype(float)}
    plain = build_population_graph(u_t, u_b, labels, ids, "uT", "uB", 0.2, reference=np.arange(20))
    weighted = build_population_graph(u_t, u_b, labels, ids, "uT", "uB", 0.2, reference=np.arange(20),
                                      phenotype="age_sex", phenotypes=pheno)
    assert plain.edge_index.shape[1] > 20
    assert np.array_equal(plain.edge_index.numpy(), weighted.edge_index.numpy())
    factor = _reference(plain.edge_index.numpy(), pheno["age"], pheno["sex"])
    np.testing.assert_allclose(weighted.edge_weight.numpy(), plain.edge_weight.numpy() * factor, rtol=1e-6)
    assert (factor > 1).any() and (factor == 1).any()
    np.testing.assert_array_equal(weighted.x.numpy(), plain.x.numpy())
    with pytest.raises(ValueError, match="phenotype"):
        build_population_graph(u_t, u_b, labels, ids, phenotype="site")


def test_phenotypes_come_from_the_manifest_rows():
    rows = pd.DataFrame({"patient_id": ["A", "B", "C"], "age": [50.0, None, 61.5], "sex": ["F", "M", np.nan]})
    p = phenotypes_of(rows, ["C", "A", "Z"])
    np.testing.assert_array_equal(p["age"], [61.5, 50.0, np.nan])
    np.testing.assert_array_equal(p["sex"], [np.nan, 0.0, np.nan])
    none = phenotypes_of(rows.drop(columns="sex"), ["A"])
    assert np.isnan(none["sex"]).all() and none["age"][0] == 50.0


def test_the_row_key_sees_phenotypes_only_when_they_are_used():
    from gliotype import __version__
    from gliotype.population_graph.store import row_key

    rng = np.random.default_rng(2)
    u_t, u_b, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), np.array([0, 1, 0, 1, 0, 1.0])
    train, ids = np.arange(6) < 4, [f"P{i}" for i in range(6)]
    a = {"age": np.arange(6.0), "sex": np.zeros(6)}
    b = {"age": np.arange(6.0) + 5, "sex": np.zeros(6)}
    off = PopulationGraphConfig()
    on = PopulationGraphConfig(phenotype="age_sex")
    assert row_key(u_t, u_b, y, train, ids, off, 0, "uT", "uB", a) == row_key(u_t, u_b, y, train, ids, off, 0,
                                                                             "uT", "uB", b)
    assert row_key(u_t, u_b, y, train, ids, on, 0, "uT", "uB", a) != row_key(u_t, u_b, y, train, ids, on, 0,
                                                                            "uT", "uB", b)
    assert row_key(u_t, u_b, y, train, ids, on, 0, "uT", "uB", a) != row_key(u_t, u_b, y, train, ids, off, 0,
                                                                            "uT", "uB", a)
    # with the options off, the key is the one rows stored before the options (phenotype, threshold_transfer,
    # neighbours, max_neighbours, candidates, sampling, fanout) exist under
    h = hashlib.sha256()
    for arr in (u_t, u_b, y, train):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    options = off.model_dump(mode="json")
    for later in ("phenotype", "threshold_transfer", "neighbours", "max_neighbours", "candidates", "sampling",
                  "fanout"):
        del options[later]
    h.update(json.dumps([ids, options, 0, "uT", "uB", __version__], sort_keys=True).encode())
    assert row_key(u_t, u_b, y, train, ids, off, 0, "uT", "uB") == h.hexdigest()[:20]


def test_table2_rows_use_the_phenotypes_when_on(caplog):
    import logging

    from gliotype.config import load_config
    from gliotype.experiment.tables import population_graph_models

    rng = np.random.default_rng(3)
    n = 24
    u_t, u_b = rng.normal(size=(n, 4)), rng.normal(size=(n, 3))
    y, train = np.tile([0.0, 1.0], n // 2), np.arange(n) < 16
    ids = [f"P{i}" for i in range(n)]
    pheno = {"age": rng.uniform(40, 46, n), "sex": np.full(n, np.nan)}
    cfg = load_config("tiny", overrides=["population_graph.epochs=1", "population_graph.theta=0.2"]).population_graph
    on = cfg.model_copy(update={"phenotype": "age_sex"})
    (plain,) = population_graph_models(u_t, u_b, y, train, ids, cfg, rows=[("uT", "uB")], phenotypes=pheno)
    (weighted,) = population_graph_models(u_t, u_b, y, train, ids, on, rows=[("uT", "uB")], phenotypes=pheno)
    g0, g1 = plain.artifacts["graph"], weighted.artifacts["graph"]
    factor = _reference(g0.edge_index.numpy(), pheno["age"], pheno["sex"])
    np.testing.assert_allclose(g1.edge_weight.numpy(), g0.edge_weight.numpy() * factor, rtol=1e-6)
    with caplog.at_level(logging.INFO, logger="gliotype"):
        (same,) = population_graph_models(u_t, u_b, y, train, ids, on, rows=[("uT", "uB")])
    assert "no patient of the graph has an age or a sex" in caplog.text
    np.testing.assert_array_equal(same.artifacts["graph"].edge_weight.numpy(), g0.edge_weight.numpy())
