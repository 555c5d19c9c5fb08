"""Train the two self-supervised models and load them back (paper section 3.2, eq. 1, section 4.3).

Trained only on patients with FA (the paper's 20 in-house cases), a fraction of them
held out (:func:`split_holdout`) to show what was learned
(:mod:`gliotype.self_supervised.evidence`); the models are then applied to every
patient, FA or not (:mod:`gliotype.self_supervised.encode`).

Files under ``WORKDIR/ssl/``: ``node/`` and ``edge/`` (checkpoints every epoch),
``node_autoencoder.safetensors``, ``edge_model.safetensors`` (with ``ssl.inputs =
deviation`` these also hold the normative statistics of the inputs), ``models.json``
(sizes and the cache key, :func:`stage_key`), ``report.json`` (evidence of learning),
``config.yaml``. :class:`SelfSupervisedModels` is the trained models loaded back with
the stage key and the atlas positions, what :func:`~gliotype.self_supervised.encode_brain_networks` needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from gliotype import __version__
from gliotype.config import GliotypeConfig, config_hash, save_config
from gliotype.errors import GliotypeError
from gliotype.layout import AtlasDir, SslDir, WorkDir
from gliotype.losses import cross_modal_contrastive
from gliotype.modalities.build import modalities_key
from gliotype.self_supervised.batches import edge_loader, edge_rows, node_rows
from gliotype.self_supervised.deviation import NormativeDeviation
from gliotype.self_supervised.evidence import (
    code_collapsed,
    edge_evidence,
    node_evidence,
    reconstruction_error,
    retrieval_accuracy,
)
from gliotype.self_supervised.inputs import (
    MRI_CHANNELS,
    available_patients,
    fa_patients,
    patient_inputs,
    tract_positions_or_none,
)
from gliotype.self_supervised.models import EdgeContrastiveModel, NodeAutoencoder, sequence_dropout
from gliotype.utils.devices import precision_key
from gliotype.utils.distributed import gather, within
from gliotype.utils.io import atomic_write
from gliotype.utils.logging import get_logger
from gliotype.utils.records import reusable_record, write_record
from gliotype.utils.training import fit, seed_everything
from gliotype.utils.weights import load_weights, save_weights

log = get_logger(__name__)


def split_holdout(ids: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of FA patients into training and held-out (at least one of each when possible)."""
    ids = sorted(ids)
    n_val = int(round(len(ids) * fraction))
    if fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    perm = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in perm[:n_val])
    return [i for i in ids if i not in val], val


def _fit_deviation(inputs: dict[str, dict], key: str, channels: int, config: GliotypeConfig) -> NormativeDeviation:
    """Normative statistics of ``key`` rows over the given (training) patients."""
    kind = "node" if key == "node" else "tract"
    x = np.stack([s[key] for s in inputs.values()])
    tumor = np.stack([s[f"{kind}_tumor"] for s in inputs.values()]) if config.ssl.tumor == "mask" else None
    return NormativeDeviation(x.shape[1], x.shape[2], channels, config.ssl.tumor).fit(x, tumor, config.ssl.normative)


SSL_FORMAT = 2  # 2: standardised codes (code_norm); bump when stored models change shape


def stage_key(config: GliotypeConfig, train_ids: list[str], val_ids: list[str], data: str = "") -> str:
    """The cache key of the stage (``models.json``, the checkpoints, every brain network); ``data``:
    the patients' modalities (:func:`~gliotype.modalities.build.modalities_key`); a mixed training
    precision (``train.precision``) counts, the process count and the device do not."""
    mixed = precision_key(config.train)
    text = json.dumps([config_hash(config, "ssl", "atlas", "preprocess"), config.seed, train_ids, val_ids, __version__,
                       SSL_FORMAT] + ([data] if data else []) + ([mixed] if mixed else []))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class NodeLoss:
    """The node autoencoder's MSE on a batch of rows (``sequence_dropout`` drawn per row of the
    global batch); the whole batch's mean when each training process holds a slice of it."""

    def __init__(self, model: NodeAutoencoder, dropout: float, generator: torch.Generator):
        self.model, self.dropout, self.generator = model, dropout, generator

    def __call__(self, batch) -> torch.Tensor:
        x = batch[0]
        corrupted = (sequence_dropout(x, self.model.norm, MRI_CHANNELS, self.dropout, self.generator, within())
                     if self.dropout > 0 else None)
        recon, target = self.model(x, corrupted)
        return torch.nn.functional.mse_loss(gather(recon), gather(target))


