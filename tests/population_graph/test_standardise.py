"""The population graph's feature scaling, row correlation and validation split, against written-out
references (survivors of the mutation run: `tools/mutation.py --only "population graph"`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gliotype.population_graph.graph import PopulationGraph, _row_standardise, column_stats, standardise_columns
from gliotype.population_graph.train import validation_nodes


def test_columns_are_z_scored_with_the_training_rows_statistics():
    rng = np.random.default_rng(0)
    train = rng.normal([3.0, -2.0, 0.5], [4.0, 0.3, 2.0], size=(40, 3))
    other = rng.normal(size=(7, 3))
    mean, sd = train.mean(axis=0), np.sqrt(((train - train.mean(axis=0)) ** 2).mean(axis=0))  # population SD
    m, s = column_stats(train)
    np.testing.assert_allclose(m, mean)
    np.testing.assert_allclose(s, sd)
    a, b = standardise_columns(train, other)
    np.testing.assert_allclose(a, (train - mean) / sd)
    np.testing.assert_allclose(b, (other - mean) / sd)
    np.testing.assert_allclose(a.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(a.std(axis=0), 1)


def test_a_constant_or_nearly_constant_column_keeps_its_scale():
    """A constant column gets SD 1 (centred only); a column of SD 0.5 is divided by 0.5, not kept."""
    train = np.column_stack([np.full(6, 7.0), np.array([0, 1, 0, 1, 0, 1], dtype=np.int64)])
    m, s = column_stats(train)
    assert s.dtype == np.float64 and s.shape == (2,)
    np.testing.assert_allclose(m, [7.0, 0.5])
    np.testing.assert_allclose(s, [1.0, 0.5])
    (a,) = standardise_columns(train)
    np.testing.assert_allclose(a, np.column_stack([np.zeros(6), [-1, 1, -1, 1, -1, 1]]))


def test_rows_become_unit_vectors_whose_dot_products_are_pearson_correlations():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 8))
    z = _row_standardise(x)
    np.testing.assert_allclose(z @ z.T, np.corrcoef(x), atol=1e-12)
    flat = _row_standardise(np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(flat[0], [0.0, 0.0, 0.0])  # a constant row correlates with nothing
    np.testing.assert_allclose(np.linalg.norm(flat[1]), 1.0)


def _graph(y) -> PopulationGraph:
    n = len(y)
    return PopulationGraph(torch.zeros(n, 2), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0),
                           torch.as_tensor(np.asarray(y, dtype=np.float32)), [f"P{i}" for i in range(n)])


def test_validation_nodes_are_a_stratified_seeded_part_of_the_labelled_nodes():
    y = [0] * 12 + [1] * 8 + [-1] * 5  # 20 labelled, 5 test nodes
    val = validation_nodes(_graph(y), 0.25, seed=3)
    assert val.dtype == np.int64 and len(val) == 5 and list(val) == sorted(val)
    assert all(y[i] >= 0 for i in val)  # never a test node
    assert sorted(np.bincount([y[i] for i in val], minlength=2)) == [2, 3]  # 3 wild-type, 2 mutant
    assert list(validation_nodes(_graph(y), 0.25, seed=3)) == list(val)
    assert any(list(validation_nodes(_graph(y), 0.25, seed=s)) != list(val) for s in range(4, 10))
    none = validation_nodes(_graph(y), 0.0)
    assert none.dtype == np.int64 and none.shape == (0,)


def test_validation_needs_two_of_each_class_and_two_in_each_part():
    assert len(validation_nodes(_graph([0, 0, 1, 1, 0, 1, 0, 1]), 0.25)) == 2  # 2 held out, 6 fitted: allowed
    assert len(validation_nodes(_graph([0, 0, 1, 1]), 0.5)) == 2  # the smallest: 2 and 2
    with pytest.raises(ValueError, match="there are 3 wild-type and 1 mutant"):
        validation_nodes(_graph([0, 0, 0, 1]), 0.5)
    with pytest.raises(ValueError, match="val_fraction=0.1"):
        validation_nodes(_graph([0, 0, 1, 1, 0, 1, 0, 1]), 0.1)  # 1 held out
    with pytest.raises(ValueError, match="val_fraction=0.9"):
        validation_nodes(_graph([0, 0, 1, 1, 0, 1, 0, 1]), 0.9)  # 1 left to fit
