"""The edge atlas of the brain network (paper section 3.2): probabilistic tracts between regions.

The paper uses a probabilistic tractography atlas of 2,309 tracts between the 90 AAL
regions. No such atlas ships with any installed package, so the default here is a
**white-matter-guided geometric proxy** built from the ICBM152 2009 white-matter
probability map (docs/atlases.md). It is not derived from diffusion MRI:

1. every voxel of the template brain costs ``1 / (wm_eps + WM)`` to cross (white
   matter ~1 per voxel step, grey matter / CSF up to ``1 / wm_eps``); outside the
   brain is impassable;
2. each region gets a white-matter *gateway*: the voxels with WM >= ``gateway_wm``
   within ``gateway_mm`` of the region that are nearer to it than to any other region;
3. one minimal-cost front propagation per source region (``skimage.graph.MCP_Geometric``,
   26-neighbourhood, from its gateway), then a traceback from the cheapest gateway
   voxel of every later region: the white-matter path, closed at both ends by a
   straight segment to the nearest voxel of each region (the tract centreline);
4. each pair gets a *support* score in ``(0, 1]``: the harmonic mean of the WM
   probability along its white-matter path (``length / cost``, so a path that has to
   leave white matter scores low) times ``exp(-length / length_scale_mm)`` (long
   pathways are less certain); the ``n_tracts`` best-supported pairs are kept;
5. each kept centreline becomes a probabilistic tube
   ``p = exp(-d^2 / 2 sigma^2) * (wm_floor + (1 - wm_floor) WM)``, ``d`` the distance to
   the centreline; values below ``min_prob`` are dropped.

The build is deterministic, takes well under a minute for the 90 AAL regions, and is
cached on disk (``$GLIOTYPE_CACHE`` or ``~/.cache/gliotype``, sub-folder ``atlases``),
keyed by a hash of its parameters, the node atlas and :data:`TRACT_ATLAS_VERSION`.

A user atlas (a real tractography atlas, recommended) is a 4D NIfTI (one volume per
tract) or a folder of 3D NIfTIs, plus a CSV with one row per tract and columns
``region_a, region_b`` (and optionally ``file`` for a folder).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from gliotype.atlases.nodes import NodeAtlas, load_node_atlas
from gliotype.atlases.template import load_template
from gliotype.errors import GliotypeError
from gliotype.utils.io import atomic_path
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: Bump when the build (or the cache format) changes: old cache files are then ignored.
TRACT_ATLAS_VERSION = 1

#: Parameters of the built-in tract atlas (docs/atlases.md).
DEFAULT_BUILD = {
    "wm_eps": 0.05,  # cost of a voxel = 1 / (wm_eps + WM): 0.95 in white matter, 20 where WM = 0
    "gateway_mm": 6.0,  # white matter within this distance of a region is its gateway ...
    "gateway_wm": 0.5,  # ... where its WM probability reaches this
    "length_scale_mm": 200.0,  # support decays as exp(-length / length_scale_mm)
    "sigma_vox": 1.0,  # tube: Gaussian fall-off from the centreline, in voxels (2 mm)
    "wm_floor": 0.1,  # tube: p scales with wm_floor + (1 - wm_floor) WM
    "min_prob": 0.02,  # tube voxels below this probability are dropped
}
#: User tract volumes: values below this (after scaling to [0, 1]) are dropped.
USER_MIN_PROB = 1e-3


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

    def _freeze(self) -> None:
        for a in (self.pairs, self.offsets, self.indices, self.values, self.affine, self.support, self.length_mm):
            if isinstance(a, np.ndarray):
                a.setflags(write=False)


def _from_lists(pairs, idx_list, val_list, shape, affine, **kw) -> TractAtlas:
    offsets = np.zeros(len(idx_list) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(v) for v in idx_list])
    indices = np.concatenate(idx_list).astype(np.int64) if idx_list else np.zeros(0, np.int64)
    values = np.concatenate(val_list).astype(np.float32) if val_list else np.zeros(0, np.float32)
    out = TractAtlas(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), offsets, indices, values,
                     tuple(int(s) for s in shape), np.asarray(affine, dtype=np.float64), **kw)
    out._freeze()
    return out


# --------------------------------------------------------------------------- built-in atlas


def _line(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Voxels of the straight segment ``p -> q`` (both included, 26-connected steps)."""
    n = int(np.abs(q - p).max())
    if n == 0:
        return p[None].copy()
    t = np.linspace(0.0, 1.0, n + 1)[:, None]
    return np.rint(p[None] + t * (q - p)[None]).astype(np.int64)


