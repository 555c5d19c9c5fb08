"""A torch Dataset over the stored modalities of a work folder (section 3.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gliotype.modalities.build import load_case_modalities


class CachedDataset(Dataset):
    """A per-patient Dataset that keeps loaded items in memory while they fit in ``cache_bytes``.

    Training reads every patient once per epoch; decompressing the stored NIfTI each
    time cost more than the model itself on the ``cpu`` preset. Subclasses implement
    :meth:`load`.
    """

    def __init__(self, patient_ids: Sequence[str], cache_bytes: int = 2 * 1024**3):
        self.patient_ids = [str(p) for p in patient_ids]
        self.cache_bytes = cache_bytes
        self._cache: dict[int, dict] = {}
        self._cached = 0

    def __len__(self) -> int:
        return len(self.patient_ids)

    def load(self, index: int) -> dict:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if index in self._cache:
            return self._cache[index]
        item = self.load(index)
        size = sum(v.numel() * v.element_size() for v in item.values() if isinstance(v, torch.Tensor))
        if self._cached + size <= self.cache_bytes:
            self._cache[index] = item
            self._cached += size
        return item


class ModalityDataset(Dataset):
    """One item per patient: the tumor image, the point cloud and the atlas samples.

    Args:
        workdir: the work folder written by ``gliotype preprocess``.
        patient_ids: which patients, in order.
        labels: optional ``patient_id -> idh`` (1 mutant, 0 wild-type); missing -> -1.

    Items are dicts: ``tumor_image`` (4, D, H, W), ``points`` (N, 3) normalised,
    ``points_mm`` (N, 3), ``node_samples`` (R, 4 n), ``tract_samples`` (T, 4 n),
    ``tract_fa`` (T, n) or absent, ``label`` (float, -1 unknown), ``patient_id``.
    """

    def __init__(self, workdir: str | Path, patient_ids: Sequence[str], labels: Mapping[str, float] | None = None):
        self.workdir = Path(workdir)
        self.patient_ids = [str(p) for p in patient_ids]
        self.labels = {str(k): v for k, v in (labels or {}).items()}

    def __len__(self) -> int:
        return len(self.patient_ids)

    def __getitem__(self, index: int) -> dict:
        pid = self.patient_ids[index]
        case = load_case_modalities(self.workdir, pid)
        label = self.labels.get(pid)
        item = {
            "patient_id": pid,
            "tumor_image": torch.from_numpy(case["tumor_image"]),
            "points": torch.from_numpy(case["points"]),
            "points_mm": torch.from_numpy(case["points_mm"]),
            "node_samples": torch.from_numpy(case["node_samples"]),
            "tract_samples": torch.from_numpy(case["tract_samples"]),
            "label": torch.tensor(-1.0 if label is None or np.isnan(label) else float(label)),
        }
        if case["tract_fa"] is not None:
            item["tract_fa"] = torch.from_numpy(case["tract_fa"])
        return item
