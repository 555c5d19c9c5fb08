"""Baselines of section 4.4 (Table 3).

- MLP and SVM (scikit-learn) on the same multi-modal features as the population graph,
  and an L2 logistic regression beside them (not in the paper). ``paper``: fixed
  regularisation; ``cv``: alpha / C chosen by inner stratified cross-validation
  (:func:`feature_classifier`).
- 3D CNNs on the four-channel tumor image from MONAI: ResNet34 and DenseNet121 (the
  paper's "3D-DenseNet50" does not exist in common libraries; DenseNet121 is the
  nearest standard 3D DenseNet, open point 11), trained on halves A and B together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch.utils.data import DataLoader

from gliotype.config.schema import FeatureClassifiersConfig, ScheduleConfig, TrainConfig
from gliotype.modalities.build import load_case_modalities
from gliotype.modalities.dataset import CachedDataset
from gliotype.utils.devices import precision_key
from gliotype.utils.distributed import gather
from gliotype.utils.memory_format import STEM_KEY, channels_last_stem
from gliotype.utils.training import fit, seed_everything, train_loader


def mlp_classifier(seed: int = 0, hidden: Sequence[int] = (32,), alpha: float = 1e-3):
    """Standardised features -> scikit-learn MLP (Adam, L2 penalty ``alpha``, early stopping off, seeded)."""
    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=tuple(hidden), max_iter=2000,
                                                         alpha=alpha, random_state=seed))


def svm_classifier(seed: int = 0, folds: int = 5, C: float = 1.0):
    """Standardised features -> RBF SVM with Platt (sigmoid) probabilities, calibrated by ``folds``-fold CV."""
    from sklearn.calibration import CalibratedClassifierCV

    svm = SVC(kernel="rbf", C=C, random_state=seed)
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False))


def logistic_classifier(seed: int = 0, Cs: Sequence[float] = (1e-2, 1e-1, 1.0), folds: int = 5,
                        scoring: str = "roc_auc"):
    """Standardised features -> L2 logistic regression, C chosen by seeded stratified ``folds``-fold CV."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=list(Cs), l1_ratios=(0.0,), cv=cv, scoring=scoring,
                                                                max_iter=5000, use_legacy_attributes=False))


