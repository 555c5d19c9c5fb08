"""The on-disk cache of tract atlases: built-in builds and converted user atlases.

A built atlas (or a user atlas resampled to the template grid) is stored once as
``tracts-<kind>-v<version>-<key>.npz`` (the :class:`~gliotype.atlases.tracts.TractAtlas`
format, written atomically) in ``<cache_dir>/atlases`` (:func:`atlas_cache_folder`).
``cache_dir`` is an argument of every function that reads or writes the cache (config
``atlas.cache_dir``); ``None`` means :data:`DEFAULT_CACHE_DIR`, ``~/.cache/gliotype``. It
says where the atlas is kept, not what it is: it is in no cache key or config hash.
The key is a hash of what the atlas depends on: for the built-in atlas its parameters
(:data:`~gliotype.atlases.tract_build.DEFAULT_BUILD` and overrides), the number of
tracts, the region subset and the node atlas labels; for a user atlas its files (name,
size, modification time) and the node atlas; always :data:`TRACT_ATLAS_VERSION`. A
damaged cache file is rebuilt; an unwritable cache is skipped with a warning.

:func:`default_tract_atlas` is the cached built-in atlas.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gliotype.atlases.nodes import NodeAtlas, load_node_atlas
from gliotype.atlases.tract_build import DEFAULT_BUILD, build_tract_atlas
from gliotype.atlases.tracts import TRACT_ATLAS_VERSION, TractAtlas
from gliotype.utils.logging import get_logger

log = get_logger(__name__)


#: gliotype's cache folder when none is given (config ``atlas.cache_dir: null``); its ``atlases/``
#: also holds the 2 mm template (:mod:`gliotype.atlases.template`).
DEFAULT_CACHE_DIR = Path("~") / ".cache" / "gliotype"


def atlas_cache_folder(cache_dir: str | Path | None = None) -> Path:
    """Where built atlases are cached: ``<cache_dir>/atlases`` (``cache_dir`` None: :data:`DEFAULT_CACHE_DIR`)."""
    return Path(cache_dir or DEFAULT_CACHE_DIR).expanduser() / "atlases"


def _cache_file(kind: str, payload: dict, cache_dir: str | Path | None) -> Path:
    return atlas_cache_folder(cache_dir) / f"tracts-{kind}-v{TRACT_ATLAS_VERSION}-{_cache_key(kind, payload)}.npz"


def _labels_digest(nodes: NodeAtlas) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(nodes.labels, dtype=np.int16).tobytes())
    h.update(np.asarray(nodes.affine, dtype=np.float64).tobytes())
    h.update(json.dumps(list(nodes.regions)).encode())
    return h.hexdigest()


def _cache_key(kind: str, payload: dict) -> str:
    text = json.dumps({"kind": kind, "version": TRACT_ATLAS_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _cached(kind: str, payload: dict, build: Callable[[], TractAtlas], use_cache: bool = True,
            cache_dir: str | Path | None = None) -> TractAtlas:
    """Load ``<cache_dir>/atlases/tracts-<kind>-v<version>-<key>.npz`` or build, save and return it."""
    if not use_cache:
        return build()
    path = _cache_file(kind, payload, cache_dir)
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
                            cache_dir: str | Path | None = None, **params) -> Path:
    """The cache file :func:`default_tract_atlas` reads and writes for these arguments."""
    kind, payload = _default_payload(node_atlas or load_node_atlas(), n_tracts, regions, params)
    return _cache_file(kind, payload, cache_dir)


def _default_payload(nodes: NodeAtlas, n_tracts: int, regions, params: dict) -> tuple[str, dict]:
    unknown = set(params) - set(DEFAULT_BUILD)
    if unknown:
        raise TypeError(f"unknown tract atlas parameters: {sorted(unknown)}")
    full = {**DEFAULT_BUILD, **params}
    regs = None if regions is None else sorted({int(r) for r in regions})
    return "builtin", {"params": full, "n_tracts": int(n_tracts), "regions": regs, "nodes": _labels_digest(nodes)}


def default_tract_atlas(node_atlas: NodeAtlas | None = None, n_tracts: int = 2309, regions=None,
                        use_cache: bool = True, cache_dir: str | Path | None = None, workers: int = 1,
                        **params) -> TractAtlas:
    """The built-in tract atlas between the regions of ``node_atlas``, built once and cached on disk
    (in ``<cache_dir>/atlases``, :func:`atlas_cache_folder`).

    ``params`` override :data:`DEFAULT_BUILD` (each is part of the cache key). ``workers``: processes
    of a build (the same atlas for any number, so not in the key).
    """
    nodes = node_atlas if node_atlas is not None else load_node_atlas()
    kind, payload = _default_payload(nodes, n_tracts, regions, params)
    return _cached(kind, payload, lambda: build_tract_atlas(nodes, n_tracts, regions, workers=workers, **params),
                   use_cache, cache_dir)
