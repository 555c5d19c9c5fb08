"""Segmenting one case: its sequences onto the T1c grid, the segmenter, the checks, the mask file.

:func:`segment_case` reads the sequences the segmenter needs with the readers and rules of
preprocessing (:func:`gliotype.preprocessing.inputs.load_inputs`: one line per bad file),
puts them on the patient's T1c grid as preprocessing does (an image on the same points
in another voxel order is reordered exactly; on another grid it is rigidly co-registered
to T1c, :func:`gliotype.preprocessing.register.rigid_coregister`), runs the segmenter
there, checks the mask (:mod:`gliotype.segmentation.checks`) and writes it atomically as
a uint8 NIfTI on the T1c grid with a fresh header (no header text of the inputs), with
the figure to check it (:mod:`gliotype.segmentation.figure`) when asked.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gliotype.errors import CaseError, one_line, stop_on_environment
from gliotype.input import InputRules
from gliotype.segmentation.checks import check_mask, mask_volumes
from gliotype.segmentation.segmenter import Segmenter, SegmenterError
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: The name of an automatic mask beside a case (``<pid>_seg_auto.nii.gz``) and of its figure.
MASK_SUFFIX = "_seg_auto.nii.gz"
FIGURE_SUFFIX = "_seg_auto.png"


def auto_mask_name(patient_id: str) -> str:
    return f"{patient_id}{MASK_SUFFIX}"


@dataclass
class Segmentation:
    """An automatic mask written by :func:`segment_case`."""

    patient_id: str
    path: Path
    segmenter: dict
    volumes_ml: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    figure: Path | None = None

    def record(self) -> dict:
        """The ``segmentation`` block of ``prediction.json`` (file names only, no paths)."""
        return {"source": "auto", "segmenter": self.segmenter["segmenter"], "kind": self.segmenter["kind"],
                "file": self.path.name, "volumes_ml": dict(self.volumes_ml), "warnings": list(self.warnings),
                "seconds": round(self.seconds, 2)}


def _on_t1c_grid(images: dict, pid: str, inputs: Mapping[str, Path], config, work: Path) -> dict[str, np.ndarray]:
    """role -> float32 array on the T1c grid (exact reorder, else rigid co-registration)."""
    from gliotype.preprocessing.images import reorder, voxel_order
    from gliotype.preprocessing.register import rigid_coregister

    ref = images["t1c"]
    out = {"t1c": np.asarray(ref.dataobj, dtype=np.float32)}
    for role, img in images.items():
        if role == "t1c":
            continue
        order = voxel_order(img, ref.shape[:3], ref.affine)
        if order is not None:
            out[role] = reorder(np.asarray(img.dataobj, dtype=np.float32), order)
            continue
        log.info("patient %s: %s is on another grid than t1c: rigid co-registration for the segmenter", pid, role)
        try:
            moved = rigid_coregister(ref, img, config.spacing_mm, config.seed, work / f"{role}_to_t1c.mat")
        except Exception as exc:
            stop_on_environment(exc)
            raise CaseError(pid, inputs[role], f"rigid co-registration of {role} to t1c failed ({one_line(exc)})")
        out[role] = np.asarray(moved.dataobj, dtype=np.float32)
    return out


def _brain_ml(t1c: np.ndarray, voxel_mm3: float) -> float:
    """The brain's volume (ml): non-zero part of a skull-stripped T1c, else its head mask."""
    from gliotype.preprocessing.brain import head_mask, is_skull_stripped, nonzero_brain_mask

    mask = nonzero_brain_mask(t1c) if is_skull_stripped(t1c, voxel_mm3) else head_mask(t1c)
    return float(mask.sum()) * voxel_mm3 / 1000.0


def segment_case(segmenter: Segmenter, inputs: Mapping[str, str | Path], patient_id: str, out: str | Path, *,
                 rules: InputRules = InputRules(), config=None, figure: str | Path | None = None) -> Segmentation:
    """Segment one patient and write the mask to ``out`` (and its figure to ``figure`` when given).

    ``inputs``: role -> file, at least T1c and the segmenter's sequences (the mask is not read).
    ``config``: the preprocessing settings (:class:`gliotype.config.schema.PreprocessConfig`;
    default its defaults) for a co-registration. Raises a one-line :class:`CaseError` for a bad
    input or an absurd mask (nothing written then).
    """
    from gliotype.config.schema import PreprocessConfig
    from gliotype.preprocessing.images import save_nifti, voxel_volume
    from gliotype.preprocessing.inputs import load_inputs

    t0 = time.perf_counter()
    pid, out = str(patient_id), Path(out)
    config = config if config is not None else PreprocessConfig()
    roles = tuple(dict.fromkeys(("t1c",) + tuple(segmenter.inputs)))
    files = {}
    for role in roles:
        value = inputs.get(role)
        if value is None or str(value) == "":
            raise CaseError(pid, None, f"no {role} file given (the segmenter {segmenter.name} needs "
                                       f"{', '.join(segmenter.inputs)})")
        files[role] = Path(str(value))
    images, repaired = load_inputs(files, pid, rules)
    for role, count in repaired.items():
        log.warning("patient %s: %s: %d non-finite voxels set to 0 for the segmenter", pid, role, count)
    with tempfile.TemporaryDirectory(prefix="gliotype-segment-") as tmp:
        arrays = _on_t1c_grid(images, pid, files, config, Path(tmp))
    ref = images["t1c"]
    stack = np.stack([arrays[r] for r in segmenter.inputs])
    try:
        labels = segmenter.segment(stack, ref.affine)
    except (CaseError, SegmenterError, MemoryError):
        raise
    except Exception as exc:
        stop_on_environment(exc)
        raise CaseError(pid, None, f"the segmenter {segmenter.name} failed ({type(exc).__name__}: "
                                   f"{one_line(exc, 120)})") from None
    voxel_mm3 = voxel_volume(ref.affine)
    warnings = check_mask(labels, voxel_mm3 / 1000.0, _brain_ml(arrays["t1c"], voxel_mm3), pid, segmenter.name)
    for line in warnings:
        log.warning("patient %s: %s", pid, line)
    save_nifti(labels.astype(np.uint8), ref.affine, out, dtype=np.uint8, mni=False)
    seg = Segmentation(pid, out, segmenter.describe(), mask_volumes(labels, voxel_mm3 / 1000.0), warnings)
    if figure is not None:
        from gliotype.segmentation.figure import draw_segmentation

        v = seg.volumes_ml
        seg.figure = draw_segmentation(arrays["t1c"], labels, ref.affine, figure, pid,
                                       subtitle=f"segmenter {segmenter.name}: whole tumour {v['whole_tumor']:.1f} ml "
                                                f"(necrotic core {v['necrotic_core']:.1f}, edema {v['edema']:.1f}, "
                                                f"enhancing {v['enhancing']:.1f})")
    seg.seconds = time.perf_counter() - t0
    log.info("patient %s: automatic mask by %s, whole tumour %.1f ml", pid, segmenter.name,
             seg.volumes_ml["whole_tumor"])
    return seg


__all__ = ["FIGURE_SUFFIX", "MASK_SUFFIX", "Segmentation", "auto_mask_name", "segment_case"]
