"""Where and in what precision a network trains (``train.device``, ``train.precision``).

``auto`` picks cuda when torch sees a GPU, else the CPU; on cuda ``precision: auto`` is
bf16-mixed (16-mixed on a GPU without bf16, with a gradient scaler), on the CPU float32.
Mixed precision is ``torch.autocast`` around the forward and the loss; parameters, gradients
and the optimiser stay float32. The resolved precision is part of a trained network's cache
key (:func:`precision_key`); the device is not (docs/design.md point 45).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import torch

from gliotype.errors import GliotypeError

PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def resolve_device(train) -> torch.device:
    """The device of ``train.device`` (``auto``: cuda when available); in a training process
    started by :mod:`gliotype.utils.launch`, the GPU of its local rank."""
    want = getattr(train, "device", "cpu")
    if want == "cpu" or (want == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise GliotypeError("train.device is cuda but torch sees no GPU here (set train.device: auto or cpu)")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise GliotypeError(f"train.processes asks for GPU {local + 1} on this node, which has "
                            f"{torch.cuda.device_count()} (train.processes <= the GPUs of a node)")
    return torch.device("cuda", local)


def resolve_precision(train, device: torch.device | None = None) -> str:
    """``32``, ``bf16-mixed`` or ``16-mixed`` for ``train.precision`` on ``device``."""
    want = str(getattr(train, "precision", "32"))
    device = device if device is not None else resolve_device(train)
    if want == "auto":
        if device.type != "cuda":
            return "32"
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if want == "16-mixed" and device.type != "cuda":
        raise GliotypeError("train.precision 16-mixed needs a cuda device (on the cpu: bf16-mixed or 32)")
    return want


def precision_key(train) -> str:
    """What a trained network's cache key gains from its precision: ``""`` for float32 (the
    keys of every network trained before the option existed), else ``-bf16-mixed`` / ``-16-mixed``."""
    if train is None:
        return ""
    precision = resolve_precision(train)
    return "" if precision == "32" else f"-{precision}"


def autocast(precision: str, device: torch.device):
    """``torch.autocast`` for a mixed precision, a no-op context for ``32``."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device):
    """A ``GradScaler`` for float16 (whose small gradients underflow); None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "16-mixed" else None


def to_device(obj, device: torch.device):
    """``obj`` with every tensor moved to ``device``: tensors, dicts, lists, tuples, dataclasses
    (a :class:`~gliotype.multimodal.model.MultiModalBatch`) and objects with ``.to``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        moved = [to_device(v, device) for v in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else type(obj)(moved)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: to_device(getattr(obj, f.name), device)
                                           for f in dataclasses.fields(obj) if f.init})
    if hasattr(obj, "to") and callable(obj.to):
        return obj.to(device)
    return obj


__all__ = ["PRECISIONS", "autocast", "grad_scaler", "precision_key", "resolve_device", "resolve_precision",
           "to_device"]
