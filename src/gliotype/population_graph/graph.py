"""The weighted population graph of section 3.4 (eq. 8, Table 1, Fig. 5).

Nodes are patients with node weights w^node_i = u_i; an edge joins patients i and j
with weight r(u_i, u_j) when the correlation r >= theta (0.5), where u is u_T, u_B or
<u_T, u_B> (Table 1). r is the Pearson correlation over feature dimensions (open
point 9). Edges are built in row blocks and kept sparse, so the graph scales to many
thousands of patients; beyond, :mod:`gliotype.population_graph.neighbours` caps each patient's
edges and finds them with an approximate nearest-neighbour index (not in the paper).

Phenotypes (``population_graph.phenotype: age_sex``, not in the paper; as in the
population-graph GCN of Parisot et al. 2018): the edges stay those of eq. 8 and each weight
is multiplied by a phenotypic factor,

    w_ij = r_ij * (1 + [sex_i = sex_j] + [|age_i - age_j| < 2 years])

where a bracket is 1 when true and 0 when false or when either value is unknown. Parisot's
sum without the 1 would give 0 to a pair that shares neither, which a GAT still passes
messages over, and which deletes most edges when the sex is unknown; with the 1, phenotypes
re-weight the imaging graph and never cut it (:func:`phenotype_factor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from gliotype.config.schema import PopulationGraphConfig

# Table 1: (node weight, edge weight) of the five population graphs.
TABLE1 = (("uT", "uB"), ("uB", "uT"), ("uT_uB", "uB"), ("uT_uB", "uT"), ("uT_uB", "uT_uB"))
TABLE1_NAMES = {
    ("uT", "uB"): "uT, r(uB)",
    ("uB", "uT"): "uB, r(uT)",
    ("uT_uB", "uB"): "<uT, uB>, r(uB)",
    ("uT_uB", "uT"): "<uT, uB>, r(uT)",
    ("uT_uB", "uT_uB"): "<uT, uB>, r(<uT, uB>)",
}


def select_features(u_t: np.ndarray, u_b: np.ndarray, which: str) -> np.ndarray:
    """u_T, u_B or their concatenation <u_T, u_B>."""
    if which == "uT":
        return u_t
    if which == "uB":
        return u_b
    if which == "uT_uB":
        return np.concatenate([u_t, u_b], axis=1)
    raise ValueError(f"features must be uT, uB or uT_uB, got {which!r}")


def _row_standardise(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm: their dot products are Pearson correlations."""
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def correlation_edges(
    features: np.ndarray,
    theta: float = 0.5,
    others: np.ndarray | None = None,
    block: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 8 edges: pairs with Pearson r >= theta and their weights r.

    Without ``others``: all pairs i != j of ``features`` (both directions). With
    ``others``: pairs (row of ``features``, row of ``others``) only, for inserting new
    patients into a stored graph.

    Returns ``edge_index (2, E)`` int64 and ``weight (E,)`` float32.
    """
    z = _row_standardise(np.asarray(features, dtype=np.float64))
    zo = z if others is None else _row_standardise(np.asarray(others, dtype=np.float64))
    rows, cols, vals = [], [], []
    for start in range(0, len(z), block):
        r = z[start : start + block] @ zo.T
        if others is None:
            idx = np.arange(start, min(start + block, len(z)))
            r[idx - start, idx] = -np.inf  # no self loops
        i, j = np.nonzero(r >= theta)
        rows.append(i + start)
        cols.append(j)
        vals.append(r[i, j])
    edge_index = np.stack([np.concatenate(rows), np.concatenate(cols)]).astype(np.int64)
    return edge_index, np.concatenate(vals).astype(np.float32)


#: ``|age_i - age_j|`` below this many years counts as a similar age (Parisot et al.: 2)
AGE_YEARS = 2.0


def phenotype_factor(edge_index: np.ndarray, age: np.ndarray | None = None, sex: np.ndarray | None = None,
                     years: float = AGE_YEARS) -> np.ndarray:
    """``1 + [sex_i = sex_j] + [|age_i - age_j| < years]`` of every edge (i, j) of ``edge_index``
    (2, E); ``age`` in years and ``sex`` coded 0 / 1 per node, NaN (or None for all) where unknown:
    an unknown value makes its bracket 0."""
    i, j = np.asarray(edge_index, dtype=np.int64)
    factor = np.ones(len(i), dtype=np.float64)
    if age is not None:
        age = np.asarray(age, dtype=np.float64)
        factor += np.abs(age[i] - age[j]) < years  # NaN compares False
    if sex is not None:
        sex = np.asarray(sex, dtype=np.float64)
        factor += (sex[i] == sex[j]) & np.isfinite(sex[i])
    return factor


def phenotypes_of(cohort, ids) -> dict[str, np.ndarray]:
    """``{"age": years, "sex": 0 female / 1 male}`` of ``ids`` from manifest rows (``age``,
    ``sex`` columns; NaN where unknown or absent)."""
    import pandas as pd

    n = len(ids)
    if cohort is None:
        return {"age": np.full(n, np.nan), "sex": np.full(n, np.nan)}
    rows = cohort.assign(patient_id=cohort["patient_id"].astype(str)).set_index("patient_id")
    rows = rows[~rows.index.duplicated()].reindex([str(p) for p in ids])
    unknown = np.full(n, np.nan)
    age = pd.to_numeric(rows["age"], errors="coerce").to_numpy(dtype=np.float64) if "age" in rows else unknown
    sex = rows["sex"].map({"F": 0.0, "M": 1.0}).to_numpy(dtype=np.float64) if "sex" in rows else unknown
    return {"age": age, "sex": sex}


def column_stats(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of ``train`` (a constant feature gets std 1)."""
    train = np.asarray(train, dtype=np.float64)
    std = train.std(0)
    return train.mean(0), np.where(std > 0, std, 1.0)


def standardise_columns(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """z-score each feature with the statistics of ``train`` (applied to all arrays)."""
    mean, std = column_stats(train)
    return [(a - mean) / std for a in (train, *others)]


@dataclass
class PopulationGraph:
    """A population graph ready for the GNN (PyG conventions).

    ``x`` node weights (N, D); ``edge_index`` (2, E) with ``edge_weight`` (E,) = r;
    ``y`` labels (N,) with -1 where unknown; ``patient_id`` per node.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    y: torch.Tensor
    patient_id: list[str]

    @property
    def num_nodes(self) -> int:
        return len(self.patient_id)

    def subgraph(self, keep) -> PopulationGraph:
        """The graph on the nodes ``keep`` (indices, in that order): their features, labels and
        IDs, and the edges between two kept nodes with their weights (renumbered to rows of
        ``keep``, in the stored edge order)."""
        from torch_geometric.utils import subgraph

        keep = np.asarray(keep, dtype=np.int64)
        idx = torch.as_tensor(keep, dtype=torch.long)
        ei, w = subgraph(idx, self.edge_index, self.edge_weight, relabel_nodes=True, num_nodes=self.num_nodes)
        return PopulationGraph(x=self.x[idx], edge_index=ei, edge_weight=w, y=self.y[idx],
                               patient_id=[self.patient_id[i] for i in keep])


def build_population_graph(
    u_t: np.ndarray,
    u_b: np.ndarray,
    labels: np.ndarray,
    patient_ids: list[str],
    node_weight: str = "uT_uB",
    edge_weight: str = "uB",
    theta: float = 0.5,
    standardise: bool = True,
    reference: slice | np.ndarray | None = None,
    phenotype: str = "none",
    phenotypes: dict[str, np.ndarray] | None = None,
    neighbours: str = "exact",
    max_neighbours: int = 0,
    candidates: int = 0,
) -> PopulationGraph:
    """Build one row of Table 1.

    ``standardise`` z-scores the features (statistics of the ``reference`` rows, the
    labelled training nodes, so no test information leaks) before both the node
    weights and the correlations. ``phenotype: age_sex`` multiplies each weight r by
    :func:`phenotype_factor` of ``phenotypes`` (``age``, ``sex`` per node; module docstring).
    ``neighbours``, ``max_neighbours``, ``candidates``: how the eq. 8 pairs are found and capped
    (:func:`gliotype.population_graph.neighbours.neighbour_edges`; the defaults: every pair).
    """
    from gliotype.population_graph.neighbours import neighbour_edges

    node = select_features(u_t, u_b, node_weight).astype(np.float64)
    edge = select_features(u_t, u_b, edge_weight).astype(np.float64)
    if standardise:
        ref = reference if reference is not None else slice(None)
        node = standardise_columns(node[ref], node)[1]
        edge = standardise_columns(edge[ref], edge)[1]
    ei, w = neighbour_edges(edge, theta, neighbours, max_neighbours, candidates)
    if phenotype == "age_sex":
        p = phenotypes or {}
        w = (w * phenotype_factor(ei, p.get("age"), p.get("sex"))).astype(np.float32)
    elif phenotype != "none":
        raise ValueError(f"phenotype must be none or age_sex, got {phenotype!r}")
    return PopulationGraph(
        x=torch.as_tensor(node, dtype=torch.float32),
        edge_index=torch.as_tensor(ei),
        edge_weight=torch.as_tensor(w),
        y=torch.as_tensor(np.asarray(labels, dtype=np.float32)),
        patient_id=[str(p) for p in patient_ids],
    )


def table1_graph(u_t: np.ndarray, u_b: np.ndarray, labels: np.ndarray, patient_ids: list[str], node: str, edge: str,
                 config: PopulationGraphConfig, reference: slice | np.ndarray | None = None,
                 phenotypes: dict[str, np.ndarray] | None = None) -> PopulationGraph:
    """The Table 1 row (``node``, ``edge``) as the ``population_graph`` options of ``config`` build it
    (theta, standardisation, phenotypes, how the eq. 8 pairs are found and capped): the one mapping
    of those options onto :func:`build_population_graph`, for the run and for the audit."""
    return build_population_graph(u_t, u_b, labels, patient_ids, node, edge, config.theta, config.standardise,
                                  reference=reference, phenotype=config.phenotype, phenotypes=phenotypes,
                                  neighbours=config.neighbours, max_neighbours=config.max_neighbours,
                                  candidates=config.candidates)
