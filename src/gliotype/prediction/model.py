"""Load a trained-model folder (``RUNDIR/model``, written by :mod:`gliotype.experiment.export`).

Every file the prediction reads is checked against its sha256 in ``manifest.json``
first (:func:`~gliotype.prediction.opened.open_model`, which also reads the configuration);
a modified, missing or unlisted file stops the loading with one line. With the
author's public key the manifest's signature is checked too (``manifest.sig``,
:mod:`gliotype.bundle.signature`): an unsigned, re-signed or tampered folder is refused;
without it a signed folder whose manifest changed since it was signed loads with a
warning. Nothing is unpickled: weights are safetensors, arrays
``np.load(allow_pickle=False)``, the rest JSON and YAML (``yaml.safe_load``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gliotype.bundle import ModelError, model_id, verify_manifest
from gliotype.config import GliotypeConfig
from gliotype.errors import GliotypeError, one_line
from gliotype.layout import ModelDir
from gliotype.prediction.calibrated import NOT_EXPORTED, Calibration, NoCalibration, read_calibration
from gliotype.prediction.opened import OpenedModel, open_model
from gliotype.utils.logging import get_logger

if TYPE_CHECKING:
    from gliotype.modalities.atlas import LoadedAtlas
    from gliotype.prediction.applicability import Reference
    from gliotype.self_supervised import SelfSupervisedModels

log = get_logger(__name__)



@dataclass
class TrainedModel:
    """Everything a prediction needs, loaded from a model folder.

    ``graph`` is the stored population graph rebuilt exactly as in training (features
    z-scored with the stored statistics, eq. 8 edges at ``theta``); ``edge_features``
    its standardised edge features, to link new patients to it. ``atlas`` and
    ``self_supervised`` are the stored parts a new patient's modalities and brain network
    are built with (loaded once, not copied anywhere).
    """

    folder: Path
    config: GliotypeConfig
    manifest: dict
    model_id: str  # first 16 hex digits of the sha256 of manifest.json
    multimodal: torch.nn.Module
    gnn: torch.nn.Module
    graph: object  # gliotype.population_graph.PopulationGraph
    edge_features: np.ndarray  # (N, D_edge) standardised
    node_mean: np.ndarray
    node_std: np.ndarray
    edge_mean: np.ndarray
    edge_std: np.ndarray
    stored_probability: np.ndarray | None  # transductive P(mutant) of every stored node
    labels: np.ndarray  # (N,) 1, 0 or -1 (unlabelled)
    meta: dict
    region_centroids: np.ndarray  # (R, 3) MNI mm, node-row order
    region_names: list[str]
    graph_check: float | None  # max |p(rebuilt graph) - stored p| over the stored nodes
    atlas: LoadedAtlas  # the atlas positions and tract matrix of training (``atlas/``)
    self_supervised: SelfSupervisedModels  # the brain-network encoders (``ssl/``)
    signed_by: str | None = None  # the key id whose signature was checked when loading (None: not checked)
    # sequence_spread.json: the logit SD of removing each sequence (None: a model exported before it)
    sequence_spread: dict | None = None
    # applicability.json with the training embeddings (None: a model exported before it)
    applicability: Reference | None = None
    # calibration.json: the calibrator and conformal predictor, or why there are none
    calibration: Calibration | NoCalibration = NoCalibration(NOT_EXPORTED)
    # a capped or ann graph (population_graph.neighbours, max_neighbours): what links a new patient
    # (gliotype.population_graph.neighbours.StoredNeighbours); None: eq. 8 to every stored node
    neighbours: object | None = None

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def theta(self) -> float:
        return float(self.meta["theta"])

    @property
    def version(self) -> str:
        return str(self.manifest.get("gliotype_version", "unknown"))

    @property
    def config_hash(self) -> str:
        return str(self.manifest.get("config_hash", ""))

    @property
    def patient_ids(self) -> list[str]:
        return list(self.graph.patient_id)

    def without(self, patient_ids) -> TrainedModel:
        """A copy whose stored graph lacks ``patient_ids`` (e.g. to re-insert one as new: leave-one-out).

        The standardisation statistics stay those of training.
        """
        import dataclasses

        drop = {str(p) for p in patient_ids}
        unknown = drop - set(self.graph.patient_id)
        if unknown:
            raise GliotypeError(f"patient {sorted(unknown)[0]} is not a node of the stored graph")
        keep = np.array([i for i, p in enumerate(self.graph.patient_id) if p not in drop], dtype=np.int64)
        return dataclasses.replace(
            self, graph=self.graph.subgraph(keep), edge_features=self.edge_features[keep],
            labels=self.labels[keep], stored_probability=None if self.stored_probability is None else self.stored_probability[keep],
            neighbours=None if self.neighbours is None else self.neighbours.subset(keep))

    def standardise(self, node: np.ndarray, edge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New patients' node and edge features on the stored scale."""
        return ((np.asarray(node, np.float64) - self.node_mean) / self.node_std,
                (np.asarray(edge, np.float64) - self.edge_mean) / self.edge_std)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_model(model_dir: str | Path | OpenedModel, public_key: str | Path | None = None) -> TrainedModel:
    """Verify and load a model folder (``RUNDIR/model``), or the networks of one :func:`open_model` verified.

    ``public_key``: a PEM file of the model author's Ed25519 public key; the folder must then
    be signed with that key and unchanged since (:class:`gliotype.bundle.SignatureError`).
    """
    from gliotype.modalities.atlas import LoadedAtlas
    from gliotype.multimodal.stage import load_multimodal
    from gliotype.population_graph import PopulationGNN, predict_proba, select_features
    from gliotype.population_graph.graph import PopulationGraph
    from gliotype.self_supervised import SelfSupervisedModels
    from gliotype.utils.weights import load_weights

    opened = model_dir if isinstance(model_dir, OpenedModel) else open_model(model_dir, public_key)
    layout, manifest, config, signed_by = opened.layout, opened.manifest, opened.config, opened.signed_by
    folder, pg = layout.root, layout.population_graph
    try:
        atlas = LoadedAtlas.load(layout.atlas)
        ssl = SelfSupervisedModels.load(layout.ssl, atlas.sampling)  # a work folder's ssl/, copied
        mm = load_multimodal(layout.multimodal, config)
        meta = json.loads(pg.meta.read_text())
        nodes = _load_npz(pg.nodes)
        # bundles written before the GNN's sizes were all stored: the defaults of that time
        sizes = {"gat": list(config.population_graph.gat), "dropout": 0.0, "residual": False, **meta}
        gnn = load_weights(PopulationGNN.from_sizes(sizes), pg.gnn).eval()
    except GliotypeError:
        raise
    except Exception as exc:
        raise ModelError(f"model folder {folder.name}: cannot load the trained networks "
                         f"({type(exc).__name__}: {one_line(exc, 150)})") from None

    u_t, u_b = nodes["u_t"].astype(np.float64), nodes["u_b"].astype(np.float64)
    node = select_features(u_t, u_b, meta["node_weight"])
    edge = select_features(u_t, u_b, meta["edge_weight"])
    st = _load_npz(pg.standardisation)
    node_mean, node_std, edge_mean, edge_std = st["node_mean"], st["node_std"], st["edge_mean"], st["edge_std"]
    node_z = (node - node_mean) / node_std
    edge_z = (edge - edge_mean) / edge_std
    ei, w, neighbours = _stored_edges(layout, manifest, config, edge_z, float(meta["theta"]))
    ids = [str(p) for p in nodes["patient_id"]]
    graph = PopulationGraph(x=torch.as_tensor(node_z, dtype=torch.float32), edge_index=torch.as_tensor(ei),
                            edge_weight=torch.as_tensor(w), y=torch.as_tensor(nodes["labels"].astype(np.float32)),
                            patient_id=ids)
    stored_p = nodes.get("probability")
    check = None
    if stored_p is not None:
        check = float(np.max(np.abs(predict_proba(gnn, graph) - stored_p))) if len(stored_p) else 0.0
        if check > 1e-3:
            log.warning("the rebuilt population graph gives other probabilities than in training (max difference "
                        "%.2g): check the gliotype and torch versions", check)

    spread = _sequence_spread(layout, manifest)
    applicability = _applicability(layout, manifest, u_t, u_b, nodes.get("labelled", nodes["labels"] >= 0))
    calibration = _optional_json(layout, layout.calibration, manifest, read_calibration)
    reg = _load_npz(layout.atlas.regions)
    centroids, names = reg["centroids_mm"], [str(n) for n in reg.get("names", [])]

    return TrainedModel(folder=folder, config=config, manifest=manifest, model_id=model_id(layout), multimodal=mm, gnn=gnn,
                        graph=graph, edge_features=edge_z, node_mean=node_mean, node_std=node_std,
                        edge_mean=edge_mean, edge_std=edge_std, stored_probability=stored_p,
                        labels=nodes["labels"].astype(np.float32), meta=meta, region_centroids=centroids,
                        region_names=names, graph_check=check, atlas=atlas, self_supervised=ssl,
                        signed_by=signed_by, sequence_spread=spread, applicability=applicability,
                        calibration=calibration or read_calibration(None), neighbours=neighbours)


