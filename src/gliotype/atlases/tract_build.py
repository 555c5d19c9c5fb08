"""The built-in edge atlas: a white-matter-guided geometric proxy of the paper's tracts.

No probabilistic tractography atlas ships with any installed package, so the default
edge atlas is built from the ICBM152 2009 white-matter probability map (docs/atlases.md).
It is not derived from diffusion MRI:

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

The build is deterministic and takes well under a minute for the 90 AAL regions; step 3's
propagations can be shared among processes (``workers``), with the same result.

:func:`build_tract_atlas` always builds; the cached entry points are in
:mod:`gliotype.atlases.tract_cache` and :mod:`gliotype.atlases.user_tracts`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from gliotype.atlases.nodes import NodeAtlas, load_node_atlas
from gliotype.atlases.template import load_template
from gliotype.atlases.tracts import TRACT_ATLAS_VERSION, TractAtlas
from gliotype.errors import GliotypeError
from gliotype.utils.logging import get_logger
from gliotype.utils.parallel import parallel_map

log = get_logger(__name__)

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


@dataclass(frozen=True)
class _PathJob:
    """Step 3 for some source regions (indices into the build's region list), with what it reads."""

    sources: list[int]
    cost: np.ndarray
    resistance: np.ndarray
    gates: list[np.ndarray]
    reg_vox: list[np.ndarray]
    spacing: float
    best: float


def _source_paths(job: _PathJob) -> list[list[tuple]]:
    """For each source region ``i`` of ``job``, one row ``(centre, wm_path_mm, quality, centre_mm)``
    per later region ``j > i``: the front from ``i``'s gateway, the traceback from ``j``'s cheapest
    gateway voxel closed by straight segments to both regions (``centre`` None when unreachable)."""
    from skimage.graph import MCP_Geometric

    mcp = MCP_Geometric(job.cost, fully_connected=True)
    out = []
    for i in job.sources:
        cum, _ = mcp.find_costs([tuple(v) for v in job.gates[i]])
        found = []
        for j in range(i + 1, len(job.gates)):
            g = job.gates[j]
            c = cum[tuple(g.T)]
            k = int(np.argmin(c))  # first cheapest gateway voxel (C order): deterministic
            if not np.isfinite(c[k]):
                found.append((None, np.inf, 0.0, np.inf))
                continue
            path = np.asarray(mcp.traceback(tuple(g[k])), dtype=np.int64)
            r = job.resistance[tuple(path.T)]
            if len(path) > 1:
                steps = np.linalg.norm(np.diff(path, axis=0), axis=1) * job.spacing
                length = float(steps.sum())
                path_cost = float(np.sum(steps * 0.5 * (r[:-1] + r[1:])))
                q = job.best * length / path_cost  # harmonic mean of (wm_eps + WM), scaled to (0, 1]
            else:  # the two gateways touch
                length, q = 0.0, job.best / float(r[0])
            start = _nearest(path[0], job.reg_vox[i])
            end = _nearest(path[-1], job.reg_vox[j])
            centre = np.concatenate([_line(start, path[0])[:-1], path, _line(path[-1], end)[1:]])
            found.append((centre, length, min(q, 1.0),
                          float(np.linalg.norm(np.diff(centre, axis=0), axis=1).sum() * job.spacing)))
        out.append(found)
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
    workers: int = 1,
) -> TractAtlas:
    """Build the white-matter-guided proxy tract atlas (no cache: see :func:`default_tract_atlas`).

    Args:
        node_atlas: the regions to connect (default AAL 1-90), on the 2 mm template grid.
        n_tracts: how many region pairs to keep (the best-supported); more than the
            number of pairs keeps them all.
        regions: connect only these region labels (default: all); a few regions make a
            fast build for tests.
        length_scale_mm: ``None`` ranks the pairs by white-matter support alone.
        workers: processes sharing the front propagations (step 3; :func:`gliotype.utils.parallel.parallel_map`,
            source regions dealt out in turn): the same atlas, byte for byte, for any number.

    Returns:
        The tracts in ``(region_a, region_b)`` order (``region_a < region_b``).
    """
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

    pairs = [(a, b) for i, a in enumerate(regs) for b in regs[i + 1:]]
    n_jobs = max(1, min(int(workers), len(regs) - 1))
    jobs = [_PathJob(list(range(k, len(regs) - 1, n_jobs)), cost, resistance, gates, reg_vox, spacing, best)
            for k in range(n_jobs)]
    rows: dict[int, list[tuple]] = {}
    for job, found in zip(jobs, parallel_map(_source_paths, jobs, n_jobs, desc="tract atlas", unit="block")):
        rows.update(zip(job.sources, found))
    centres, wm_path_mm, quality, centre_mm = (list(col) for col in zip(*(r for i in sorted(rows) for r in rows[i])))
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
    return TractAtlas.from_lists(pairs_a, idx_list, val_list, tpl.shape, tpl.affine, names=names,
                                 support=support[keep].astype(np.float32),
                                 length_mm=centre_a[keep].astype(np.float32), source="built-in", info=info)

