"""Stage 2: train the multi-modal network and extract every patient's features
(paper section 3.3, Algorithm 1; section 4.3 "Training parameters").

Trained on the encoder-training half of the training set only (half A, section 4.1).
Files under the model folder: ``checkpoints/`` (every epoch; ``history.csv`` holds the
loss curves), ``model.safetensors``, ``model.json`` (config and sizes), and
``features.csv`` with u_I, u_P, u_T = <u_I, u_P> and u_B of every patient.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from gliotype.config import GliotypeConfig, config_hash, save_config
from gliotype.config.schema import MultiModalConfig
from gliotype.layout import MultiModalDir, WorkDir
from gliotype.modalities.build import load_case_modalities
from gliotype.modalities.dataset import CachedDataset
from gliotype.multimodal.augment import SequenceDropout, rotate_batch
from gliotype.multimodal.data import cloud_pose, collate
from gliotype.multimodal.model import MultiModalNet, multimodal_loss
from gliotype.multimodal.pretrain import load_pretrained, pretrain_image_encoder, pretraining_key, pretrains_image
from gliotype.utils.devices import precision_key
from gliotype.utils.distributed import gather, within
from gliotype.utils.io import write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.memory_format import IMAGE_ENCODER_KEY
from gliotype.utils.records import records_key, reusable_record, write_record
from gliotype.utils.training import TrainingDiverged, fit, seed_everything, train_loader
from gliotype.utils.weights import WeightsError, load_weights, save_weights

log = get_logger(__name__)
FEATURE_GROUPS = ("u_I", "u_P", "u_T", "u_B")


def load_crossing(workdir: str | Path, patient_id: str) -> np.ndarray:
    """``(2, C)`` pairs (point index, tract index) of the points crossing each tract (eq. 2)."""
    with np.load(WorkDir.of(workdir).case(patient_id).crossing, allow_pickle=False) as z:
        return z["crossing"]


class MultiModalDataset(CachedDataset):
    """Per-patient items for :func:`gliotype.multimodal.data.collate`, only the modalities in use
    (kept in memory after the first epoch, see :class:`CachedDataset`). With ``variants`` each item
    also carries ``present`` (the patient's sequences) and ``variants`` (x_B without each of
    them), what :class:`~gliotype.multimodal.augment.SequenceDropout` needs."""

    def __init__(self, workdir, patient_ids: Sequence[str], labels: Mapping[str, float] | None, encoders: Sequence[str],
                 variants: bool = False):
        super().__init__(patient_ids)
        self.workdir = Path(workdir)
        self.labels = {str(k): float(v) for k, v in (labels or {}).items() if v == v}
        self.encoders = set(encoders)
        self.variants = variants

    def load(self, i: int) -> dict:
        from gliotype.self_supervised import load_brain_network

        pid = self.patient_ids[i]
        parts = [p for p, e in (("tumor_image", "image"), ("point_cloud", "point_cloud")) if e in self.encoders]
        case = load_case_modalities(self.workdir, pid, parts)
        item = {"patient_id": pid, "label": torch.tensor(self.labels.get(pid, -1.0))}
        if "image" in self.encoders:
            item["tumor_image"] = torch.from_numpy(case["tumor_image"])
        if "point_cloud" in self.encoders:
            item["points"] = torch.from_numpy(case["points"])
            item["pose"] = cloud_pose(case["centre"], case["scale"])
        if "brain_network" in self.encoders:
            data = load_brain_network(self.workdir, pid)
            item.update(node_x=data.x, edge_index=data.edge_index, edge_attr=data.edge_attr)
            if "point_cloud" in self.encoders:
                item["crossing"] = torch.from_numpy(load_crossing(self.workdir, pid))
        if self.variants:
            from gliotype.input import SEQUENCES
            from gliotype.modalities.build import missing_sequences
            from gliotype.self_supervised.encode import load_brain_network_variants

            missing = missing_sequences(self.workdir, pid)
            item["present"] = tuple(s for s in SEQUENCES if s not in missing)
            if "brain_network" in self.encoders:
                item["variants"] = load_brain_network_variants(self.workdir, pid)
        return item


def build_model(config: GliotypeConfig) -> MultiModalNet:
    from gliotype.encoders.point_cloud_encoder import encoder_radii
    from gliotype.modalities.tumor_image import image_channels

    return MultiModalNet(config.multimodal, tuple(config.modalities.crop_size), config.ssl.node.latent,
                         config.ssl.edge.latent, image_channels=image_channels(config.modalities.image_ring_channel,
                                                                      config.modalities.image_label_channels),
                         point_radii=encoder_radii(config.multimodal.point_cloud, config.modalities),
                         point_scale_mm=config.modalities.point_scale_mm)


#: Bumped whenever the same config and patients would train another network, so that a
#: network (and its checkpoints) trained by an earlier version is never reused or resumed.
#: 2: the augmentation's rotations are drawn per (seed, epoch), for an exact resume (issue 14).
#: 3: f_P's convolutions without a weight matrix per edge (the same function, other rounding).
TRAINING_VERSION = 3


def model_key(workdir: str | Path | WorkDir, config: GliotypeConfig, train_ids: Sequence[str],
              val_ids: Sequence[str] | None = None, unlabelled_ids: Sequence[str] | None = None,
              pretraining: str = "") -> str:
    """What a trained multi-modal network depends on: every upstream config section, the seed, the
    patients (labelled, validation and, when there are any, unlabelled), their data in ``workdir``
    (:func:`data_key`), the key of the pretrained f_I it starts from (``pretraining``, point 50),
    :data:`TRAINING_VERSION`, a mixed training precision (not the process count nor the device:
    the same losses within float rounding) and f_I's layouts
    (:data:`~gliotype.utils.memory_format.IMAGE_ENCODER_KEY`)."""
    parts = sorted(map(str, train_ids)) + ["|"] + sorted(map(str, val_ids or []))
    if unlabelled_ids:
        parts += ["|unlabelled"] + sorted(map(str, unlabelled_ids))
    parts += ["|data", data_key(workdir, sorted({str(p) for p in parts if not p.startswith("|")}))]
    if pretraining:
        parts += ["|pretrained", pretraining]
    ids = json.dumps(parts)
    return config_hash(config, "multimodal", "modalities", "ssl", "atlas", "preprocess") + \
        f"-{config.seed}-v{TRAINING_VERSION}-" + hashlib.sha256(ids.encode()).hexdigest()[:12] + \
        precision_key(config.train) + IMAGE_ENCODER_KEY


def data_key(workdir: str | Path | WorkDir, patient_ids: Sequence[str]) -> str:
    """One digest of the records of what the network reads of each patient (x_I, x_P: the
    modalities; x_B: the brain network), so a patient rebuilt from a changed input is new data."""
    workdir = WorkDir.of(workdir)
    return records_key(path for p in patient_ids
                       for path in (workdir.case(str(p)).modalities_meta, workdir.case(str(p)).brain_network_record))


def train_multimodal(
    workdir: str | Path,
    out: str | Path,
    train_ids: Sequence[str],
    labels: Mapping[str, float],
    config: GliotypeConfig,
    val_ids: Sequence[str] | None = None,
    patience: int | None = None,
    resume: bool = True,
    unlabelled_ids: Sequence[str] | None = None,
    pretrain_ids: Sequence[str] | None = None,
) -> MultiModalNet:
    """Train on ``train_ids`` (half A); optional early stopping on ``val_ids``; cached by config and patients.

    ``unlabelled_ids`` join the training without their labels (``multimodal.unlabelled:
    cohort``): they reach L_multi only, so they are ignored by a network without it.
    ``multimodal.sequence_dropout`` p: each training item drops, with probability p per epoch,
    one random present sequence (:class:`~gliotype.multimodal.augment.SequenceDropout`; the brain
    networks must have been encoded with their variants). With ``multimodal.image.pretrain_epochs``
    > 0 the network starts from f_I pretrained on ``pretrain_ids`` (the cohort; None: the patients it
    trains on), :func:`gliotype.multimodal.pretrain.pretrain_image_encoder`, cached in the work folder.
    """
    out = MultiModalDir.of(out)
    mm = config.multimodal
    train_ids = [str(p) for p in train_ids]
    labelled = set(train_ids)
    unlabelled = [str(p) for p in unlabelled_ids or [] if str(p) not in labelled] if has_contrastive(mm) else []
    pretraining = None
    if pretrains_image(mm):
        pretraining = sorted({str(p) for p in (pretrain_ids if pretrain_ids is not None else train_ids + unlabelled)})
    key = model_key(workdir, config, train_ids, val_ids, unlabelled,
                    pretraining_key(workdir, config, pretraining) if pretraining else "")
    model = build_model(config)
    if reusable_record(out.meta, key, what=f"model {out.root.name}") is not None:
        try:
            return load_weights(model, out.weights).eval()
        except WeightsError as exc:  # a cache: trained again (its checkpoint, if sound, is reused)
            log.warning("%s; training the multi-modal network again", exc)
    if (diverged := reusable_record(out.diverged, key)) is not None:  # deterministic: it would diverge again
        raise TrainingDiverged(str(diverged.get("reason")))
    save_config(config, out.config)
    if pretraining:
        pretrained, _ = pretrain_image_encoder(workdir, pretraining, config)
    generator = seed_everything(config.seed)
    model = build_model(config)
    if pretraining:
        load_pretrained(model, pretrained)
    known = {p: v for p, v in labels.items() if str(p) in labelled} if unlabelled else labels
    dropout = mm.sequence_dropout
    dataset = MultiModalDataset(workdir, train_ids + unlabelled, known, mm.encoders, variants=dropout > 0)
    batch_size = min(mm.batch_size, len(dataset))
    aug = torch.Generator()  # reseeded by fit() every epoch: a resumed epoch replays its rotations
    drop = torch.Generator()  # and its dropped sequences
    streams = [(aug, config.seed + 7)] + ([(drop, config.seed + 8)] if dropout > 0 else [])
    loader = train_loader(SequenceDropout(dataset, dropout, drop) if dropout > 0 else dataset, batch_size, generator,
                          collate_fn=collate)
    validate = None
    if val_ids:
        validate = MultiModalValidation(model, MultiModalDataset(workdir, val_ids, labels, mm.encoders), batch_size)
    # the folder in the label: the log lines of two networks training side by side tell them apart
    desc = f"multi-modal training ({out.root.parent.name}/{out.root.name})"
    try:
        fit(model, MultiModalLoss(model, mm.augment_rotation_deg, aug), loader, mm, out.checkpoints, desc, resume,
            seed=config.seed, key=key, validate=validate, patience=patience, streams=streams, train=config.train,
            average_from=mm.average_from_epoch)
    except TrainingDiverged as exc:
        write_record(out.diverged, key, reason=str(exc))
        raise
    save_weights(model, out.weights)
    write_record(out.meta, key, [out.weights.name], encoders=list(mm.encoders))
    return model


class MultiModalLoss:
    """The training loss of a batch: rotation augmentation (``aug``, drawn per patient of the
    global batch), the network, and BCE + L_multi on the outputs of the whole batch, also when
    each training process holds a slice of it (:func:`gliotype.utils.distributed.gather`: eqs.
    4-7 contrast every patient of the batch with every other, as in one process)."""

    def __init__(self, model: MultiModalNet, rotation_deg: float, aug: torch.Generator):
        self.model, self.rotation_deg, self.aug = model, rotation_deg, aug

    def __call__(self, batch):
        batch = rotate_batch(batch, self.rotation_deg, self.aug, within=within())
        out = self.model(batch)
        out = replace(out, latents={k: gather(v) for k, v in out.latents.items()}, logit=gather(out.logit))
        return multimodal_loss(self.model, out, gather(batch.label))


class MultiModalValidation:
    """The mean loss of the validation patients' batches (of at least 2), on the network's device."""

    def __init__(self, model: MultiModalNet, dataset, batch_size: int):
        self.model, self.dataset, self.batch_size = model, dataset, batch_size

    @torch.no_grad()
    def __call__(self) -> float:
        from gliotype.utils.devices import to_device

        device = next(self.model.parameters()).device
        losses = []
        for b in DataLoader(self.dataset, batch_size=self.batch_size, collate_fn=collate):
            if b.size >= 2:
                b = b if device.type == "cpu" else to_device(b, device)
                losses.append(float(multimodal_loss(self.model, self.model(b), b.label)[0]))
        return float(np.mean(losses)) if losses else float("inf")


def has_contrastive(config: MultiModalConfig) -> bool:
    """Whether L_multi is part of the loss: it is on and two modalities give it a pair."""
    return config.use_contrastive and len(set(config.encoders)) >= 2


def load_multimodal(model_dir: str | Path, config: GliotypeConfig) -> MultiModalNet:
    """A trained multi-modal network (safetensors weights, no pickle) in eval mode."""
    return load_weights(build_model(config), MultiModalDir.of(model_dir).weights).eval()


@torch.no_grad()
def extract_features(
    workdir: str | Path, model: MultiModalNet, patient_ids: Sequence[str], config: MultiModalConfig, batch_size: int = 8
) -> pd.DataFrame:
    """u_I, u_P, u_T, u_B (and the BCE head's probability) of every patient, one row each.

    Columns: ``patient_id``, ``u_I_0 ...``, ``u_P_0 ...``, ``u_T_0 ...``, ``u_B_0 ...``, ``p_head``.
    """
    model.eval()
    loader = DataLoader(MultiModalDataset(workdir, patient_ids, None, config.encoders), batch_size=batch_size,
                        collate_fn=collate)
    return _feature_rows(model, loader)


def _feature_rows(model: MultiModalNet, batches) -> pd.DataFrame:
    """One row of features (``extract_features``' columns) per patient of every batch."""
    rows = []
    for batch in batches:
        out = model(batch)
        parts = {"patient_id": batch.patient_id}
        for g in FEATURE_GROUPS:
            if g in out.features:
                f = out.features[g].numpy()
                parts.update({f"{g}_{k}": f[:, k] for k in range(f.shape[1])})
        if out.logit is not None:
            parts["p_head"] = torch.sigmoid(out.logit).numpy()
        rows.append(pd.DataFrame(parts))
    return pd.concat(rows, ignore_index=True)


@torch.no_grad()
def features_without(workdir: str | Path, model: MultiModalNet, ssl, patient_ids: Sequence[str], sequence: str,
                     config: MultiModalConfig, batch_size: int = 8) -> pd.DataFrame:
    """:func:`extract_features` of ``patient_ids`` as if each lacked ``sequence`` after preprocessing
    (``input.missing_sequences``): its x_I channel zeroed (the crop of the zero volume a missing
    sequence is) and x_B encoded by ``ssl`` (:class:`~gliotype.self_supervised.SelfSupervisedModels`)
    with it imputed, besides the patient's own missing sequences. A patient already without
    ``sequence`` keeps its features. Used to measure what losing a sequence does to a model
    (the export's sequence spread, ``benchmarks/missing_sequences.py``)."""
    from gliotype.input import SEQUENCES
    from gliotype.modalities.build import missing_sequences
    from gliotype.self_supervised.encode import encode_patient, patient_inputs_for

    model.eval()
    dataset = MultiModalDataset(workdir, patient_ids, None, config.encoders)
    items = []
    for i, pid in enumerate(dataset.patient_ids):
        item = dict(dataset.load(i))
        missing = missing_sequences(workdir, pid)
        if sequence not in missing:
            if "tumor_image" in item:
                item["tumor_image"] = item["tumor_image"].clone()
                item["tumor_image"][SEQUENCES.index(sequence)] = 0.0
            if "node_x" in item:
                item["node_x"], item["edge_attr"] = encode_patient(ssl, patient_inputs_for(ssl, workdir, pid),
                                                                   (*missing, sequence))
        items.append(item)
    return _feature_rows(model, (collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)))


def feature_matrix(features: pd.DataFrame, group: str) -> np.ndarray:
    """The columns of one feature group (``u_T``, ``u_B``, ...) as an array."""
    cols = [c for c in features.columns if c.startswith(f"{group}_")]
    return features[cols].to_numpy(dtype=np.float32)


def save_features(features: pd.DataFrame, path: str | Path) -> None:
    write_csv_atomic(features, path)


def features_for(workdir: str | Path, model_dir: str | Path, patient_ids: Sequence[str],
                 config: GliotypeConfig) -> pd.DataFrame:
    """The features of ``patient_ids`` from the trained network in ``model_dir``, cached in
    ``features.csv`` and reused only when ``features.json`` names the same model key (the key
    of ``model.json``: config, seed, training patients and their data), the file is unchanged
    and it holds every patient with the same data (:func:`data_key` of each)."""
    model_dir = MultiModalDir.of(model_dir)
    path, meta = model_dir.features, model_dir.features_meta
    key = json.loads(model_dir.meta.read_text())["key"]
    ids = [str(p) for p in patient_ids]
    data = {p: data_key(workdir, [p]) for p in ids}
    record = reusable_record(meta, key, what=f"model {model_dir.root.name}")
    if record is not None and all(record.get("patients", {}).get(p) == d for p, d in data.items()):
        cached = pd.read_csv(path, dtype={"patient_id": str})
        return cached.set_index("patient_id", drop=False).loc[ids].reset_index(drop=True)
    feats = extract_features(workdir, load_multimodal(model_dir, config), ids, config.multimodal)
    save_features(feats, path)
    write_record(meta, key, [path.name], patients=data)
    return feats