def calibration_folds(y, wanted: int = 5) -> int:
    """As many CV folds as wanted, but no more than the smaller class has patients (at least 2)."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=2)
    return int(max(2, min(wanted, counts.min())))


def nested_folds(y, wanted: Sequence[int]) -> list[int]:
    """Fold counts of nested stratified CVs on ``y``, outermost first.

    Each level has as many folds as wanted, but no more than the smaller class has
    patients in the training part of the level above (a stratified k-fold test part
    holds at most ceil(m / k) of a class of m), and at least 2.
    """
    smaller = int(np.bincount(np.asarray(y, dtype=int), minlength=2).min())
    m, out = smaller, []
    for w in wanted:
        k = min(int(w), m)
        if k < 2:
            raise ValueError(f"the feature classifiers' cross-validation needs more patients of the smaller class "
                             f"(there are {smaller})")
        out.append(k)
        m -= math.ceil(m / k)
    return out


def _fold_plan(kind: str, y, config: FeatureClassifiersConfig, out_of_fold: bool) -> tuple[int | None, list[int]]:
    """(outer folds of the out-of-fold predictions or None, the classifier's own nested folds)."""
    cv = config.regularisation == "cv"
    own = {"mlp": [config.inner_folds] if cv else [],
           "svm": ([config.inner_folds] if cv else []) + [5],  # 5: the SVM's Platt calibration folds
           "lr": [config.inner_folds]}
    if kind not in own:
        raise ValueError(f"unknown feature classifier {kind!r}: mlp, svm or lr")
    plan = nested_folds(y, ([config.inner_folds] if out_of_fold else []) + own[kind])
    return (plan[0], plan[1:]) if out_of_fold else (None, plan)


def feature_classifier(kind: str, y, config: FeatureClassifiersConfig | None = None, seed: int = 0,
                       out_of_fold: bool = False):
    """The unfitted classifier of one Table 3 row (``mlp``, ``svm``, ``lr``) for training labels ``y``.

    ``paper``: the fixed MLP / SVM; ``cv``: a seeded ``GridSearchCV`` over the MLP's
    alpha or the SVM's C (``config.scoring``). ``out_of_fold``: its inner folds also fit
    the training parts of :func:`out_of_fold_proba` (see :func:`outer_folds`).
    """
    config = config or FeatureClassifiersConfig()
    _, folds = _fold_plan(kind, y, config, out_of_fold)
    if kind == "lr":
        return logistic_classifier(seed, config.lr_cs, folds[0], config.scoring)
    if config.regularisation == "paper":
        return mlp_classifier(seed=seed) if kind == "mlp" else svm_classifier(seed=seed, folds=folds[0])
    inner = StratifiedKFold(folds[0], shuffle=True, random_state=seed)
    if kind == "mlp":
        grid, model = {"mlpclassifier__alpha": list(config.mlp_alphas)}, mlp_classifier(seed=seed)
    else:
        grid, model = {"calibratedclassifiercv__estimator__C": list(config.svm_cs)}, svm_classifier(seed, folds[1])
    return GridSearchCV(model, grid, cv=inner, scoring=config.scoring)


def outer_folds(kind: str, y, config: FeatureClassifiersConfig | None = None) -> int:
    """Folds of the out-of-fold predictions of ``kind`` on labels ``y``."""
    return _fold_plan(kind, y, config or FeatureClassifiersConfig(), True)[0]


def selected(model):
    """The fitted model's chosen configuration, unfitted (regularisation fixed to what inner CV picked)."""
    if isinstance(model, GridSearchCV):
        return clone(model.best_estimator_)
    last = model.steps[-1][1]
    if isinstance(last, LogisticRegressionCV):
        return clone(model).set_params(**{f"{model.steps[-1][0]}__Cs": [float(last.C_)]})
    return clone(model)


def out_of_fold_proba(model, x, y, folds: int, seed: int = 0) -> np.ndarray:
    """P(class 1) of every patient from seeded stratified ``folds``-fold refits of ``model`` without it."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]


def cnn_model(name: str, in_channels: int = 4, width: float = 1.0):
    """A MONAI 3D classifier with one logit: ``resnet34`` or ``densenet121``.

    ResNet34 uses the standard stem (7^3 convolution with stride 2, then max pooling;
    MONAI's default stride is 1, four to eight times the cost). ``width`` scales the
    channels (ResNet ``widen_factor``; DenseNet initial features 64 and growth rate 32),
    as the ``cpu`` preset scales the encoders' channels. The stem convolution computes in
    channels-last layout on the CPU (:func:`~gliotype.utils.memory_format.channels_last_stem`).
    """
    from monai.networks.nets import DenseNet121, resnet34

    if name == "resnet34":
        net = resnet34(spatial_dims=3, n_input_channels=in_channels, num_classes=1, conv1_t_stride=2,
                       widen_factor=width)
        channels_last_stem(net.conv1)
        return net
    if name == "densenet121":
        net = DenseNet121(spatial_dims=3, in_channels=in_channels, out_channels=1,
                          init_features=max(4, round(64 * width)), growth_rate=max(4, round(32 * width)))
        channels_last_stem(net.features.conv0)
        return net
    raise ValueError(f"unknown CNN baseline {name!r}: resnet34 or densenet121")


class _ImageDataset(CachedDataset):
    def __init__(self, workdir, patient_ids, labels):
        super().__init__(patient_ids)
        self.workdir, self.labels = workdir, labels

    def load(self, i):
        pid = self.patient_ids[i]
        image = torch.from_numpy(load_case_modalities(self.workdir, pid, ("tumor_image",))["tumor_image"])
        return {"image": image, "label": torch.tensor(float(self.labels.get(pid, -1.0)))}


class CnnLoss:
    """BCE of a CNN baseline on a batch ``{"image", "label"}`` (the whole batch's, also when
    each training process holds a slice of it: :func:`gliotype.utils.distributed.gather`)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __call__(self, batch) -> torch.Tensor:
        logit = gather(self.model(batch["image"]).squeeze(-1))
        return torch.nn.functional.binary_cross_entropy_with_logits(logit, gather(batch["label"]))


def train_cnn(
    name: str,
    workdir: str | Path,
    out: str | Path,
    train_ids: Sequence[str],
    labels: Mapping[str, float],
    schedule: ScheduleConfig,
    seed: int = 0,
    inputs_key: str = "",
    train: TrainConfig | None = None,
) -> torch.nn.Module:
    """Train a MONAI CNN baseline with BCE (checkpointed, resumable).

    The input channels follow x_I (4 sequences, 5 with the ring channel); ``inputs_key``
    (a hash of the settings that made x_I) is part of the checkpoint key, so a changed
    tumour image never resumes an old checkpoint. ``train``: processes, device, precision
    (:func:`~gliotype.utils.training.fit`; a mixed precision is part of the key)."""
    generator = seed_everything(seed)
    data = _ImageDataset(workdir, train_ids, labels)
    model = cnn_model(name, in_channels=int(data[0]["image"].shape[0]) if len(data) else 4, width=schedule.width)
    loader = train_loader(data, schedule.batch_size, generator)
    key = json.dumps([name, schedule.model_dump(mode="json"), sorted(map(str, train_ids)), seed,
                      list(data[0]["image"].shape) if len(data) else [], inputs_key]) + precision_key(train) + STEM_KEY
    fit(model, CnnLoss(model), loader, schedule, Path(out) / "checkpoints", f"{name} baseline", seed=seed, key=key,
        train=train)
    return model


@torch.no_grad()
def predict_cnn(model: torch.nn.Module, workdir, patient_ids: Sequence[str], batch_size: int = 8) -> np.ndarray:
    model.eval()
    loader = DataLoader(_ImageDataset(workdir, patient_ids, {}), batch_size=batch_size)
    return np.concatenate([torch.sigmoid(model(b["image"]).squeeze(-1)).numpy() for b in loader])
