"""f_P's edge-conditioned convolution computed without per-edge weight matrices: PyTorch Geometric's
NNConv (the same parameters, the same function within float rounding) in forward and backward."""

import pytest
import torch
from torch import nn
from torch_geometric.nn import NNConv

from gliotype.encoders.edge_conditioned_conv import EdgeConditionedConv
from gliotype.encoders.mlp import MLP
from gliotype.encoders.point_cloud_encoder import PointCloudEncoder


def _pair(c_in, c_out, edge_net):
    torch.manual_seed(0)
    reference = NNConv(c_in, c_out, edge_net(), aggr="mean")
    fast = EdgeConditionedConv(c_in, c_out, edge_net(), aggr="mean")
    fast.load_state_dict(reference.state_dict())
    assert list(fast.state_dict()) == list(reference.state_dict())
    return reference, fast


@pytest.mark.parametrize("c_in, c_out", [(3, 4), (5, 7)])
@pytest.mark.parametrize("edge_net", [lambda c_in, c_out: MLP([2, 6, c_in * c_out]),
                                      lambda c_in, c_out: nn.Sequential(nn.Linear(2, c_in * c_out, bias=False))])
def test_the_messages_are_nnconvs_in_forward_and_backward(c_in, c_out, edge_net):
    reference, fast = _pair(c_in, c_out, lambda: edge_net(c_in, c_out))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, c_in, generator=g, dtype=torch.float64)
    edge_index = torch.randint(0, 30, (2, 120), generator=g)
    edge_attr = torch.rand(120, 2, generator=g, dtype=torch.float64)
    reference, fast = reference.double(), fast.double()
    xs = [x.clone().requires_grad_() for _ in range(2)]
    per_edge_matrices = []  # the edge network's last layer is the per-edge weight matrices: never run
    fast.nn[-1].register_forward_hook(lambda module, args, out: per_edge_matrices.append(out.shape))
    out_ref, out_fast = reference(xs[0], edge_index, edge_attr), fast(xs[1], edge_index, edge_attr)
    assert per_edge_matrices == []
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-12, atol=1e-12)
    w = torch.randn(out_ref.shape, generator=g, dtype=torch.float64)
    grads_ref = torch.autograd.grad((out_ref * w).sum(), [xs[0], *reference.parameters()])
    grads_fast = torch.autograd.grad((out_fast * w).sum(), [xs[1], *fast.parameters()])
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_another_edge_network_gets_nnconvs_own_messages():
    reference, fast = _pair(3, 2, lambda: nn.Sequential(nn.Linear(1, 6), nn.Tanh()))
    x, edge_index, edge_attr = torch.randn(8, 3), torch.randint(0, 8, (2, 20)), torch.rand(20, 1)
    torch.testing.assert_close(fast(x, edge_index, edge_attr), reference(x, edge_index, edge_attr), rtol=0, atol=0)


def test_f_p_convolves_with_it():
    encoder = PointCloudEncoder(3, channels=[4, 8], fc=[8], radii=[0.3, 0.5], fps_ratios=[0.5, 1.0])
    assert all(type(conv) is EdgeConditionedConv for conv in encoder.convs)
