"""The interpretation figures of the paper (section 5.4): Fig. 7 (image and geometric
encoders of one case) and Fig. 8 (important edges of the brain network on a glass brain).

Both are written atomically as PNG with matplotlib's Agg backend; titles name patients
by their ID only, never by a file path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gliotype.interpretation.edges import important_edges
from gliotype.interpretation.points import agreement
from gliotype.utils.io import atomic_path
from gliotype.utils.plotting import pyplot



def _save(fig, out_png: str | Path, dpi: int) -> Path:
    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return out


def _window(img: np.ndarray) -> tuple[float, float]:
    vals = img[img != 0]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [1, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def _pick_slice(cam: np.ndarray, reference: np.ndarray, axis: int) -> int:
    """The slice through the Grad-CAM's largest mass, else through the most tumor voxels."""
    other = tuple(a for a in range(3) if a != axis)
    mass = cam.sum(axis=other)
    if mass.max() <= 0:
        mass = (reference != 0).sum(axis=other)
    return int(np.argmax(mass))


def figure7(
    sequences_crop: np.ndarray,
    cam: np.ndarray,
    points_mm: np.ndarray,
    cam_on_points: np.ndarray,
    attention_on_points: np.ndarray,
    out_png: str | Path,
    *,
    patient_id: str | None = None,
    slice_index: int | None = None,
    axis: int = 2,
    dpi: int = 110,
) -> Path:
    """Fig. 7 for one case: A T1, B T2, C FLAIR, D Grad-CAM on T1c, E Grad-CAM on the points, F point attention.

    Args:
        sequences_crop: x_I as ``(4, D, H, W)`` (t1, t1c, t2, flair) or four 2D slices ``(4, H, W)``.
        cam: Grad-CAM on the same grid, ``(D, H, W)`` (or ``(H, W)`` with slices), in [0, 1].
        points_mm: ``(N, 3)`` tumor surface points.
        cam_on_points: ``(N,)`` Grad-CAM projected on the points (:func:`project_to_points`).
        attention_on_points: ``(N,)`` geometric attention (:func:`point_attention`).
        out_png: output file (written atomically).
        patient_id: shown in the title.
        slice_index, axis: the slice shown (default: through the Grad-CAM's largest mass,
            along the third voxel axis, axial on the MNI-aligned crop).

    The title gives Spearman's rho between the two point maps (:func:`agreement`).
    Returns the path written.
    """
    plt = pyplot()
    seqs = np.asarray(sequences_crop, dtype=np.float32)
    cam = np.asarray(cam, dtype=np.float32)
    if seqs.ndim == 4:
        if cam.shape != seqs.shape[1:]:
            raise ValueError(f"cam {cam.shape} and sequences {seqs.shape[1:]} are not on the same grid")
        k = _pick_slice(cam, seqs[1], axis) if slice_index is None else int(slice_index)
        seqs = np.take(seqs, k, axis=axis + 1)
        cam = np.take(cam, k, axis=axis)
    elif seqs.ndim == 3:
        if cam.shape != seqs.shape[1:]:
            raise ValueError(f"cam {cam.shape} and slices {seqs.shape[1:]} differ in shape")
    else:
        raise ValueError(f"sequences_crop must be (4, D, H, W) or (4, H, W), got {seqs.shape}")
    if seqs.shape[0] != 4:
        raise ValueError(f"expected the 4 sequences t1, t1c, t2, flair; got {seqs.shape[0]} channels")
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    cam_pts = np.asarray(cam_on_points, dtype=np.float64).ravel()
    att_pts = np.asarray(attention_on_points, dtype=np.float64).ravel()
    if not len(pts) == len(cam_pts) == len(att_pts):
        raise ValueError(f"{len(pts)} points, {len(cam_pts)} Grad-CAM values, {len(att_pts)} attention values")
    rho = agreement(cam_pts, att_pts) if len(pts) else float("nan")

    fig = plt.figure(figsize=(11, 7.6))  # 1210 px at 110 dpi: shown at about its own size in the report
    panels = [("A  pre-contrast T1", 0), ("B  T2", 2), ("C  T2-FLAIR", 3)]
    for i, (title, c) in enumerate(panels):
        ax = fig.add_subplot(2, 3, i + 1)
        lo, hi = _window(seqs[c])
        ax.imshow(seqs[c].T, cmap="gray", vmin=lo, vmax=hi, origin="lower")
        ax.set_title(title)
        ax.set_axis_off()
    ax = fig.add_subplot(2, 3, 4)
    lo, hi = _window(seqs[1])
    ax.imshow(seqs[1].T, cmap="gray", vmin=lo, vmax=hi, origin="lower")
    # x_I is zero outside the tumor mask: the map is drawn on the tumor only (Fig. 7D)
    outside = ~np.any(seqs != 0, axis=0)
    im = ax.imshow(np.ma.masked_where((cam <= 0.05) | outside, cam).T, cmap="jet", vmin=0, vmax=1, alpha=0.5,
                   origin="lower")
    fig.colorbar(im, ax=ax, shrink=0.7, label="Grad-CAM")
    ax.set_title("D  Grad-CAM on post-contrast T1")
    ax.set_axis_off()
    for i, (title, values, cmap, label) in enumerate([
        ("E  Grad-CAM on the points", cam_pts, "jet", "Grad-CAM"),
        ("F  geometric attention", att_pts, "viridis", "attention a^P"),
    ]):
        ax = fig.add_subplot(2, 3, 5 + i, projection="3d")
        if len(pts):
            sc = ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], c=values, cmap=cmap, s=10, depthshade=False)
            fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.17, label=label)
            span = np.ptp(pts, axis=0)
            ax.set_box_aspect(np.where(span > 0, span, 1.0))
        ax.set_title(title)
        ax.set_xlabel("x (mm)", fontsize=9)
        ax.set_ylabel("y (mm)", fontsize=9)
        ax.set_zlabel("z (mm)", fontsize=9)
        ax.tick_params(labelsize=8)
    who = f"patient {patient_id}: " if patient_id is not None else ""
    agree = f"{rho:.2f}" if np.isfinite(rho) else "n/a: a constant map"
    fig.suptitle(f"{who}image and geometric encoders (Spearman rho, Grad-CAM vs attention on "
                 f"{len(pts)} points = {agree})")
    fig.tight_layout()
    try:
        return _save(fig, out_png, dpi)
    finally:
        plt.close(fig)


