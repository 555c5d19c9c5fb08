"""The trained-model folder that ``gliotype predict`` loads (self-contained, no pickle).

Contents: ``config.yaml``; ``ssl/`` (node autoencoder, edge model, sizes); ``atlas/``
(the fixed voxel positions and tract pairs, the tract matrix of eq. 2, the region
centroids for Fig. 8); ``multimodal/`` (weights, sizes); ``population_graph/`` (stored
node features u_T, u_B of the graph patients, their labels and transductive
probabilities, the standardisation statistics, the GNN weights, the threshold; with
``population_graph.neighbours: ann`` the index ``neighbours.faiss``),
``sequence_spread.json`` (what removing each sequence does to the exported model's logit on
its classifier-training patients: :mod:`gliotype.prediction.missing`), ``calibration.json`` (the
calibrator and conformal predictor of the exported GNN: :mod:`gliotype.prediction.calibrated`), ``applicability.json``
(their training ranges a new patient is checked against: :mod:`gliotype.prediction.applicability`),
``MODEL_CARD.md`` (intended use, limits, training cohort, test metrics, versions:
:mod:`gliotype.experiment.model_card`) and ``manifest.json`` with the sha256 of every file
(:mod:`gliotype.bundle`; the layout is
:class:`gliotype.layout.ModelDir`). ``gliotype.prediction.load_model``
reads it back (safetensors, ``np.load(allow_pickle=False)``, JSON and YAML only).
See ``docs/prediction.md``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.bundle import write_manifest
from gliotype.config import GliotypeConfig, config_hash, save_config
from gliotype.experiment.model_card import CardFacts, write_model_card
from gliotype.layout import ModelDir, MultiModalDir, WorkDir
from gliotype.utils.io import atomic_path, atomic_write
from gliotype.utils.weights import save_weights


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
    card: CardFacts | None = None,
) -> Path:
    """Write the model folder; ``gnn`` is the chosen Table 2 model (with its artifacts); ``card``: what the
    run knows for ``MODEL_CARD.md`` (the cohort's counts, Table 3, the ceilings; None: the card says they
    were not recorded)."""
    from gliotype.multimodal.stage import feature_matrix

    model, work = ModelDir.of(folder), WorkDir.of(work)
    model.root.mkdir(parents=True, exist_ok=True)
    shared = config.model_copy(deep=True)
    shared.atlas.cache_dir = None  # a local folder (where, not what): no path goes into a shared bundle
    shared.executor = type(shared.executor)()  # nor the address of the cluster that computed it
    save_config(shared, model.config)
    for source, target in ((work.ssl, model.ssl), (work.atlas, model.atlas),
                           (MultiModalDir.of(multimodal_dir), model.multimodal)):
        target.root.mkdir(exist_ok=True)
        for src, dst in zip(source.copied, target.copied):
            shutil.copy2(src, dst)

    pg = model.population_graph
    pg.root.mkdir(exist_ok=True)
    u_t, u_b = feature_matrix(features, "u_T"), feature_matrix(features, "u_B")
    labels = np.where(labelled, y, -1.0).astype(np.float32)
    probability = _transductive_probability(gnn)
    with atomic_path(pg.nodes) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, u_t=u_t, u_b=u_b, labels=labels, labelled=labelled, patient_id=np.array(graph_ids, dtype="U64"),
                     probability=probability)
    stats = _save_standardisation(pg.standardisation, u_t, u_b, labelled, gnn.artifacts["node"],
                                  gnn.artifacts["edge"], config.population_graph.standardise)
    _save_neighbours(pg.neighbours, u_t, u_b, gnn.artifacts["edge"], stats, config.population_graph.neighbours)
    _save_regions(model.atlas.regions, config)
    save_weights(gnn.artifacts["model"], pg.gnn)
    from gliotype.experiment.tables import decision_threshold

    threshold = decision_threshold(gnn, y[labelled], config.evaluation)  # the Table 2 row's own threshold
    meta = {
        "node_weight": gnn.artifacts["node"],
        "edge_weight": gnn.artifacts["edge"],
        "theta": config.population_graph.theta,
        "standardise": config.population_graph.standardise,
        "threshold": threshold,
        **gnn.artifacts["model"].sizes(),
        "nodes": len(graph_ids),
        "labelled_nodes": int(np.sum(labelled)),
    }
    atomic_write(pg.meta, json.dumps(meta, indent=2))
    write_model_card(model.card, config, meta, card, _own_test_auc(probability, labelled, y))
    spread_ids = [p for p, known in zip(graph_ids, labelled) if known]
    train = np.asarray(labelled, dtype=bool)
    _save_applicability(model, work, spread_ids, u_t[train], u_b[train], config)
    _save_calibration(model, gnn, y[train], config)
    spread_key = _spread_key(model, work, spread_ids)  # None: the stored sequence_spread.json is this model's
    write_manifest(model, config_hash(config))
    if spread_key is not None:  # measured on the exported model as load_model reads it, then listed too
        from gliotype.prediction import load_model
        from gliotype.prediction.missing import measure_sequence_spread, write_sequence_spread

        spread = measure_sequence_spread(load_model(model.root), work, spread_ids)
        write_sequence_spread(model.sequence_spread, {**spread, "key": spread_key})
        write_manifest(model, config_hash(config))
    return model.root


def _spread_key(model: ModelDir, work: WorkDir, patient_ids: list[str]) -> str | None:
    """The key of ``sequence_spread.json`` (the sha256 of every other file of the model, the patients and
    their data: modalities and brain-network records); None when the stored file has it, else the key
    (and a stale file is removed)."""
    import hashlib

    from gliotype.multimodal.stage import data_key
    from gliotype.utils.io import sha256_file
    from gliotype.utils.records import holds_key

    files = [sha256_file(model.root / rel) for rel in model.required()]
    key = hashlib.sha256(json.dumps([files, patient_ids, data_key(work, patient_ids)]).encode()).hexdigest()[:20]
    if holds_key(model.sequence_spread, key):
        return None
    model.sequence_spread.unlink(missing_ok=True)
    return key


def _save_calibration(model: ModelDir, gnn, y_train: np.ndarray, config: GliotypeConfig) -> None:
    """``calibration.json``: the exported GNN's calibrator and conformal predictor, fitted on its out-of-fit
    predictions of the classifier-training patients (or why it has none: :mod:`gliotype.prediction.calibrated`)."""
    from gliotype.experiment.tables import out_of_fit
    from gliotype.prediction.calibrated import fit_model_calibration, write_calibration

    ev = config.evaluation
    write_calibration(model.calibration, fit_model_calibration(y_train, out_of_fit(gnn), config.prediction.calibration,
                                                               ev.conformal_alpha, ev.conformal_class_conditional))


def _save_applicability(model: ModelDir, work: WorkDir, patient_ids: list[str], u_t, u_b,
                        config: GliotypeConfig) -> None:
    """``applicability.json``: the training ranges a new patient is checked against (the classifier-training
    patients' records in the work folder; :mod:`gliotype.prediction.applicability`)."""
    from gliotype.prediction.applicability import measure_reference, write_reference

    write_reference(model.applicability, measure_reference(work, patient_ids, u_t, u_b,
                                                           config.prediction.applicability_percentiles))


def _own_test_auc(probability: np.ndarray, labelled: np.ndarray, y: np.ndarray) -> float | None:
    """AUC of the exported GNN's transductive probabilities on its unlabelled (test) nodes whose label the run
    knows; None without both classes."""
    from sklearn.metrics import roc_auc_score

    test = ~np.asarray(labelled, bool) & np.isfinite(np.asarray(y, float))
    yt = np.asarray(y, float)[test]
    if len(np.unique(yt)) < 2:
        return None
    return float(roc_auc_score(yt, probability[test]))


def _transductive_probability(gnn) -> np.ndarray:
    """P(IDH mutant) of every stored node in the trained (transductive) graph, graph order."""
    from gliotype.population_graph import predict_proba

    return predict_proba(gnn.artifacts["model"], gnn.artifacts["graph"]).astype(np.float32)


def _save_neighbours(path: Path, u_t, u_b, edge: str, stats: dict, neighbours: str) -> None:
    """``neighbours.faiss`` (``neighbours: ann``): the index of the stored edge features, z-scored as
    ``load_model`` does, so the graph it rebuilds and the new patients' candidates are those of training;
    removed otherwise (a folder exported again)."""
    if neighbours != "ann":
        path.unlink(missing_ok=True)
        return
    from gliotype.population_graph import select_features
    from gliotype.population_graph.graph import _row_standardise
    from gliotype.population_graph.neighbours import build_index, save_index

    x = select_features(np.asarray(u_t, np.float64), np.asarray(u_b, np.float64), edge)
    save_index(build_index(_row_standardise((x - stats["edge_mean"]) / stats["edge_std"])), path)


def _save_standardisation(path: Path, u_t, u_b, labelled, node: str, edge: str, standardise: bool) -> dict:
    """The z-score statistics of the node and edge features (labelled nodes, open point 9), written and returned."""
    from gliotype.population_graph import select_features
    from gliotype.population_graph.graph import column_stats

    stats = {}
    for name, which in (("node", node), ("edge", edge)):
        x = select_features(u_t, u_b, which).astype(np.float64)
        mean, std = column_stats(x[labelled]) if standardise else (np.zeros(x.shape[1]), np.ones(x.shape[1]))
        stats[f"{name}_mean"], stats[f"{name}_std"] = mean, std
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **stats)
    return stats


def _save_regions(path: Path, config: GliotypeConfig) -> None:
    """Centroids (MNI mm) of the node-atlas regions in node-row order, for the glass brain of Fig. 8."""
    from gliotype.atlases import load_node_atlas
    from gliotype.interpretation import region_centroids

    atlas = load_node_atlas(config.atlas.node_atlas, n_regions=config.atlas.n_regions)
    centroids = region_centroids(atlas.labels, atlas.affine, atlas.regions)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, regions=np.asarray(atlas.regions, dtype=np.int64), centroids_mm=centroids,
                     names=np.asarray(atlas.names, dtype="U64"))
