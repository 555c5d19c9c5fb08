"""The feature groups of a run folder, in pipeline order (what the audit probes).

- hand-made tumour descriptors (all, then each family of :data:`DESCRIPTOR_FAMILIES`);
- atlas region means and atlas tract means: the mean of each sequence over the fixed
  positions of every region / tract (the inputs of the self-supervised models, x_B's raw
  material; ``modalities/atlas_samples.npz``);
- x_B node attributes v_N (regions x code, flattened) and x_B edge attributes v_E
  (tracts x code, flattened, with their mean over tracts kept beside; ``brain_network.safetensors``);
- u_I, u_P, u_T, u_B, <u_T, u_B> and the BCE head's probability of the full model
  (``models/<full model>/features.csv``; only half B and the test patients have them).

Groups wider than ``max_dims`` are reduced by :func:`reduce_group`: a PCA fitted on the
training patients only (no label is used), with the group's fixed summary columns (the
mean over tracts) kept beside the components.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.audit.descriptors import DESCRIPTOR_COLUMNS, DESCRIPTOR_FAMILIES, SEQUENCES
from gliotype.utils.logging import get_logger

log = get_logger(__name__)


@dataclass
class FeatureGroup:
    """One feature group: a matrix with one row per patient (``patient_ids``)."""

    name: str
    stage: str
    patient_ids: list[str]
    X: np.ndarray  # (n, d) as the pipeline has it
    summary: np.ndarray | None = None  # (n, k) kept beside the PCA of a wide X

    @property
    def dims(self) -> int:
        return int(self.X.shape[1])

    def rows(self, ids) -> np.ndarray:
        """Row positions of ``ids`` (those the group has), in the order given."""
        where = {p: i for i, p in enumerate(self.patient_ids)}
        return np.array([where[p] for p in ids if p in where], dtype=np.int64)


def descriptor_groups(descriptors: pd.DataFrame) -> list[FeatureGroup]:
    """The hand-made descriptors, all together and by family."""
    ids = descriptors["patient_id"].astype(str).tolist()
    groups = [FeatureGroup("descriptors (all)", "hand-made", ids,
                           descriptors[list(DESCRIPTOR_COLUMNS)].to_numpy(np.float64))]
    for family, cols in DESCRIPTOR_FAMILIES.items():
        groups.append(FeatureGroup(f"descriptors: {family}", "hand-made", ids,
                                   descriptors[list(cols)].to_numpy(np.float64)))
    return groups


def _sequence_means(samples: np.ndarray) -> np.ndarray:
    """``(K, C n)`` channel-major samples -> ``(K, C)`` mean per channel."""
    k = samples.shape[0]
    return samples.reshape(k, len(SEQUENCES), -1).mean(axis=2)


def atlas_groups(work: str | Path, patient_ids) -> list[FeatureGroup]:
    """Region and tract means per sequence (patients without atlas samples are left out)."""
    from gliotype.self_supervised.inputs import load_atlas_samples

    ids, regions, tracts = [], [], []
    for pid in patient_ids:
        try:
            s = load_atlas_samples(work, pid)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("patient %s: no atlas samples (%s)", pid, type(exc).__name__)
            continue
        ids.append(pid)
        regions.append(_sequence_means(s["node"]).ravel())
        tracts.append(_sequence_means(s["tract"]).ravel())
    if not ids:
        return []
    return [FeatureGroup("atlas region means", "atlas inputs", ids, np.stack(regions).astype(np.float64)),
            FeatureGroup("atlas tract means", "atlas inputs", ids, np.stack(tracts).astype(np.float64))]


def brain_network_groups(work: str | Path, patient_ids) -> list[FeatureGroup]:
    """x_B node attributes (flattened) and edge attributes (flattened, mean over tracts as summary)."""
    from gliotype.layout import WorkDir
    from gliotype.self_supervised.encode import load_brain_network

    work = WorkDir.of(work)
    ids, nodes, edges, edge_means = [], [], [], []
    for pid in patient_ids:
        if not work.case(pid).brain_network.exists():
            log.warning("patient %s: no brain network x_B", pid)
            continue
        data = load_brain_network(work, pid)
        ids.append(pid)
        nodes.append(data.x.numpy().ravel())
        edges.append(data.edge_attr.numpy().ravel())
        edge_means.append(data.edge_attr.numpy().mean(0))
    if not ids:
        return []
    return [FeatureGroup("x_B node attributes", "self-supervised x_B", ids, np.stack(nodes).astype(np.float64)),
            FeatureGroup("x_B edge attributes", "self-supervised x_B", ids, np.stack(edges).astype(np.float64),
                         summary=np.stack(edge_means).astype(np.float64))]


def learned_groups(features: pd.DataFrame) -> list[FeatureGroup]:
    """u_I, u_P, u_T, u_B, <u_T, u_B> and the BCE head of the full model (groups it lacks are skipped)."""
    from gliotype.multimodal.stage import feature_matrix

    ids = features["patient_id"].astype(str).tolist()
    out = []
    mats = {g: feature_matrix(features, g).astype(np.float64) for g in ("u_I", "u_P", "u_T", "u_B")}
    for g, m in mats.items():
        if m.shape[1]:
            out.append(FeatureGroup(g, "multi-modal", ids, m))
    if mats["u_T"].shape[1] and mats["u_B"].shape[1]:
        out.append(FeatureGroup("<u_T, u_B>", "multi-modal", ids, np.concatenate([mats["u_T"], mats["u_B"]], 1)))
    if "p_head" in features:
        out.append(FeatureGroup("BCE head", "multi-modal", ids, features[["p_head"]].to_numpy(np.float64)))
    return out


def reduce_group(group: FeatureGroup, train_ids, max_dims: int = 2048, components: int = 32,
                 seed: int = 0) -> np.ndarray:
    """The group's matrix for the probes: as it is when at most ``max_dims`` wide, else the first
    ``components`` principal components (fitted on the training rows only) beside its summary."""
    if group.dims <= max_dims:
        return group.X
    from sklearn.decomposition import PCA

    train = group.rows(train_ids)
    k = int(min(components, max(len(train) - 1, 1)))
    pca = PCA(n_components=k, svd_solver="full", random_state=seed).fit(group.X[train])
    parts = [pca.transform(group.X)]
    if group.summary is not None:
        parts.insert(0, group.summary)
    return np.concatenate(parts, axis=1)
