"""Tumour segmentation for a case without a mask, by a model the user has (``--segmenter PATH``).

- :func:`load_segmenter`: a MONAI bundle or an nnU-Net v2 trained-model folder as a
  :class:`Segmenter` (:mod:`~gliotype.segmentation.segmenter`, ``monai_bundle``, ``nnunet``);
  what gliotype must know of the model, explicit: :mod:`~gliotype.segmentation.spec`;
- :func:`segment_case`: one case's sequences onto its T1c grid, the segmenter, the checks
  (:mod:`~gliotype.segmentation.checks`), ``<pid>_seg_auto.nii.gz`` and its figure
  (:mod:`~gliotype.segmentation.figure`);
- :func:`segment_cohort`: the rows of a manifest without a mask (``gliotype cohort segment``);
- :mod:`~gliotype.segmentation.labels`: a network's output as BraTS labels.

See ``docs/real-data.md``, section "No tumour mask".
"""

from gliotype.segmentation.case import Segmentation, auto_mask_name, segment_case
from gliotype.segmentation.checks import MAX_BRAIN_FRACTION, MAX_TUMOR_ML, MIN_TUMOR_ML, check_mask, mask_volumes
from gliotype.segmentation.cohort import segment_cohort
from gliotype.segmentation.segmenter import Segmenter, SegmenterError, load_segmenter

__all__ = [
    "MAX_BRAIN_FRACTION",
    "MAX_TUMOR_ML",
    "MIN_TUMOR_ML",
    "Segmentation",
    "Segmenter",
    "SegmenterError",
    "auto_mask_name",
    "check_mask",
    "load_segmenter",
    "mask_volumes",
    "segment_case",
    "segment_cohort",
]
