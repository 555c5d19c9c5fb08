"""A user edge atlas (a real tractography atlas, recommended), and :func:`load_tract_atlas`.

A user atlas is a 4D NIfTI (one volume per tract) or a folder of 3D NIfTIs, plus a CSV
with one row per tract and columns ``region_a, region_b`` (and optionally ``file`` for
a folder). The volumes, in MNI space on any grid, are resampled trilinearly to the 2 mm
template grid and kept inside its brain mask; a tract whose maximum exceeds 1 is scaled
by it, and values below :data:`USER_MIN_PROB` are dropped. The converted atlas is cached
(:mod:`gliotype.atlases.tract_cache`) until the files change.

:func:`load_tract_atlas` is the entry point of the edge atlas: the user atlas when a
path is given, else the built-in proxy
(:func:`~gliotype.atlases.tract_cache.default_tract_atlas`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from gliotype.atlases.nodes import NodeAtlas, load_node_atlas
from gliotype.atlases.template import load_template
from gliotype.atlases.tract_cache import _cached, _labels_digest, default_tract_atlas
from gliotype.atlases.tracts import TractAtlas
from gliotype.errors import GliotypeError
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: User tract volumes: values below this (after scaling to [0, 1]) are dropped.
USER_MIN_PROB = 1e-3


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
    return TractAtlas.from_lists(pairs, idx_list, val_list, tpl.shape, tpl.affine, names=names, source=path.name,
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
    cache_dir: str | Path | None = None,
    workers: int = 1,
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
        use_cache: read and write the on-disk cache (:mod:`gliotype.atlases.tract_cache`).
        cache_dir: gliotype's cache folder (config ``atlas.cache_dir``); the atlases go in
            its ``atlases/`` subfolder. None: ``~/.cache/gliotype``.
        workers: processes of a built-in atlas's build (the same atlas for any number).

    Raises:
        GliotypeError: missing or unreadable files, CSV without ``region_a, region_b``,
            labels not in the node atlas, volume/row count mismatch, empty tracts.
    """
    nodes = node_atlas if node_atlas is not None else load_node_atlas()
    if path is None or str(path) == "":
        return default_tract_atlas(nodes, 2309 if n_tracts is None else int(n_tracts), use_cache=use_cache,
                                   cache_dir=cache_dir, workers=workers)
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise GliotypeError(f"tract atlas not found: {path}")
    csv_p = Path(pairs_csv).expanduser().resolve() if pairs_csv else None
    if csv_p is not None and not csv_p.is_file():
        raise GliotypeError(f"tract atlas CSV not found: {pairs_csv}")
    implied = p.with_name(_stem(p) + ".csv") if p.is_file() else None
    stamp = _file_stamp(p) + [_file_stamp(c) for c in (csv_p, implied) if c is not None and c.is_file()]
    payload = {"path": str(p), "files": stamp, "nodes": _labels_digest(nodes)}
    atlas = _cached("user", payload, lambda: _load_user_tracts(p, csv_p, nodes), use_cache, cache_dir)
    if n_tracts is not None and len(atlas) != int(n_tracts):
        log.warning("tract atlas %s has %d tracts (atlas.n_tracts is %d): using its %d tracts",
                    p.name, len(atlas), n_tracts, len(atlas))
    return atlas
