"""The tumour mask of a prediction: the one given, or the segmenter's (issue 15, "No tumour mask").

:func:`mask_for_prediction` decides: a given mask wins and the segmenter is not run (the
log says so); without a mask, the segmenter (``--segmenter``) writes
``<pid>_seg_auto.nii.gz`` and ``segmentation.png`` (the figure to check it) into the
prediction's output folder, and that mask is used. It returns the ``segmentation`` block
of ``prediction.json`` (None when there is neither a mask nor a segmenter: the input check
then says the mask is missing).
"""

from __future__ import annotations

from pathlib import Path

from gliotype.input import InputRules
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: The figure of an automatic mask in the output folder (embedded in report.html).
FIGURE_NAME = "segmentation.png"


def as_segmenter(segmenter):
    """A loaded :class:`~gliotype.segmentation.Segmenter` (a folder path is loaded), or None."""
    if segmenter is None or not isinstance(segmenter, (str, Path)):
        return segmenter
    from gliotype.segmentation import load_segmenter

    return load_segmenter(segmenter)


def mask_for_prediction(inputs: dict[str, Path], pid: str, segmenter, out: Path, config) -> dict | None:
    """Fill ``inputs["mask"]`` with the segmenter's mask when none is given; the ``segmentation`` block."""
    if inputs.get("mask"):
        if segmenter is not None:
            log.info("patient %s: a tumour mask was given: it is used and the segmenter %s is not run", pid,
                     segmenter.name)
        return {"source": "given"}
    if segmenter is None:
        return None
    from gliotype.segmentation import auto_mask_name, segment_case

    log.info("patient %s: no tumour mask given: segmenting with %s", pid, segmenter.name)
    seg = segment_case(segmenter, inputs, pid, out / auto_mask_name(pid), rules=InputRules.of(config),
                       config=config.preprocess, figure=out / FIGURE_NAME)
    inputs["mask"] = seg.path
    return {**seg.record(), "figure": FIGURE_NAME}


__all__ = ["FIGURE_NAME", "as_segmenter", "mask_for_prediction"]
