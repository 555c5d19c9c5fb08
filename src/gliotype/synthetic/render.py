"""Rendering one patient: a pure function of its phenotype row, its seed and the template.

This module only orchestrates; each step lives in the module that owns its concept.
Order of operations (all float32, scipy.ndimage, no per-voxel Python loops):

1. age-related atrophy of the template tissue maps (GM and periventricular WM -> CSF);
2. one pull-back warp: smooth random deformation (a few mm) + mass effect of the tumour
   (1-2: ``gliotype.synthetic.warp``);
3. the tumour on the warped grid: lobulated core (necrosis, non-enhancing, enhancing
   rim), edema spreading preferentially along white matter (BraTS labels 1, 2, 4)
   (``gliotype.synthetic.lesion``);
4. the network phenotype outside the mask: infiltration diffusing along white matter
   from the lesion, and disrupted paths: white-matter tubes along straight segments from
   the tumour centre to the centroids of K AAL regions, fading with the distance from
   the lesion (``gliotype.synthetic.network``);
5. T1/T1c/T2/FLAIR from tissue classes with partial volume, tumour intensities mixed in,
   and the FA map (``gliotype.synthetic.sequences``);
6. site effects (scale, contrast, bias field, Rician noise) on the output grid (MNI or
   the patient's own native grid, ``gliotype.synthetic.grid``), int16 like scanners,
   zero outside the brain (``gliotype.synthetic.sequences.acquire``, called by the cohort
   writer after ``render_patient``).

Every step draws from its own random stream of the patient (``gliotype.synthetic.fields``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from gliotype.synthetic.grid import grid_mm, native_grid, resample_to, rotation_matrix, source_coordinates
from gliotype.synthetic.lesion import draw_lesion
from gliotype.synthetic.network import infiltration, path_field, path_targets
from gliotype.synthetic.sequences import SEQUENCES, acquire, contrasts, fa_map
from gliotype.synthetic.warp import warped_tissue


@dataclass
class Rendered:
    """One patient on the cropped MNI grid, before acquisition effects."""

    images: dict[str, np.ndarray]  # relative intensities, float32
    seg: np.ndarray  # uint8, BraTS labels
    mask: np.ndarray  # float32 brain mask after deformation
    fa: np.ndarray | None
    infiltration: np.ndarray  # network phenotype outside the mask (for inspection / tests)
    paths: np.ndarray  # disrupted-path field (``path_field``)


def render_patient(row: Mapping, seed: int, key: tuple[int, ...], resolution: int = 2,
                   with_fa: bool = False) -> Rendered:
    """Render the anatomy, tumour and network phenotype of one patient (cropped MNI grid).

    ``row`` holds the phenotype of ``sample_phenotypes`` (latent-derived parameters,
    centre, radius, atrophy); ``(seed, key)`` seed the patient's random fields.
    """
    c = np.array([row["centre_x"], row["centre_y"], row["centre_z"]], dtype=np.float32)
    dx = grid_mm(resolution) - c[:, None, None, None]  # offset from the tumour centre, mm
    r = np.sqrt((dx * dx).sum(0))
    tissue = warped_tissue(row, seed, key, resolution, dx, r, with_fa)  # 1-2
    lesion = draw_lesion(row, seed, key, resolution, tissue, dx, r)  # 3
    del dx, r
    outside = 1.0 - lesion.W_full  # 4
    infil = infiltration(row, resolution, tissue.wm, lesion.whole, outside)
    paths = path_field(row, seed, key, resolution, tissue.wm, lesion.whole > 0, outside)
    images = contrasts(row, seed, key, resolution, tissue, lesion, infil, paths)  # 5
    fa = fa_map(seed, key, tissue, lesion, infil, paths) if with_fa else None
    return Rendered(images, lesion.seg, tissue.mask.astype(np.float32), fa, infil, paths)


# Besides its own names, this module still exports the names other modules and tests
# imported from it before the split (their homes: grid, network, sequences).
__all__ = [
    "Rendered",
    "SEQUENCES",
    "acquire",
    "native_grid",
    "path_targets",
    "render_patient",
    "resample_to",
    "rotation_matrix",
    "source_coordinates",
]
