"""The training rows and minibatches of the two self-supervised models (section 3.2, eq. 1).

- Node autoencoder: :func:`node_rows`, every region of every patient, one row each
  (prepared by the model: raw samples or deviations).
- Edge contrastive model: :func:`edge_rows`, the anatomical MRI and FA rows of every
  tract of every patient, with the patient and the tract of each row, batched by
  :func:`edge_loader` as ``ssl.edge.batching`` says: ``mixed`` (any rows),
  ``per_patient`` (:class:`PerPatientBatches`) or ``same_tract``
  (:class:`SameTractBatches`), which sets the negatives of eq. 1.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from gliotype.errors import GliotypeError
from gliotype.self_supervised.inputs import flag_tensor, to_tensor
from gliotype.self_supervised.models import EdgeContrastiveModel, NodeAutoencoder


def node_rows(model: NodeAutoencoder, inputs: dict[str, dict]) -> torch.Tensor:
    """The node autoencoder's input rows of every patient, stacked (patient-major)."""
    with torch.no_grad():
        return torch.cat([model.prepare(to_tensor(s["node"]), flag_tensor(s, "node")) for s in inputs.values()])


def edge_rows(model: EdgeContrastiveModel, inputs: dict[str, dict]) -> tuple[torch.Tensor, ...]:
    """MRI rows, FA rows, the patient index and the tract index of each row (patient-major)."""
    mri, fa, owner, tract = [], [], [], []
    with torch.no_grad():
        for k, s in enumerate(inputs.values()):
            mri.append(model.prepare_mri(to_tensor(s["tract"]), flag_tensor(s, "tract")))
            fa.append(model.prepare_fa(to_tensor(s["tract_fa"]), flag_tensor(s, "tract")))
            owner.append(torch.full((len(s["tract"]),), k, dtype=torch.int64))
            tract.append(torch.arange(len(s["tract"]), dtype=torch.int64))
    return torch.cat(mri), torch.cat(fa), torch.cat(owner), torch.cat(tract)


class PerPatientBatches(torch.utils.data.Sampler):
    """Minibatches of tracts drawn from one patient at a time (open point 3, ``per_patient``)."""

    def __init__(self, owner: torch.Tensor, batch_size: int, generator: torch.Generator):
        self.groups = [torch.nonzero(owner == k).flatten() for k in owner.unique()]
        self.batch_size = batch_size
        self.generator = generator

    def __iter__(self):
        batches = []
        for g in self.groups:
            perm = g[torch.randperm(len(g), generator=self.generator)]
            batches += [perm[i : i + self.batch_size] for i in range(0, len(perm) - self.batch_size + 1, self.batch_size)]
        for j in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[j].tolist()

    def __len__(self) -> int:
        return sum(len(g) // self.batch_size for g in self.groups)


class SameTractBatches(torch.utils.data.Sampler):
    """Minibatches of one tract from different patients (``same_tract``): the negatives of eq. 1
    are the same tract in other patients, so only the patient's own deviation tells the pair.

    A tract's rows (one per patient) are shuffled and cut into ``ceil(P / batch_size)``
    nearly equal batches (never a batch of one); batch order is shuffled.
    """

    def __init__(self, tract: torch.Tensor, batch_size: int, generator: torch.Generator):
        self.groups = [torch.nonzero(tract == t).flatten() for t in tract.unique()]
        self.batch_size = max(2, int(batch_size))
        self.generator = generator

    def _split(self, rows: torch.Tensor) -> list[torch.Tensor]:
        parts = torch.tensor_split(rows, -(-len(rows) // self.batch_size))
        return [p for p in parts if len(p) >= 2]

    def __iter__(self):
        batches = []
        for g in self.groups:
            batches += self._split(g[torch.randperm(len(g), generator=self.generator)])
        for j in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[j].tolist()

    def __len__(self) -> int:
        return sum(len(self._split(g)) for g in self.groups)


def edge_loader(mri, fa, owner, tract, batch_size, batching, generator, strict: bool = True) -> DataLoader:
    """Minibatches of (MRI, FA) rows by ``ssl.edge.batching``; with ``strict``, ``same_tract``
    without a single batch is an error."""
    data = TensorDataset(mri, fa)
    batch_size = min(batch_size, len(data))
    if batching == "per_patient":  # the loader's generator is the sampler's: fit() reseeds it every epoch
        return DataLoader(data, batch_sampler=PerPatientBatches(owner, batch_size, generator), generator=generator)
    if batching == "same_tract":
        sampler = SameTractBatches(tract, batch_size, generator)
        if strict and len(sampler) == 0:
            raise GliotypeError("ssl.edge.batching=same_tract needs at least 2 training patients with FA")
        return DataLoader(data, batch_sampler=sampler, generator=generator)  # as per_patient
    return DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)
