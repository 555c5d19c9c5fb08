"""f_B options: edge-conditioned convolutions, residual/norm/jumping knowledge, eq. 2 modes."""

import pytest
import torch
from torch_geometric.utils import scatter

from gliotype.config import load_config
from gliotype.encoders.brain_network_encoder import BrainNetworkEncoder
from gliotype.encoders.over_smoothing import edge_attention_effect, layer_spread_ratios, spread_ratio
from gliotype.errors import GliotypeError
from gliotype.multimodal.model import MultiModalNet

CONVS = ["gat", "gatv2", "gine", "transformer"]
MODES = ["multiply", "message", "log_attention"]


def _modes(conv):
    return [m for m in MODES if not (conv == "gine" and m == "log_attention")]


def _small(n_graphs=2, nodes=7, seed=0, features=4, edge_dim=3):
    g = torch.Generator().manual_seed(seed)
    pairs = torch.combinations(torch.arange(nodes), 2).T
    ei = torch.cat([pairs + k * nodes for k in range(n_graphs)], dim=1)
    x = torch.randn(n_graphs * nodes, features, generator=g)
    ea = torch.randn(ei.shape[1], edge_dim, generator=g)
    return x, ei, ea, torch.arange(n_graphs).repeat_interleave(nodes)


def _brain_graph(seed=0, nodes=90, tracts=2309, dim=16):
    """The size of the real network: 90 regions, ~2,300 tracts (mean degree ~51), 16-d codes."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.combinations(torch.arange(nodes), 2).T
    ei = pairs[:, torch.randperm(pairs.shape[1], generator=g)[:tracts]]
    return torch.randn(nodes, dim, generator=g), ei, torch.randn(tracts, dim, generator=g)


def _encoder(gat=(8, 8), seed=0, in_channels=4, edge_dim=3, **kw):
    torch.manual_seed(seed)
    return BrainNetworkEncoder(in_channels, edge_dim, gat=list(gat), fc=[16, 5], attention_head=[4, 8, 6], **kw).eval()


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize(
    "extra",
    [{}, {"residual": True, "norm": "layer"}, {"residual": True, "norm": "graph", "jumping_knowledge": "max"},
     {"norm": "layer", "jumping_knowledge": "cat"}],
)
def test_every_option_builds_and_every_parameter_gets_a_gradient(conv, extra):
    x, ei, ea, batch = _small()
    for mode in _modes(conv):
        model = _encoder(gat=(8, 6, 6), conv=conv, edge_attention_mode=mode, **extra).train()
        tumor = torch.randn(2, 6, generator=torch.Generator().manual_seed(1))
        weight = torch.rand(ei.shape[1], generator=torch.Generator().manual_seed(2)) + 0.5
        out = model(x, ei, ea, batch, weight, tumor)
        assert out.features.shape == (2, 5)
        assert out.node_embeddings.shape == (14, model.embedding_dim)
        out.features.pow(2).sum().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, f"{conv}/{mode}/{extra}: no gradient for {missing}"


def test_jumping_knowledge_combines_every_layer():
    x, ei, ea, _ = _small(n_graphs=1)
    assert _encoder(gat=(8, 6, 6)).embedding_dim == 6
    cat = _encoder(gat=(8, 6, 6), jumping_knowledge="cat")
    top = _encoder(gat=(8, 6, 6), jumping_knowledge="max")
    assert (cat.embedding_dim, top.embedding_dim) == (20, 6)
    with torch.no_grad():
        layers = cat.embed_layers(x, ei, ea)
        torch.testing.assert_close(cat.embed(x, ei, ea), torch.cat(layers, dim=-1))
        layers = top.embed_layers(x, ei, ea)
        want = torch.stack([top.jk_maps[0](layers[0]), layers[1], layers[2]]).max(0).values
        torch.testing.assert_close(top.embed(x, ei, ea), want)


@pytest.mark.parametrize("conv, in_messages", [("gat", False), ("gatv2", False), ("gine", True), ("transformer", True)])
def test_edge_features_reach_the_messages_of_edge_conditioned_convolutions(conv, in_messages):
    """Equal nodes: an attention layer averages identical messages W x_j whatever the tract;
    GINE and TransformerConv put the tract's features into the message."""
    x, ei, ea, _ = _small(n_graphs=1)
    x = x[:1].repeat(len(x), 1)
    model = _encoder(gat=(8,), conv=conv)
    with torch.no_grad():
        a = model.embed(x, ei, ea)
        b = model.embed(x, ei, 3 * torch.randn(ea.shape, generator=torch.Generator().manual_seed(5)))
    assert (not torch.allclose(a, b, atol=1e-5)) == in_messages


