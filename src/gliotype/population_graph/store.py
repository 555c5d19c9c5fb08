"""A trained Table 2 row on disk, keyed on everything it depends on (``GraphRowDir``).

The key covers the features (u_T, u_B bytes), the labels and which patients are labelled,
the patient order, the row (node, edge), every ``population_graph`` option (those added later,
:data:`~gliotype.config.loader.NEUTRAL_OPTIONS`, only when not neutral, so rows stored before them
keep their key; ``phenotype`` with the ages and sexes it reads),
the seed and the gliotype version; ``row.json`` holds it with the size and sha256 of the weights and the
predictions, and is written last. A rerun with the same key and unchanged files
reads the GNN's weights and its predictions back (the graph itself is rebuilt from the
features: cheap and deterministic); any other key trains the row again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from gliotype import __version__
from gliotype.config.loader import hashed_values
from gliotype.config.schema import PopulationGraphConfig
from gliotype.layout import GraphRowDir
from gliotype.population_graph.gnn import PopulationGNN
from gliotype.utils.io import atomic_path
from gliotype.utils.logging import get_logger
from gliotype.utils.records import reusable_record, write_record
from gliotype.utils.weights import WeightsError, load_weights, save_weights

log = get_logger(__name__)


@dataclass
class TrainedRow:
    """What training a Table 2 row gives: the GNN, P(mutant) of every node, the threshold
    predictions of the labelled nodes (or None), the validation nodes and the history;
    ``p_reference``: the fold GNNs' mean P(mutant) of the unlabelled nodes (``threshold_transfer:
    rank``), else None."""

    model: PopulationGNN
    probability: np.ndarray  # (N,)
    p_threshold: np.ndarray | None  # (labelled,) NaN where fitted
    validation_nodes: np.ndarray  # (V,) int64
    history: list[dict]
    p_reference: np.ndarray | None = None  # (unlabelled,)


def row_key(u_t: np.ndarray, u_b: np.ndarray, y: np.ndarray, train: np.ndarray, ids, config: PopulationGraphConfig,
            seed: int, node: str, edge: str, phenotypes: dict[str, np.ndarray] | None = None) -> str:
    """The cache key of one row (20 hex digits)."""
    h = hashlib.sha256()
    options = hashed_values({"population_graph": config.model_dump(mode="json")})["population_graph"]
    arrays = [u_t, u_b, y, train]
    if "phenotype" in options:
        p = phenotypes or {}
        arrays += [np.asarray(p.get(k, np.full(len(ids), np.nan)), dtype=np.float64) for k in ("age", "sex")]
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(json.dumps([list(map(str, ids)), options, int(seed), node, edge, __version__],
                        sort_keys=True).encode())
    return h.hexdigest()[:20]


def save_row(folder: GraphRowDir, key: str, row: TrainedRow) -> None:
    """Write the row's files, ``row.json`` (with ``key``) last."""
    folder.root.mkdir(parents=True, exist_ok=True)
    save_weights(row.model, folder.weights)
    with atomic_path(folder.predictions) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, probability=row.probability, validation_nodes=row.validation_nodes,
                     **{k: v for k, v in (("p_threshold", row.p_threshold), ("p_reference", row.p_reference))
                        if v is not None})
    write_record(folder.meta, key, [folder.weights.name, folder.predictions.name], **row.model.sizes(),
                 history=row.history)


def load_row(folder: GraphRowDir, key: str) -> TrainedRow | None:
    """The stored row if its key is ``key`` and its files are unchanged (else None: train it)."""
    meta = reusable_record(folder.meta, key, what=f"population graph {folder.root.name}")
    if meta is None:
        return None
    try:
        model = load_weights(PopulationGNN.from_sizes(meta), folder.weights).eval()
    except WeightsError as exc:  # a cache: the row is trained again
        log.warning("%s; training this graph row again", exc)
        return None
    with np.load(folder.predictions, allow_pickle=False) as z:
        optional = {k: z[k] if k in z.files else None for k in ("p_threshold", "p_reference")}
        return TrainedRow(model, z["probability"], optional["p_threshold"], z["validation_nodes"].astype(np.int64),
                          meta["history"], optional["p_reference"])


__all__ = ["TrainedRow", "load_row", "row_key", "save_row"]