class EdgeLoss:
    """Eq. 1 between the MRI and FA codes of a batch of tract rows: every row of the global batch
    against every other (:func:`gliotype.utils.distributed.gather`), as in one process."""

    def __init__(self, model: EdgeContrastiveModel, dropout: float, generator: torch.Generator, temperature: float,
                 form: str):
        self.model, self.dropout, self.generator = model, dropout, generator
        self.temperature, self.form = temperature, form

    def __call__(self, batch) -> torch.Tensor:
        x_mri, x_fa = batch
        if self.dropout > 0:
            x_mri = sequence_dropout(x_mri, self.model.mri_norm, MRI_CHANNELS, self.dropout, self.generator, within())
        z, z_fa = self.model(x_mri, x_fa)
        return cross_modal_contrastive(gather(z), gather(z_fa), self.temperature, self.form).mean()


def train_self_supervised(
    workdir: str | Path | WorkDir, config: GliotypeConfig, patient_ids: list[str] | None = None, resume: bool = True
) -> dict:
    """Train both models on the FA patients among ``patient_ids`` (default: all built); returns the report.

    With ``ssl.inputs = deviation`` the normative statistics come from the training
    patients only and are stored in the models' weight files. A patient without all four
    sequences (``input.missing_sequences``) is left out: its zero blocks would enter the
    normative and standardisation statistics (it is encoded like every patient). With
    ``ssl.sequence_dropout`` p, each training row of the node autoencoder (input; the target
    stays the complete row) and each MRI row of the edge model has, with probability p, one
    random sequence block imputed (:func:`~gliotype.self_supervised.models.sequence_dropout`),
    drawn per (seed, epoch).
    """
    from gliotype.modalities.build import missing_sequences

    workdir = WorkDir.of(workdir)
    out = workdir.ssl
    ids = fa_patients(workdir, patient_ids if patient_ids is not None else available_patients(workdir))
    incomplete = [p for p in ids if missing_sequences(workdir, p)]
    if incomplete:
        log.info("self-supervised training leaves out %d FA patient(s) without all four sequences: %s",
                 len(incomplete), ", ".join(incomplete[:5]) + (" ..." if len(incomplete) > 5 else ""))
        ids = [p for p in ids if p not in incomplete]
    if len(ids) < 2:
        raise GliotypeError(f"self-supervised training needs at least 2 patients with FA maps"
                            f"{' and all four sequences' if incomplete else ''}, found {len(ids)}")
    train_ids, val_ids = split_holdout(ids, config.ssl.val_fraction, config.seed)
    key = stage_key(config, train_ids, val_ids, modalities_key(workdir, train_ids + val_ids))
    if reusable_record(out.models, key, what="self-supervised models") is not None:
        log.info("self-supervised models are up to date; reusing %s", out.root)
        return json.loads(out.report.read_text())
    save_config(config, out.config)
    generator = seed_everything(config.seed)
    node_cfg, edge_cfg = config.ssl.node, config.ssl.edge
    deviation = config.ssl.inputs == "deviation"
    masked = deviation and config.ssl.tumor == "mask"
    sampling = tract_positions_or_none(workdir)
    train = {p: patient_inputs(workdir, p, sampling, required=masked) for p in train_ids}

    # Node autoencoder: MSE, Adam (section 4.3).
    node_dev = _fit_deviation(train, "node", MRI_CHANNELS, config) if deviation else None
    node_in = node_dev.out_features if deviation else train[train_ids[0]]["node"].shape[1]
    node_model = NodeAutoencoder(node_in, node_cfg.hidden, node_cfg.latent, node_dev.spec() if deviation else None)
    if deviation:
        node_model.deviation.load_state_dict(node_dev.state_dict())
    x_node = node_rows(node_model, train)
    node_model.norm.fit(x_node)
    node_loader = DataLoader(TensorDataset(x_node), batch_size=min(node_cfg.batch_size, len(x_node)), shuffle=True,
                             generator=generator)
    dropout = config.ssl.sequence_dropout
    node_drop = torch.Generator()  # reseeded by fit() every epoch (seed, epoch): a resumed epoch replays it
    node_hist = fit(node_model, NodeLoss(node_model, dropout, node_drop), node_loader, node_cfg, out.node_checkpoints,
                    "node autoencoder", resume, seed=config.seed, key=key,
                    streams=[(node_drop, config.seed + 11)] if dropout > 0 else (), train=config.train)

    # Edge model: eq. 1 between anatomical MRI and FA tract samples, SGD.
    generator = seed_everything(config.seed + 1)  # initialisation independent of the node run's length
    edge_dev = None
    if deviation:
        edge_dev = {"mri": _fit_deviation(train, "tract", MRI_CHANNELS, config),
                    "fa": _fit_deviation(train, "tract_fa", 1, config)}
    first = train[train_ids[0]]
    mri_in = edge_dev["mri"].out_features if deviation else first["tract"].shape[1]
    fa_in = edge_dev["fa"].out_features if deviation else first["tract_fa"].shape[1]
    edge_model = EdgeContrastiveModel(mri_in, fa_in, edge_cfg.mri_hidden, edge_cfg.fa_hidden, edge_cfg.latent,
                                      edge_cfg.projection,
                                      {k: v.spec() for k, v in edge_dev.items()} if deviation else None)
    if deviation:
        edge_model.mri_deviation.load_state_dict(edge_dev["mri"].state_dict())
        edge_model.fa_deviation.load_state_dict(edge_dev["fa"].state_dict())
    mri, fa, owner, tract = edge_rows(edge_model, train)
    edge_model.mri_norm.fit(mri)
    edge_model.fa_norm.fit(fa)
    loader = edge_loader(mri, fa, owner, tract, edge_cfg.batch_size, edge_cfg.batching, generator)

    edge_drop = torch.Generator()
    edge_hist = fit(edge_model, EdgeLoss(edge_model, dropout, edge_drop, edge_cfg.temperature, edge_cfg.loss), loader,
                    edge_cfg, out.edge_checkpoints, "edge model", resume, seed=config.seed, key=key,
                    streams=[(edge_drop, config.seed + 12)] if dropout > 0 else (), train=config.train)

    # Evidence of learning on the held-out FA patients (training patients when none is held out).
    held = {p: patient_inputs(workdir, p, sampling, required=masked) for p in val_ids} if val_ids else train
    recon, baseline = reconstruction_error(node_model, node_rows(node_model, held))
    acc, chance = retrieval_accuracy(edge_model, *edge_rows(edge_model, held), edge_cfg.batch_size,
                                     edge_cfg.batching, config.seed)
    report = {
        "train_patients": train_ids,
        "heldout_patients": val_ids,
        "node_reconstruction_mse": recon,
        "node_mean_baseline_mse": baseline,
        "edge_retrieval_top1": None if np.isnan(acc) else acc,
        "edge_retrieval_chance": None if np.isnan(chance) else chance,
        "node_final_loss": node_hist[-1]["loss"] if node_hist else None,
        "edge_final_loss": edge_hist[-1]["loss"] if edge_hist else None,
        "inputs": config.ssl.inputs,
        "edge_batching": edge_cfg.batching,
    }
    report["edge_code_collapsed"] = code_collapsed(edge_model, mri[: 4 * edge_cfg.batch_size])
    if report["edge_code_collapsed"]:
        log.warning("the edge model's code is constant (training collapsed): lower ssl.edge.lr")
    report.update(node_evidence(node_model, held))
    if len(held) >= 2:
        report.update(edge_evidence(edge_model, train, held, config.seed))
    with torch.no_grad():  # statistics of the codes, so x_B is standardised (models.py)
        node_model.eval().code_norm.fit(node_model.encode(x_node))
        edge_model.eval().code_norm.fit(edge_model.encode(mri))
    save_weights(node_model, out.node_model)
    save_weights(edge_model, out.edge_model)
    atomic_write(out.report, json.dumps(report, indent=2))
    sizes = {"node": [node_in, node_cfg.hidden, node_cfg.latent],
             "edge": [mri_in, fa_in, edge_cfg.mri_hidden, edge_cfg.fa_hidden, edge_cfg.latent, edge_cfg.projection]}
    if deviation:  # the constructors' ``deviation`` argument
        sizes["node"].append(node_dev.spec())
        sizes["edge"].append({k: v.spec() for k, v in edge_dev.items()})
    write_record(out.models, key, [out.node_model.name, out.edge_model.name, out.report.name], sizes=sizes)
    log.info("held-out node reconstruction MSE %.3f (mean baseline %.3f); edge top-1 retrieval %.3f (chance %.3f)",
             recon, baseline, acc, chance)
    if "fa_probe_rho_within_tract" in report:
        log.info("held-out FA deviation vs edge code: Spearman %.2f within tracts; tract identity top-1 %.3f "
                 "(chance %.4f)", report["fa_probe_rho_within_tract"], report["tract_identity_top1"],
                 report["tract_identity_chance"])
    return report


