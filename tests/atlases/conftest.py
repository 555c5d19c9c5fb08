"""Shared fixtures of the atlas tests: AAL on the 2 mm grid and a small, fast tract build."""

from __future__ import annotations

import pytest

from gliotype.atlases import build_tract_atlas, load_node_atlas, tract_cache

#: A few AAL regions: neighbours (1, 7, 57), across the midline (2), deep (71) and mesial temporal (37).
SMALL_REGIONS = (1, 2, 7, 29, 37, 57, 71)
SMALL_TRACTS = 12  # of the 21 pairs


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    """Never read or write the user's ~/.cache in tests: the default ``cache_dir`` is a temporary folder."""
    root = tmp_path / "cache"
    monkeypatch.setattr(tract_cache, "DEFAULT_CACHE_DIR", root)
    return root


@pytest.fixture(scope="session")
def aal():
    return load_node_atlas()


@pytest.fixture(scope="session")
def small_spec():
    """``(regions, n_tracts)`` of the small build."""
    return SMALL_REGIONS, SMALL_TRACTS


@pytest.fixture(scope="session")
def small_tracts(aal):
    """The built-in tract atlas between :data:`SMALL_REGIONS` (about a second to build)."""
    return build_tract_atlas(aal, n_tracts=SMALL_TRACTS, regions=SMALL_REGIONS)
