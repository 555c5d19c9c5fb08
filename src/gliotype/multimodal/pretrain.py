"""A label-free pretraining of f_I on the tumour compartments (not in the paper; docs/design.md point 50).

f_I trained on one half of a 200-patient cohort (63 patients) carries almost nothing of the
image signal that each compartment's share and intensities hold (point 49), and the compartment
head added to the multi-modal loss never fit its target in the preset's ~95 SGD steps. With
``multimodal.image.pretrain_epochs`` > 0, f_I and the compartment head are first fitted, with
Adam at ``multimodal.image.pretrain_lr``, to the standardised :func:`compartment_summary` of every
patient of the cohort: the summary is read off x_I's compartment channels, so no label is used,
and the test patients' images take part as they do in the population graph (transductive).
The pretraining is done once per work folder and cached under its key
(:class:`~gliotype.layout.ImagePretrainingDir`), which covers what it depends on and nothing of
the multi-modal training (so the Table 4 rows and the folds of every split share it); every
multi-modal network with that config then starts from it, and its own key names the pretraining's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from gliotype.config import GliotypeConfig
from gliotype.config.loader import values_hash
from gliotype.config.schema import MultiModalConfig, ScheduleConfig
from gliotype.layout import WorkDir
from gliotype.multimodal.augment import rotate_batch
from gliotype.multimodal.data import collate
from gliotype.multimodal.model import MultiModalNet, compartment_summary, standardised_summary
from gliotype.utils.distributed import gather, within
from gliotype.utils.memory_format import IMAGE_ENCODER_KEY
from gliotype.utils.records import records_key, reusable_record, write_record
from gliotype.utils.training import fit, seed_everything, train_loader
from gliotype.utils.weights import load_weights, save_weights


def pretrains_image(config: MultiModalConfig) -> bool:
    """Whether the multi-modal network starts from a pretrained f_I."""
    return config.image.pretrain_epochs > 0 and "image" in config.encoders


def pretraining_key(workdir: str | Path | WorkDir, config: GliotypeConfig, patient_ids: Sequence[str]) -> str:
    """What the pretrained f_I depends on: f_I's section (not the weight of the head in the
    multi-modal loss, which comes after), the batch size and the rotations of the
    multi-modal training (the pretraining's too), x_I's upstream sections, the seed, the training
    precision, f_I's layouts (:data:`~gliotype.utils.memory_format.IMAGE_ENCODER_KEY`), the patients and
    the records of their x_I."""
    mm = config.multimodal
    data = config.model_dump(mode="json")
    image = {k: v for k, v in data["multimodal"]["image"].items() if k != "compartment_weight"}
    depends = {"multimodal": {"image": image, "batch_size": mm.batch_size,
                              "augment_rotation_deg": mm.augment_rotation_deg},
               **{s: data[s] for s in ("modalities", "preprocess", "atlas", "train")}}
    work = WorkDir.of(workdir)
    ids = sorted(map(str, patient_ids))
    records = records_key(work.case(p).modalities_meta for p in ids)
    digest = hashlib.sha256(json.dumps([ids, records]).encode()).hexdigest()[:12]
    return f"{values_hash(depends)}-{config.seed}-{digest}{IMAGE_ENCODER_KEY}"


def pretrain_image_encoder(workdir: str | Path | WorkDir, patient_ids: Sequence[str], config: GliotypeConfig,
                           resume: bool = True) -> tuple[Path, str]:
    """f_I and the compartment head pretrained on ``patient_ids`` (without labels); returns the
    weights file (cached in the work folder) and the pretraining's key. Resumes from its checkpoints."""
    from gliotype.multimodal.stage import MultiModalDataset, build_model

    folder = WorkDir.of(workdir).image_pretraining
    ids = sorted(map(str, patient_ids))
    key = pretraining_key(workdir, config, ids)
    if reusable_record(folder.record, key, what="the pretrained image encoder") is not None:
        return folder.weights, key  # its sha256 checked by the record; the networks load it
    mm, image = config.multimodal, config.multimodal.image
    generator = seed_everything(config.seed)
    net = _pretrained_parts(build_model(config))
    dataset = MultiModalDataset(workdir, ids, None, ["image"])
    summary = torch.cat([compartment_summary(collate([dataset[i]]).tumor_image) for i in range(len(dataset))])
    net.compartment_mean.copy_(summary.mean(0))
    net.compartment_std.copy_(summary.std(0).clamp_min(1e-6))
    schedule = ScheduleConfig(optimizer="adam", lr=image.pretrain_lr, weight_decay=0.0,
                              batch_size=mm.batch_size, epochs=image.pretrain_epochs,
                              lr_step_epochs=image.pretrain_epochs + 1)
    aug = torch.Generator()  # reseeded by fit() every epoch
    loader = train_loader(dataset, mm.batch_size, generator, collate_fn=collate)
    fit(net, CompartmentLoss(net, mm.augment_rotation_deg, aug), loader, schedule, folder.checkpoints,
        "image encoder pretraining (compartments)", resume, seed=config.seed, key=key,
        streams=[(aug, config.seed + 9)], train=config.train)
    save_weights(net, folder.weights)
    write_record(folder.record, key, [folder.weights.name], patients=len(ids))
    return folder.weights, key


def load_pretrained(model: MultiModalNet, path: str | Path) -> MultiModalNet:
    """Put the pretrained f_I, compartment head and summary statistics into ``model``."""
    load_weights(_pretrained_parts(model), path)
    return model


class CompartmentLoss:
    """The pretraining's loss of a batch: the rotation augmentation of the multi-modal training,
    then the MSE of the head's prediction from u_I against the standardised summary of the
    rotated x_I, over the whole batch (also when each training process holds a slice of it)."""

    def __init__(self, net: nn.Module, rotation_deg: float, aug: torch.Generator):
        self.net, self.rotation_deg, self.aug = net, rotation_deg, aug

    def __call__(self, batch):
        batch = rotate_batch(batch, self.rotation_deg, self.aug, within=within())
        prediction = self.net(batch.tumor_image)
        target = standardised_summary(batch.tumor_image, self.net.compartment_mean, self.net.compartment_std)
        loss = nn.functional.mse_loss(gather(prediction), gather(target))
        return loss, {"compartments": float(loss.detach())}


class _Parts(nn.Module):
    """The pretrained parts of a network, under their names in it (so the weights file loads into
    either), with the summary's statistics (the network's own tensors: loading one loads both)."""

    def __init__(self, model: MultiModalNet):
        super().__init__()
        self.image, self.compartment_head = model.image, model.compartment_head
        self.register_buffer("compartment_mean", model.compartment_mean)
        self.register_buffer("compartment_std", model.compartment_std)

    def forward(self, x_i: torch.Tensor) -> torch.Tensor:
        return self.compartment_head(self.image(x_i))


def _pretrained_parts(model: MultiModalNet) -> nn.Module:
    if model.image is None or model.compartment_head is None or not hasattr(model, "compartment_mean"):
        raise ValueError("the image encoder is pretrained only with multimodal.image.pretrain_epochs > 0 and f_I")
    return _Parts(model)


__all__ = ["CompartmentLoss", "load_pretrained", "pretrain_image_encoder", "pretraining_key", "pretrains_image"]
