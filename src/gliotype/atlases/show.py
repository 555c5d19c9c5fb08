"""A PNG of both atlases on the ICBM152 template (``gliotype atlas show``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gliotype.atlases.nodes import NodeAtlas, load_node_atlas
from gliotype.atlases.template import load_template
from gliotype.atlases.tracts import TractAtlas
from gliotype.atlases.user_tracts import load_tract_atlas
from gliotype.utils.io import atomic_path

#: Axial (z) and coronal (y) slices shown, in MNI millimetres.
AXIAL_MM = (-20, 0, 20, 45)
CORONAL_MM = (-70, -30, 0, 30)


def _label_colours(regions, seed: int = 7) -> np.ndarray:
    """One distinct-looking RGB colour per region (hue wheel, shuffled, fixed)."""
    import matplotlib.colors as mcolors

    n = len(regions)
    hues = np.linspace(0, 1, n, endpoint=False)
    np.random.default_rng(seed).shuffle(hues)
    sat = np.where(np.arange(n) % 2 == 0, 0.85, 0.6)
    val = np.where(np.arange(n) % 3 == 0, 0.95, 0.8)
    return mcolors.hsv_to_rgb(np.stack([hues, sat, val], 1))


def _index(affine: np.ndarray, axis: int, mm: float, size: int) -> int:
    inv = np.linalg.inv(affine)
    point = np.zeros(4)
    point[axis] = mm
    point[3] = 1.0
    return int(np.clip(np.rint((inv @ point)[axis]), 0, size - 1))


def render_atlases(out_png: str | Path, node_atlas: NodeAtlas | None = None,
                   tract_atlas: TractAtlas | None = None, dpi: int = 90,
                   cache_dir: str | Path | None = None) -> Path:
    """Write a PNG of the template T1 with the node regions (coloured labels, axial and
    coronal slices) and the tract atlas (projections of the summed tract probability and
    a few single tracts). ``None`` atlases are the defaults (AAL; built-in tracts, cached
    in ``cache_dir``, see :func:`~gliotype.atlases.load_tract_atlas`).
    """
    from matplotlib.colors import ListedColormap

    from gliotype.utils.plotting import pyplot

    plt = pyplot()

    nodes = node_atlas if node_atlas is not None else load_node_atlas()
    tracts = tract_atlas if tract_atlas is not None else load_tract_atlas(None, node_atlas=nodes, cache_dir=cache_dir)
    tpl = load_template(2)
    t1 = np.asarray(tpl.t1)
    brain = tpl.brain_mask > 0.5
    lo, hi = np.percentile(t1[brain], [1, 99.5])

    labels = np.asarray(nodes.labels)
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    lut[list(nodes.regions)] = np.arange(1, len(nodes.regions) + 1)
    colours = _label_colours(nodes.regions)
    cmap = ListedColormap(np.vstack([[0, 0, 0], colours]))
    label_idx = lut[labels]

    fig, axes = plt.subplots(3, 4, figsize=(14, 11), facecolor="black")
    for ax in axes.ravel():
        ax.set_axis_off()

    def show_slice(ax, axis: int, mm: float, title: str):
        k = _index(tpl.affine, axis, mm, t1.shape[axis])
        sl = [slice(None)] * 3
        sl[axis] = k
        sl = tuple(sl)
        ax.imshow(t1[sl].T, cmap="gray", vmin=lo, vmax=hi, origin="lower")
        lab = label_idx[sl].T.astype(float)
        ax.imshow(np.ma.masked_equal(lab, 0), cmap=cmap, vmin=0, vmax=len(nodes.regions), alpha=0.55,
                  origin="lower", interpolation="nearest")
        ax.set_title(title, color="white", fontsize=10)

    for c, z in enumerate(AXIAL_MM):
        show_slice(axes[0, c], 2, z, f"regions, axial z = {z} mm")
    for c, y in enumerate(CORONAL_MM):
        show_slice(axes[1, c], 1, y, f"regions, coronal y = {y} mm")

    total = tracts.sum_volume()
    # background: the mean T1 through the brain along the projection axis
    t1_proj = [np.where(brain, t1, 0).sum(axis=a) / np.maximum(brain.sum(axis=a), 1) for a in (2, 1, 0)]
    p_lo, p_hi = np.percentile(np.concatenate([p[p > 0] for p in t1_proj]), [1, 99.5])
    for c, (axis, name) in enumerate(((2, "axial"), (1, "coronal"), (0, "sagittal"))):
        ax = axes[2, c]
        ax.imshow(t1_proj[c].T, cmap="gray", vmin=p_lo, vmax=p_hi, origin="lower")
        proj = total.max(axis=axis)
        top = float(np.percentile(proj[proj > 0], 99)) if np.any(proj > 0) else 1.0
        ax.imshow(np.ma.masked_less_equal(proj.T, 0), cmap="hot", vmin=0, vmax=top, origin="lower", alpha=0.85)
        ax.set_title(f"tracts: max summed probability ({name})", color="white", fontsize=10)

    # A few single tracts (the longest of a spread of pairs), coloured, axial projection.
    ax = axes[2, 3]
    ax.imshow(t1_proj[0].T, cmap="gray", vmin=p_lo, vmax=p_hi, origin="lower")
    n_show = min(8, len(tracts))
    sizes = np.diff(tracts.offsets)
    pick = np.linspace(0, len(tracts) - 1, n_show).astype(int) if n_show else []
    if len(tracts) > n_show:  # prefer large tracts, spread over the list
        blocks = np.array_split(np.arange(len(tracts)), n_show)
        pick = [int(b[np.argmax(sizes[b])]) for b in blocks]
    tract_cols = plt.get_cmap("tab10")(np.arange(n_show) % 10)
    handles = []
    for colour, t in zip(tract_cols, pick):
        mip = tracts.volume(int(t)).max(axis=2).T
        rgba = np.zeros(mip.shape + (4,))
        rgba[..., :3] = colour[:3]
        rgba[..., 3] = np.clip(mip, 0, 1) * 0.9
        ax.imshow(rgba, origin="lower")
        handles.append(plt.Line2D([], [], color=colour, lw=3, label=tracts.names[t] if tracts.names else str(t)))
    ax.set_title("a few tracts (axial projection)", color="white", fontsize=10)
    if handles:
        leg = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=6,
                        frameon=False, ncol=1)
        for text in leg.get_texts():
            text.set_color("white")

    kind = ("built-in white-matter-guided proxy (not tractography)" if tracts.source == "built-in"
            else f"user atlas {tracts.source}")
    fig.suptitle(f"node atlas: {nodes.source}, {len(nodes.regions)} regions  |  edge atlas: {len(tracts)} tracts, "
                 f"{kind}  |  ICBM152 2009, 2 mm; image left = subject left (RAS)", color="white", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out = Path(out_png)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, facecolor="black", format="png")
    plt.close(fig)
    return out


def show_atlases(atlas, out_png: str | Path) -> tuple[int, int]:
    """``gliotype atlas show``: the atlases an ``atlas`` config section names (node atlas,
    edge atlas, sizes, cache folder) rendered to ``out_png``; returns (regions, tracts)."""
    nodes = load_node_atlas(atlas.node_atlas, n_regions=atlas.n_regions)
    tracts = load_tract_atlas(atlas.edge_atlas, node_atlas=nodes, n_tracts=atlas.n_tracts, cache_dir=atlas.cache_dir)
    render_atlases(out_png, node_atlas=nodes, tract_atlas=tracts)
    return len(nodes.regions), len(tracts.pairs)
