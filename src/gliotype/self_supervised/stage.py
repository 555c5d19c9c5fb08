"""Train the self-supervised models and encode every patient's brain network (section 3.2).

Trained only on patients with FA (the paper's 20 in-house cases), a fraction of them
held out to show what was learned; then applied to every patient, FA or not, to give
x_B = {v_N, v_E}: 90 nodes and (default) 2,309 edges with 16-d attributes each.

Files under ``WORKDIR/ssl/``: ``node/`` and ``edge/`` (checkpoints every epoch),
``node_autoencoder.safetensors``, ``edge_model.safetensors`` (with ``ssl.inputs =
deviation`` these also hold the normative statistics of the inputs), ``models.json``
(sizes and the cache key), ``report.json`` (evidence of learning, see
:mod:`gliotype.self_supervised.evidence`), ``config.yaml``.
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
from gliotype.layout import WorkDir
from gliotype.losses import cross_modal_contrastive
from gliotype.self_supervised.deviation import NormativeDeviation
from gliotype.self_supervised.evidence import edge_evidence, node_evidence
from gliotype.self_supervised.models import EdgeContrastiveModel, NodeAutoencoder
from gliotype.utils.io import atomic_path, atomic_write, write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.progress import progress
from gliotype.utils.training import fit, load_weights, save_weights, seed_everything

log = get_logger(__name__)


def load_atlas_samples(workdir: str | Path | WorkDir, patient_id: str) -> dict[str, np.ndarray]:
    """``node`` (R, 4n), ``tract`` (T, 4n) and, with FA, ``tract_fa`` (T, n)."""
    with np.load(WorkDir.of(workdir).case(patient_id).atlas_samples, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


#: Sequences (channels) of a node / tract row of anatomical MRI (modalities.build.SEQUENCE_ORDER).
MRI_CHANNELS = 4


def tract_positions_or_none(workdir: str | Path | WorkDir):
    """The work folder's fixed atlas positions (``AtlasSampling``), or None when not stored."""
    from gliotype.modalities.build import AtlasSampling

    folder = WorkDir.of(workdir).atlas
    return AtlasSampling.load(folder) if folder.sampling.exists() else None


def tumor_flags(workdir: str | Path | WorkDir, patient_id: str, sampling) -> dict[str, np.ndarray] | None:
    """``node_tumor`` (R, n) and ``tract_tumor`` (T, n): sampled positions inside the tumour mask
    (any label), from the preprocessed mask on the template grid; None without a mask."""
    import nibabel as nib

    from gliotype.atlases import gather

    work = WorkDir.of(workdir)
    path = work.case(patient_id).mask
    if sampling is None or not path.exists():
        return None
    tumor = (np.asarray(nib.load(str(path)).dataobj) > 0).astype(np.float32)
    grid = work.atlas.tract_grid
    if grid.exists() and tuple(json.loads(grid.read_text())["shape"]) != tumor.shape:
        raise GliotypeError(f"patient {patient_id}: the tumour mask is not on the grid of the atlas positions")
    try:
        return {"node_tumor": gather(tumor, sampling.node_positions) > 0.5,
                "tract_tumor": gather(tumor, sampling.tract_positions) > 0.5}
    except ValueError:
        raise GliotypeError(f"patient {patient_id}: the tumour mask is not on the grid of the atlas positions") from None


def patient_inputs(workdir: str | Path | WorkDir, patient_id: str, sampling=None, required: bool = False) -> dict:
    """Atlas samples of one patient and, with ``sampling``, the tumour flags of every position."""
    s = load_atlas_samples(workdir, patient_id)
    try:
        flags = tumor_flags(workdir, patient_id, sampling) if sampling is not None else None
    except GliotypeError:
        if required:
            raise
        flags = None  # only the evidence uses them then
    if flags is None and required:
        raise GliotypeError(f"patient {patient_id}: ssl.tumor=mask needs the preprocessed tumour mask and the atlas "
                            "positions (run preprocessing and modalities first)")
    return {**s, **(flags or {})}


