"""The figure of an automatic mask for the user to check: the mask over T1c in three planes.

Axial, coronal and sagittal slices through the tumour's centre of mass, in neurological
orientation (the patient's right on the right, marked; the images are brought to RAS+ voxel
order first, so the planes are the usual ones whatever the file's voxel order), titled
"automatic segmentation: check it".
Colours follow the BraTS figures: necrotic core red, edema green, enhancing yellow.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from gliotype.utils.io import atomic_path

TITLE = "automatic segmentation: check it"
#: label -> (name, RGBA)
COLOURS = {1: ("necrotic core", (0.9, 0.1, 0.1, 0.55)), 2: ("edema", (0.1, 0.8, 0.2, 0.45)),
           3: ("enhancing", (1.0, 0.85, 0.0, 0.6)), 4: ("enhancing", (1.0, 0.85, 0.0, 0.6))}


def _overlay(labels: np.ndarray) -> np.ndarray:
    rgba = np.zeros(labels.shape + (4,), dtype=np.float32)
    for label, (_, colour) in COLOURS.items():
        rgba[labels == label] = colour
    return rgba


def draw_segmentation(t1c: np.ndarray, labels: np.ndarray, affine: np.ndarray, path: str | Path,
                      patient_id: str, subtitle: str = "") -> Path:
    """Write the PNG of ``labels`` over ``t1c`` (same grid, ``affine``) to ``path`` (atomically)."""
    from gliotype.utils.plotting import pyplot

    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(t1c, dtype=np.float32), np.asarray(affine, float)))
    seg = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(labels, dtype=np.uint8), np.asarray(affine, float)))
    vol, lab = np.asarray(img.dataobj), np.asarray(seg.dataobj)
    zooms = nib.affines.voxel_sizes(img.affine)
    tumor = np.argwhere(lab > 0)
    centre = np.round(tumor.mean(axis=0)).astype(int) if len(tumor) else np.array(vol.shape) // 2
    values = vol[vol != 0]
    lo, hi = (np.percentile(values, [1, 99]) if values.size else (0.0, 1.0))
    planes = [("axial", vol[:, :, centre[2]], lab[:, :, centre[2]], zooms[1] / zooms[0]),
              ("coronal", vol[:, centre[1], :], lab[:, centre[1], :], zooms[2] / zooms[0]),
              ("sagittal", vol[centre[0], :, :], lab[centre[0], :, :], zooms[2] / zooms[1])]
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6))
    for ax, (name, image, mask, aspect) in zip(axes, planes):
        ax.imshow(image.T, cmap="gray", origin="lower", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect=aspect)
        ax.imshow(_overlay(mask.T), origin="lower", aspect=aspect, interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()
        sides = ("L", "R") if name != "sagittal" else ("P", "A")
        for x, text in zip((0.02, 0.98), sides):
            ax.text(x, 0.5, text, transform=ax.transAxes, color="white", ha="left" if x < 0.5 else "right",
                    va="center", fontsize=10)
    present = sorted({int(v) for v in np.unique(lab)} - {0})
    seen, handles = set(), []
    for label in present:
        name, colour = COLOURS.get(label, (str(label), (1, 1, 1, 0.5)))
        if name not in seen:
            seen.add(name)
            handles.append(plt.Rectangle((0, 0), 1, 1, color=colour, label=f"{name} ({label})"))
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"{TITLE} (patient {patient_id})" + (f"\n{subtitle}" if subtitle else ""))
    fig.tight_layout(rect=(0, 0.06, 1, 0.94))
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path


__all__ = ["COLOURS", "TITLE", "draw_segmentation"]
