"""The edge atlas of the brain network (paper section 3.2): probabilistic tracts between regions.

The paper uses a probabilistic tractography atlas of 2,309 tracts between the 90 AAL
regions. This module owns the container, :class:`TractAtlas` (sparse per-tract voxel
indices and probabilities on the 2 mm template grid, and its ``.npz`` format, which is
also the cache format), and :data:`TRACT_ATLAS_VERSION`. Where the tracts come from
lives beside it:

- :mod:`gliotype.atlases.tract_build`: the built-in white-matter-guided proxy (no
  tractography atlas of the AAL regions ships with any installed package);
- :mod:`gliotype.atlases.tract_cache`: the on-disk cache of built and converted atlases;
- :mod:`gliotype.atlases.user_tracts`: reading a user tractography atlas, and
  ``load_tract_atlas``, which picks the user or the built-in atlas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.utils.io import atomic_path

#: Bump when the build (or the cache format) changes: old cache files are then ignored.
TRACT_ATLAS_VERSION = 1


@dataclass(frozen=True, eq=False)
class TractAtlas:
    """Probabilistic tracts on one grid, stored sparse (CSR-like over tracts).

    Tract ``t`` joins regions ``pairs[t]`` and covers the flat (C order) voxel indices
    ``indices[offsets[t]:offsets[t+1]]`` (ascending) with probabilities ``values[...]``
    (float32 in ``(0, 1]``). :attr:`voxel_index` and :attr:`probability` give them as
    per-tract lists, the form ``gliotype.modalities.crossing.tract_matrix`` takes.
    """

    pairs: np.ndarray  # (T, 2) int64 region labels
    offsets: np.ndarray  # (T + 1,) int64
    indices: np.ndarray  # (nnz,) int64 flat voxel indices
    values: np.ndarray  # (nnz,) float32
    shape: tuple[int, int, int]
    affine: np.ndarray
    names: tuple[str, ...] = ()
    support: np.ndarray | None = None  # (T,) built-in atlas: support score of each tract
    length_mm: np.ndarray | None = None  # (T,) built-in atlas: centreline length
    source: str = "built-in"
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return (f"TractAtlas({len(self.pairs)} tracts, {int(self.offsets[-1])} voxel entries, "
                f"grid {self.shape}, source={self.source!r})")

    @property
    def n_tracts(self) -> int:
        return len(self.pairs)

    @property
    def voxel_index(self) -> list[np.ndarray]:
        o = self.offsets
        return [self.indices[o[t]:o[t + 1]] for t in range(len(self.pairs))]

    @property
    def probability(self) -> list[np.ndarray]:
        o = self.offsets
        return [self.values[o[t]:o[t + 1]] for t in range(len(self.pairs))]

    def tract(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(flat indices, probabilities)`` of tract ``t``."""
        a, b = int(self.offsets[t]), int(self.offsets[t + 1])
        return self.indices[a:b], self.values[a:b]

    def volume(self, t: int) -> np.ndarray:
        """Tract ``t`` as a dense float32 probability volume."""
        out = np.zeros(int(np.prod(self.shape)), dtype=np.float32)
        idx, val = self.tract(t)
        out[idx] = val
        return out.reshape(self.shape)

    def sum_volume(self) -> np.ndarray:
        """Sum of all tract probabilities per voxel (dense float32)."""
        out = np.bincount(self.indices, weights=self.values, minlength=int(np.prod(self.shape)))
        return out.astype(np.float32).reshape(self.shape)

    def find(self, a: int, b: int) -> int:
        """Index of the (first) tract between regions ``a`` and ``b`` (either order)."""
        lo, hi = sorted((int(a), int(b)))
        p = np.sort(self.pairs, axis=1)
        hit = np.flatnonzero((p[:, 0] == lo) & (p[:, 1] == hi))
        if not len(hit):
            raise KeyError(f"no tract between regions {a} and {b}")
        return int(hit[0])

    def image(self, t: int) -> nib.Nifti1Image:
        """Tract ``t`` as a NIfTI image."""
        return nib.Nifti1Image(self.volume(t), self.affine)

    def save(self, path: str | Path) -> None:
        """Write as a compressed ``.npz`` atomically (the cache format)."""
        arrays = {
            "pairs": self.pairs.astype(np.int64),
            "offsets": self.offsets.astype(np.int64),
            "indices": self.indices.astype(np.int32 if int(np.prod(self.shape)) < 2**31 else np.int64),
            "values": self.values.astype(np.float32),
            "shape": np.asarray(self.shape, dtype=np.int64),
            "affine": np.asarray(self.affine, dtype=np.float64),
            "names": np.asarray(self.names, dtype=str),
            "source": np.asarray(self.source),
            "info": np.asarray(json.dumps(self.info)),
            "version": np.asarray(TRACT_ATLAS_VERSION),
        }
        if self.support is not None:
            arrays["support"] = np.asarray(self.support, dtype=np.float32)
        if self.length_mm is not None:
            arrays["length_mm"] = np.asarray(self.length_mm, dtype=np.float32)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> TractAtlas:
        with np.load(path, allow_pickle=False) as z:
            out = cls(
                pairs=z["pairs"].astype(np.int64),
                offsets=z["offsets"].astype(np.int64),
                indices=z["indices"].astype(np.int64),
                values=z["values"].astype(np.float32),
                shape=tuple(int(s) for s in z["shape"]),
                affine=z["affine"].astype(np.float64),
                names=tuple(str(n) for n in z["names"]),
                support=z["support"] if "support" in z else None,
                length_mm=z["length_mm"] if "length_mm" in z else None,
                source=str(z["source"]),
                info=json.loads(str(z["info"])),
            )
        out._freeze()
        return out

    @classmethod
    def from_lists(cls, pairs, idx_list, val_list, shape, affine, **kw) -> TractAtlas:
        """A frozen atlas from per-tract lists.

        ``pairs`` are the ``(T, 2)`` region labels, ``idx_list[t]`` / ``val_list[t]`` the
        flat voxel indices (ascending) and probabilities of tract ``t``; ``kw`` sets the
        other fields (``names``, ``support``, ``length_mm``, ``source``, ``info``).
        """
        offsets = np.zeros(len(idx_list) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(v) for v in idx_list])
        indices = np.concatenate(idx_list).astype(np.int64) if idx_list else np.zeros(0, np.int64)
        values = np.concatenate(val_list).astype(np.float32) if val_list else np.zeros(0, np.float32)
        out = cls(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), offsets, indices, values,
                  tuple(int(s) for s in shape), np.asarray(affine, dtype=np.float64), **kw)
        out._freeze()
        return out

    def _freeze(self) -> None:
        for a in (self.pairs, self.offsets, self.indices, self.values, self.affine, self.support, self.length_mm):
            if isinstance(a, np.ndarray):
                a.setflags(write=False)
