"""Per-patient explanations (Figs. 7-8) and ``gliotype explain RUNDIR``.

:func:`explain_case` explains one patient whose modalities and brain network are in a
work folder: Grad-CAM of the image encoder on the template grid (``gradcam.nii.gz``) and
in the patient's own space (``gradcam_native.nii.gz``, through the stored inverse
registration), Grad-CAM projected on the tumor surface next to the point attention
and their agreement (``figure7.png``), GNNExplainer edge probabilities of the brain
network (``edges.csv``, ``figure8.png``). :func:`explain_run` does it for patients of a
finished run and compares the density of important edges between IDH groups.
See ``docs/interpretation.md`` for the methods, ``docs/prediction.md`` for the files.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from gliotype.errors import GliotypeError
from gliotype.layout import RunDir, WorkDir
from gliotype.prediction._util import jsonable
from gliotype.utils.training import torch_threads
from gliotype.utils.io import atomic_path, atomic_write, write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.progress import progress

log = get_logger(__name__)

#: GNNExplainer epochs (PyG's examples and docs/interpretation.md).
EXPLAINER_EPOCHS = 200
EDGE_THRESHOLD = 0.5


def _save_nifti(img: nib.Nifti1Image, path: Path) -> None:
    out = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    out.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(out, str(tmp))


def _template_grid(workdir: WorkDir, pid: str) -> tuple[tuple[int, ...], np.ndarray]:
    meta = json.loads(workdir.case(pid).transforms.json.read_text())
    grid = meta["template_grid"]
    return tuple(int(s) for s in grid["shape"]), np.asarray(grid["affine"], dtype=np.float64)


def _tumor_slice(x_i: np.ndarray, cam: np.ndarray, axis: int = 2) -> int:
    """The axial slice with the most Grad-CAM inside the tumor (else the most tumor voxels).

    The crop is zero outside the tumor, so the slice through the map's largest mass alone
    can miss the tumor when the map spills over the crop.
    """
    tumor = np.any(np.asarray(x_i) != 0, axis=0)
    other = tuple(a for a in range(3) if a != axis)
    mass = (np.asarray(cam) * tumor).sum(axis=other)
    if mass.max() <= 0:
        mass = tumor.sum(axis=other)
    return int(np.argmax(mass))


def _head_class(model, batch) -> str:
    """The class the multi-modal network's BCE head gives the patient (what the Grad-CAM explains)."""
    import torch

    from gliotype.interpretation._common import eval_mode

    with eval_mode(model), torch.no_grad():
        return "IDH-mutant" if float(model(batch).logit.reshape(-1)[0]) > 0 else "IDH-wildtype"


def explain_case(
    model,
    workdir: str | Path,
    patient_id: str,
    out: str | Path,
    region_centroids: np.ndarray,
    region_names: list[str] | None = None,
    *,
    epochs: int = EXPLAINER_EPOCHS,
    seed: int = 0,
    threshold: float = EDGE_THRESHOLD,
    edges_ahead=None,
) -> dict:
    """Write the explanation files of one patient into ``out``; returns their numbers.

    ``model`` is the trained :class:`~gliotype.multimodal.MultiModalNet` (never modified).
    Parts the model cannot give (no image encoder, no BCE head...) are skipped and
    listed under ``skipped``. ``edges_ahead``: the patient's GNNExplainer edges asked of a child
    process (:class:`~gliotype.prediction.ahead.PendingEdges`, the same :func:`case_edges` with the
    same network); without it, or when the child failed, they are computed here, in a thread
    beside Grad-CAM.
    """
    from gliotype.interpretation import edge_density, figure8, important_edges, load_case_batch
    from gliotype.interpretation.edges import brain_network_score
    from gliotype.modalities.build import load_case_modalities

    workdir, out, pid = WorkDir.of(workdir), Path(out), str(patient_id)
    out.mkdir(parents=True, exist_ok=True)
    batch = load_case_batch(workdir, pid, model.config.encoders)
    case = load_case_modalities(workdir, pid)
    info: dict = {"skipped": [], "seconds": {}}
    has_head = getattr(model, "classifier", None) is not None
    edges, explained = None, _explains_edges(model)
    with torch_threads(1), ThreadPoolExecutor(max_workers=1) as beside:
        if explained and edges_ahead is None:
            # GNNExplainer works on copies of f_B and the head (made here, before Grad-CAM hooks the
            # model), so it runs in a thread beside Grad-CAM and Fig. 7: one core each, same numbers
            edges = beside.submit(_explain_edges, brain_network_score(model, batch), epochs, seed)
        _gradcam_and_figure7(model, batch, case, workdir, pid, out, has_head, info)
        probs, edge_seconds = edges.result() if edges is not None else (None, 0.0)
    if explained and edges_ahead is not None:
        probs, edge_seconds = edges_ahead.result() or case_edges(model, workdir, pid, epochs, seed)

    t0 = time.perf_counter()
    if probs is not None:
        rows = batch.edge_index.numpy().T  # (T, 2) node rows of each tract

        figure8(probs, rows, region_centroids, out / "figure8.png", threshold, regions=range(len(region_centroids)),
                title=f"patient {pid}: important edges of the brain network (GNNExplainer)")
        names = list(region_names or [])
        name = (lambda i: names[i]) if len(names) == len(region_centroids) else (lambda i: str(i))  # noqa: E731
        table = pd.DataFrame({"tract": np.arange(len(probs)), "region_a": [name(i) for i in rows[:, 0]],
                              "region_b": [name(j) for j in rows[:, 1]], "probability": np.round(probs, 6),
                              "important": probs > threshold})
        write_csv_atomic(table, out / "edges.csv")
        info.update({"edges": int(len(probs)), "important_edges": int(len(important_edges(probs, threshold))),
                     "edge_density": round(edge_density(probs, threshold), 6), "edge_threshold": threshold,
                     "explainer_epochs": int(epochs), "explainer_seed": int(seed)})
    else:
        info["skipped"].append("edge importance (the model has no brain-network encoder or no BCE head)")
    info["seconds"]["edges"] = round(edge_seconds + time.perf_counter() - t0, 2)  # its thread's time + Fig. 8
    info["edge_probabilities"] = probs
    return info