def _stored_edges(layout: ModelDir, manifest: dict, config: GliotypeConfig, edge_z: np.ndarray, theta: float):
    """The stored graph's eq. 8 edges, their weights and (a capped or ann graph) the
    :class:`~gliotype.population_graph.neighbours.StoredNeighbours` new patients are linked with.
    With ``neighbours: ann`` the index is ``population_graph/neighbours.faiss`` when the manifest
    lists it (its sha256 checked), else built again from the stored features (the same bytes:
    single-threaded build)."""
    from gliotype.population_graph.graph import _row_standardise, correlation_edges
    from gliotype.population_graph.neighbours import StoredNeighbours, build_index, load_index, neighbour_edges

    pgc = config.population_graph
    if pgc.neighbours == "exact" and not pgc.max_neighbours:
        return (*correlation_edges(edge_z, theta), None)
    index = None
    if pgc.neighbours == "ann":
        rel = layout.population_graph.neighbours.relative_to(layout.root).as_posix()
        if rel in manifest["files"]:
            try:
                index = load_index(layout.population_graph.neighbours)
            except Exception as exc:
                raise ModelError(f"model folder {layout.root.name}: {rel} is not a readable faiss index "
                                 f"({type(exc).__name__})") from None
            if index.ntotal != len(edge_z) or index.d != edge_z.shape[1]:
                raise ModelError(f"model folder {layout.root.name}: {rel} indexes {index.ntotal} patients of "
                                 f"{index.d} features, the stored graph has {len(edge_z)} of {edge_z.shape[1]}")
        else:
            index = build_index(_row_standardise(edge_z))
    ei, w = neighbour_edges(edge_z, theta, pgc.neighbours, pgc.max_neighbours, pgc.candidates, index=index)
    return ei, w, StoredNeighbours.of(edge_z, ei, w, theta, pgc.neighbours, pgc.max_neighbours, pgc.candidates,
                                      index=index)