def region_centroids(labels: np.ndarray, affine: np.ndarray, regions: Sequence[int]) -> np.ndarray:
    """Centroid of every region of a label volume in mm: ``(R,)`` rows in ``regions`` order, ``(R, 3)``.

    E.g. the AAL node atlas on the 2 mm template (``NodeAtlas.labels``, ``.affine``,
    ``.regions``). A region absent from the volume is an error.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D volume, got shape {labels.shape}")
    flat = labels.ravel().astype(np.int64)
    keep = flat > 0
    lab = flat[keep]
    idx = np.stack(np.unravel_index(np.flatnonzero(keep), labels.shape), axis=1).astype(np.float64)
    size = int(max(lab.max(initial=0), max((int(r) for r in regions), default=0))) + 1
    count = np.bincount(lab, minlength=size).astype(np.float64)
    sums = np.stack([np.bincount(lab, weights=idx[:, d], minlength=size) for d in range(3)], axis=1)
    regions = np.asarray(list(regions), dtype=np.int64)
    missing = regions[(regions < 0) | (count[np.clip(regions, 0, None)] == 0)]
    if missing.size:
        raise ValueError(f"regions absent from the label volume: {missing[:10].tolist()}")
    vox = sums[regions] / count[regions][:, None]
    aff = np.asarray(affine, dtype=np.float64)
    return vox @ aff[:3, :3].T + aff[:3, 3]


def connectome_matrix(probs: np.ndarray, pairs: np.ndarray, regions: Sequence[int], threshold: float = 0.5) -> np.ndarray:
    """The ``(R, R)`` symmetric matrix Fig. 8 draws: entry (i, j) is the highest probability
    above ``threshold`` among the edges joining the regions of rows i and j, 0 elsewhere.

    Args:
        probs: ``(E,)`` edge probabilities (GNNExplainer), in the order of ``pairs``.
        pairs: ``(E, 2)`` region labels of each edge's two ends.
        regions: the label of each row (``R`` labels), e.g. ``1..R`` or ``range(R)``.
    """
    labels = np.asarray(list(regions), dtype=np.int64)
    row_of = {int(lab): i for i, lab in enumerate(labels)}
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    probs = np.asarray(probs, dtype=np.float64).ravel()
    if len(probs) != len(pairs):
        raise ValueError(f"{len(probs)} edge probabilities for {len(pairs)} edges")
    try:
        rows = np.vectorize(lambda v: row_of[int(v)], otypes=[np.int64])(pairs) if pairs.size else pairs
    except KeyError as exc:
        raise ValueError(f"edge region {exc.args[0]} is not among the regions") from None
    adj = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for e in important_edges(probs, threshold):
        i, j = rows[e]
        if i != j:
            adj[i, j] = adj[j, i] = max(adj[i, j], float(probs[e]))
    return adj


def figure8(
    edge_probs: np.ndarray | Mapping[str, np.ndarray],
    pairs: np.ndarray,
    region_coords: np.ndarray,
    out_png: str | Path,
    threshold: float = 0.5,
    *,
    regions: Sequence[int] | None = None,
    title: str | None = None,
    display_mode: str = "lzry",
    dpi: int = 110,
) -> Path:
    """Fig. 8: the edges with GNNExplainer probability > ``threshold`` on a glass brain.

    Args:
        edge_probs: ``(E,)`` probabilities of one patient, or ``{panel title: (E,)}`` for
            several (e.g. ``{"P1 (IDH wild-type)": ..., "P2 (IDH mutant)": ...}``), one row each.
        pairs: ``(E, 2)`` region labels of each edge (the atlas ``pairs``).
        region_coords: ``(R, 3)`` node positions in MNI mm (:func:`region_centroids`).
        regions: the label of each row of ``region_coords`` (default ``1..R``, the atlas
            convention; pass ``range(R)`` for 0-based ``edge_index.T``).
        threshold: edges kept strictly above it (section 4.5: 50%).
        title: figure title (patient IDs only, no paths).

    Nodes touched by a kept edge are drawn larger; edge colour is the probability
    (the matrix of :func:`connectome_matrix`). Returns the path written.
    """
    from nilearn import plotting

    plt = pyplot()
    coords = np.asarray(region_coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"region_coords must be (R, 3), got {coords.shape}")
    n = len(coords)
    labels = np.arange(1, n + 1) if regions is None else np.asarray(list(regions), dtype=np.int64)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} region labels for {n} coordinates")
    panels = dict(edge_probs) if isinstance(edge_probs, Mapping) else {"": edge_probs}
    fig = plt.figure(figsize=(11, 3.4 * len(panels) + 0.6))
    for k, (name, probs) in enumerate(panels.items()):
        probs = np.asarray(probs, dtype=np.float64).ravel()
        adj = connectome_matrix(probs, pairs, labels, threshold)
        touched = (adj > 0).any(axis=1)
        sizes = np.where(touched, 30.0, 6.0)
        colors = [(0.8, 0.1, 0.1, 1.0) if t else (0.4, 0.4, 0.4, 0.6) for t in touched]
        n_kept = len(important_edges(probs, threshold))
        top, height = (0.93 if title else 0.99), (0.93 if title else 0.99) / len(panels)
        ax = fig.add_axes((0.01, top - (k + 1) * height, 0.98, height - 0.02))
        label = f"{name}: " if name else ""
        density = n_kept / len(probs) if len(probs) else float("nan")
        plotting.plot_connectome(
            adj, coords, node_color=colors, node_size=sizes, edge_cmap="Reds", edge_vmin=threshold, edge_vmax=1.0,
            edge_threshold=None, display_mode=display_mode, axes=ax, colorbar=n_kept > 0,
            title=f"{label}{n_kept} of {len(probs)} edges with p > {threshold:g} (density {density:.3f})",
            edge_kwargs={"linewidth": 1.2},
        )
    if title:
        fig.suptitle(title)
    try:
        return _save(fig, out_png, dpi)
    finally:
        plt.close(fig)
