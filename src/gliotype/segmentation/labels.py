"""A segmentation network's output as a BraTS tumour mask (1 necrotic core, 2 edema, 4 enhancing).

Two kinds of output are understood (:class:`~gliotype.segmentation.spec.SegmenterSpec` says which):

- ``regions``: one channel per nested BraTS region, each a sigmoid probability: TC (tumour
  core = labels 1 and 4), WT (whole tumour = 1, 2 and 4) and ET (enhancing tumour = 4), as
  MONAI's ``ConvertToMultiChannelBasedOnBratsClasses`` builds them for training and as the
  BraTS bundle ``brats_mri_segmentation`` outputs them (channels TC, WT, ET). The channels are
  thresholded independently, so they can disagree (an ET voxel outside WT); the rule that
  makes one label of them is the bundle's own postprocessing (its ``Lambdad``), the innermost
  region wins (:func:`regions_to_brats`)::

      label = 4 (enhancing) where ET, else 1 (necrotic core) where TC, else 2 (edema) where WT, else 0

  nnU-Net's region-based training (``regions_class_order``) gives the same labels: it paints
  WT, then TC, then ET over one another.
- ``labels``: one channel per class (softmax, argmax), channel ``k`` being the BraTS label
  ``labels[k]`` (:func:`argmax_to_brats`), or an integer label map already (nnU-Net's
  output) mapped label by label (:func:`map_labels`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

NECROTIC, EDEMA, ENHANCING = 1, 2, 4
#: The nested regions of BraTS and the labels each holds (``enhancing`` stands for 4, or 3).
REGIONS: dict[str, tuple[int, ...]] = {"TC": (NECROTIC, ENHANCING), "WT": (NECROTIC, EDEMA, ENHANCING),
                                       "ET": (ENHANCING,)}
#: Names a model's metadata gives its region channels (lower case, spaces and _ -> one space).
_REGION_NAMES = {
    "TC": ("tc", "tumor core", "tumour core", "core"),
    "WT": ("wt", "whole tumor", "whole tumour", "whole"),
    "ET": ("et", "enhancing tumor", "enhancing tumour", "enhancing", "gd enhancing tumor"),
}


#: Names models give their classes (normalised as :func:`_norm`) -> BraTS label (``enhancing``: 4).
_CLASS_NAMES = {
    0: ("background", "bg", "normal", "healthy"),
    NECROTIC: ("necrotic", "necrosis", "necrotic core", "ncr", "ncr net", "net", "necrotic tumor core",
               "non enhancing tumor", "non enhancing tumour", "non enhancing tumor core", "non enhancing tumour core",
               "necrotic and non enhancing tumor core", "necrotic non enhancing tumor core"),
    EDEMA: ("edema", "oedema", "ed", "peritumoral edema", "peritumoral oedema", "surrounding flair hyperintensity",
            "snfh"),
    ENHANCING: ("enhancing", "enhancing tumor", "enhancing tumour", "et", "gd enhancing tumor", "enhancing tissue"),
}


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-/]+", " ", str(name).strip().lower()).strip()


def class_label(name: str) -> int | None:
    """The BraTS label of a class name a model gives (``edema``, ``NCR``, ``enhancing tumour``...), else None."""
    n = _norm(name)
    return next((label for label, names in _CLASS_NAMES.items() if n in names), None)


def region_of(name: str) -> str | None:
    """``TC``, ``WT`` or ``ET`` for a channel name (``Tumor core``, ``whole_tumour``, ``ET``...), else None."""
    n = _norm(name)
    for region, names in _REGION_NAMES.items():
        if n in names:
            return region
    return None


def regions_to_brats(tc: np.ndarray, wt: np.ndarray, et: np.ndarray, enhancing_label: int = ENHANCING) -> np.ndarray:
    """One BraTS label map of three boolean region masks: the innermost region wins (module doc)."""
    tc, wt, et = (np.asarray(m, dtype=bool) for m in (tc, wt, et))
    out = np.zeros(wt.shape, dtype=np.uint8)
    out[wt] = EDEMA
    out[tc] = NECROTIC
    out[et] = enhancing_label
    return out


def probabilities_to_brats(probs: np.ndarray, channels: Sequence[str], threshold: float = 0.5,
                           enhancing_label: int = ENHANCING) -> np.ndarray:
    """``probs`` (C, X, Y, Z) of the region ``channels`` (a permutation of TC, WT, ET) as BraTS labels."""
    probs = np.asarray(probs)
    index = {c: k for k, c in enumerate(channels)}
    masks = {r: probs[index[r]] > threshold for r in REGIONS}
    return regions_to_brats(masks["TC"], masks["WT"], masks["ET"], enhancing_label)


def argmax_to_brats(scores: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """``scores`` (C, X, Y, Z) of C classes as BraTS labels: the best channel ``k`` is ``labels[k]``."""
    lut = np.asarray(labels, dtype=np.uint8)
    return lut[np.argmax(np.asarray(scores), axis=0)]


def map_labels(label_map: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """An integer label map with each label ``a`` replaced by ``mapping[a]`` (labels not in it: 0)."""
    label_map = np.asarray(label_map)
    out = np.zeros(label_map.shape, dtype=np.uint8)
    for a, b in mapping.items():
        out[label_map == int(a)] = int(b)
    return out


__all__ = ["EDEMA", "ENHANCING", "NECROTIC", "REGIONS", "argmax_to_brats", "class_label", "map_labels",
           "probabilities_to_brats", "region_of", "regions_to_brats"]
