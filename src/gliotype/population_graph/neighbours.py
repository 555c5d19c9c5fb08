"""The eq. 8 neighbours of a large population graph: exact, capped, or from an approximate index.

Eq. 8 joins every pair with Pearson r >= theta, so the edges grow with N^2 (1.36 M at 4,000
patients). Not in the paper (docs/scale-out.md), three options bound them:

- ``max_neighbours: k`` (0 = no cap): each patient keeps at most its k highest r >= theta; an
  edge stays when either end keeps it, in both directions (the graph stays symmetric, a
  patient can have more than k edges).
- ``neighbours: ann``: a patient's candidates are the ``candidates`` (default 2 k) patients
  nearest to it in an HNSW index (faiss ``IndexHNSWFlat``, inner product) of the
  row-standardised features, whose inner products are the Pearson correlations; r is then
  computed exactly (float64) on the candidates only and theta and the cap applied as above.
  Every edge is a true eq. 8 pair with its exact weight; a true pair is missed when the
  index does not return it (:func:`edge_recall` measures how many).
- ``neighbours: exact`` with the default ``max_neighbours: 0`` is :func:`correlation_edges`,
  byte for byte: the paper's graph.

Determinism: the HNSW graph depends on the order in which points are inserted; faiss builds
it with OpenMP in parallel, so :func:`build_index` builds with one thread (same features,
same index, same bytes; faiss seeds the level of each point itself). A search answers each
query on its own, so it uses every OpenMP thread and its result does not depend on how many.

:class:`StoredNeighbours` links a new patient to a stored graph (``insert_nodes``): the ann
index is queried (O(k log N)), the exact one scanned; with a cap the new patient keeps its k
highest r and a stored patient keeps the new one when its r beats the stored patient's own
k-th edge, so the new node gets the edges it would have in the graph rebuilt with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gliotype.population_graph.graph import _row_standardise, correlation_edges

#: HNSW links per point and search width while building (faiss defaults: 32, 40). Measured on
#: 100,000 clustered 256-d patients (docs/scale-out.md): M 16 builds in half the time of M 32 and
#: keeps a recall of the 16 nearest >= 0.97 when 32 candidates are searched.
HNSW_M = 16
EF_CONSTRUCTION = 40
#: entries of one block of correlations or gathered feature rows (float64: 128 MB)
CELLS = 1 << 24


def candidate_count(max_neighbours: int, candidates: int) -> int:
    """How many nearest patients the index returns per patient: ``candidates``, or 2 k."""
    return int(candidates or 2 * max_neighbours)


def build_index(z: np.ndarray):
    """An HNSW inner-product index of the rows of ``z`` (row-standardised), built with one thread."""
    import faiss

    x = np.ascontiguousarray(z, dtype=np.float32)
    index = faiss.IndexHNSWFlat(x.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # parallel insertion links points in a scheduling-dependent order
    try:
        index.add(x)
    finally:
        faiss.omp_set_num_threads(threads)
    return index


def search(index, z: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` rows of ``index`` nearest to each row of ``z`` (``(len(z), count)``, -1 where fewer)."""
    import faiss

    count = int(min(count, index.ntotal))
    params = faiss.SearchParametersHNSW(efSearch=max(count, 16))
    _, ids = index.search(np.ascontiguousarray(z, dtype=np.float32), count, params=params)
    return ids.astype(np.int64)


def save_index(index, path: str | Path) -> Path:
    """Write ``index`` (faiss's own binary format, no pickle) atomically."""
    import faiss

    from gliotype.utils.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    return path


def load_index(path: str | Path):
    """An index written by :func:`save_index`."""
    import faiss

    return faiss.read_index(str(path))


