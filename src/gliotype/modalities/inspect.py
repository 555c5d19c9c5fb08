"""``gliotype inspect``: one PNG per patient to check registration and the modalities.

Rows 1-3: the four normalised sequences on the template grid in three planes through
the tumor centroid, with the tumor mask (red) and the template brain outline (cyan):
a misregistered case shows the outline off the brain. Row 4: the AAL regions (the
brain-network nodes of section 3.2) over T1c, the focal tumor image x_I, and the
tumor point cloud x_P in MNI millimetres, coloured by how many tracts each point
crosses (eq. 2). Only the patient ID is written into the figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gliotype.errors import GliotypeError
from gliotype.layout import WorkDir
from gliotype.utils.io import atomic_path

PLANES = ("axial", "coronal", "sagittal")
SEQUENCE_TITLES = ("T1", "T1c", "T2", "FLAIR")


def _slice(vol: np.ndarray, plane: str, idx: tuple[int, int, int]) -> np.ndarray:
    """A 2D view of a RAS volume, oriented for ``imshow(origin="lower")``."""
    if plane == "axial":
        return vol[:, :, idx[2]].T
    if plane == "coronal":
        return vol[:, idx[1], :].T
    return vol[idx[0], :, :].T


def _window(img: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
    vals = img[brain] if brain.any() else img.ravel()
    lo, hi = np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0)
    return float(lo), float(hi if hi > lo else lo + 1)


def render_inspection(workdir: str | Path, patient_id: str, out: str | Path | None = None) -> Path:
    """Write the inspection PNG of one preprocessed patient; return its path.

    Default output: ``WORKDIR/patients/<id>/inspect.png``.
    """
    from matplotlib.colors import ListedColormap

    from gliotype.utils.plotting import pyplot

    plt = pyplot()

    from gliotype.atlases import load_node_atlas, load_template
    from gliotype.modalities.build import load_case_modalities
    from gliotype.preprocessing import load_preprocessed

    workdir = WorkDir.of(workdir)
    pid = str(patient_id)
    case_dir = workdir.case(pid)
    try:
        case = load_preprocessed(workdir, pid)
    except Exception as exc:
        raise GliotypeError(f"patient {pid}: no preprocessed data in the work folder "
                            f"(run `gliotype preprocess` first; {type(exc).__name__})") from None
    seqs = np.asarray(case["sequences"], dtype=np.float32)
    mask = np.asarray(case["mask"]) > 0
    brain = np.asarray(case.get("brain", seqs[1] != 0)).astype(bool)
    template = load_template(2)
    if seqs.shape[1:] != template.shape:
        raise GliotypeError(f"patient {pid}: preprocessed volumes are not on the 2 mm template grid")
    centre = tuple(int(round(c)) for c in (np.argwhere(mask).mean(0) if mask.any() else np.array(mask.shape) / 2))
    tpl_brain = template.brain_mask > 0.5

    fig, axes = plt.subplots(4, 4, figsize=(13, 13.5), facecolor="black")
    for ax in axes.ravel():
        ax.set_axis_off()
    for r, plane in enumerate(PLANES):
        for c, title in enumerate(SEQUENCE_TITLES):
            ax = axes[r, c]
            lo, hi = _window(seqs[c], brain)
            ax.imshow(_slice(seqs[c], plane, centre), cmap="gray", vmin=lo, vmax=hi, origin="lower")
            ax.contour(_slice(tpl_brain.astype(float), plane, centre), levels=[0.5], colors="cyan", linewidths=0.6)
            if _slice(mask, plane, centre).any():
                ax.contour(_slice(mask.astype(float), plane, centre), levels=[0.5], colors="red", linewidths=0.8)
            if r == 0:
                ax.set_title(title, color="white")
            if c == 0:
                ax.text(-0.05, 0.5, plane, color="white", rotation=90, transform=ax.transAxes, ha="right",
                        va="center")

    nodes = load_node_atlas(None)
    labels = np.asarray(nodes.labels)
    rng = np.random.default_rng(0)
    cmap = ListedColormap(rng.uniform(0.2, 1.0, (int(labels.max()) + 1, 3)))
    lo, hi = _window(seqs[1], brain)
    for c, plane in enumerate(("axial", "coronal")):
        ax = axes[3, c]
        ax.imshow(_slice(seqs[1], plane, centre), cmap="gray", vmin=lo, vmax=hi, origin="lower")
        lab = _slice(labels, plane, centre).astype(float)
        ax.imshow(np.ma.masked_equal(lab, 0), cmap=cmap, alpha=0.35, origin="lower", interpolation="nearest")
        ax.set_title(f"AAL nodes ({plane})", color="white")

    if case_dir.modalities_meta.exists():
        mod = load_case_modalities(workdir, pid)
        x_i = mod["tumor_image"][1]
        mid = x_i.shape[2] // 2
        nz = np.argwhere(x_i != 0)
        if nz.size:
            mid = int(nz[:, 2].mean())
        axes[3, 2].imshow(x_i[:, :, mid].T, cmap="gray", origin="lower")
        axes[3, 2].set_title("tumor image x_I (T1c)", color="white")
        crossing = _crossing_counts(case_dir.crossing, len(mod["points_mm"]))
        fig.delaxes(axes[3, 3])
        ax3 = fig.add_subplot(4, 4, 16, projection="3d")
        p = mod["points_mm"]
        sc = ax3.scatter(p[:, 0], p[:, 1], p[:, 2], s=2, c=crossing, cmap="viridis")
        ax3.set_title("point cloud x_P (mm)\ncolour: tracts crossed", color="white", fontsize=9)
        ax3.set_facecolor("black")
        ax3.tick_params(colors="white", labelsize=6)
        fig.colorbar(sc, ax=ax3, shrink=0.6)
    else:
        axes[3, 2].text(0.5, 0.5, "modalities not built yet", color="white", ha="center", transform=axes[3, 2].transAxes)

    fig.suptitle(f"patient {pid}: registration to ICBM152 2009 (2 mm) and modalities", color="white")
    fig.tight_layout()
    out = Path(out) if out is not None else case_dir.inspect_png
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, facecolor="black", format="png")
    plt.close(fig)
    return out


def _crossing_counts(path: Path, n_points: int) -> np.ndarray:
    """Tracts crossed by each point (zeros when crossings are not stored in ``path``)."""
    if not path.exists():
        return np.zeros(n_points)
    with np.load(path, allow_pickle=False) as z:
        pairs = z["crossing"]  # (2, C): point index, tract index
    return np.bincount(pairs[0], minlength=n_points)[:n_points].astype(float)


__all__ = ["render_inspection"]
