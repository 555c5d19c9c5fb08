"""Baselines of section 4.4 (Table 3).

- MLP and SVM (scikit-learn) on the same multi-modal features as the population graph.
- 3D CNNs on the four-channel tumor image from MONAI: ResNet34 and DenseNet121 (the
  paper's "3D-DenseNet50" does not exist in common libraries; DenseNet121 is the
  nearest standard 3D DenseNet, open point 11), trained on halves A and B together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch.utils.data import DataLoader

from gliotype.config.schema import ScheduleConfig
from gliotype.modalities.build import load_case_modalities
from gliotype.modalities.dataset import CachedDataset
from gliotype.utils.training import fit, seed_everything, train_loader


def mlp_classifier(seed: int = 0, hidden: Sequence[int] = (32,)):
    """Standardised features -> scikit-learn MLP (Adam, early stopping off, seeded)."""
    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=tuple(hidden), max_iter=2000,
                                                         alpha=1e-3, random_state=seed))


def svm_classifier(seed: int = 0, folds: int = 5):
    """Standardised features -> RBF SVM with Platt (sigmoid) probabilities, calibrated by ``folds``-fold CV."""
    from sklearn.calibration import CalibratedClassifierCV

    svm = SVC(kernel="rbf", C=1.0, random_state=seed)
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False))


def calibration_folds(y, wanted: int = 5) -> int:
    """As many CV folds as wanted, but no more than the smaller class has patients (at least 2)."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=2)
    return int(max(2, min(wanted, counts.min())))


def cnn_model(name: str, in_channels: int = 4, width: float = 1.0):
    """A MONAI 3D classifier with one logit: ``resnet34`` or ``densenet121``.

    ResNet34 uses the standard stem (7^3 convolution with stride 2, then max pooling;
    MONAI's default stride is 1, four to eight times the cost). ``width`` scales the
    channels (ResNet ``widen_factor``; DenseNet initial features 64 and growth rate 32),
    as the ``cpu`` preset scales the encoders' channels.
    """
    from monai.networks.nets import DenseNet121, resnet34

    if name == "resnet34":
        return resnet34(spatial_dims=3, n_input_channels=in_channels, num_classes=1, conv1_t_stride=2,
                        widen_factor=width)
    if name == "densenet121":
        return DenseNet121(spatial_dims=3, in_channels=in_channels, out_channels=1,
                           init_features=max(4, round(64 * width)), growth_rate=max(4, round(32 * width)))
    raise ValueError(f"unknown CNN baseline {name!r}: resnet34 or densenet121")


class _ImageDataset(CachedDataset):
    def __init__(self, workdir, patient_ids, labels):
        super().__init__(patient_ids)
        self.workdir, self.labels = workdir, labels

    def load(self, i):
        pid = self.patient_ids[i]
        image = torch.from_numpy(load_case_modalities(self.workdir, pid, ("tumor_image",))["tumor_image"])
        return {"image": image, "label": torch.tensor(float(self.labels.get(pid, -1.0)))}


def train_cnn(
    name: str,
    workdir: str | Path,
    out: str | Path,
    train_ids: Sequence[str],
    labels: Mapping[str, float],
    schedule: ScheduleConfig,
    seed: int = 0,
) -> torch.nn.Module:
    """Train a MONAI CNN baseline with BCE (checkpointed, resumable)."""
    generator = seed_everything(seed)
    model = cnn_model(name, width=schedule.width)
    data = _ImageDataset(workdir, train_ids, labels)
    loader = train_loader(data, schedule.batch_size, generator)

    def batch_loss(batch):
        x, y = batch["image"], batch["label"]
        return torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), y)

    key = json.dumps([name, schedule.model_dump(mode="json"), sorted(map(str, train_ids)), seed,
                      list(data[0]["image"].shape) if len(data) else []])
    fit(model, batch_loss, loader, schedule, Path(out) / "checkpoints", f"{name} baseline", seed=seed, key=key)
    return model


@torch.no_grad()
def predict_cnn(model: torch.nn.Module, workdir, patient_ids: Sequence[str], batch_size: int = 8) -> np.ndarray:
    model.eval()
    loader = DataLoader(_ImageDataset(workdir, patient_ids, {}), batch_size=batch_size)
    return np.concatenate([torch.sigmoid(model(b["image"]).squeeze(-1)).numpy() for b in loader])