def pair_correlations(z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """r of the pairs (rows[i], cols[i]) of row-standardised ``z`` (float64, in blocks)."""
    out = np.empty(len(rows), dtype=np.float64)
    step = max(1, CELLS // max(1, z.shape[1]))
    for s in range(0, len(rows), step):
        out[s : s + step] = np.einsum("ij,ij->i", z[rows[s : s + step]], z[cols[s : s + step]])
    return out


def _top_k(rows: np.ndarray, cols: np.ndarray, r: np.ndarray, k: int):
    """At most ``k`` pairs of largest r per row (ties: the earlier pair)."""
    order = np.lexsort((-r, rows))
    rows, cols, r = rows[order], cols[order], r[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    keep = rank < k
    return rows[keep], cols[keep], r[keep]


def _exact_capped(z: np.ndarray, theta: float, k: int):
    """Every patient's k highest r >= theta by a blockwise scan of all pairs."""
    n = len(z)
    kk = min(k, n - 1)
    rows, cols, vals = [], [], []
    block = max(1, CELLS // max(1, n))
    for start in range(0, n, block):
        r = z[start : start + block] @ z.T
        idx = np.arange(start, min(start + block, n))
        r[idx - start, idx] = -np.inf  # no self loops
        if kk <= 0:
            continue
        top = np.argpartition(-r, kk - 1, axis=1)[:, :kk] if kk < n else np.argsort(-r, axis=1)[:, :kk]
        v = np.take_along_axis(r, top, axis=1)
        i, j = np.nonzero(v >= theta)
        rows.append(i + start)
        cols.append(top[i, j])
        vals.append(v[i, j])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _ann_pairs(z: np.ndarray, theta: float, k: int, count: int, index):
    """Candidates from ``index`` (self and padding dropped), their exact r >= theta, capped at k."""
    ids = search(index, z, count + 1)  # a patient finds itself first
    rows = np.repeat(np.arange(len(z), dtype=np.int64), ids.shape[1])
    cols = ids.ravel()
    ok = (cols >= 0) & (cols != rows)
    rows, cols = rows[ok], cols[ok]
    r = pair_correlations(z, rows, cols)
    ok = r >= theta
    rows, cols, r = rows[ok], cols[ok], r[ok]
    return _top_k(rows, cols, r, k) if k else (rows, cols, r)


def symmetric_edges(rows: np.ndarray, cols: np.ndarray, r: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs kept by either end, in both directions, sorted by (row, column) like
    :func:`correlation_edges`; a pair kept by both ends has the weight of its first occurrence."""
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    key, first = np.unique(lo * np.int64(n) + hi, return_index=True)
    w = r[first]
    lo, hi = key // n, key % n
    src, dst, w = np.concatenate([lo, hi]), np.concatenate([hi, lo]), np.concatenate([w, w])
    order = np.lexsort((dst, src))
    return np.stack([src[order], dst[order]]).astype(np.int64), w[order].astype(np.float32)


def neighbour_edges(
    features: np.ndarray,
    theta: float = 0.5,
    neighbours: str = "exact",
    max_neighbours: int = 0,
    candidates: int = 0,
    index=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 8 edges of ``features`` (N, D) found by ``neighbours`` and capped at ``max_neighbours``.

    ``exact`` without a cap is :func:`correlation_edges`. ``index``: an ann index of these rows
    (:func:`build_index` of the row-standardised features; built here when None). Returns
    ``edge_index (2, E)`` int64 and ``weight (E,)`` float32 = r.
    """
    if neighbours not in ("exact", "ann"):
        raise ValueError(f"neighbours must be exact or ann, got {neighbours!r}")
    if neighbours == "exact" and not max_neighbours:
        return correlation_edges(features, theta)
    z = _row_standardise(np.asarray(features, dtype=np.float64))
    if neighbours == "exact":
        rows, cols, r = _exact_capped(z, theta, max_neighbours)
    else:
        count = candidate_count(max_neighbours, candidates)
        if count <= 0:
            raise ValueError("neighbours: ann needs max_neighbours > 0 or candidates > 0")
        rows, cols, r = _ann_pairs(z, theta, max_neighbours, count, build_index(z) if index is None else index)
    return symmetric_edges(rows, cols, r, len(z))


def edge_recall(reference: np.ndarray, found: np.ndarray, n: int | None = None) -> dict:
    """How the edges ``found`` (2, E) compare with the ``reference`` (e.g. exact) edges (2, E_ref):
    ``recall`` (share of reference edges found), ``precision`` (share of found edges in the
    reference) and both counts."""
    reference, found = np.asarray(reference, np.int64), np.asarray(found, np.int64)
    n = int(n or max(reference.max(initial=-1), found.max(initial=-1)) + 1)
    ref, got = reference[0] * n + reference[1], found[0] * n + found[1]
    both = np.isin(ref, got).sum()
    return {"recall": float(both / len(ref)) if len(ref) else 1.0,
            "precision": float(np.isin(got, ref).mean()) if len(got) else 1.0,
            "reference_edges": int(len(ref)), "found_edges": int(len(got))}


@dataclass
class StoredNeighbours:
    """What linking new patients to a stored graph needs (:func:`insert_nodes`).

    ``z``: the stored patients' row-standardised edge features (index rows); ``index``: their ann
    index (None: an exact scan); ``indptr``, ``neighbour``, ``r``: the stored graph's edges with
    their correlations r, grouped by source row (CSR over index rows); ``active``: the index rows
    of the graph's nodes in graph order (a subset after :meth:`subset`).
    """

    z: np.ndarray
    theta: float
    max_neighbours: int
    candidates: int
    index: object | None
    indptr: np.ndarray
    neighbour: np.ndarray
    r: np.ndarray
    active: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray, edge_index: np.ndarray, r: np.ndarray, theta: float, neighbours: str = "exact",
           max_neighbours: int = 0, candidates: int = 0, index=None) -> StoredNeighbours:
        """The stored graph of ``features`` with edges ``edge_index`` and their correlations ``r`` (no
        phenotype factor); ``index`` is built when ``neighbours`` is ann and none is given."""
        z = _row_standardise(np.asarray(features, dtype=np.float64))
        if neighbours == "ann" and index is None:
            index = build_index(z)
        ei = np.asarray(edge_index, dtype=np.int64)
        order = np.argsort(ei[0], kind="stable")
        indptr = np.zeros(len(z) + 1, dtype=np.int64)
        np.cumsum(np.bincount(ei[0], minlength=len(z)), out=indptr[1:])
        return cls(z, float(theta), int(max_neighbours), int(candidates), index if neighbours == "ann" else None,
                   indptr, ei[1][order], np.asarray(r, dtype=np.float64)[order], np.arange(len(z), dtype=np.int64))

    def subset(self, keep) -> StoredNeighbours:
        """The neighbours of the graph's subgraph on ``keep`` (graph rows, as ``PopulationGraph.subgraph``)."""
        return replace(self, active=self.active[np.asarray(keep, dtype=np.int64)])

    def _kth(self, stored: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The k-th highest r of each ``stored`` row's edges to ``allowed`` rows (-inf with fewer than k)."""
        k = self.max_neighbours
        counts = self.indptr[stored + 1] - self.indptr[stored]
        group = np.repeat(np.arange(len(stored)), counts)
        pos = np.repeat(self.indptr[stored] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        ok = allowed[self.neighbour[pos]]
        group, r = group[ok], self.r[pos[ok]]
        order = np.lexsort((-r, group))
        group, r = group[order], r[order]
        rank = np.arange(len(group)) - np.searchsorted(group, group, side="left")
        kth = np.full(len(stored), -np.inf)
        at = rank == k - 1
        kth[group[at]] = r[at]
        return kth

    def link(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Edges of new patients ``features`` (M, D; standardised like the stored ones) to the graph's nodes:
        ``(2, E)`` (new row, graph row), sorted, and their r (float32). New patients are not linked to
        each other."""
        zn = _row_standardise(np.atleast_2d(np.asarray(features, dtype=np.float64)))
        total = len(self.z)
        allowed = np.zeros(total, dtype=bool)
        allowed[self.active] = True
        position = np.full(total, -1, dtype=np.int64)
        position[self.active] = np.arange(len(self.active))
        if self.index is not None:
            count = candidate_count(self.max_neighbours, self.candidates)
            count = min(total, math.ceil(count * total / max(1, len(self.active))))  # a subset loses some
            ids = search(self.index, zn, count)
            rows = np.repeat(np.arange(len(zn), dtype=np.int64), ids.shape[1])
            cols = ids.ravel()
            ok = cols >= 0
            rows, cols = rows[ok], cols[ok]
            ok = allowed[cols]
            rows, cols = rows[ok], cols[ok]
            r = np.einsum("ij,ij->i", zn[rows], self.z[cols])
        else:
            r_all = zn @ self.z[self.active].T
            rows, j = np.nonzero(r_all >= self.theta)
            cols, r = self.active[j], r_all[rows, j]
        ok = r >= self.theta
        rows, cols, r = rows[ok], cols[ok], r[ok]
        if self.max_neighbours and len(rows):
            own_rows, own_cols, _ = _top_k(rows, cols, r, self.max_neighbours)
            own = np.isin(rows * total + cols, own_rows * total + own_cols)
            stored, inverse = np.unique(cols, return_inverse=True)
            theirs = r > self._kth(stored, allowed)[inverse]
            keep = own | theirs
            rows, cols, r = rows[keep], cols[keep], r[keep]
        cols = position[cols]
        order = np.lexsort((cols, rows))
        return np.stack([rows[order], cols[order]]).astype(np.int64), r[order].astype(np.float32)


__all__ = ["EF_CONSTRUCTION", "HNSW_M", "StoredNeighbours", "build_index", "candidate_count", "edge_recall",
           "load_index", "neighbour_edges", "pair_correlations", "save_index", "search", "symmetric_edges"]
