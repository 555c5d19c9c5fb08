"""Train the self-supervised models and encode every patient's brain network (section 3.2).

Trained only on patients with FA (the paper's 20 in-house cases), a fraction of them
held out to show what was learned; then applied to every patient, FA or not, to give
x_B = {v_N, v_E}: 90 nodes and (default) 2,309 edges with 16-d attributes each.

Files under ``WORKDIR/ssl/``: ``node/`` and ``edge/`` (checkpoints every epoch),
``node_autoencoder.safetensors``, ``edge_model.safetensors``, ``models.json`` (sizes
and the cache key), ``report.json`` (evidence of learning), ``config.yaml``.
Per patient: ``patients/<id>/brain_network.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, TensorDataset

from gliotype import __version__
from gliotype.config import GliotypeConfig, config_hash, save_config
from gliotype.errors import GliotypeError
from gliotype.losses import cross_modal_contrastive
from gliotype.self_supervised.models import EdgeContrastiveModel, NodeAutoencoder
from gliotype.utils.io import atomic_path, atomic_write, write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.progress import progress
from gliotype.utils.training import fit, load_weights, save_weights, seed_everything

log = get_logger(__name__)


def _samples_path(workdir: Path, pid: str) -> Path:
    return workdir / "patients" / pid / "modalities" / "atlas_samples.npz"


def load_atlas_samples(workdir: str | Path, patient_id: str) -> dict[str, np.ndarray]:
    """``node`` (R, 4n), ``tract`` (T, 4n) and, with FA, ``tract_fa`` (T, n)."""
    with np.load(_samples_path(Path(workdir), str(patient_id)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def available_patients(workdir: str | Path) -> list[str]:
    """Patients whose modalities are built, sorted."""
    root = Path(workdir) / "patients"
    return sorted(p.name for p in root.iterdir() if _samples_path(Path(workdir), p.name).exists()) if root.exists() else []


def fa_patients(workdir: str | Path, patient_ids: list[str]) -> list[str]:
    """Those of ``patient_ids`` that have FA tract samples."""
    out = []
    for pid in patient_ids:
        with np.load(_samples_path(Path(workdir), pid), allow_pickle=False) as z:
            if "tract_fa" in z.files:
                out.append(pid)
    return out


def split_holdout(ids: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of FA patients into training and held-out (at least one of each when possible)."""
    ids = sorted(ids)
    n_val = int(round(len(ids) * fraction))
    if fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    perm = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in perm[:n_val])
    return [i for i in ids if i not in val], val


def _stack(workdir: Path, ids: list[str], key: str) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([load_atlas_samples(workdir, p)[key] for p in ids]).astype(np.float32))


