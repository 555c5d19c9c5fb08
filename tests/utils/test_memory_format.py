"""The channels-last stem of the 3D CNNs (gliotype.utils.memory_format, docs/design.md point 58): the
stem convolution of f_I and of both CNN baselines reads its input in channels-last layout and gives the
rest of the network the default layout, with the numbers of the default layout within float rounding;
every network trained this way has the stem in its key, so one trained before is never resumed."""

import pytest
import torch
from torch import nn

from gliotype.config import load_config
from gliotype.encoders.image_encoder import ImageEncoder
from gliotype.evaluation.baselines import cnn_model
from gliotype.multimodal.pretrain import pretraining_key
from gliotype.multimodal.stage import model_key
from gliotype.utils.memory_format import STEM_KEY, channels_last_stem

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
    (lambda: ImageEncoder(8, [4, 8, 8], [16, 8], (32, 32, 32), pool="avg"), "features.0.0"),
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


def test_every_network_trained_with_the_stem_has_it_in_its_key(tmp_path):
    config = load_config("tiny", overrides=["modalities.image_label_channels=true",
                                            "multimodal.image.pretrain_epochs=1"])
    assert model_key(tmp_path, config, ["P1", "P2"]).endswith(STEM_KEY)
    assert pretraining_key(tmp_path, config, ["P1", "P2"]).endswith(STEM_KEY)
