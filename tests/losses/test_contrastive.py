"""Each loss equals a direct Python loop over its printed equation."""

import math

import pytest
import torch

from gliotype.losses import bilevel_contrastive_loss, cross_modal_contrastive


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def _loop_item(a, b, i, tau, form):
    """l_i = -log( exp(S(a_i, b_i)/tau) / sum_{j != i (or all j)} exp(S(a_i, b_j)/tau) )."""
    num = math.exp(_cos(a[i], b[i]) / tau)
    den = sum(math.exp(_cos(a[i], b[j]) / tau) for j in range(len(a)) if form == "infonce" or j != i)
    return -math.log(num / den)


def _loop_eq1(zm, zf, tau, form):
    """Eq. 1: L_edge = 1/M sum_n l_n over the M tracts of the minibatch."""
    return sum(_loop_item(zm, zf, n, tau, form) for n in range(len(zm))) / len(zm)


def _loop_eq7(zi, zp, zt, zb, tau, lam, form):
    """Eq. 7 from eqs. 4-6, patient by patient."""
    total = 0.0
    for i in range(len(zi)):
        l_i2p = _loop_item(zi, zp, i, tau, form)
        l_p2i = _loop_item(zp, zi, i, tau, form)
        l_b2t = _loop_item(zb, zt, i, tau, form)
        total += lam * (l_p2i + l_i2p) / 2 + (1 - lam) * l_b2t
    return total / len(zi)


@pytest.mark.parametrize("n, d, tau", [(2, 3, 0.1), (5, 16, 0.1), (9, 8, 0.5), (20, 128, 1.0)])
@pytest.mark.parametrize("form", ["printed", "infonce"])
def test_eq1_matches_the_loop(n, d, tau, form):
    g = torch.Generator().manual_seed(n * d)
    zm, zf = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    got = cross_modal_contrastive(zm, zf, tau, form).mean()
    assert float(got) == pytest.approx(_loop_eq1(zm, zf, tau, form), rel=1e-9)


@pytest.mark.parametrize("n, tau, lam", [(2, 0.1, 0.8), (6, 0.1, 0.8), (7, 0.3, 0.0), (11, 0.05, 1.0), (20, 0.2, 0.5)])
@pytest.mark.parametrize("form", ["printed", "infonce"])
def test_eq7_matches_the_loop(n, tau, lam, form):
    g = torch.Generator().manual_seed(n)
    zs = [torch.randn(n, 12, generator=g, dtype=torch.float64) for _ in range(4)]
    got = bilevel_contrastive_loss(*zs, temperature=tau, lam=lam, form=form)
    assert float(got) == pytest.approx(_loop_eq7(*zs, tau, lam, form), rel=1e-9)


def test_printed_form_is_infonce_without_the_positive():
    """l_printed = l_infonce + log(1 - softmax_ii) (the positive removed from the denominator)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    printed = cross_modal_contrastive(a, b, 0.1, "printed")
    infonce = cross_modal_contrastive(a, b, 0.1, "infonce")
    p_ii = torch.exp(-infonce)
    torch.testing.assert_close(printed, infonce + torch.log1p(-p_ii), rtol=1e-4, atol=1e-4)


def test_aligned_pairs_give_lower_loss_than_shuffled():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 16, generator=g)
    aligned = bilevel_contrastive_loss(z, z + 0.01, z, z + 0.01)
    shuffled = bilevel_contrastive_loss(z, z.roll(1, 0), z, z.roll(2, 0))
    assert aligned < shuffled


def test_gradients_flow_to_every_input():
    zs = [torch.randn(5, 8, requires_grad=True) for _ in range(4)]
    bilevel_contrastive_loss(*zs, lam=0.8).backward()
    assert all(z.grad is not None and z.grad.abs().sum() > 0 for z in zs)


def test_lambda_one_ignores_the_brain_level():
    zs = [torch.randn(5, 8, requires_grad=True) for _ in range(4)]
    bilevel_contrastive_loss(*zs, lam=1.0).backward()
    assert zs[2].grad.abs().sum() == 0 and zs[3].grad.abs().sum() == 0


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.randn(1, 4), torch.randn(1, 4)), "at least 2"),
        ((torch.randn(3, 4), torch.randn(2, 4)), "must both be"),
    ],
)
def test_bad_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        cross_modal_contrastive(*args)


def test_lambda_out_of_range():
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match="lam"):
        bilevel_contrastive_loss(z, z, z, z, lam=1.5)


def test_the_functions_default_to_the_papers_tau():
    """Section 4.3: tau = 0.1, the contrastive config's default; the loss functions' defaults agree
    (a caller of the Python API gets the paper's loss without passing it)."""
    import inspect

    from gliotype.config.schema import ContrastiveConfig
    from gliotype.losses.contrastive import bilevel_contrastive_loss, cross_modal_contrastive

    assert ContrastiveConfig().temperature == 0.1
    for fn in (cross_modal_contrastive, bilevel_contrastive_loss):
        assert inspect.signature(fn).parameters["temperature"].default == 0.1, fn.__name__
