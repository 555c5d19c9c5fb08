"""The channels-last stem of the 3D CNNs (gliotype.utils.memory_format, docs/design.md points 58-59): the
stem convolution of f_I and of both CNN baselines reads its input in channels-last layout and gives the
rest of the network the default layout, with the numbers of the default layout within float rounding;
f_I's first block with average pooling runs whole in channels-last, its pooling as sums over a view;
every network trained this way has the layouts in its key, so one trained before is never resumed."""

import pytest
import torch
from torch import nn

from gliotype.config import load_config
from gliotype.encoders.image_encoder import ImageEncoder
from gliotype.evaluation.baselines import cnn_model
from gliotype.multimodal.pretrain import pretraining_key
from gliotype.multimodal.stage import model_key
from gliotype.utils.memory_format import BLOCK_KEY, STEM_KEY, BlockAvgPool3d, channels_last_block, channels_last_stem

CL = torch.channels_last_3d


def _layouts(net: nn.Module, x: torch.Tensor) -> dict[str, tuple[bool, bool]]:
    """Per 3D convolution of ``net``: (its input is channels-last, its output is contiguous)."""
    seen = {}

    def hook(name):
        def record(module, args, output):
            seen[name] = (args[0].is_contiguous(memory_format=CL) and not args[0].is_contiguous(),
                          output.is_contiguous())
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if isinstance(m, nn.Conv3d)]
    net(x)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("make, stem", [
    (lambda: ImageEncoder(8, [4, 8, 8], [16, 8], (32, 32, 32), pool="max"), "features.0.0"),
    (lambda: cnn_model("resnet34", 8, 0.25), "conv1"),
    (lambda: cnn_model("densenet121", 8, 0.25), "features.conv0"),
])
def test_only_the_stem_of_each_cnn_reads_channels_last_and_gives_the_default_layout(make, stem):
    torch.manual_seed(0)
    layouts = _layouts(make(), torch.randn(2, 8, 32, 32, 32))
    assert layouts[stem] == (True, True)
    assert all(not cl for name, (cl, _) in layouts.items() if name != stem)


def test_the_stem_computes_the_default_layouts_numbers_within_rounding():
    torch.manual_seed(0)
    plain = nn.Conv3d(5, 4, 3, padding=1, bias=False)
    stem = channels_last_stem(nn.Conv3d(5, 4, 3, padding=1, bias=False))
    stem.load_state_dict(plain.state_dict())
    assert list(stem.state_dict()) == list(plain.state_dict())
    x = torch.randn(3, 5, 12, 12, 12)
    y_plain, y_stem = plain(x), stem(x)
    assert y_stem.is_contiguous()
    torch.testing.assert_close(y_stem, y_plain)
    grad = torch.randn_like(y_plain)
    (g_plain,) = torch.autograd.grad(y_plain, plain.weight, grad)
    (g_stem,) = torch.autograd.grad(y_stem, stem.weight, grad)
    torch.testing.assert_close(g_stem, g_plain, rtol=1e-4, atol=1e-3)  # sums of ~5,000 terms of size ~1
    with pytest.raises(TypeError, match="Conv3d"):
        channels_last_stem(nn.Linear(2, 2))


def _module_layouts(net: nn.Module, x: torch.Tensor) -> dict[str, tuple[bool, bool]]:
    """Per module of ``net``: (its output is in channels-last memory, its output is contiguous)."""
    seen = {}

    def hook(name):
        def record(module, args, output):
            seen[name] = (output.is_contiguous(memory_format=CL) and not output.is_contiguous(), output.is_contiguous())
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if n]
    net(x)
    for h in handles:
        h.remove()
    return seen


def test_f_i_first_average_pooling_block_runs_whole_in_channels_last_and_gives_the_default_layout():
    torch.manual_seed(0)
    net = ImageEncoder(8, [4, 8, 8], [16, 8], (32, 32, 32), pool="avg")
    assert isinstance(net.features[0][3], BlockAvgPool3d) and type(net.features[1][3]) is nn.AvgPool3d
    layouts = _module_layouts(net, torch.randn(2, 8, 32, 32, 32))
    for inside in ("features.0.0", "features.0.1", "features.0.2", "features.0.3"):
        assert layouts[inside][0], inside
    assert layouts["features.0"] == (False, True)
    assert not any(cl for name, (cl, _) in layouts.items() if not name.startswith("features.0."))


def test_the_channels_last_block_computes_the_default_layouts_numbers_within_rounding():
    torch.manual_seed(0)
    plain = ImageEncoder(5, [4, 8], [8], (12, 12, 12), pool="avg")
    fast = ImageEncoder(5, [4, 8], [8], (12, 12, 12), pool="avg")
    for block in plain.features:  # the plain layers, without hooks
        block._forward_pre_hooks.clear(), block._forward_hooks.clear()
        block[0]._forward_pre_hooks.clear(), block[0]._forward_hooks.clear()
        block[3] = nn.AvgPool3d(2)
    fast.load_state_dict(plain.state_dict())
    assert list(fast.state_dict()) == list(plain.state_dict())
    x = torch.randn(3, 5, 12, 12, 12)
    y_plain, y_fast = plain(x), fast(x)
    torch.testing.assert_close(y_fast, y_plain)
    g_plain = torch.autograd.grad(y_plain.square().sum(), list(plain.parameters()))
    g_fast = torch.autograd.grad(y_fast.square().sum(), list(fast.parameters()))
    for a, b in zip(g_fast, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, layout, fast", [((2, 3, 6, 4, 8), CL, True), ((2, 3, 6, 4, 8), torch.contiguous_format,
                                                   False), ((2, 3, 5, 4, 8), CL, False)])
def test_block_average_pooling_is_avg_pool3d_and_falls_back_on_other_inputs(shape, layout, fast):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    y, ref = BlockAvgPool3d(2)(x), torch.nn.functional.avg_pool3d(x, 2)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    assert y.is_contiguous(memory_format=CL) == (fast and not y.is_contiguous())
    grad = torch.randn_like(ref)
    (g,), (g_ref,) = torch.autograd.grad(y, x, grad), torch.autograd.grad(ref, x, grad)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=0)
    assert torch.autograd.gradcheck(BlockAvgPool3d(2), (x,))


def test_a_block_with_max_pooling_gets_only_the_stem():
    block = channels_last_block(nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
                                              nn.MaxPool3d(2)))
    assert type(block[3]) is nn.MaxPool3d and not block._forward_hooks and block[0]._forward_hooks
    odd = channels_last_block(nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
                                            nn.AvgPool3d(3)))
    assert type(odd[3]) is nn.AvgPool3d and not odd._forward_hooks


def test_every_network_trained_with_the_stem_has_it_in_its_key(tmp_path):
    config = load_config("tiny", overrides=["modalities.image_label_channels=true",
                                            "multimodal.image.pretrain_epochs=1"])
    assert model_key(tmp_path, config, ["P1", "P2"]).endswith(STEM_KEY + BLOCK_KEY)
    assert pretraining_key(tmp_path, config, ["P1", "P2"]).endswith(STEM_KEY + BLOCK_KEY)
