"""The trained-model folder that ``gliotype predict`` loads (self-contained, no pickle).

Contents: ``config.yaml``; ``ssl/`` (node autoencoder, edge model, sizes); ``atlas/``
(the fixed voxel positions and tract pairs); ``multimodal/`` (weights, sizes);
``population_graph/`` (stored node features u_T, u_B of the graph patients, their
labels, the standardisation statistics, the GNN weights, the threshold) and
``manifest.json`` with hashes of every file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype import __version__
from gliotype.config import GliotypeConfig, config_hash, save_config
from gliotype.evaluation import youden_threshold
from gliotype.utils.io import atomic_path, atomic_write
from gliotype.utils.training import save_weights


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_model(
    folder: Path,
    config: GliotypeConfig,
    work: Path,
    multimodal_dir: Path,
    features: pd.DataFrame,
    graph_ids: list[str],
    labelled: np.ndarray,
    y: np.ndarray,
    gnn,
) -> Path:
    """Write the model folder; ``gnn`` is the chosen Table 2 model (with its artifacts)."""
    from gliotype.multimodal.stage import feature_matrix

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_config(config, folder / "config.yaml")
    for sub, names in (("ssl", ("node_autoencoder.safetensors", "edge_model.safetensors", "models.json")),
                       ("atlas", ("atlas_sampling.npz", "tract_matrix.npz", "tract_grid.json"))):
        (folder / sub).mkdir(exist_ok=True)
        for n in names:
            shutil.copy2(work / sub / n, folder / sub / n)
    (folder / "multimodal").mkdir(exist_ok=True)
    for n in ("model.safetensors", "model.json"):
        shutil.copy2(multimodal_dir / n, folder / "multimodal" / n)
    for extra in ("standard_scale.json",):
        if (work / extra).exists():
            shutil.copy2(work / extra, folder / extra)

    pg = folder / "population_graph"
    pg.mkdir(exist_ok=True)
    u_t, u_b = feature_matrix(features, "u_T"), feature_matrix(features, "u_B")
    labels = np.where(labelled, y, -1.0).astype(np.float32)
    with atomic_path(pg / "nodes.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, u_t=u_t, u_b=u_b, labels=labels, labelled=labelled, patient_id=np.array(graph_ids, dtype="U64"))
    save_weights(gnn.artifacts["model"], pg / "gnn.safetensors")
    threshold = youden_threshold(y[labelled], gnn.p_train) if config.evaluation.threshold == "youden" else 0.5
    meta = {
        "node_weight": gnn.artifacts["node"],
        "edge_weight": gnn.artifacts["edge"],
        "theta": config.population_graph.theta,
        "standardise": config.population_graph.standardise,
        "threshold": threshold,
        "in_channels": int(gnn.artifacts["graph"].x.shape[1]),
    }
    atomic_write(pg / "meta.json", json.dumps(meta, indent=2))
    files = {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()
             and p.name != "manifest.json"}
    atomic_write(folder / "manifest.json", json.dumps({"gliotype_version": __version__,
                                                       "config_hash": config_hash(config), "files": files}, indent=2))
    return folder