def test_residual_keeps_the_nodes_apart():
    """Six layers of the paper's GAT on a 90-node, 2,309-tract graph collapse every node to
    the mean; a residual path (with layer norm) keeps them apart."""
    x, ei, ea = _brain_graph()
    sizes = (64, 128, 128, 256, 256, 256)
    plain = layer_spread_ratios(_encoder(sizes, in_channels=16, edge_dim=16), x, ei, ea)
    skip = layer_spread_ratios(_encoder(sizes, in_channels=16, edge_dim=16, residual=True, norm="layer"), x, ei, ea)
    assert len(plain) == len(skip) == 6
    assert plain[-1] < 0.01 and all(b < a for a, b in zip(plain, plain[1:]))
    assert skip[-1] > 0.1


@pytest.mark.parametrize("norm", ["layer", "graph"])
def test_norm_keeps_the_sum_aggregation_of_gine_bounded(norm):
    """GINE sums ~51 messages per node: without normalisation the embeddings grow about
    tenfold per layer on the real network's density; a norm between layers holds them."""
    x, ei, ea = _brain_graph()
    sizes = (32, 64, 64, 64)
    with torch.no_grad():
        plain = _encoder(sizes, in_channels=16, edge_dim=16, conv="gine").embed_layers(x, ei, ea)
        normed = _encoder(sizes, in_channels=16, edge_dim=16, conv="gine", norm=norm).embed_layers(x, ei, ea)
    size = [float(h.norm(dim=1).mean()) for h in plain]
    assert size[-2] > 1000
    assert all(float(h.norm(dim=1).mean()) < 30 for h in normed[:-1])  # the normalised layers


def test_spread_ratio_by_hand():
    h = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    got = spread_ratio(h, torch.tensor([0, 0, 1, 1]))
    torch.testing.assert_close(got, torch.tensor([1.0 / 2.0, 0.0]))


def _reference_attention_layer(conv, x, ei, ea, w, mode):
    """Hand loop for a single-head GAT layer: out_i = sum_j alpha'_ij W x_j + b over the
    incoming edges (both directions of every tract, then a self-loop of weight 1)."""
    ei2 = torch.cat([ei, ei.flip(0)], dim=1)
    ea2 = torch.cat([ea, ea])
    with torch.no_grad():
        _, (loops, alpha) = conv(x, ei2, ea2, return_attention_weights=True)
        h = conv.lin(x)
        w_all = torch.cat([w, w, torch.ones(loops.shape[1] - 2 * len(w))])
        out = torch.zeros(len(x), h.shape[1])
        for i in range(len(x)):
            into = (loops[1] == i).nonzero().flatten()
            a = alpha[into, 0]
            if mode == "message":
                a = a * w_all[into]
            else:  # softmax(logit + log w)
                a = a * w_all[into] / (a * w_all[into]).sum()
            out[i] = (a.unsqueeze(-1) * h[loops[0, into]]).sum(0)
        return out + conv.bias