def _explains_edges(model) -> bool:
    """GNNExplainer needs the brain-network encoder and the BCE head."""
    return model.brain_network is not None and getattr(model, "classifier", None) is not None


def case_edges(model, workdir: str | Path, patient_id: str, epochs: int = EXPLAINER_EPOCHS,
               seed: int = 0) -> tuple[np.ndarray, float] | None:
    """GNNExplainer's tract probabilities of the brain network of ``patient_id`` (read from the work
    folder ``workdir``) and their seconds, on one torch thread; ``None`` when ``model`` has no
    brain-network encoder or no BCE head. What :func:`explain_case` computes in its thread."""
    from gliotype.interpretation import load_case_batch
    from gliotype.interpretation.edges import brain_network_score

    if not _explains_edges(model):
        return None
    with torch_threads(1):  # the thread count of explain_case: the same bytes
        batch = load_case_batch(WorkDir.of(workdir), str(patient_id), model.config.encoders)
        return _explain_edges(brain_network_score(model, batch), epochs, seed)


def _explain_edges(score, epochs: int, seed: int) -> tuple[np.ndarray, float]:
    """GNNExplainer's tract probabilities of a brain-network score and its seconds, on one torch thread."""
    import torch

    from gliotype.interpretation.edges import explain_score

    t0 = time.perf_counter()
    torch.set_num_threads(1)  # the caller's count (OpenMP keeps it per thread), never restored: no race
    return explain_score(score, epochs=epochs, seed=seed), time.perf_counter() - t0


