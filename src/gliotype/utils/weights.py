"""Network weights on disk: safetensors only (no pickle), one line naming the file when they cannot be read."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gliotype.errors import GliotypeError
from gliotype.utils.io import atomic_path


class WeightsError(GliotypeError):
    """A weights file that cannot be read (truncated, not safetensors) or does not fit its network."""


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Weights (parameters and buffers) as safetensors, atomically."""
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def _label(path: str | Path) -> str:
    """A weights file as messages name it: its folder's name and its own, never the path above."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no pickle); :class:`WeightsError` in one line naming the
    file when it is missing, truncated or not safetensors."""
    if not Path(path).is_file():
        raise WeightsError(f"weights file {_label(path)} is missing")
    try:
        return load_file(str(path))
    except Exception:
        raise WeightsError(f"weights file {_label(path)} is unreadable (truncated or not a safetensors "
                           "file)") from None


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights (no pickle); shapes must match exactly (:class:`WeightsError` if not)."""
    return load_state(model, read_weights(path), path)


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> nn.Module:
    """Put ``tensors`` (read from ``path``) into ``model``; :class:`WeightsError` when they do not fit."""
    try:
        model.load_state_dict(tensors)
    except RuntimeError:
        raise WeightsError(f"weights file {_label(path)} does not fit this network (other layers or "
                           "sizes)") from None
    return model


__all__ = ["WeightsError", "load_state", "load_weights", "read_weights", "save_weights"]