@pytest.mark.parametrize("mode", ["message", "log_attention"])
def test_edge_attention_modes_match_a_hand_loop(mode):
    x, ei, ea, _ = _small(n_graphs=1)
    w = torch.rand(ei.shape[1], generator=torch.Generator().manual_seed(3)) * 3
    model = _encoder(gat=(5,), edge_attention_mode=mode)
    with torch.no_grad():
        got = model.embed(x, ei, ea, w)
    want = _reference_attention_layer(model.convs[0], x, ei, ea, w, mode)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_log_attention_matches_a_hand_loop_for_transformer_conv():
    """TransformerConv: out_i = W_r x_i + sum_j alpha'_ij (W_v x_j + W_e e_ij), alpha' = softmax(logit + log w)."""
    x, ei, ea, _ = _small(n_graphs=1)
    w = torch.rand(ei.shape[1], generator=torch.Generator().manual_seed(3)) * 3
    model = _encoder(gat=(5,), conv="transformer", edge_attention_mode="log_attention")
    conv = model.convs[0]
    ei2, ea2, w2 = torch.cat([ei, ei.flip(0)], 1), torch.cat([ea, ea]), torch.cat([w, w])
    with torch.no_grad():
        got = model.embed(x, ei, ea, w)
        q, k, v, e = conv.lin_query(x), conv.lin_key(x), conv.lin_value(x), conv.lin_edge(ea2)
        want = conv.lin_skip(x).clone()
        for i in range(len(x)):
            into = (ei2[1] == i).nonzero().flatten()
            j = ei2[0, into]
            logit = (q[i] * (k[j] + e[into])).sum(-1) / 5 ** 0.5 + w2[into].log()
            want[i] += (logit.softmax(0).unsqueeze(-1) * (v[j] + e[into])).sum(0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("conv", CONVS)
def test_in_message_mode_more_attention_means_more_influence(conv):
    """A tract's influence (how far its a^E moves the aggregated messages of its target node
    from a^E = 0, where the tract is silent) grows strictly with a^E, for every convolution."""
    x, ei, ea, _ = _small(n_graphs=1)
    model = _encoder(gat=(8,), conv=conv, edge_attention_mode="message")
    conv_layer = model.convs[0]
    captured = {}
    handle = conv_layer.register_aggregate_forward_hook(lambda m, i, out: captured.__setitem__("agg", out.detach()))

    def aggregated(t, value):
        w = torch.ones(ei.shape[1])
        w[t] = value
        with torch.no_grad():
            model.embed(x, ei, ea, w)
        return captured["agg"][ei[1, t]]

    def influence(t, value):
        return float((aggregated(t, value) - aggregated(t, 0.0)).norm())

    t = next(t for t in range(ei.shape[1]) if influence(t, 1.0) > 1e-4)  # a GINE message can be all zero
    curve = [influence(t, v) for v in (0.25, 0.5, 1.0, 2.0, 3.0, 5.0)]
    handle.remove()
    assert all(b > a + 1e-6 for a, b in zip(curve, curve[1:])), curve


def test_log_attention_gives_a_tract_a_growing_share_of_attention():
    """With log_attention a tract's post-softmax attention rises with its a^E (GAT, one layer)."""
    x, ei, ea, _ = _small(n_graphs=1)
    model = _encoder(gat=(8,), edge_attention_mode="log_attention")
    conv = model.convs[0]
    captured = {}
    handle = conv.register_edge_update_forward_hook(lambda m, i, out: captured.__setitem__("alpha", out.detach()))
    t = 4
    shares = []
    for value in (0.25, 0.5, 1.0, 2.0, 4.0):
        w = torch.ones(ei.shape[1])
        w[t] = value
        with torch.no_grad():
            model.embed(x, ei, ea, w)
        shares.append(float(captured["alpha"][t, 0]))
    handle.remove()
    assert all(b > a for a, b in zip(shares, shares[1:])), shares


@pytest.mark.parametrize("conv", CONVS)
def test_unit_tract_attention_changes_nothing_in_every_mode(conv):
    x, ei, ea, _ = _small(n_graphs=1)
    for mode in _modes(conv):
        model = _encoder(conv=conv, edge_attention_mode=mode)
        with torch.no_grad():
            plain = model.embed(x, ei, ea)
            ones = model.embed(x, ei, ea, torch.ones(ei.shape[1]))
            other = model.embed(x, ei, ea, torch.linspace(0.2, 3.0, ei.shape[1]))
        torch.testing.assert_close(plain, ones, atol=1e-6, rtol=1e-6)
        assert not torch.allclose(plain, other, atol=1e-4), mode


def test_message_mode_moves_the_pooled_embedding_more_than_the_literal_reading():
    """a^E = 3 on every tract of one node: the pooled e^N of the paper's GAT moves more when
    a^E weights the messages than when it multiplies the z-scored edge attributes."""
    x, ei, ea = _brain_graph()
    sizes = (64, 128, 128, 256, 256, 256)
    literal = edge_attention_effect(_encoder(sizes, in_channels=16, edge_dim=16), x, ei, ea, node=17)
    message = edge_attention_effect(_encoder(sizes, in_channels=16, edge_dim=16, edge_attention_mode="message"),
                                    x, ei, ea, node=17)
    assert message > 2 * literal > 0


def test_the_modes_leave_other_graphs_of_a_batch_alone():
    x, ei, ea, batch = _small(n_graphs=2)
    for conv in CONVS:
        for mode in _modes(conv):
            model = _encoder(conv=conv, edge_attention_mode=mode, norm="graph", residual=True)
            w = torch.ones(ei.shape[1])
            with torch.no_grad():
                a = model.embed(x, ei, ea, w, batch)
                w[-1] = 4.0  # a tract of the second graph
                b = model.embed(x, ei, ea, w, batch)
            torch.testing.assert_close(a[:7], b[:7])
            assert not torch.allclose(a[7:], b[7:])


def test_self_loop_tracts_are_refused_where_the_weights_follow_message_order():
    x, ei, ea, _ = _small(n_graphs=1)
    ei = ei.clone()
    ei[1, 0] = ei[0, 0]
    with pytest.raises(ValueError, match="self-loop"):
        _encoder(edge_attention_mode="message").embed(x, ei, ea, torch.ones(ei.shape[1]))


def test_log_attention_needs_an_attention_convolution():
    with pytest.raises(ValueError, match="attention convolution"):
        _encoder(conv="gine", edge_attention_mode="log_attention")
    with pytest.raises(GliotypeError, match="log_attention"):
        load_config("tiny", overrides=["multimodal.brain_network.conv=gine",
                                       "multimodal.brain_network.edge_attention_mode=log_attention"])


def test_config_reaches_the_encoder_and_defaults_are_the_paper():
    paper = load_config("paper").multimodal.brain_network
    assert (paper.conv, paper.residual, paper.norm, paper.jumping_knowledge, paper.edge_attention_mode) == (
        "gat", False, "none", "none", "multiply")
    cfg = load_config("tiny", overrides=["multimodal.brain_network.conv=transformer",
                                         "multimodal.brain_network.residual=true",
                                         "multimodal.brain_network.norm=graph",
                                         "multimodal.brain_network.jumping_knowledge=cat",
                                         "multimodal.brain_network.edge_attention_mode=message"])
    net = MultiModalNet(cfg.multimodal, crop_size=(16, 16, 16))
    f_b = net.brain_network
    assert type(f_b.convs[0]).__name__ == "TransformerConv" and f_b.skips is not None
    assert type(f_b.norms[0]).__name__ == "GraphNorm" and f_b.jk is not None
    assert f_b.edge_attention_mode == "message"
    assert f_b.embedding_dim == sum(cfg.multimodal.brain_network.gat)


def test_batched_graphs_pool_per_graph():
    x, ei, ea, batch = _small(n_graphs=2)
    model = _encoder(conv="gine", residual=True, norm="graph", edge_attention_mode="message")
    with torch.no_grad():
        e = model.embed(x, ei, ea, None, batch)
        pooled = model(x, ei, ea, batch)
    torch.testing.assert_close(pooled.features, model.head(scatter(e, batch, dim=0, reduce="mean")))