def _gradcam_and_figure7(model, batch, case: dict, workdir: WorkDir, pid: str, out: Path, has_head: bool,
                         info: dict) -> None:
    """Grad-CAM of the tumour image (NIfTI on the template grid and in native space) and Fig. 7
    (Grad-CAM against f_P's point attention); their numbers and seconds go into ``info``."""
    from gliotype.interpretation import (
        agreement,
        cam_to_native,
        figure7,
        gradcam_nifti,
        point_attention,
        project_to_points,
        tumor_gradcam,
    )
    from gliotype.modalities.tumor_image import SEQUENCE_CHANNELS

    cam = None
    t0 = time.perf_counter()
    if model.image is not None and has_head:
        # the class the network's head decides (standard Grad-CAM): the IDH-mutant score alone is all
        # zero after the ReLU for a patient the head calls wild-type, which explains nothing
        cam = tumor_gradcam(model, batch, target="predicted")
        info["gradcam_class"] = _head_class(model, batch)
        shape, affine = _template_grid(workdir, pid)
        cam_img = gradcam_nifti(cam, case["tumor_image_affine"], shape, affine)
        _save_nifti(cam_img, out / "gradcam.nii.gz")
        _save_nifti(cam_to_native(cam_img, workdir, pid), out / "gradcam_native.nii.gz")
        info["gradcam_max_location_mm"] = [round(float(v), 1) for v in
                                           nib.affines.apply_affine(case["tumor_image_affine"],
                                                                    np.unravel_index(int(np.argmax(cam)), cam.shape))]
    else:
        info["skipped"].append("Grad-CAM (the model has no image encoder or no BCE head)")
    info["seconds"]["gradcam"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    if cam is not None and model.point_cloud is not None:
        attention = point_attention(model, batch)
        cam_points = project_to_points(cam, case["tumor_image_affine"], case["points_mm"])
        rho = agreement(cam_points, attention)
        sequences = case["tumor_image"][:SEQUENCE_CHANNELS]  # without the ring channel (modalities.image_ring_channel)
        figure7(sequences, cam, case["points_mm"], cam_points, attention, out / "figure7.png",
                patient_id=pid, slice_index=_tumor_slice(case["tumor_image"], cam))
        info["gradcam_attention_spearman"] = None if not np.isfinite(rho) else round(float(rho), 4)
        info["points"] = int(len(case["points_mm"]))
    else:
        info["skipped"].append("Fig. 7 (needs the image and point-cloud encoders and the BCE head)")
    info["seconds"]["figure7"] = round(time.perf_counter() - t0, 2)


def _labels(run: RunDir) -> dict[str, float]:
    path = run.splits
    if not path.exists():
        return {}
    df = pd.read_csv(path, dtype={"patient_id": str})
    return {str(p): float(v) for p, v in zip(df["patient_id"], df["idh"]) if v == v}


def _density_figure(patients: pd.DataFrame, path: Path, p_value: float) -> None:
    from gliotype.utils.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    groups = [("IDH wild-type", 0.0), ("IDH mutant", 1.0)]
    data = [patients.loc[patients["idh"] == v, "density"].dropna().to_numpy() for _, v in groups]
    ax.boxplot([d if d.size else [np.nan] for d in data], showfliers=False)
    ax.set_xticks([1, 2], [f"{name}\n(n={d.size})" for (name, _), d in zip(groups, data)])
    rng = np.random.default_rng(0)
    for k, d in enumerate(data, start=1):
        ax.scatter(k + rng.uniform(-0.08, 0.08, d.size), d, s=12, alpha=0.7)
    ax.set_ylabel("density of important edges (p > 0.5)")
    ax.set_title(f"Mann-Whitney U, two-sided p = {p_value:.3g}" if np.isfinite(p_value) else "one group is empty")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def explain_run(
    run_dir: str | Path | RunDir,
    patients: list[str] | None = None,
    *,
    epochs: int = EXPLAINER_EPOCHS,
    seed: int = 0,
    threshold: float = EDGE_THRESHOLD,
) -> dict:
    """Explain patients of a finished ``gliotype run`` (``None``: every patient with a brain network).

    Writes ``RUNDIR/explain/<id>/`` (``figure7.png``, ``figure8.png``, ``gradcam.nii.gz``,
    ``gradcam_native.nii.gz``, ``edges.csv``, ``explain.json``) and the cohort summary
    ``RUNDIR/explain/edge_density.csv``, ``edge_density_groups.csv``, ``edge_density.png``,
    ``summary.json`` (density of important edges, wild-type vs mutant, Mann-Whitney U).
    """
    from gliotype.interpretation import cohort_edge_summary
    from gliotype.prediction.model import load_model

    run = RunDir.of(run_dir)
    if not run.model.root.is_dir() or not run.work.root.is_dir():
        raise GliotypeError(f"{run.root.name or run.root} is not a finished run folder (no model/ or work/); "
                            "run `gliotype run` first")
    model = load_model(run.model)
    work = run.work
    labels = _labels(run)
    ready = [pid for pid in work.case_ids() if work.case(pid).brain_network.exists()]
    if patients is None:
        patients = [p for p in ready if p in labels] if labels else ready
    else:
        patients = [str(p) for p in patients]
        unknown = [p for p in patients if p not in ready]
        if unknown:
            raise GliotypeError(f"patient {unknown[0]} has no brain network in this run "
                                f"({len(ready)} patients have one; e.g. {', '.join(ready[:3])})")
    if not patients:
        raise GliotypeError("no patient to explain")
    folder = run.explain
    probs: dict[str, np.ndarray] = {}
    rows = []
    for pid in progress(patients, "explain"):
        info = explain_case(model.multimodal, work, pid, folder.case(pid), model.region_centroids,
                            model.region_names, epochs=epochs, seed=seed, threshold=threshold)
        p = info.pop("edge_probabilities")
        if p is not None:
            probs[pid] = p
        atomic_write(folder.case_json(pid),
                     json.dumps(jsonable({"patient_id": pid, "idh": labels.get(pid), **info}), indent=2))
        rows.append({"patient_id": pid, **{k: info.get(k) for k in ("gradcam_attention_spearman", "important_edges",
                                                                   "edge_density")}})
    result = {"patients": len(patients), "threshold": threshold, "explainer_epochs": epochs, "explainer_seed": seed}
    if probs:
        summary = cohort_edge_summary(probs, labels, threshold)
        write_csv_atomic(summary.patients, folder.edge_density)
        write_csv_atomic(summary.groups, folder.edge_density_groups)
        _density_figure(summary.patients, folder.edge_density_png, summary.p_value)
        result.update({"mann_whitney_u": summary.u_statistic, "p_value": summary.p_value,
                       "groups": summary.groups.to_dict(orient="records")})
    result = jsonable(result)
    atomic_write(folder.summary, json.dumps(result, indent=2))
    result["rows"] = rows
    return result


__all__ = ["EDGE_THRESHOLD", "EXPLAINER_EPOCHS", "explain_case", "explain_run"]