def available_patients(workdir: str | Path | WorkDir) -> list[str]:
    """Patients whose modalities are built, sorted."""
    work = WorkDir.of(workdir)
    return [pid for pid in work.case_ids() if work.case(pid).atlas_samples.exists()]


def fa_patients(workdir: str | Path | WorkDir, patient_ids: list[str]) -> list[str]:
    """Those of ``patient_ids`` that have FA tract samples."""
    work = WorkDir.of(workdir)
    out = []
    for pid in patient_ids:
        with np.load(work.case(pid).atlas_samples, allow_pickle=False) as z:
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


def _tensor(a: np.ndarray, dtype=np.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))


def _flags(s: dict, kind: str) -> torch.Tensor | None:
    f = s.get(f"{kind}_tumor")
    return None if f is None else torch.from_numpy(np.asarray(f, dtype=bool))


def _node_rows(model: NodeAutoencoder, inputs: dict[str, dict]) -> torch.Tensor:
    """The node autoencoder's input rows of every patient, stacked (patient-major)."""
    with torch.no_grad():
        return torch.cat([model.prepare(_tensor(s["node"]), _flags(s, "node")) for s in inputs.values()])


def _edge_rows(model: EdgeContrastiveModel, inputs: dict[str, dict]) -> tuple[torch.Tensor, ...]:
    """MRI rows, FA rows, the patient index and the tract index of each row (patient-major)."""
    mri, fa, owner, tract = [], [], [], []
    with torch.no_grad():
        for k, s in enumerate(inputs.values()):
            mri.append(model.prepare_mri(_tensor(s["tract"]), _flags(s, "tract")))
            fa.append(model.prepare_fa(_tensor(s["tract_fa"]), _flags(s, "tract")))
            owner.append(torch.full((len(s["tract"]),), k, dtype=torch.int64))
            tract.append(torch.arange(len(s["tract"]), dtype=torch.int64))
    return torch.cat(mri), torch.cat(fa), torch.cat(owner), torch.cat(tract)


def _fit_deviation(inputs: dict[str, dict], key: str, channels: int, config: GliotypeConfig) -> NormativeDeviation:
    """Normative statistics of ``key`` rows over the given (training) patients."""
    kind = "node" if key == "node" else "tract"
    x = np.stack([s[key] for s in inputs.values()])
    tumor = np.stack([s[f"{kind}_tumor"] for s in inputs.values()]) if config.ssl.tumor == "mask" else None
    return NormativeDeviation(x.shape[1], x.shape[2], channels, config.ssl.tumor).fit(x, tumor, config.ssl.normative)


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


def _edge_loader(mri, fa, owner, tract, batch_size, batching, generator, strict: bool = True) -> DataLoader:
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


@torch.no_grad()
def retrieval_accuracy(model: EdgeContrastiveModel, mri, fa, owner, tract, batch_size, batching,
                       seed) -> tuple[float, float]:
    """Top-1 accuracy of finding the matching FA tract for an MRI tract within a batch, and chance
    (NaN when no batch can be formed, e.g. one held-out patient with ``same_tract``)."""
    model.eval()
    loader = _edge_loader(mri, fa, owner, tract, batch_size, batching, torch.Generator().manual_seed(seed),
                          strict=False)
    hits = total = 0
    sizes = []
    for x_mri, x_fa in loader:
        z, z_fa = model(x_mri, x_fa)
        sim = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(z_fa, dim=1).T
        hits += int((sim.argmax(1) == torch.arange(len(z))).sum())
        total += len(z)
        sizes.append(len(z))
    if not total:
        return float("nan"), float("nan")
    return hits / total, float(np.mean([1 / s for s in sizes]))


@torch.no_grad()
def reconstruction_error(model: NodeAutoencoder, x: torch.Tensor) -> tuple[float, float]:
    """MSE of the reconstruction and the MSE of predicting the training mean (both standardised)."""
    model.eval()
    recon, target = model(x)
    return float(((recon - target) ** 2).mean()), float((target**2).mean())