def _edge_rows(workdir: Path, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MRI rows, FA rows and the patient index of each row."""
    mri, fa, owner = [], [], []
    for k, pid in enumerate(ids):
        s = load_atlas_samples(workdir, pid)
        mri.append(s["tract"])
        fa.append(s["tract_fa"])
        owner.append(np.full(len(s["tract"]), k))
    to = lambda arrs, dt: torch.from_numpy(np.concatenate(arrs).astype(dt))  # noqa: E731
    return to(mri, np.float32), to(fa, np.float32), to(owner, np.int64)


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


def _edge_loader(mri, fa, owner, batch_size, batching, generator) -> DataLoader:
    data = TensorDataset(mri, fa)
    batch_size = min(batch_size, len(data))
    if batching == "per_patient":
        return DataLoader(data, batch_sampler=PerPatientBatches(owner, batch_size, generator))
    return DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)


@torch.no_grad()
def retrieval_accuracy(model: EdgeContrastiveModel, mri, fa, owner, batch_size, batching, seed) -> tuple[float, float]:
    """Top-1 accuracy of finding the matching FA tract for an MRI tract within a batch, and chance."""
    model.eval()
    loader = _edge_loader(mri, fa, owner, batch_size, batching, torch.Generator().manual_seed(seed))
    hits = total = 0
    sizes = []
    for x_mri, x_fa in loader:
        z, z_fa = model(x_mri, x_fa)
        sim = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(z_fa, dim=1).T
        hits += int((sim.argmax(1) == torch.arange(len(z))).sum())
        total += len(z)
        sizes.append(len(z))
    return hits / max(total, 1), float(np.mean([1 / s for s in sizes])) if sizes else float("nan")


@torch.no_grad()
def reconstruction_error(model: NodeAutoencoder, x: torch.Tensor) -> tuple[float, float]:
    """MSE of the reconstruction and the MSE of predicting the training mean (both standardised)."""
    model.eval()
    recon, target = model(x)
    return float(((recon - target) ** 2).mean()), float((target**2).mean())


SSL_FORMAT = 2  # 2: standardised codes (code_norm); bump when stored models change shape


def _stage_key(config: GliotypeConfig, train_ids: list[str], val_ids: list[str]) -> str:
    text = json.dumps([config_hash(config, "ssl", "atlas"), config.seed, train_ids, val_ids, __version__,
                       SSL_FORMAT])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def train_self_supervised(
    workdir: str | Path, config: GliotypeConfig, patient_ids: list[str] | None = None, resume: bool = True
) -> dict:
    """Train both models on the FA patients among ``patient_ids`` (default: all built); returns the report."""
    workdir = Path(workdir)
    out = workdir / "ssl"
    ids = fa_patients(workdir, patient_ids if patient_ids is not None else available_patients(workdir))
    if len(ids) < 2:
        raise GliotypeError(f"self-supervised training needs at least 2 patients with FA maps, found {len(ids)}")
    train_ids, val_ids = split_holdout(ids, config.ssl.val_fraction, config.seed)
    key = _stage_key(config, train_ids, val_ids)
    if (out / "models.json").exists() and json.loads((out / "models.json").read_text()).get("key") == key:
        log.info("self-supervised models are up to date; reusing %s", out)
        return json.loads((out / "report.json").read_text())
    save_config(config, out / "config.yaml")
    generator = seed_everything(config.seed)
    node_cfg, edge_cfg = config.ssl.node, config.ssl.edge

    # Node autoencoder: MSE, Adam (section 4.3).
    x_node = _stack(workdir, train_ids, "node")
    node_model = NodeAutoencoder(x_node.shape[1], node_cfg.hidden, node_cfg.latent)
    node_model.norm.fit(x_node)
    node_loader = DataLoader(TensorDataset(x_node), batch_size=min(node_cfg.batch_size, len(x_node)), shuffle=True,
                             generator=generator)

    def node_loss(batch):
        recon, target = node_model(batch[0])
        return torch.nn.functional.mse_loss(recon, target)

    node_hist = fit(node_model, node_loss, node_loader, node_cfg, out / "node", "node autoencoder", resume,
                    seed=config.seed, key=key)

    # Edge model: eq. 1 between anatomical MRI and FA tract samples, SGD.
    mri, fa, owner = _edge_rows(workdir, train_ids)
    generator = seed_everything(config.seed + 1)  # initialisation independent of the node run's length
    edge_model = EdgeContrastiveModel(mri.shape[1], fa.shape[1], edge_cfg.mri_hidden, edge_cfg.fa_hidden,
                                      edge_cfg.latent, edge_cfg.projection)
    edge_model.mri_norm.fit(mri)
    edge_model.fa_norm.fit(fa)
    edge_loader = _edge_loader(mri, fa, owner, edge_cfg.batch_size, edge_cfg.batching, generator)

    def edge_loss(batch):
        z, z_fa = edge_model(*batch)
        return cross_modal_contrastive(z, z_fa, edge_cfg.temperature, edge_cfg.loss).mean()

    edge_hist = fit(edge_model, edge_loss, edge_loader, edge_cfg, out / "edge", "edge model", resume,
                    seed=config.seed, key=key)

    # Evidence of learning on the held-out FA patients (training patients when none is held out).
    eval_ids = val_ids or train_ids
    recon, baseline = reconstruction_error(node_model, _stack(workdir, eval_ids, "node"))
    acc, chance = retrieval_accuracy(edge_model, *_edge_rows(workdir, eval_ids), edge_cfg.batch_size,
                                     edge_cfg.batching, config.seed)
    report = {
        "train_patients": train_ids,
        "heldout_patients": val_ids,
        "node_reconstruction_mse": recon,
        "node_mean_baseline_mse": baseline,
        "edge_retrieval_top1": acc,
        "edge_retrieval_chance": chance,
        "node_final_loss": node_hist[-1]["loss"] if node_hist else None,
        "edge_final_loss": edge_hist[-1]["loss"] if edge_hist else None,
    }
    with torch.no_grad():  # statistics of the codes, so x_B is standardised (models.py)
        node_model.eval().code_norm.fit(node_model.encode(x_node))
        edge_model.eval().code_norm.fit(edge_model.encode(mri))
    save_weights(node_model, out / "node_autoencoder.safetensors")
    save_weights(edge_model, out / "edge_model.safetensors")
    atomic_write(out / "report.json", json.dumps(report, indent=2))
    sizes = {"node": [x_node.shape[1], node_cfg.hidden, node_cfg.latent],
             "edge": [mri.shape[1], fa.shape[1], edge_cfg.mri_hidden, edge_cfg.fa_hidden, edge_cfg.latent,
                      edge_cfg.projection]}
    atomic_write(out / "models.json", json.dumps({"key": key, "sizes": sizes}, indent=2))
    log.info("held-out node reconstruction MSE %.3f (mean baseline %.3f); edge top-1 retrieval %.3f (chance %.3f)",
             recon, baseline, acc, chance)
    return report


def load_self_supervised(workdir: str | Path) -> tuple[NodeAutoencoder, EdgeContrastiveModel]:
    """The trained models of a work folder, in eval mode (weights via safetensors, no pickle)."""
    out = Path(workdir) / "ssl"
    if not (out / "models.json").exists():
        raise GliotypeError("no trained self-supervised models in this work folder: run `gliotype ssl train` first")
    sizes = json.loads((out / "models.json").read_text())["sizes"]
    node = load_weights(NodeAutoencoder(*sizes["node"]), out / "node_autoencoder.safetensors").eval()
    edge = load_weights(EdgeContrastiveModel(*sizes["edge"]), out / "edge_model.safetensors").eval()
    return node, edge


def brain_network_path(workdir: str | Path, patient_id: str) -> Path:
    return Path(workdir) / "patients" / str(patient_id) / "brain_network.safetensors"


def encode_brain_networks(workdir: str | Path, patient_ids: list[str] | None = None) -> pd.DataFrame:
    """x_B for every patient: v_N = AE encoder(node samples), v_E = f(tract MRI samples)."""
    workdir = Path(workdir)
    node_model, edge_model = load_self_supervised(workdir)
    edge_index = torch.from_numpy(_atlas_edge_index(workdir)).contiguous()
    key = json.loads((workdir / "ssl" / "models.json").read_text())["key"]
    rows = []
    for pid in progress(patient_ids if patient_ids is not None else available_patients(workdir), "brain networks"):
        path = brain_network_path(workdir, pid)
        try:
            if path.exists() and _stored_key(path) == key:
                rows.append({"patient_id": pid, "status": "skipped", "reason": ""})
                continue
            s = load_atlas_samples(workdir, pid)
            with torch.no_grad():
                v_n = node_model.attributes(torch.from_numpy(s["node"].astype(np.float32)))
                v_e = edge_model.attributes(torch.from_numpy(s["tract"].astype(np.float32)))
            tensors = {
                "x": v_n.contiguous(),
                "edge_attr": v_e.contiguous(),
                "edge_index": edge_index,
            }
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp), metadata={"key": key, "patient_id": pid})
            rows.append({"patient_id": pid, "status": "done", "reason": ""})
        except Exception as exc:  # one bad case never stops the cohort
            rows.append({"patient_id": pid, "status": "failed", "reason": str(exc).splitlines()[0]})
            log.warning("patient %s: brain network failed: %s", pid, rows[-1]["reason"])
    table = pd.DataFrame(rows, columns=["patient_id", "status", "reason"])
    write_csv_atomic(table, workdir / "brain_network_status.csv")
    return table


def _stored_key(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("key")


def _atlas_edge_index(workdir: Path) -> np.ndarray:
    """(2, T) node rows of each tract's region pair, as stored with the atlas sampling."""
    from gliotype.modalities.build import AtlasSampling

    return AtlasSampling.load(workdir / "atlas").edge_index.astype(np.int64)


def load_brain_network(workdir: str | Path, patient_id: str):
    """x_B as a ``torch_geometric.data.Data``: ``x`` (R, 16) node attributes, ``edge_index``
    (2, T) 0-based region indices of each tract (one direction), ``edge_attr`` (T, 16)."""
    from torch_geometric.data import Data

    t = load_file(str(brain_network_path(workdir, patient_id)))
    return Data(x=t["x"], edge_index=t["edge_index"], edge_attr=t["edge_attr"])
