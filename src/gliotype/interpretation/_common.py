"""Shared helpers of the interpretation maps: one-patient batches and eval-mode contexts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gliotype.multimodal.data import cloud_pose, collate
from gliotype.multimodal.model import MultiModalBatch

_TENSOR_KEYS = ("tumor_image", "points", "crossing", "node_x", "edge_index", "edge_attr")


def as_batch(batch_or_case: MultiModalBatch | Mapping) -> MultiModalBatch:
    """A :class:`MultiModalBatch` from a batch (returned as is) or one patient's item dict.

    The dict holds what :func:`gliotype.multimodal.data.collate` expects (``tumor_image``
    (4, D, H, W), ``points`` (n, 3) normalised, ``crossing``, ``node_x``, ``edge_index``,
    ``edge_attr``, ``patient_id``); numpy arrays are converted to tensors, other keys
    (``points_mm``, ``tumor_image_affine``...) are ignored.
    """
    if isinstance(batch_or_case, MultiModalBatch):
        return batch_or_case
    if not isinstance(batch_or_case, Mapping):
        raise TypeError(f"expected a MultiModalBatch or a case dict, got {type(batch_or_case).__name__}")
    item = {"patient_id": str(batch_or_case.get("patient_id", "case"))}
    for key in _TENSOR_KEYS:
        value = batch_or_case.get(key)
        if value is None:
            continue
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
        item[key] = t.long() if key in ("crossing", "edge_index") else t.float()
    if "label" in batch_or_case:
        item["label"] = torch.as_tensor(float(batch_or_case["label"]))
    if "points" in item and batch_or_case.get("centre") is not None and batch_or_case.get("scale") is not None:
        item["pose"] = cloud_pose(batch_or_case["centre"], batch_or_case["scale"])
    return collate([item])


def load_case_batch(workdir: str | Path, patient_id: str, encoders: Sequence[str]) -> MultiModalBatch:
    """One patient's stored modalities (those of ``encoders``) as a one-patient batch."""
    from gliotype.multimodal.stage import MultiModalDataset

    return collate([MultiModalDataset(workdir, [patient_id], None, encoders)[0]])


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode (BatchNorm running statistics), restoring its mode after."""
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(training)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator inside the block without disturbing the caller's stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def require_classifier(model) -> None:
    if getattr(model, "classifier", None) is None:
        raise ValueError("the model has no classification head (multimodal.use_bce=false): "
                         "there is no IDH score to explain")