def _nearest(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The voxel of ``target`` (M, 3) nearest to ``point`` (3,), first in order on ties."""
    d = ((target - points[None]) ** 2).sum(1)
    return target[int(np.argmin(d))]


def _gateways(labels: np.ndarray, wm: np.ndarray, brain: np.ndarray, regions, radius_vox: float,
              wm_min: float) -> list[np.ndarray]:
    """Per region, the (K, 3) voxels (C order) of its white-matter gateway.

    The gateway of region ``r`` is the brain voxels with WM >= ``wm_min`` within
    ``radius_vox`` of ``r`` whose nearest region is ``r`` (so two gateways never overlap,
    and the gateways of two regions facing each other across the interhemispheric
    fissure stay on their own sides). Small or deep regions without such voxels fall
    back to a lower WM threshold, a larger radius, then to their own voxels.
    """
    sel = np.isin(labels, np.asarray(regions)) & brain
    dist, near_idx = ndi.distance_transform_edt(~sel, return_indices=True)
    nearest = labels[tuple(near_idx)]
    nearest[~brain] = 0
    out = []
    for lab in regions:
        own = nearest == lab
        gate = None
        for radius, thr in ((radius_vox, wm_min), (radius_vox, 0.5 * wm_min), (2 * radius_vox, 0.5 * wm_min)):
            cand = own & (dist <= radius) & (wm >= thr)
            if cand.sum() >= 3:
                gate = cand
                break
        if gate is None:
            gate = labels == lab
        out.append(np.argwhere(gate))
    return out


def _tube(centre: np.ndarray, wm: np.ndarray, brain: np.ndarray, sigma: float, min_prob: float, wm_floor: float):
    """Flat indices (in ``wm``'s grid) and probabilities of the tube around ``centre`` (N, 3).

    ``p = exp(-d^2 / 2 sigma^2) * (wm_floor + (1 - wm_floor) WM)`` inside the brain, ``d`` the
    distance (voxels) to the centreline; the floor keeps the tube ends inside their regions.
    """
    pad = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(min_prob)))) + 1
    lo = np.maximum(centre.min(0) - pad, 0)
    hi = np.minimum(centre.max(0) + pad + 1, wm.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    line = np.ones(tuple(hi - lo), dtype=bool)
    line[tuple((centre - lo).T)] = False
    d = ndi.distance_transform_edt(line)
    p = np.exp(-0.5 * (d / sigma) ** 2) * (wm_floor + (1.0 - wm_floor) * wm[sl]) * brain[sl]
    keep = p >= min_prob
    local = np.argwhere(keep) + lo
    return np.ravel_multi_index(local.T, wm.shape).astype(np.int64), p[keep].astype(np.float32)


def build_tract_atlas(
    node_atlas: NodeAtlas | None = None,
    n_tracts: int = 2309,
    regions=None,
    *,
    wm_eps: float = DEFAULT_BUILD["wm_eps"],
    gateway_mm: float = DEFAULT_BUILD["gateway_mm"],
    gateway_wm: float = DEFAULT_BUILD["gateway_wm"],
    length_scale_mm: float | None = DEFAULT_BUILD["length_scale_mm"],
    sigma_vox: float = DEFAULT_BUILD["sigma_vox"],
    wm_floor: float = DEFAULT_BUILD["wm_floor"],
    min_prob: float = DEFAULT_BUILD["min_prob"],
) -> TractAtlas:
    """Build the white-matter-guided proxy tract atlas (no cache: see :func:`default_tract_atlas`).

    Args:
        node_atlas: the regions to connect (default AAL 1-90), on the 2 mm template grid.
        n_tracts: how many region pairs to keep (the best-supported); more than the
            number of pairs keeps them all.
        regions: connect only these region labels (default: all); a few regions make a
            fast build for tests.
        length_scale_mm: ``None`` ranks the pairs by white-matter support alone.

    Returns:
        The tracts in ``(region_a, region_b)`` order (``region_a < region_b``).
    """
    from skimage.graph import MCP_Geometric

    t0 = time.perf_counter()
    nodes = node_atlas if node_atlas is not None else load_node_atlas()
    tpl = load_template(2)
    if tuple(nodes.shape) != tuple(tpl.shape):
        raise GliotypeError("the node atlas is not on the 2 mm template grid")
    regs = list(nodes.regions) if regions is None else sorted({int(r) for r in regions})
    unknown = [r for r in regs if r not in nodes.regions]
    if unknown:
        raise GliotypeError(f"regions {unknown} are not in the node atlas")
    if len(regs) < 2:
        raise GliotypeError("the tract atlas needs at least 2 regions")
    if int(n_tracts) < 1:
        raise GliotypeError(f"n_tracts must be >= 1, got {n_tracts}")
    n_pairs = len(regs) * (len(regs) - 1) // 2
    if n_tracts > n_pairs:
        log.warning("%d tracts asked for but %d regions have only %d pairs: keeping all", n_tracts, len(regs), n_pairs)
    n_keep = min(int(n_tracts), n_pairs)

    # Work in the brain bounding box (1 voxel margin): smaller fronts, same paths.
    brain_full = tpl.brain_mask > 0.5
    bidx = np.argwhere(brain_full)
    lo = np.maximum(bidx.min(0) - 1, 0)
    hi = np.minimum(bidx.max(0) + 2, tpl.shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    brain = brain_full[crop]
    wm = np.where(brain, np.clip(tpl.wm[crop], 0.0, 1.0), 0.0).astype(np.float64)
    labels = np.asarray(nodes.labels)[crop]
    resistance = 1.0 / (wm_eps + wm)
    cost = np.where(brain, resistance, np.inf)
    spacing = float(abs(tpl.affine[0, 0]))
    gates = _gateways(labels, wm, brain, regs, gateway_mm / spacing, gateway_wm)
    reg_vox = [np.argwhere(labels == r) for r in regs]
    best = 1.0 / (wm_eps + 1.0)  # the resistance of pure white matter

    mcp = MCP_Geometric(cost, fully_connected=True)
    pairs, centres = [], []
    wm_path_mm, quality, centre_mm = [], [], []
    for i, a in enumerate(regs[:-1]):
        cum, _ = mcp.find_costs([tuple(v) for v in gates[i]])
        for j in range(i + 1, len(regs)):
            g = gates[j]
            c = cum[tuple(g.T)]
            k = int(np.argmin(c))  # first cheapest gateway voxel (C order): deterministic
            pairs.append((a, regs[j]))
            if not np.isfinite(c[k]):
                centres.append(None)
                wm_path_mm.append(np.inf)
                quality.append(0.0)
                centre_mm.append(np.inf)
                continue
            path = np.asarray(mcp.traceback(tuple(g[k])), dtype=np.int64)
            r = resistance[tuple(path.T)]
            if len(path) > 1:
                steps = np.linalg.norm(np.diff(path, axis=0), axis=1) * spacing
                length = float(steps.sum())
                path_cost = float(np.sum(steps * 0.5 * (r[:-1] + r[1:])))
                q = best * length / path_cost  # harmonic mean of (wm_eps + WM), scaled to (0, 1]
            else:  # the two gateways touch
                length, q = 0.0, best / float(r[0])
            start = _nearest(path[0], reg_vox[i])
            end = _nearest(path[-1], reg_vox[j])
            centre = np.concatenate([_line(start, path[0])[:-1], path, _line(path[-1], end)[1:]])
            centres.append(centre)
            wm_path_mm.append(length)
            quality.append(min(q, 1.0))
            centre_mm.append(float(np.linalg.norm(np.diff(centre, axis=0), axis=1).sum() * spacing))
    t_paths = time.perf_counter() - t0
    quality_a = np.asarray(quality)
    centre_a = np.asarray(centre_mm)
    decay = np.exp(-np.where(np.isfinite(centre_a), centre_a, 0.0) / length_scale_mm) if length_scale_mm else 1.0
    support = np.where(np.isfinite(centre_a), quality_a * decay, 0.0)

    keep = np.sort(np.argsort(-support, kind="stable")[:n_keep])
    if np.any(support[keep] <= 0):
        raise GliotypeError("some region pairs are not connected inside the template brain mask")
    idx_list, val_list = [], []
    for t in keep:
        idx_l, val = _tube(centres[t], wm, brain, sigma_vox, min_prob, wm_floor)
        local = np.unravel_index(idx_l, wm.shape)
        flat = np.ravel_multi_index(tuple(ax + o for ax, o in zip(local, lo)), tpl.shape).astype(np.int64)
        o = np.argsort(flat)
        idx_list.append(flat[o])
        val_list.append(np.minimum(val[o], 1.0))
    pairs_a = np.asarray(pairs, dtype=np.int64)[keep]
    names = tuple(f"{nodes.name(a)}--{nodes.name(b)}" for a, b in pairs_a)
    info = {
        "method": "white-matter-guided minimal-cost paths on the ICBM152 2009 WM map (not tractography)",
        "version": TRACT_ATLAS_VERSION,
        "node_atlas": nodes.source,
        "regions": len(regs),
        "n_pairs": n_pairs,
        "n_tracts": int(len(keep)),
        "min_support_kept": float(support[keep].min()),
        "max_support_dropped": float(np.delete(support, keep).max()) if len(keep) < n_pairs else None,
        "path_seconds": round(t_paths, 2),
        "build_seconds": round(time.perf_counter() - t0, 2),
        "params": {"wm_eps": wm_eps, "gateway_mm": gateway_mm, "gateway_wm": gateway_wm,
                   "length_scale_mm": length_scale_mm, "sigma_vox": sigma_vox, "wm_floor": wm_floor,
                   "min_prob": min_prob},
    }
    log.info("built the tract atlas: %d of %d pairs in %.1f s", len(keep), n_pairs, info["build_seconds"])
    return _from_lists(pairs_a, idx_list, val_list, tpl.shape, tpl.affine, names=names,
                       support=support[keep].astype(np.float32), length_mm=centre_a[keep].astype(np.float32),
                       source="built-in", info=info)


# --------------------------------------------------------------------------- disk cache


def cache_dir() -> Path:
    """Where built atlases are cached: ``$GLIOTYPE_CACHE/atlases`` or ``~/.cache/gliotype/atlases``."""
    root = os.environ.get("GLIOTYPE_CACHE") or os.path.join("~", ".cache", "gliotype")
    return Path(root).expanduser() / "atlases"


def _labels_digest(nodes: NodeAtlas) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(nodes.labels, dtype=np.int16).tobytes())
    h.update(np.asarray(nodes.affine, dtype=np.float64).tobytes())
    h.update(json.dumps(list(nodes.regions)).encode())
    return h.hexdigest()


def _cache_key(kind: str, payload: dict) -> str:
    text = json.dumps({"kind": kind, "version": TRACT_ATLAS_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _cached(kind: str, payload: dict, build: Callable[[], TractAtlas], use_cache: bool = True) -> TractAtlas:
    """Load ``<cache>/tracts-<kind>-v<version>-<key>.npz`` or build, save and return it."""
    if not use_cache:
        return build()
    path = cache_dir() / f"tracts-{kind}-v{TRACT_ATLAS_VERSION}-{_cache_key(kind, payload)}.npz"
    if path.exists():
        try:
            return TractAtlas.load(path)
        except Exception as exc:  # a damaged cache file is rebuilt
            log.warning("tract atlas cache %s unreadable (%s): rebuilding", path.name, type(exc).__name__)
    atlas = build()
    try:
        atlas.save(path)
    except OSError as exc:
        log.warning("cannot write the tract atlas cache %s (%s); continuing without it", path, exc)
    return atlas


def cached_tract_atlas_path(node_atlas: NodeAtlas | None = None, n_tracts: int = 2309, regions=None,
                            **params) -> Path:
    """The cache file :func:`default_tract_atlas` reads and writes for these arguments."""
    kind, payload = _default_payload(node_atlas or load_node_atlas(), n_tracts, regions, params)
    return cache_dir() / f"tracts-{kind}-v{TRACT_ATLAS_VERSION}-{_cache_key(kind, payload)}.npz"


def _default_payload(nodes: NodeAtlas, n_tracts: int, regions, params: dict) -> tuple[str, dict]:
    unknown = set(params) - set(DEFAULT_BUILD)
    if unknown:
        raise TypeError(f"unknown tract atlas parameters: {sorted(unknown)}")
    full = {**DEFAULT_BUILD, **params}
    regs = None if regions is None else sorted({int(r) for r in regions})
    return "builtin", {"params": full, "n_tracts": int(n_tracts), "regions": regs, "nodes": _labels_digest(nodes)}


def default_tract_atlas(node_atlas: NodeAtlas | None = None, n_tracts: int = 2309, regions=None,
                        use_cache: bool = True, **params) -> TractAtlas:
    """The built-in tract atlas between the regions of ``node_atlas``, built once and cached on disk.

    ``params`` override :data:`DEFAULT_BUILD` (each is part of the cache key).
    """
    nodes = node_atlas if node_atlas is not None else load_node_atlas()
    kind, payload = _default_payload(nodes, n_tracts, regions, params)
    return _cached(kind, payload, lambda: build_tract_atlas(nodes, n_tracts, regions, **params), use_cache)


# --------------------------------------------------------------------------- user atlas


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _read_pairs_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """``(T, 2)`` region pairs and, when present, the ``file`` column."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
            header = [h.strip().lower() for h in (rows[0].keys() if rows else [])]
    except Exception as exc:
        raise GliotypeError(f"tract atlas CSV {path.name}: cannot read it ({type(exc).__name__})") from None
    if not rows:
        raise GliotypeError(f"tract atlas CSV {path.name}: no rows (expected columns region_a, region_b)")
    if not {"region_a", "region_b"} <= set(header):
        raise GliotypeError(f"tract atlas CSV {path.name}: needs columns region_a, region_b "
                            f"(found {', '.join(header) or 'none'})")
    pairs, files = [], []
    for n, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        try:
            a, b = int(float(row["region_a"])), int(float(row["region_b"]))
        except ValueError:
            raise GliotypeError(f"tract atlas CSV {path.name} line {n}: region labels must be integers, "
                                f"got {row['region_a']!r}, {row['region_b']!r}") from None
        if a == b:
            raise GliotypeError(f"tract atlas CSV {path.name} line {n}: a tract joins two different regions "
                                f"(got {a} twice)")
        pairs.append((a, b))
        files.append(row.get("file", ""))
    has_files = "file" in header
    if has_files and any(not f for f in files):
        raise GliotypeError(f"tract atlas CSV {path.name}: the 'file' column has empty cells")
    return np.asarray(pairs, dtype=np.int64), (files if has_files else None)


def _resample_prob(data: np.ndarray, src_affine: np.ndarray, shape, affine) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear resampling of one probability volume onto ``(shape, affine)``, within its bounding box.

    Returns the flat indices and values of the non-zero target voxels.
    """
    data = np.asarray(data, dtype=np.float32)
    if tuple(data.shape) == tuple(shape) and np.allclose(src_affine, affine, atol=1e-4):
        flat = data.reshape(-1)
        idx = np.flatnonzero(flat > 0)
        return idx.astype(np.int64), flat[idx]
    nz = np.argwhere(data > 0)
    if not len(nz):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    s_lo, s_hi = nz.min(0) - 1, nz.max(0) + 1
    corners = np.array([[x, y, z] for x in (s_lo[0], s_hi[0]) for y in (s_lo[1], s_hi[1])
                        for z in (s_lo[2], s_hi[2])], dtype=np.float64)
    to_tgt = np.linalg.inv(affine) @ src_affine
    tc = corners @ to_tgt[:3, :3].T + to_tgt[:3, 3]
    lo = np.maximum(np.floor(tc.min(0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(tc.max(0)).astype(int) + 2, shape)
    if np.any(hi <= lo):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    grid = np.indices(tuple(hi - lo), dtype=np.float64).reshape(3, -1) + lo[:, None]
    to_src = np.linalg.inv(src_affine) @ affine
    src = to_src[:3, :3] @ grid + to_src[:3, 3:4]
    vals = ndi.map_coordinates(data, src, order=1, mode="constant", cval=0.0).astype(np.float32)
    keep = vals > 0
    flat = np.ravel_multi_index(grid[:, keep].astype(np.int64), tuple(shape))
    o = np.argsort(flat)
    return flat[o].astype(np.int64), vals[keep][o]


def _user_volumes(path: Path, csv_path: Path | None):
    """``(pairs, csv name, iterator of (label, 3D array, affine))`` of a user tract atlas."""
    if path.is_dir():
        if csv_path is None:
            csvs = sorted(path.glob("*.csv"))
            if len(csvs) > 1 and (path / "tracts.csv").exists():
                csvs = [path / "tracts.csv"]
            if len(csvs) != 1:
                raise GliotypeError(f"tract atlas folder {path.name}: expected one CSV of region pairs "
                                    f"(columns region_a, region_b, file), found {len(csvs)}")
            csv_path = csvs[0]
        pairs, files = _read_pairs_csv(csv_path)
        if files is None:
            niftis = sorted(p for p in path.iterdir() if _is_nifti(p))
            if len(niftis) != len(pairs):
                raise GliotypeError(f"tract atlas folder {path.name}: {len(niftis)} NIfTI files but "
                                    f"{len(pairs)} rows in {csv_path.name} (add a 'file' column to match them)")
        else:
            niftis = [path / f for f in files]
            missing = [f for f, p in zip(files, niftis) if not p.is_file()]
            if missing:
                raise GliotypeError(f"tract atlas folder {path.name}: {len(missing)} files of {csv_path.name} "
                                    f"are missing (first: {missing[0]})")

        def volumes():
            for f in niftis:
                try:
                    img = nib.load(str(f))
                    data = np.asarray(img.dataobj, dtype=np.float32)
                except Exception as exc:
                    raise GliotypeError(f"tract atlas {f.name}: not a readable NIfTI ({type(exc).__name__})") from None
                if data.ndim == 4 and data.shape[3] == 1:
                    data = data[..., 0]
                if data.ndim != 3:
                    raise GliotypeError(f"tract atlas {f.name}: expected one 3D volume, got shape {data.shape}")
                yield f.name, data, img.affine

        return pairs, csv_path.name, volumes()

    if not _is_nifti(path):
        raise GliotypeError(f"tract atlas {path.name}: expected a 4D NIfTI (.nii/.nii.gz) or a folder of NIfTIs")
    if csv_path is None:
        csv_path = path.with_name(_stem(path) + ".csv")
        if not csv_path.exists():
            raise GliotypeError(f"tract atlas {path.name}: the CSV of region pairs is missing "
                                f"(expected {csv_path.name} beside it, columns region_a, region_b)")
    pairs, _ = _read_pairs_csv(csv_path)
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as exc:
        raise GliotypeError(f"tract atlas {path.name}: not a readable NIfTI ({type(exc).__name__})") from None
    if len(shape) != 4:
        raise GliotypeError(f"tract atlas {path.name}: expected a 4D NIfTI (one volume per tract), "
                            f"got shape {tuple(shape)}")
    if shape[3] != len(pairs):
        raise GliotypeError(f"tract atlas {path.name}: {shape[3]} volumes but {len(pairs)} rows in {csv_path.name}")

    def volumes():
        for t in range(shape[3]):
            try:
                data = np.asarray(img.dataobj[..., t], dtype=np.float32)
            except Exception as exc:
                raise GliotypeError(f"tract atlas {path.name}: cannot read volume {t} ({type(exc).__name__})") from None
            yield f"{path.name}[{t}]", data, img.affine

    return pairs, csv_path.name, volumes()


def _load_user_tracts(path: Path, csv_path: Path | None, nodes: NodeAtlas) -> TractAtlas:
    tpl = load_template(2)
    brain = (tpl.brain_mask > 0.5).reshape(-1)
    pairs, csv_name, volumes = _user_volumes(path, csv_path)
    bad = sorted({int(x) for x in pairs.ravel()} - set(nodes.regions))
    if bad:
        raise GliotypeError(f"tract atlas {csv_name}: region labels {bad[:10]} are not in the node atlas "
                            f"({nodes.source}, labels {nodes.regions[0]}..{nodes.regions[-1]})")
    idx_list, val_list, rescaled = [], [], 0
    for t, (name, data, affine) in enumerate(volumes):
        if not np.all(np.isfinite(data)):
            raise GliotypeError(f"tract atlas {name}: contains NaN or infinite values")
        if data.size and data.min() < 0:
            raise GliotypeError(f"tract atlas {name}: probabilities must be >= 0 (found {data.min():g})")
        idx, val = _resample_prob(data, affine, tpl.shape, tpl.affine)
        inside = brain[idx]
        idx, val = idx[inside], val[inside]
        top = float(val.max()) if len(val) else 0.0
        if top > 1.0:
            val = val / top
            rescaled += 1
        keep = val >= USER_MIN_PROB
        if not keep.any():
            raise GliotypeError(f"tract atlas {name} (tract {t}, regions {pairs[t][0]}-{pairs[t][1]}): no voxel "
                                "inside the MNI152 brain mask (is it empty or not in MNI space?)")
        idx_list.append(idx[keep])
        val_list.append(np.minimum(val[keep], 1.0).astype(np.float32))
    if rescaled:
        log.info("tract atlas %s: %d tracts had values above 1 and were scaled by their maximum", path.name, rescaled)
    names = tuple(f"{nodes.name(a)}--{nodes.name(b)}" for a, b in pairs)
    return _from_lists(pairs, idx_list, val_list, tpl.shape, tpl.affine, names=names, source=path.name,
                       info={"source": path.name, "csv": csv_name, "rescaled": rescaled})


def _file_stamp(path: Path) -> list:
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def load_tract_atlas(
    path: str | Path | None = None,
    node_atlas: NodeAtlas | None = None,
    n_tracts: int | None = 2309,
    pairs_csv: str | Path | None = None,
    use_cache: bool = True,
) -> TractAtlas:
    """The edge atlas on the 2 mm template grid.

    Args:
        path: ``None``: the built-in proxy atlas between the regions of ``node_atlas``
            (:func:`default_tract_atlas`, built once and cached on disk). Otherwise a
            4D NIfTI (one volume per tract, CSV ``<stem>.csv`` beside it) or a folder of
            3D NIfTIs (with one CSV; its optional ``file`` column names each tract's
            file, else the NIfTIs sorted by name match the rows in order). Volumes in
            MNI space, any grid (resampled trilinearly); tracts whose maximum exceeds 1
            are scaled by their maximum.
        node_atlas: the regions the tracts join (default AAL 1-90).
        n_tracts: built-in atlas: how many pairs to keep. A user atlas keeps all its
            tracts (a different count is reported as a warning).
        pairs_csv: the CSV of region pairs, when it is not where ``path`` implies.

    Raises:
        GliotypeError: missing or unreadable files, CSV without ``region_a, region_b``,
            labels not in the node atlas, volume/row count mismatch, empty tracts.
    """
    nodes = node_atlas if node_atlas is not None else load_node_atlas()
    if path is None or str(path) == "":
        return default_tract_atlas(nodes, 2309 if n_tracts is None else int(n_tracts), use_cache=use_cache)
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise GliotypeError(f"tract atlas not found: {path}")
    csv_p = Path(pairs_csv).expanduser().resolve() if pairs_csv else None
    if csv_p is not None and not csv_p.is_file():
        raise GliotypeError(f"tract atlas CSV not found: {pairs_csv}")
    implied = p.with_name(_stem(p) + ".csv") if p.is_file() else None
    stamp = _file_stamp(p) + [_file_stamp(c) for c in (csv_p, implied) if c is not None and c.is_file()]
    payload = {"path": str(p), "files": stamp, "nodes": _labels_digest(nodes)}
    atlas = _cached("user", payload, lambda: _load_user_tracts(p, csv_p, nodes), use_cache)
    if n_tracts is not None and len(atlas) != int(n_tracts):
        log.warning("tract atlas %s has %d tracts (atlas.n_tracts is %d): using its %d tracts",
                    p.name, len(atlas), n_tracts, len(atlas))
    return atlas
