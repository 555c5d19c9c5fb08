"""GNNExplainer on the brain-network branch and the cohort edge density (sections 4.5, 5.4; Fig. 8)."""

import numpy as np
import pandas as pd
import pytest
import torch
from multimodal_items import T, make_items, make_model
from scipy.stats import mannwhitneyu
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import MessagePassing

from gliotype.interpretation import (
    BrainNetworkScore,
    cohort_edge_summary,
    edge_density,
    explain_edges,
    explain_graph_edges,
    important_edges,
)
from gliotype.multimodal.data import collate

EPOCHS = 60


def test_score_reproduces_the_model_logit(model, batch):
    score = BrainNetworkScore(model, batch)
    with torch.no_grad():
        expected = model(batch).logit
        got = score(batch.node_x, batch.edge_index, batch.edge_attr)
    torch.testing.assert_close(got, expected)
    assert score.edge_weight is not None and score.tumor_latent is not None  # hierarchical attention held fixed


def test_edge_probabilities_are_per_tract_in_unit_range_and_seeded(batch):
    model = make_model()
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = explain_edges(model, batch, epochs=EPOCHS, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    assert a.shape == (T,) and a.dtype == np.float32
    assert np.all((a >= 0) & (a <= 1)) and np.ptp(a) > 0
    assert np.array_equal(a, explain_edges(model, batch, epochs=EPOCHS, seed=0))
    assert not np.array_equal(a, explain_edges(model, batch, epochs=EPOCHS, seed=1))
    averaged = explain_edges(model, batch, epochs=EPOCHS, seed=0, runs=2)
    b = explain_edges(model, batch, epochs=EPOCHS, seed=1)
    np.testing.assert_allclose(averaged, (a + b) / 2, atol=1e-6)
    # the model is left as it was: no gradients, no explain state on its GATConv layers
    assert all(p.grad is None for p in model.parameters())
    for conv in model.brain_network.convs:
        assert conv.explain is None and "explain_message" not in conv.__dict__


def test_brain_network_only_model_accepts_pyg_data():
    model = make_model("multimodal.encoders=[brain_network]")
    item = make_items(1)[0]
    data = Data(x=item["node_x"], edge_index=item["edge_index"], edge_attr=item["edge_attr"])
    probs = explain_edges(model, data, epochs=20, seed=0)
    assert probs.shape == (T,)


def test_one_patient_at_a_time(model):
    with pytest.raises(ValueError, match="one patient"):
        explain_edges(model, collate(make_items(2)), epochs=5)


def test_important_edges_keep_probabilities_strictly_above_the_threshold():
    probs = np.array([0.2, 0.5, 0.51, 0.9, 0.49999])
    np.testing.assert_array_equal(important_edges(probs), [2, 3])
    np.testing.assert_array_equal(important_edges(probs, 0.1), [0, 1, 2, 3, 4])
    assert edge_density(probs) == pytest.approx(0.4)
    assert edge_density(np.zeros(4)) == 0.0


class _Sum(MessagePassing):
    def __init__(self):
        super().__init__(aggr="add")

    def forward(self, x, edge_index):
        return self.propagate(edge_index, x=x)

    def message(self, x_j):
        return x_j


class _Toy(nn.Module):
    """Only node 0 carries a signal: the logit depends on the messages of edge (0, 1) alone."""

    def __init__(self, both_directions):
        super().__init__()
        self.conv, self.both = _Sum(), both_directions

    def forward(self, x, edge_index):
        if self.both:
            edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
        return (4 * self.conv(x, edge_index).sum() - 2).view(1)


@pytest.mark.parametrize("both", [False, True])
def test_the_only_informative_edge_gets_the_highest_probability(both):
    x = torch.zeros(6, 1)
    x[0] = 1.0
    edge_index = torch.tensor([[2, 0, 4, 3], [3, 1, 5, 5]])  # edge 1 = (0 -> 1)
    probs = explain_graph_edges(_Toy(both), x, edge_index, epochs=100, seed=0, both_directions=both)
    assert probs.shape == (4,)
    assert probs[1] > 0.5 and probs[1] > np.delete(probs, 1).max()
    np.testing.assert_array_equal(important_edges(probs), [1])


def test_cohort_summary_compares_the_idh_groups():
    n = 4
    per_patient = {
        "W1": np.array([0.9, 0.8, 0.1, 0.2]),  # density 0.5
        "W2": np.array([0.9, 0.8, 0.7, 0.2]),  # 0.75
        "W3": np.array([0.9, 0.8, 0.7, 0.6]),  # 1.0
        "M1": np.array([0.1, 0.2, 0.3, 0.5]),  # 0.0 (0.5 is not kept)
        "M2": np.array([0.1, 0.2, 0.3, 0.9]),  # 0.25
        "U1": np.array([0.9, 0.9, 0.9, 0.9]),  # unlabelled
    }
    labels = {"W1": 0, "W2": 0.0, "W3": 0, "M1": 1, "M2": 1.0, "U1": float("nan")}
    s = cohort_edge_summary(per_patient, labels)
    p = s.patients.set_index("patient_id")
    assert list(p.index) == list(per_patient)
    np.testing.assert_allclose(p["density"], [0.5, 0.75, 1.0, 0.0, 0.25, 1.0])
    assert (p["n_edges"] == n).all() and p.loc["W2", "n_important"] == 3
    assert np.isnan(p.loc["U1", "idh"])
    g = s.groups.set_index("group")
    assert g.loc["wild-type", "n"] == 3 and g.loc["mutant", "n"] == 2
    assert g.loc["wild-type", "mean_density"] == pytest.approx(0.75)
    assert g.loc["mutant", "mean_density"] == pytest.approx(0.125)
    ref = mannwhitneyu([0.5, 0.75, 1.0], [0.0, 0.25], alternative="two-sided")
    assert s.u_statistic == pytest.approx(ref.statistic) and s.p_value == pytest.approx(ref.pvalue)
    one_group = cohort_edge_summary({"W1": per_patient["W1"]}, {"W1": 0})
    assert np.isnan(one_group.p_value) and isinstance(one_group.patients, pd.DataFrame)
