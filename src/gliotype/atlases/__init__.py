"""Atlases and the MNI template (paper section 3.2): AAL nodes, tract edges, ICBM152.

- :func:`load_template`: the ICBM152 2009 template (T1, GM, WM, brain mask).
- :func:`load_node_atlas`: the 90 AAL regions (or a user labels NIfTI) on the 2 mm grid.
- :func:`load_tract_atlas`: the tracts between regions: a user tractography atlas, or the
  built-in white-matter-guided proxy (:func:`build_tract_atlas`), both cached on disk in
  ``<cache_dir>/atlases`` (:func:`atlas_cache_folder`; ``cache_dir`` is an argument, config
  ``atlas.cache_dir``, default ``~/.cache/gliotype``).
- :func:`sample_node_positions`, :func:`sample_tract_positions`, :func:`gather`: the fixed
  voxel positions of every region / tract and the patient values at them.
- :func:`render_atlases`: a PNG of both atlases.
"""

from gliotype.atlases.nodes import NodeAtlas, aal_names, aal_path, load_node_atlas, read_label_names, resample_labels
from gliotype.atlases.sampling import gather, sample_node_positions, sample_tract_positions
from gliotype.atlases.show import render_atlases, show_atlases
from gliotype.atlases.template import Template, load_template
from gliotype.atlases.tract_build import DEFAULT_BUILD, build_tract_atlas
from gliotype.atlases.tract_cache import (
    DEFAULT_CACHE_DIR,
    atlas_cache_folder,
    cached_tract_atlas_path,
    default_tract_atlas,
)
from gliotype.atlases.tracts import TRACT_ATLAS_VERSION, TractAtlas
from gliotype.atlases.user_tracts import load_tract_atlas

__all__ = [
    "DEFAULT_BUILD",
    "DEFAULT_CACHE_DIR",
    "TRACT_ATLAS_VERSION",
    "NodeAtlas",
    "Template",
    "TractAtlas",
    "aal_names",
    "aal_path",
    "atlas_cache_folder",
    "build_tract_atlas",
    "cached_tract_atlas_path",
    "default_tract_atlas",
    "gather",
    "load_node_atlas",
    "load_template",
    "load_tract_atlas",
    "read_label_names",
    "render_atlases",
    "show_atlases",
    "resample_labels",
    "sample_node_positions",
    "sample_tract_positions",
]