def _load_models(out: SslDir) -> tuple[NodeAutoencoder, EdgeContrastiveModel, dict]:
    """The two models in eval mode and ``models.json``."""
    if not out.models.exists():
        raise GliotypeError("no trained self-supervised models in this work folder: run `gliotype ssl train` first")
    stored = json.loads(out.models.read_text())
    sizes = stored["sizes"]
    node = load_weights(NodeAutoencoder(*sizes["node"]), out.node_model).eval()
    edge = load_weights(EdgeContrastiveModel(*sizes["edge"]), out.edge_model).eval()
    return node, edge, stored


def load_self_supervised(workdir: str | Path | WorkDir) -> tuple[NodeAutoencoder, EdgeContrastiveModel]:
    """The trained models of a work folder (or model folder), in eval mode (weights and normative
    statistics via safetensors, no pickle)."""
    node, edge, _ = _load_models(WorkDir.of(workdir).ssl)
    return node, edge


@dataclass
class SelfSupervisedModels:
    """What encoding a brain network needs, loaded once: the two trained models (eval mode),
    the stage's cache key (stamped on every brain network) and the atlas positions they
    were trained with (``edge_index``: the node rows of every tract; the positions give
    the tumour flags of ``ssl.tumor = mask``)."""

    node: NodeAutoencoder
    edge: EdgeContrastiveModel
    key: str
    sampling: object  # gliotype.modalities.atlas.AtlasSampling

    @property
    def edge_index(self) -> np.ndarray:
        """(2, T) node rows of each tract's region pair, as stored with the atlas sampling."""
        return self.sampling.edge_index.astype(np.int64)

    @classmethod
    def load(cls, ssl_dir: str | Path | SslDir, atlas: str | Path | AtlasDir | object) -> SelfSupervisedModels:
        """The models of ``ssl_dir`` and the positions of ``atlas``: an atlas folder (a work
        folder's or a model folder's) or an already loaded ``AtlasSampling``."""
        from gliotype.modalities.atlas import AtlasSampling

        node, edge, stored = _load_models(SslDir.of(ssl_dir))
        sampling = atlas if isinstance(atlas, AtlasSampling) else AtlasSampling.load(atlas)
        return cls(node, edge, stored["key"], sampling)
