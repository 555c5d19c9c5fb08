"""Hand-made tumour descriptors of one preprocessed patient (radiomics-like, interpretable).

Computed from the *preprocessed* template-space images and mask
(``WORKDIR/patients/<id>/preprocessed/``, :func:`gliotype.preprocessing.load_preprocessed`),
so they exist for any cohort, synthetic or real. They are what the audit compares every
learned feature group with, and the inputs of the *observable ceiling*
(:func:`gliotype.audit.probes.observable_ceiling`).

Families (:data:`DESCRIPTOR_FAMILIES`):

- ``volumes``: mL of label 1 (necrosis / non-enhancing core), 2 (edema), enhancing
  (label 4; label 3 counts as enhancing, the BraTS 2023 convention) and the whole tumour;
- ``compartments``: enhancing fraction ET / (NCR + ET), NCR and edema fractions of the
  whole tumour, the mean of each sequence in each compartment, T2 / FLAIR in label 1;
- ``shape``: surface area, sphericity, lobulation, roughness of the core (labels 1, 3, 4)
  and of the whole mask (:mod:`gliotype.audit.shape`);
- ``location``: centroid of the core (the whole mask when there is no core) in MNI mm,
  x as |x| with the hemisphere (1 = left) apart;
- ``perilesional WM``: left-right log-ratios in white matter around the lesion
  (:mod:`gliotype.audit.asymmetry`).

:func:`descriptor_table` computes them for a cohort (in worker processes for ``workers > 1``,
through :func:`gliotype.utils.parallel.parallel_map`) and caches each patient's values next to
its preprocessed files (``patients/<id>/audit/descriptors.json``, keyed by the preprocessing record and
:data:`DESCRIPTORS_VERSION`).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.audit.asymmetry import WM_BINS_MM, perilesional_asymmetry
from gliotype.audit.shape import SHAPE_KEYS, shape_descriptors, voxel_sizes
from gliotype.errors import one_line, stop_on_environment
from gliotype.input import SEQUENCES
from gliotype.layout import WorkDir
from gliotype.modalities.tumor_image import COMPARTMENTS, CORE_LABELS
from gliotype.utils.logging import get_logger
from gliotype.utils.parallel import parallel_map
from gliotype.utils.records import record_digest, reusable_record, write_record

log = get_logger(__name__)

#: Bumped whenever the same preprocessed files would give different descriptors.
DESCRIPTORS_VERSION = 1

DESCRIPTOR_FAMILIES: dict[str, tuple[str, ...]] = {
    "volumes": ("vol_ncr_ml", "vol_ed_ml", "vol_et_ml", "vol_whole_ml"),
    "compartments": ("enhancing_fraction", "ncr_fraction", "edema_fraction",
                     *(f"mean_{s}_{c}" for c in COMPARTMENTS for s in SEQUENCES), "t2_flair_ratio_ncr"),
    "shape": tuple(f"{region}_{k}" for region in ("core", "whole") for k in SHAPE_KEYS),
    "location": ("centroid_abs_x_mm", "centroid_y_mm", "centroid_z_mm", "hemisphere_left"),
    "perilesional WM": tuple(f"wm_logratio_{s}_{lo}_{hi}mm" for s in SEQUENCES for lo, hi in WM_BINS_MM),
}
DESCRIPTOR_COLUMNS: tuple[str, ...] = tuple(c for cols in DESCRIPTOR_FAMILIES.values() for c in cols)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def descriptors_from_arrays(
    sequences: np.ndarray, mask: np.ndarray, affine: np.ndarray, wm_probability: np.ndarray
) -> dict[str, float]:
    """Every descriptor from ``(4, X, Y, Z)`` sequences (t1, t1c, t2, flair), a BraTS label mask,
    the grid's affine (voxel -> MNI mm) and the template white-matter probability on that grid."""
    sequences = np.asarray(sequences, dtype=np.float32)
    mask = np.asarray(mask)
    ml = float(np.prod(voxel_sizes(affine))) / 1000.0
    regions = {c: np.isin(mask, labels) for c, labels in COMPARTMENTS.items()}
    whole, core = mask > 0, np.isin(mask, CORE_LABELS)
    vol = {c: float(r.sum()) * ml for c, r in regions.items()}
    vol_whole = float(whole.sum()) * ml
    out: dict[str, float] = {"vol_ncr_ml": vol["ncr"], "vol_ed_ml": vol["ed"], "vol_et_ml": vol["et"],
                             "vol_whole_ml": vol_whole,
                             "enhancing_fraction": _ratio(vol["et"], vol["ncr"] + vol["et"]),
                             "ncr_fraction": _ratio(vol["ncr"], vol_whole),
                             "edema_fraction": _ratio(vol["ed"], vol_whole)}
    for c, region in regions.items():
        for s, image in zip(SEQUENCES, sequences):
            out[f"mean_{s}_{c}"] = float(image[region].mean()) if region.any() else float("nan")
    out["t2_flair_ratio_ncr"] = _ratio(out["mean_t2_ncr"], out["mean_flair_ncr"])
    for name, region in (("core", core), ("whole", whole)):
        out.update({f"{name}_{k}": v for k, v in shape_descriptors(region, affine).items()})
    where = core if core.any() else whole
    if where.any():
        c = np.argwhere(where).mean(0) @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
        out.update({"centroid_abs_x_mm": float(abs(c[0])), "centroid_y_mm": float(c[1]),
                    "centroid_z_mm": float(c[2]), "hemisphere_left": float(c[0] < 0)})
    else:
        out.update(dict.fromkeys(DESCRIPTOR_FAMILIES["location"], float("nan")))
    out.update(perilesional_asymmetry(sequences, whole, wm_probability, affine, names=SEQUENCES))
    return {k: out[k] for k in DESCRIPTOR_COLUMNS}


