"""The population-graph GNN itself (section 3.4, Fig. 5): what its edge weights, dropout, root
term and stored sizes do (survivors of the mutation run of issue 13)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gliotype.population_graph import PopulationGNN


def _graph(n=12, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    src = torch.arange(n).repeat_interleave(3)
    dst = (src + torch.tensor([1, 2, 5]).repeat(n)) % n
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    weight = torch.rand(edge_index.shape[1], generator=g) * 0.5 + 0.5
    return x, edge_index, weight


def _model(**kw):
    torch.manual_seed(0)
    return PopulationGNN(5, [6, 6], **kw).eval()


def test_the_edge_weights_r_reach_the_attention():
    """Eq. 8's r is GATConv's one-dimensional edge attribute: other weights, other logits, and other
    than a graph without weights (no edge term in the attention)."""
    x, ei, w = _graph()
    model = _model()
    with torch.no_grad():
        out = model(x, ei, w)
        assert out.shape == (12,)
        assert not torch.allclose(out, model(x, ei, w.flip(0)), atol=1e-6)
        assert not torch.allclose(out, model(x, ei, None), atol=1e-6)


def test_one_node_gives_one_logit():
    x, _, _ = _graph(n=1)
    with torch.no_grad():
        out = _model()(x, torch.zeros(2, 0, dtype=torch.long), torch.zeros(0))
    assert out.shape == (1,)


def test_the_defaults_are_the_papers_reading():
    """No dropout and no root term unless asked (the `paper` preset)."""
    model = PopulationGNN(5, [6])
    assert model.dropout == 0.0 and model.residual is False
    assert all(conv.res is None for conv in model.convs)
    assert all(conv.heads == 1 for conv in model.convs)
    assert repr(model) == "PopulationGNN(5, hidden=[6])"
    root = PopulationGNN(5, [6], residual=True)
    assert all(conv.res is not None for conv in root.convs)
    assert repr(root) == "PopulationGNN(5, hidden=[6], residual)"
    x, ei, w = _graph()
    model.train()
    assert torch.equal(model(x, ei, w), model(x, ei, w))  # no dropout: training mode is deterministic


def test_dropout_acts_on_the_input_and_every_layer_output():
    """Training mode equals a reference forward pass that draws the same dropout masks: the input
    features, the attention coefficients (inside GATConv) and each layer's output."""
    x, ei, w = _graph()
    model = _model(dropout=0.3, residual=True).train()
    torch.manual_seed(5)
    out = model(x, ei, w)
    torch.manual_seed(5)
    h = F.dropout(x, 0.3, True)
    for conv in model.convs:
        h = F.dropout(F.elu(conv(h, ei, w.view(-1, 1))), 0.3, True)
    assert torch.equal(out, model.classifier(h).squeeze(-1))
    model.eval()
    assert torch.equal(model(x, ei, w), model(x, ei, w))


def test_sizes_rebuild_the_same_network():
    """What the stored JSON holds rebuilds a network that takes the weights and predicts the same."""
    for kw in ({}, {"dropout": 0.5, "residual": True}):
        model = _model(**kw)
        sizes = model.sizes()
        assert sizes == {"in_channels": 5, "gat": [6, 6], "dropout": kw.get("dropout", 0.0),
                         "residual": kw.get("residual", False)}
        again = PopulationGNN.from_sizes(sizes)
        assert again.sizes() == sizes and repr(again) == repr(model)
        again.load_state_dict(model.state_dict())
        x, ei, w = _graph()
        with torch.no_grad():
            assert torch.equal(again.eval()(x, ei, w), model(x, ei, w))
