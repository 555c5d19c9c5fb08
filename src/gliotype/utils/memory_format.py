"""The memory layout of a 3D CNN's stem: its first convolution computes in channels-last layout on
the CPU (docs/design.md point 58).

The stem of every 3D CNN gliotype trains (f_I's first block, the ResNet and DenseNet baselines'
first convolution) reads x_I: few channels (4-8) on the largest grid. oneDNN's weight gradient of
such a convolution is slow in PyTorch's default (channels-first) layout and six times faster in
channels-last (measured on one thread: f_I's 8 -> 16 convolution on a batch of 10 x 40^3,
182 -> 31 ms; with the ResNet baseline's 7^3 stem, whose weight gradient took 253 ms, its whole
step 388 -> 195 ms). Only the stem changes layout: the rest of each network, whose batch norm and
pooling are slower in channels-last, stays channels-first, so the stem's input is copied to
channels-last and its output back. The numbers are the same within float rounding (the sums run in
another order), so :data:`STEM_KEY` is in the key of every network trained this
way, and a network or checkpoint of the earlier layout is never reused or resumed. On other devices
(cuDNN) nothing changes.
"""

from __future__ import annotations

import torch
from torch import nn

#: In the key of every network with a channels-last stem (f_I, its pretraining, the CNN baselines).
STEM_KEY = "-stem-cl"

_CHANNELS_LAST = torch.channels_last_3d


def _to_channels_last(module: nn.Module, args: tuple) -> tuple | None:
    x = args[0]
    if x.device.type != "cpu" or x.dim() != 5:
        return None
    return (x.contiguous(memory_format=_CHANNELS_LAST), *args[1:])


def _to_contiguous(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.contiguous()


def channels_last_stem(conv: nn.Conv3d) -> nn.Conv3d:
    """``conv`` (a network's first 3D convolution) computing in channels-last layout on the CPU, its
    output in the default layout; the same module (weights, names, state dict), with two hooks."""
    if not isinstance(conv, nn.Conv3d):
        raise TypeError(f"channels_last_stem takes a Conv3d, got {type(conv).__name__}")
    conv.register_forward_pre_hook(_to_channels_last)
    conv.register_forward_hook(_to_contiguous)
    return conv


__all__ = ["STEM_KEY", "channels_last_stem"]
