"""Stochastic weight averaging (Izmailov et al. 2018) of a training's last epochs.

Not in the paper (docs/design.md point 56): with ``average_from`` = k the network a training
returns is the equal average of its weights after epochs k, k + 1, ..., the last (parameters and
buffers, so BatchNorm's running statistics are averaged too), through
:class:`torch.optim.swa_utils.AveragedModel`. The average is part of the training's checkpoint
(:attr:`WeightAverage.tracked` holds the network and its average as one module), so a resumed
training ends with the same average as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class _Tracked(nn.Module):
    """The network being trained and its running average, checkpointed as one module."""

    def __init__(self, model: nn.Module, average: AveragedModel):
        super().__init__()
        self.model, self.average = model, average


class WeightAverage:
    """The equal average of ``model``'s weights after every epoch from ``start`` (1-based) on."""

    def __init__(self, model: nn.Module, start: int):
        if start < 1:
            raise ValueError(f"average_from must be an epoch number (>= 1), not {start}")
        self.start = int(start)
        self.average = AveragedModel(model, use_buffers=True)
        self.tracked = _Tracked(model, self.average)

    @classmethod
    def of(cls, model: nn.Module, start: int | None) -> WeightAverage | None:
        """The average of ``model`` from epoch ``start``; None when ``start`` is None (the last weights)."""
        return None if start is None else cls(model, start)

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        """Add ``model``'s weights after ``epoch`` (1-based) when it is one of the averaged epochs."""
        if epoch >= self.start:
            self.average.update_parameters(model)

    @property
    def epochs(self) -> int:
        """How many epochs' weights the average holds."""
        return int(self.average.n_averaged)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Put the average into ``model`` (nothing when no epoch has been averaged yet)."""
        if self.epochs:
            model.load_state_dict(self.average.module.state_dict())


__all__ = ["WeightAverage"]
