"""Test helper (import as ``ddp_jobs``): tiny trainings for the data-parallel tests, built from
module-level classes so the training processes (spawned) can unpickle them.

``python tests/ddp_jobs.py FOLDER EPOCHS`` trains :func:`cnn_job` in two processes into FOLDER
(the resume test kills it part-way).
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from gliotype.config.schema import BaselinesConfig, TrainConfig
from gliotype.evaluation.baselines import CnnLoss
from gliotype.utils.training import fit, seed_everything, train_loader

TWO = TrainConfig(processes=2, device="cpu", precision="32")


class TinyCnn(nn.Module):
    """Conv3d -> BatchNorm3d -> ReLU -> mean pool -> Linear: one logit per volume."""

    def __init__(self, channels: int = 2):
        super().__init__()
        self.conv = nn.Conv3d(channels, 4, 3, padding=1)
        self.norm = nn.BatchNorm3d(4)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))).mean(dim=(2, 3, 4)))


class Volumes(torch.utils.data.Dataset):
    """``n`` random 2 x 6^3 volumes whose label is the sign of their first channel's mean."""

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 2, 6, 6, 6, generator=g)
        self.y = (self.x[:, 0].mean(dim=(1, 2, 3)) > 0).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.x[i], "label": self.y[i]}


def schedule(epochs: int = 3, batch_size: int = 5) -> BaselinesConfig:
    return BaselinesConfig(epochs=epochs, batch_size=batch_size, lr=0.05, momentum=0.9, lr_step_epochs=2,
                           lr_gamma=0.5, weight_decay=1e-3)


def cnn_job(folder, train: TrainConfig | None = None, epochs: int = 3, n: int = 11, batch_size: int = 5,
            resume: bool = True) -> tuple[nn.Module, list[dict]]:
    """Train :class:`TinyCnn` with the baselines' :class:`CnnLoss` through ``fit``."""
    generator = seed_everything(0)
    model = TinyCnn()
    loader = train_loader(Volumes(n), batch_size, generator)
    history = fit(model, CnnLoss(model), loader, schedule(epochs, batch_size), folder, "tiny cnn", resume, seed=0,
                  key="tiny", train=train)
    return model, history


class Patients(torch.utils.data.Dataset):
    """``n`` synthetic multi-modal patients (:func:`multimodal_items.make_items`)."""

    def __init__(self, n: int):
        from multimodal_items import make_items

        self.items = make_items(n, seed=1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def multimodal_job(folder, train: TrainConfig | None = None, n: int = 7, batch_size: int = 5, epochs: int = 2):
    """The tiny-preset multi-modal network with the stage's :class:`MultiModalLoss` (15 degree
    rotations, eq. 7 + BCE) through ``fit``."""
    from multimodal_items import make_model

    from gliotype.multimodal.data import collate
    from gliotype.multimodal.stage import MultiModalLoss

    generator = seed_everything(0)
    model = make_model()
    mm = model.config.model_copy(update={"epochs": epochs, "batch_size": batch_size, "lr": 0.01, "momentum": 0.9})
    aug = torch.Generator()
    loader = train_loader(Patients(n), batch_size, generator, collate_fn=collate)
    history = fit(model, MultiModalLoss(model, 15.0, aug), loader, mm, folder, "tiny multimodal", seed=0, key="mm",
                  streams=[(aug, 7)], train=train)
    return model, history


if __name__ == "__main__":
    cnn_job(sys.argv[1], TWO, epochs=int(sys.argv[2]))