@lru_cache(maxsize=4)
def _template_wm(shape: tuple[int, int, int], affine_bytes: bytes) -> np.ndarray:
    """The ICBM152 2009 white-matter probability on a grid (resampled when it is not the template's)."""
    from gliotype.atlases import load_template

    affine = np.frombuffer(affine_bytes, dtype=np.float64).reshape(4, 4)
    spacing = float(voxel_sizes(affine).mean())
    template = load_template(1 if spacing < 1.5 else 2)
    if template.shape == tuple(shape) and np.allclose(template.affine, affine, atol=1e-4):
        return template.wm
    import nibabel as nib
    from nibabel.processing import resample_from_to

    image = resample_from_to(nib.Nifti1Image(np.asarray(template.wm), template.affine), (tuple(shape), affine), order=1)
    return np.asarray(image.dataobj, dtype=np.float32)


def tumor_descriptors(work: str | Path | WorkDir, patient_id: str) -> dict[str, float]:
    """The hand-made descriptors of one preprocessed patient (:data:`DESCRIPTOR_COLUMNS`).

    Raises :class:`gliotype.errors.CaseError` when the patient has no preprocessed files.
    """
    from gliotype.preprocessing import load_preprocessed

    case = load_preprocessed(work, patient_id)
    affine = np.asarray(case["affine"], dtype=np.float64)
    wm = _template_wm(tuple(case["mask"].shape), affine.tobytes())
    return descriptors_from_arrays(case["sequences"], case["mask"], affine, wm)


def _cache_key(work: WorkDir, pid: str) -> str | None:
    done = work.case(pid).done
    if not done.exists():
        return None
    return hashlib.sha256(f"{record_digest(done)}|{DESCRIPTORS_VERSION}".encode()).hexdigest()[:20]


def _one(args) -> tuple[str, dict | None, str]:
    """Descriptors of one patient (from the cache when it is current); never raises."""
    work, pid, cache = args
    try:
        key = _cache_key(work, pid)
        path = work.case(pid).audit_descriptors
        if cache and key and (stored := reusable_record(path, key, what=f"patient {pid}")) is not None:
            return pid, {k: float(v) if v is not None else float("nan") for k, v in stored["values"].items()}, ""
        values = tumor_descriptors(work, pid)
        if cache and key:
            clean = {k: (None if not np.isfinite(v) else v) for k, v in values.items()}
            write_record(path, key, values=clean)
        return pid, values, ""
    except Exception as exc:  # one bad case never stops the audit
        stop_on_environment(exc)  # a full disk does
        return pid, None, one_line(exc)


def _crashed(args) -> tuple[str, None, str]:
    """The result of a patient whose worker process died twice."""
    return args[1], None, "the worker process crashed (out of memory?)"


def descriptor_table(work: str | Path | WorkDir, patient_ids, workers: int = 1, cache: bool = True) -> pd.DataFrame:
    """One row of descriptors per patient (``patient_id`` then :data:`DESCRIPTOR_COLUMNS`), in the order
    given. A patient whose files are missing or unreadable (or whose worker process dies) is left
    out with a one-line warning."""
    work = WorkDir.of(work)
    jobs = [(work, str(p), cache) for p in patient_ids]
    results = parallel_map(_one, jobs, workers, desc="descriptors", on_crash=_crashed)
    rows = []
    for pid, values, reason in results:
        if values is None:
            log.warning("patient %s: no descriptors (%s)", pid, reason)
            continue
        rows.append({"patient_id": pid, **values})
    return pd.DataFrame(rows, columns=["patient_id", *DESCRIPTOR_COLUMNS])