def _optional_json(layout: ModelDir, path: Path, manifest: dict, read):
    """``read(parsed JSON)`` of one of ``layout.optional()`` when the manifest lists it (its sha256 was
    checked), None when the folder has none (exported before it existed; present but unlisted was refused
    by :func:`_refuse_unlisted`); unreadable is a :class:`ModelError`."""
    rel = path.relative_to(layout.root).as_posix()
    if rel not in manifest["files"]:
        return None
    try:
        return read(json.loads(path.read_text()))
    except Exception as exc:
        raise ModelError(f"model folder {layout.root.name}: {rel} is not readable "
                         f"({type(exc).__name__})") from None


def _sequence_spread(layout: ModelDir, manifest: dict) -> dict | None:
    """``sequence_spread.json`` (:func:`_optional_json`)."""
    return _optional_json(layout, layout.sequence_spread, manifest,
                          lambda spread: {**spread, "sd_logit": {str(k): float(v)
                                                                 for k, v in spread["sd_logit"].items()}})


def _applicability(layout: ModelDir, manifest: dict, u_t, u_b, labelled) -> Reference | None:
    """``applicability.json`` (:func:`_optional_json`) with the stored training embeddings."""
    from gliotype.prediction.applicability import load_reference

    return _optional_json(layout, layout.applicability, manifest, lambda data: load_reference(data, u_t, u_b, labelled))


__all__ = ["ModelError", "TrainedModel", "load_model", "verify_manifest"]
