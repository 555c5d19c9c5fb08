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

f_I's first block with average pooling goes further (:func:`channels_last_block`): convolution,
batch norm and ReLU all in channels-last, the 2^3 average pooling as sums over a view of that memory
(:class:`BlockAvgPool3d`: PyTorch's own ``avg_pool3d`` is 4 times slower in channels-last), and only
the pooled output, an eighth of the size, copied back. On one thread that block's forward and
backward on a batch of 10 x 8 x 40^3 took 300-314 ms with the stem alone in channels-last and
210-235 ms so; :data:`BLOCK_KEY` is in the key of every network with such an f_I.
"""

from __future__ import annotations

import torch
from torch import nn

#: In the key of every network with a channels-last stem (f_I, its pretraining, the CNN baselines).
STEM_KEY = "-stem-cl"
#: In the key of every network whose f_I's first block runs in channels-last (:func:`channels_last_block`).
BLOCK_KEY = "-block-cl"
#: f_I's layouts, in the key of its pretraining and of every multi-modal network.
IMAGE_ENCODER_KEY = STEM_KEY + BLOCK_KEY

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


def channels_last_block(block: nn.Sequential) -> nn.Sequential:
    """A first block ``Conv3d -> BatchNorm3d -> ReLU -> AvgPool3d(2)`` computing in channels-last layout
    on the CPU, its output in the default layout: the pooling becomes a :class:`BlockAvgPool3d` (no
    weights: the state dict is the same), the block gets two hooks. Any other block (max pooling) gets
    its convolution's :func:`channels_last_stem` only."""
    pool = block[-1]
    if not (type(pool) is nn.AvgPool3d and _pairs(pool)):
        channels_last_stem(block[0])
        return block
    block[-1] = BlockAvgPool3d(2)
    block.register_forward_pre_hook(_to_channels_last)
    block.register_forward_hook(_to_contiguous)
    return block


class BlockAvgPool3d(nn.AvgPool3d):
    """``nn.AvgPool3d(2)`` whose channels-last input, with even sizes, is pooled as sums of a view of
    its memory (a tensor in channels-last memory out, gradient likewise); any other input goes to
    ``avg_pool3d``. The same numbers within float rounding (the 8 terms are added in another order)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5 and x.is_contiguous(memory_format=_CHANNELS_LAST) and not any(s % 2 for s in x.shape[2:]):
            return _BlockMean.apply(x)
        return super().forward(x)


class _BlockMean(torch.autograd.Function):
    """The mean of each 2 x 2 x 2 block of a channels-last ``(N, C, D, H, W)``: three pairwise sums over
    a ``(N, D/2, 2, H/2, 2, W/2, 2, C)`` view of its memory, D first; the gradient is the output's
    gradient / 8 spread over each block, in channels-last memory."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = x.shape
        ctx.shape = x.shape
        v = x.permute(0, 2, 3, 4, 1).reshape(n, d // 2, 2, h // 2, 2, w // 2, 2, c)  # a view of its memory
        v = v[:, :, 0] + v[:, :, 1]
        v = v[:, :, :, 0] + v[:, :, :, 1]
        v = (v[:, :, :, :, 0] + v[:, :, :, :, 1]) * 0.125
        return v.permute(0, 4, 1, 2, 3)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = ctx.shape
        g = (grad * 0.125).permute(0, 2, 3, 4, 1)  # (N, D/2, H/2, W/2, C)
        spread = g[:, :, None, :, None, :, None, :].expand(n, d // 2, 2, h // 2, 2, w // 2, 2, c)
        return spread.reshape(n, d, h, w, c).permute(0, 4, 1, 2, 3)


def _pairs(pool: nn.AvgPool3d) -> bool:
    """Whether ``pool`` averages disjoint 2^3 blocks (kernel 2, stride 2, no padding, default options)."""
    def triple(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * 3
    return (triple(pool.kernel_size) == (2, 2, 2) and triple(pool.stride) == (2, 2, 2) and triple(pool.padding) == (0, 0, 0)
            and not pool.ceil_mode and pool.count_include_pad and pool.divisor_override is None)


__all__ = ["BLOCK_KEY", "IMAGE_ENCODER_KEY", "STEM_KEY", "BlockAvgPool3d", "channels_last_block", "channels_last_stem"]