@torch.no_grad()
def code_collapsed(model: EdgeContrastiveModel, rows: torch.Tensor) -> bool:
    """True when the MRI code is the same for every row (dead units: eq. 1's loss is stuck at log(B - 1))."""
    model.eval()
    return bool(model.encode(rows).std(0).max() < 1e-6)


SSL_FORMAT = 2  # 2: standardised codes (code_norm); bump when stored models change shape


def _stage_key(config: GliotypeConfig, train_ids: list[str], val_ids: list[str]) -> str:
    text = json.dumps([config_hash(config, "ssl", "atlas", "preprocess"), config.seed, train_ids, val_ids, __version__,
                       SSL_FORMAT])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def train_self_supervised(
    workdir: str | Path | WorkDir, config: GliotypeConfig, patient_ids: list[str] | None = None, resume: bool = True
) -> dict:
    """Train both models on the FA patients among ``patient_ids`` (default: all built); returns the report.

    With ``ssl.inputs = deviation`` the normative statistics come from the training
    patients only and are stored in the models' weight files.
    """
    workdir = WorkDir.of(workdir)
    out = workdir.ssl
    ids = fa_patients(workdir, patient_ids if patient_ids is not None else available_patients(workdir))
    if len(ids) < 2:
        raise GliotypeError(f"self-supervised training needs at least 2 patients with FA maps, found {len(ids)}")
    train_ids, val_ids = split_holdout(ids, config.ssl.val_fraction, config.seed)
    key = _stage_key(config, train_ids, val_ids)
    if out.models.exists() and json.loads(out.models.read_text()).get("key") == key:
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
    x_node = _node_rows(node_model, train)
    node_model.norm.fit(x_node)
    node_loader = DataLoader(TensorDataset(x_node), batch_size=min(node_cfg.batch_size, len(x_node)), shuffle=True,
                             generator=generator)

    def node_loss(batch):
        recon, target = node_model(batch[0])
        return torch.nn.functional.mse_loss(recon, target)

    node_hist = fit(node_model, node_loss, node_loader, node_cfg, out.node_checkpoints, "node autoencoder", resume,
                    seed=config.seed, key=key)

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
    mri, fa, owner, tract = _edge_rows(edge_model, train)
    edge_model.mri_norm.fit(mri)
    edge_model.fa_norm.fit(fa)
    edge_loader = _edge_loader(mri, fa, owner, tract, edge_cfg.batch_size, edge_cfg.batching, generator)

    def edge_loss(batch):
        z, z_fa = edge_model(*batch)
        return cross_modal_contrastive(z, z_fa, edge_cfg.temperature, edge_cfg.loss).mean()

    edge_hist = fit(edge_model, edge_loss, edge_loader, edge_cfg, out.edge_checkpoints, "edge model", resume,
                    seed=config.seed, key=key)

    # Evidence of learning on the held-out FA patients (training patients when none is held out).
    held = {p: patient_inputs(workdir, p, sampling, required=masked) for p in val_ids} if val_ids else train
    recon, baseline = reconstruction_error(node_model, _node_rows(node_model, held))
    acc, chance = retrieval_accuracy(edge_model, *_edge_rows(edge_model, held), edge_cfg.batch_size,
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
    atomic_write(out.models, json.dumps({"key": key, "sizes": sizes}, indent=2))
    log.info("held-out node reconstruction MSE %.3f (mean baseline %.3f); edge top-1 retrieval %.3f (chance %.3f)",
             recon, baseline, acc, chance)
    if "fa_probe_rho_within_tract" in report:
        log.info("held-out FA deviation vs edge code: Spearman %.2f within tracts; tract identity top-1 %.3f "
                 "(chance %.4f)", report["fa_probe_rho_within_tract"], report["tract_identity_top1"],
                 report["tract_identity_chance"])
    return report


def load_self_supervised(workdir: str | Path | WorkDir) -> tuple[NodeAutoencoder, EdgeContrastiveModel]:
    """The trained models of a work folder (or model folder), in eval mode (weights and normative
    statistics via safetensors, no pickle)."""
    out = WorkDir.of(workdir).ssl
    if not out.models.exists():
        raise GliotypeError("no trained self-supervised models in this work folder: run `gliotype ssl train` first")
    sizes = json.loads(out.models.read_text())["sizes"]
    node = load_weights(NodeAutoencoder(*sizes["node"]), out.node_model).eval()
    edge = load_weights(EdgeContrastiveModel(*sizes["edge"]), out.edge_model).eval()
    return node, edge


def _needs_tumor(node_model: NodeAutoencoder, edge_model: EdgeContrastiveModel) -> bool:
    return any(d is not None and d.tumor == "mask" for d in (node_model.deviation, edge_model.mri_deviation))


def encode_brain_networks(workdir: str | Path | WorkDir, patient_ids: list[str] | None = None) -> pd.DataFrame:
    """x_B for every patient: v_N = AE encoder(node samples), v_E = f(tract MRI samples).

    With deviation inputs the stored normative statistics of the training patients are
    used for every patient; with ``tumor=mask`` the tumour-covered fraction of every
    region and tract is also written (``node_tumor_fraction``, ``edge_tumor_fraction``).
    """
    workdir = WorkDir.of(workdir)
    node_model, edge_model = load_self_supervised(workdir)
    masked = _needs_tumor(node_model, edge_model)
    sampling = tract_positions_or_none(workdir) if masked else None
    edge_index = torch.from_numpy(_atlas_edge_index(workdir)).contiguous()
    key = json.loads(workdir.ssl.models.read_text())["key"]
    rows = []
    for pid in progress(patient_ids if patient_ids is not None else available_patients(workdir), "brain networks"):
        path = workdir.case(pid).brain_network
        try:
            if path.exists() and _stored_key(path) == key:
                rows.append({"patient_id": pid, "status": "skipped", "reason": ""})
                continue
            s = patient_inputs(workdir, pid, sampling, required=masked)
            with torch.no_grad():
                v_n = node_model.attributes(_tensor(s["node"]), _flags(s, "node"))
                v_e = edge_model.attributes(_tensor(s["tract"]), _flags(s, "tract"))
            tensors = {
                "x": v_n.contiguous(),
                "edge_attr": v_e.contiguous(),
                "edge_index": edge_index,
            }
            if masked:
                tensors["node_tumor_fraction"] = _tensor(s["node_tumor"].mean(1))
                tensors["edge_tumor_fraction"] = _tensor(s["tract_tumor"].mean(1))
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp), metadata={"key": key, "patient_id": pid})
            rows.append({"patient_id": pid, "status": "done", "reason": ""})
        except Exception as exc:  # one bad case never stops the cohort
            rows.append({"patient_id": pid, "status": "failed", "reason": str(exc).splitlines()[0]})
            log.warning("patient %s: brain network failed: %s", pid, rows[-1]["reason"])
    table = pd.DataFrame(rows, columns=["patient_id", "status", "reason"])
    write_csv_atomic(table, workdir.brain_network_status)
    return table


def _stored_key(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("key")


def _atlas_edge_index(workdir: WorkDir) -> np.ndarray:
    """(2, T) node rows of each tract's region pair, as stored with the atlas sampling."""
    from gliotype.modalities.build import AtlasSampling

    return AtlasSampling.load(workdir.atlas).edge_index.astype(np.int64)


def load_brain_network(workdir: str | Path | WorkDir, patient_id: str):
    """x_B as a ``torch_geometric.data.Data``: ``x`` (R, 16) node attributes, ``edge_index``
    (2, T) 0-based region indices of each tract (one direction), ``edge_attr`` (T, 16)."""
    from torch_geometric.data import Data

    t = load_file(str(WorkDir.of(workdir).case(patient_id).brain_network))
    return Data(x=t["x"], edge_index=t["edge_index"], edge_attr=t["edge_attr"])
