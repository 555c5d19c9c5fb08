"""Build and store the three modalities of every preprocessed patient (section 3.2).

Per patient, under ``WORKDIR/patients/<id>/modalities/`` (paths: :class:`gliotype.layout.CaseDir`):

- ``tumor_image.nii.gz``: x_I, 4D (X, Y, Z, C) float32, sequences t1, t1c, t2, flair
  (C = 4), with ``modalities.image_ring_channel`` the label mask (C = 5) and with
  ``modalities.image_label_channels`` the three BraTS compartments (C = 8); its affine
  places the crop in MNI millimetres.
- ``point_cloud.npz``: x_P, ``points_mm`` (N, 3), ``points`` (N, 3, f_P's input in
  ``modalities.point_coordinates``), ``centre`` (3,), ``scale`` ().
- ``atlas_samples.npz``: ``node`` (R, 4 n_node), ``tract`` (T, 4 n_edge) and, when the
  patient has FA, ``tract_fa`` (T, n_edge): the inputs of the self-supervised models
  (section 4.3), sequence-major (all t1 positions, then t1c, t2, flair).
- ``modalities.json``: crop origin, truncated fraction, the regions used, the sequences the
  patient lacks (``missing_sequences``, from preprocessing's ``done.json``: their x_I channels and
  atlas-sample blocks are zero; :func:`missing_sequences` reads it), the cache key and the size and
  sha256 of the four files (a changed file is rebuilt); written last.

Regions (``modalities.point_cloud_labels`` / ``image_labels``, default ``tumor_labels``):
a region with fewer than ``preprocess.min_tumor_voxels`` voxels (e.g. an empty core) falls
back to the whole tumour for that patient; the status table's ``reason`` says so.

The atlas voxel positions are drawn once per work folder (``WORKDIR/atlas/``) and are
the same for every patient (:mod:`gliotype.modalities.atlas`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from gliotype import __version__
from gliotype.config import GliotypeConfig, config_hash
from gliotype.errors import one_line, stop_on_environment
from gliotype.layout import WorkDir
from gliotype.modalities.atlas import AtlasSampling, LoadedAtlas, atlas_sampling
from gliotype.modalities.point_cloud import tumor_point_cloud
from gliotype.modalities.tumor_image import tumor_binary_mask, tumor_image, tumor_region
from gliotype.utils.io import atomic_path, write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.parallel import parallel_map
from gliotype.utils.records import record_digest, records_key, reusable_record, write_record

log = get_logger(__name__)


@dataclass
class ModalitiesResult:
    patient_id: str
    status: str  # done | skipped | failed
    reason: str = ""
    info: dict = field(default_factory=dict)


def _cache_key(workdir: WorkDir, patient_id: str, config: GliotypeConfig, sampling: AtlasSampling) -> str:
    """Everything the stored files depend on: the preprocessed patient (its record's key and file
    hashes), every ``modalities`` option (regions, coordinates, margin, ring channel, sizes), the
    fallback minimum, the atlas sampling, the seed, the version and the crossing parameters of eq. 2."""
    upstream = record_digest(workdir.case(patient_id).done)
    bn = config.multimodal.brain_network
    text = json.dumps([upstream, config_hash(config, "modalities"), sampling.key, config.seed, __version__,
                       bn.crossing_threshold, bn.crossing_radius_mm, config.preprocess.min_tumor_voxels])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def modalities_key(workdir: str | Path | WorkDir, patient_ids: Sequence[str]) -> str:
    """One digest of the patients' modalities records (in the given order): what a model trained
    on these patients depends on besides its settings, so a patient rebuilt from a changed
    input retrains it."""
    workdir = WorkDir.of(workdir)
    return records_key(workdir.case(str(p)).modalities_meta for p in patient_ids)


def region_labels(config: GliotypeConfig) -> tuple:
    """The labels of x_P's and x_I's regions (each defaults to ``modalities.tumor_labels``)."""
    m = config.modalities
    return (m.tumor_labels if m.point_cloud_labels is None else m.point_cloud_labels,
            m.tumor_labels if m.image_labels is None else m.image_labels)


def _plain(labels):
    """Labels as stored in JSON: 'whole', 'core' or a list of ints."""
    return labels if isinstance(labels, str) else [int(v) for v in labels]


def _fallback_note(fallbacks: dict[str, tuple], minimum: int) -> str:
    """One line naming the regions that fell back to the whole tumour ('' when none did)."""
    parts = [f"{what} region {_plain(labels)} has {n} voxels"
             for what, (labels, n) in fallbacks.items()]
    return f"whole tumour used: {', '.join(parts)} (< {minimum})" if parts else ""


def build_case_modalities(workdir: str | Path, patient_id: str, config: GliotypeConfig,
                          atlas: LoadedAtlas | None = None) -> ModalitiesResult:
    """Build x_I, x_P, the crossings and the atlas samples of one preprocessed patient.

    ``atlas``: the atlas positions and tract matrix to sample with (a trained model's);
    default the work folder's (:func:`atlas_sampling` must have run for it). Never
    raises for a bad case (returns ``failed`` with a one-line reason).
    """
    from gliotype.atlases import gather
    from gliotype.modalities.crossing import point_tract_crossing
    from gliotype.preprocessing import load_preprocessed

    workdir = WorkDir.of(workdir)
    if atlas is None:
        atlas = LoadedAtlas.cached(workdir.atlas)
    sampling, matrix, grid_shape, grid_affine = atlas.sampling, atlas.tract_matrix, atlas.grid_shape, atlas.grid_affine
    out = workdir.case(patient_id)
    key = _cache_key(workdir, patient_id, config, sampling)
    meta_path = out.modalities_meta
    if (meta := reusable_record(meta_path, key, what=f"patient {patient_id}")) is not None:
        return ModalitiesResult(patient_id, "skipped", meta.get("note", ""))
    try:
        case = load_preprocessed(workdir, patient_id)
        m = config.modalities
        minimum = config.preprocess.min_tumor_voxels
        affine = np.asarray(case["affine"], dtype=np.float64)
        cloud_labels, image_labels = region_labels(config)
        binary, cloud_fallback = tumor_region(case["mask"], cloud_labels, minimum)
        _, image_fallback = tumor_region(case["mask"], image_labels, minimum)
        if binary.sum() < minimum:
            raise ValueError(f"tumor mask has {int(binary.sum())} voxels (< {minimum}) on the template grid")
        fallbacks = {what: (labels, int(tumor_binary_mask(case["mask"], labels).sum()))
                     for what, labels, fell in (("point cloud", cloud_labels, cloud_fallback),
                                                ("image", image_labels, image_fallback)) if fell}
        ti = tumor_image(case["sequences"], case["mask"], tuple(m.crop_size),
                         "whole" if image_fallback else image_labels, m.image_margin_mm,
                         np.linalg.norm(affine[:3, :3], axis=0), m.image_ring_channel,
                         m.image_label_channels)
        pc = tumor_point_cloud(binary, affine, m.n_points, seed=config.seed, coordinates=m.point_coordinates,
                               scale_mm=m.point_scale_mm)
        bn = config.multimodal.brain_network
        crossing = point_tract_crossing(pc.points_mm, matrix, grid_shape, grid_affine, bn.crossing_threshold,
                                        bn.crossing_radius_mm)
        node = gather(case["sequences"], sampling.node_positions)
        tract = gather(case["sequences"], sampling.tract_positions)
        arrays = {"node": node, "tract": tract}
        if case.get("fa") is not None:
            arrays["tract_fa"] = gather(case["fa"][None], sampling.tract_positions)
    except Exception as exc:  # one bad case never stops the cohort
        stop_on_environment(exc)  # a full disk does
        reason = one_line(exc)
        log.warning("patient %s: modalities failed: %s", patient_id, reason)
        return ModalitiesResult(patient_id, "failed", reason)

    crop_affine = affine.copy()
    crop_affine[:3, 3] = affine[:3, :3] @ np.asarray(ti.origin, dtype=np.float64) + affine[:3, 3]
    with atomic_path(out.tumor_image) as tmp:
        nib.save(nib.Nifti1Image(np.moveaxis(ti.data, 0, -1), crop_affine), tmp)
    with atomic_path(out.point_cloud) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, points_mm=pc.points_mm, points=pc.points, centre=pc.centre, scale=np.float32(pc.scale))
    with atomic_path(out.crossing) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, crossing=crossing)
    with atomic_path(out.atlas_samples) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    info = {
        "crop_origin": list(ti.origin),
        "truncated_fraction": round(float(ti.truncated), 6),
        "tumor_voxels": int(binary.sum()),
        "has_fa": "tract_fa" in arrays,
        "crossings": int(crossing.shape[1]),
        "tracts_crossed": int(len(np.unique(crossing[1]))),
        "point_cloud_region": "whole" if cloud_fallback else _plain(cloud_labels),
        "image_region": "whole" if image_fallback else _plain(image_labels),
        "missing_sequences": list(case["missing_sequences"]),
    }
    note = _fallback_note(fallbacks, minimum)
    if note:
        log.info("patient %s: %s", patient_id, note)
    write_record(meta_path, key, [p.name for p in (out.tumor_image, out.point_cloud, out.crossing, out.atlas_samples)],
                 **info, note=note)
    return ModalitiesResult(patient_id, "done", note, info=info)


def missing_sequences(workdir: str | Path | WorkDir, patient_id: str) -> tuple[str, ...]:
    """The sequences patient ``patient_id`` lacks (``input.missing_sequences``), in
    :data:`gliotype.input.SEQUENCES` order, as its ``modalities.json`` records them (empty for a
    complete patient and for a record written before they were recorded: every patient then had
    all four). The one reader every later stage asks (brain networks, training, prediction)."""
    from gliotype.input import SEQUENCES

    path = WorkDir.of(workdir).case(str(patient_id)).modalities_meta
    try:
        names = json.loads(path.read_text()).get("missing_sequences", [])
    except (OSError, ValueError):
        return ()
    return tuple(s for s in SEQUENCES if s in set(names))


def load_case_modalities(
    workdir: str | Path, patient_id: str, parts: Sequence[str] = ("tumor_image", "point_cloud", "atlas_samples")
) -> dict:
    """Read one patient's stored modalities as numpy arrays (only the ``parts`` asked for)."""
    case = WorkDir.of(workdir).case(patient_id)
    out: dict = {"patient_id": str(patient_id)}
    if "tumor_image" in parts:
        img = nib.load(case.tumor_image)
        out["tumor_image"] = np.moveaxis(np.asarray(img.dataobj, dtype=np.float32), -1, 0)
        out["tumor_image_affine"] = img.affine
    if "point_cloud" in parts:
        with np.load(case.point_cloud, allow_pickle=False) as z:
            out.update({k: z[k] for k in ("points_mm", "points", "centre")})
            out["scale"] = float(z["scale"])
    if "atlas_samples" in parts:
        with np.load(case.atlas_samples, allow_pickle=False) as z:
            out["node_samples"] = z["node"]
            out["tract_samples"] = z["tract"]
            out["tract_fa"] = z["tract_fa"] if "tract_fa" in z else None
    return out


def _crashed(pid: str) -> ModalitiesResult:
    return ModalitiesResult(pid, "failed", "the worker process building it died (out of memory?)")


def build_modalities(
    workdir: str | Path, patient_ids: list[str], config: GliotypeConfig, workers: int = 1
) -> pd.DataFrame:
    """Build the modalities of every patient (cached, resumable); returns and writes a status table."""
    workdir = WorkDir.of(workdir)
    atlas_sampling(workdir, config)
    LoadedAtlas.cached(workdir.atlas)  # loaded once here; forked workers inherit it
    results = parallel_map(partial(build_case_modalities, workdir, config=config), list(patient_ids), workers,
                           desc="modalities", on_crash=_crashed)
    table = pd.DataFrame(
        [{"patient_id": r.patient_id, "status": r.status, "reason": r.reason} for r in results],
        columns=["patient_id", "status", "reason"],
    )
    write_csv_atomic(table, workdir.modalities_status)
    return table


__all__ = ["AtlasSampling", "LoadedAtlas", "ModalitiesResult", "atlas_sampling", "build_case_modalities",
           "build_modalities", "load_case_modalities", "missing_sequences", "region_labels"]
