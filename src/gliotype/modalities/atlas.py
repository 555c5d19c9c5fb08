"""The atlas parts every patient's modalities are built with (section 3.2, eq. 2).

Owns ``WORKDIR/atlas/`` (and a model folder's copy, ``MODEL/atlas/``; paths:
:class:`gliotype.layout.AtlasDir`):

- :class:`AtlasSampling` (``atlas_sampling.npz``): the fixed voxel positions of every
  region and tract, drawn once per work folder by :func:`atlas_sampling` and the same
  for every patient, with the key of the settings they were drawn with;
- ``tract_matrix.npz`` and ``tract_grid.json``: the tract probabilities as a sparse
  voxel x tract matrix and its grid, for the point-to-tract crossings of eq. 2.

:class:`LoadedAtlas` is the three loaded together, what
:func:`gliotype.modalities.build.build_case_modalities` needs: a prediction loads it
once from the model folder, a cohort build from the work folder
(:meth:`LoadedAtlas.cached`: once per process and stored sampling key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from gliotype.config import GliotypeConfig, config_hash
from gliotype.layout import AtlasDir, WorkDir
from gliotype.utils.io import atomic_path, atomic_write
from gliotype.utils.records import reusable_record, write_record


@dataclass
class AtlasSampling:
    """Fixed voxel positions (flat indices on the template grid) of every region and tract."""

    node_positions: np.ndarray  # (R, n_node)
    tract_positions: np.ndarray  # (T, n_edge)
    pairs: np.ndarray  # (T, 2) region labels of each tract
    edge_index: np.ndarray | None  # (2, T) node rows of each tract (position of the label in the node atlas)
    key: str = ""

    def save(self, folder: Path | AtlasDir) -> None:
        with atomic_path(AtlasDir.of(folder).sampling) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, node_positions=self.node_positions, tract_positions=self.tract_positions,
                         pairs=self.pairs, edge_index=self.edge_index, key=np.array(self.key))

    @classmethod
    def load(cls, folder: Path | AtlasDir) -> AtlasSampling:
        with np.load(AtlasDir.of(folder).sampling, allow_pickle=False) as z:
            edge_index = z["edge_index"] if "edge_index" in z.files else None  # older work folders: rebuilt
            return cls(z["node_positions"], z["tract_positions"], z["pairs"], edge_index, str(z["key"]))


def stored_key(folder: Path | AtlasDir) -> str:
    """The key of the sampling stored in ``folder`` (reads only that entry)."""
    with np.load(AtlasDir.of(folder).sampling, allow_pickle=False) as z:
        return str(z["key"])


def atlas_sampling(workdir: str | Path, config: GliotypeConfig) -> AtlasSampling:
    """The work folder's fixed atlas positions, drawn on first use and reused afterwards.

    Also stores the tract probabilities as a sparse voxel x tract matrix
    (``atlas/tract_matrix.npz``) for the point-to-tract crossings of eq. 2.
    """
    from gliotype.atlases import (
        load_node_atlas,
        load_tract_atlas,
        sample_node_positions,
        sample_tract_positions,
    )

    folder = WorkDir.of(workdir).atlas
    key = config_hash(config, "atlas") + f"-{config.seed}"
    if reusable_record(folder.record, key, what="atlas") is not None:
        return AtlasSampling.load(folder)
    a = config.atlas
    nodes = load_node_atlas(a.node_atlas, n_regions=a.n_regions)
    tracts = load_tract_atlas(a.edge_atlas, node_atlas=nodes, n_tracts=a.n_tracts, cache_dir=a.cache_dir,
                              workers=config.workers or 1)  # a first build on every core (the same atlas)
    sampling = AtlasSampling(
        node_positions=sample_node_positions(nodes, a.node_positions, seed=config.seed),
        tract_positions=sample_tract_positions(tracts, a.edge_positions, seed=config.seed),
        pairs=np.asarray(tracts.pairs),
        edge_index=np.searchsorted(np.asarray(nodes.regions), np.asarray(tracts.pairs)).T.astype(np.int64),
        key=key,
    )
    from scipy import sparse

    from gliotype.modalities.crossing import tract_matrix

    matrix = tract_matrix(tracts.voxel_index, tracts.probability, int(np.prod(tracts.shape)))
    with atomic_path(folder.tract_matrix) as tmp:
        sparse.save_npz(tmp, matrix)
    atomic_write(folder.tract_grid, json.dumps({"shape": list(tracts.shape),
                                                "affine": np.asarray(tracts.affine).tolist()}))
    sampling.save(folder)
    write_record(folder.record, key, [p.name for p in folder.copied])
    _cached.cache_clear()
    return sampling


@dataclass
class LoadedAtlas:
    """An atlas folder loaded: the positions, the tract matrix and its grid."""

    sampling: AtlasSampling
    tract_matrix: object  # scipy.sparse matrix, voxels x tracts
    grid_shape: tuple
    grid_affine: np.ndarray

    @property
    def key(self) -> str:
        return self.sampling.key

    @classmethod
    def load(cls, folder: str | Path | AtlasDir) -> LoadedAtlas:
        """Read ``atlas_sampling.npz``, ``tract_matrix.npz`` and ``tract_grid.json`` of ``folder``."""
        from scipy import sparse

        atlas = AtlasDir.of(folder)
        grid = json.loads(atlas.tract_grid.read_text())
        return cls(AtlasSampling.load(atlas), sparse.load_npz(atlas.tract_matrix), tuple(grid["shape"]),
                   np.asarray(grid["affine"]))

    @classmethod
    def cached(cls, folder: str | Path | AtlasDir) -> LoadedAtlas:
        """:meth:`load`, once per process for a folder and the sampling key stored there now
        (a folder whose atlas was drawn again is read again)."""
        root = AtlasDir.of(folder).root
        return _cached(str(root), stored_key(root))


@lru_cache(maxsize=2)
def _cached(folder: str, key: str) -> LoadedAtlas:
    return LoadedAtlas.load(Path(folder))


__all__ = ["AtlasSampling", "LoadedAtlas", "atlas_sampling", "stored_key"]
