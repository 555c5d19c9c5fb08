"""Predict the IDH status of one new patient with a trained model folder (``gliotype predict``).

Steps (the same code as training, with the model's stored parts):

1. check the inputs (the cohort validator: readable 3D images, finite values, grids,
   mask labels, mask inside the image);
2. preprocess in a temporary work folder (co-registration to T1c, brain mask,
   histogram standardisation, SyN to the template; transforms kept for the way back);
3. build x_I, x_P and the atlas samples with the model's stored atlas sampling (the
   voxel positions of training), the crossings of eq. 2 with its tract matrix;
4. encode the brain network x_B with the model's self-supervised models;
5. extract u_I, u_P, u_T, u_B with the model's multi-modal network;
6. z-score with the stored training statistics, insert the patient into the stored
   population graph with eq. 8 edges to the stored nodes (inductive, no retraining,
   :func:`gliotype.population_graph.insert_nodes`) and read the GNN's probability;
7. an interval from re-predicting with random subsets of the stored nodes;
8. the explanations (Figs. 7-8, Grad-CAM maps) and ``report.html``.

Everything is written into a hidden folder beside ``out_dir`` and moved into place at the
end: a failed prediction leaves no output. See ``docs/prediction.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gliotype import __version__
from gliotype.errors import CaseError, GliotypeError
from gliotype.input import SEQUENCES
from gliotype.layout import ModelDir, WorkDir
from gliotype.prediction._util import jsonable
from gliotype.prediction.model import TrainedModel
from gliotype.utils.io import atomic_write
from gliotype.utils.training import torch_threads
from gliotype.utils.logging import get_logger
from gliotype.utils.timing import Laps

log = get_logger(__name__)

ROLES = SEQUENCES + ("mask",)
#: Uncertainty defaults: re-predictions with random subsets of the stored graph nodes.
DRAWS = 100
NODE_FRACTION = 0.8
DECISIONS = ("IDH-wildtype", "IDH-mutant")


@dataclass
class Prediction:
    """The outcome of :func:`predict_patient` (also written as ``prediction.json``)."""

    patient_id: str
    probability: float
    decision: str
    interval: tuple[float, float]
    record: dict = field(repr=False)
    out_dir: Path | None = None
    features: dict = field(default_factory=dict, repr=False)  # u_T, u_B (1, d) as extracted


# --------------------------------------------------------------------------- inputs


def check_patient_id(patient_id: str) -> str:
    """A patient ID usable as a folder name (no path separators, not ``.``/``..``, printable)."""
    pid = str(patient_id or "").strip()
    if not pid or pid in (".", "..") or any(c in pid for c in "/\\") or not pid.isprintable() or len(pid) > 64:
        raise GliotypeError(f"invalid patient id {pid[:64]!r}: use letters, digits, '-', '_' or '.' "
                            "(no path separators, at most 64 characters)")
    return pid


def patient_id_from_files(inputs: Mapping[str, str | Path]) -> str:
    """The patient ID in the T1c file name under a known layout (``<id>_t1ce.nii.gz``...), else ``patient``."""
    from gliotype.input.manifest import LAYOUTS, _stem

    t1c = inputs.get("t1c")
    if t1c:
        stem = _stem(Path(str(t1c)))
        for layout in LAYOUTS.values():
            hit = layout.role_of(stem)
            if hit and hit[1] == "t1c":
                return hit[0]
    return "patient"


def inputs_from_case(case_dir: str | Path, patient_id: str | None = None) -> tuple[str, dict[str, Path]]:
    """The files of the one patient in ``case_dir`` (any layout :func:`gliotype.input.scan_cohort` knows)."""
    from gliotype.input import is_blank, scan_cohort

    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise GliotypeError(f"--case {case_dir.name or case_dir}: not a folder")
    df = scan_cohort(case_dir)
    ids = df["patient_id"].astype(str).tolist()
    if len(ids) > 1:
        if patient_id is None or str(patient_id) not in ids:
            raise GliotypeError(f"--case {case_dir.name}: {len(ids)} patients found ({', '.join(ids[:4])}"
                                f"{' ...' if len(ids) > 4 else ''}); give one patient's folder or --patient-id")
        row = df[df["patient_id"].astype(str) == str(patient_id)].iloc[0]
    else:
        row = df.iloc[0]
    pid = str(row["patient_id"])
    inputs = {r: Path(str(row[r])) for r in ROLES if not is_blank(row[r])}
    for r in ROLES:
        if r not in inputs:
            raise CaseError(pid, None, f"no {r} file found in the case folder")
    return pid, inputs


def check_inputs(inputs: Mapping[str, str | Path], pid: str) -> dict:
    """Validate the five input files as the cohort validator does; a problem is a one-line CaseError.

    Returns the validator's information (grid, spacing, labels, tumor voxels) and warnings.
    """
    from gliotype.input.validate import CaseReport, _check

    for role in ROLES:
        if not inputs.get(role):
            raise CaseError(pid, None, f"no {role} file given")
    row = {"patient_id": pid, **{r: str(inputs[r]) for r in ROLES}, "fa": None, "idh": None}
    report = CaseReport(pid, "ok")
    try:
        _check(row, pid, report)
    except CaseError:
        raise
    except MemoryError:
        raise CaseError(pid, None, "out of memory while reading the images") from None
    except Exception as exc:
        text = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise CaseError(pid, None, f"unexpected problem while checking the inputs ({type(exc).__name__}: {text})") \
            from None
    return {"info": report.info, "warnings": list(report.warnings)}


# --------------------------------------------------------------------------- graph


def _graph_prediction(model: TrainedModel, node_x: np.ndarray, edge_x: np.ndarray, pid: str,
                      keep: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """P(mutant) of the new patient inserted into the stored graph (or its subgraph ``keep``),
    and the stored-node rows it is linked to."""
    from torch_geometric.utils import subgraph

    from gliotype.population_graph import insert_nodes, predict_proba
    from gliotype.population_graph.graph import PopulationGraph

    g = model.graph
    stored = model.edge_features
    if keep is not None:
        idx = torch.as_tensor(keep, dtype=torch.long)
        ei, w = subgraph(idx, g.edge_index, g.edge_weight, relabel_nodes=True, num_nodes=g.num_nodes)
        g = PopulationGraph(x=g.x[idx], edge_index=ei, edge_weight=w, y=g.y[idx],
                            patient_id=[g.patient_id[i] for i in keep])
        stored = stored[keep]
    full = insert_nodes(g, node_x, edge_x, stored, model.theta, [pid])
    p = float(predict_proba(model.gnn, full)[-1])
    new_edges = full.edge_index[:, g.edge_index.shape[1]:]
    neighbours = np.unique(new_edges[1][new_edges[0] == g.num_nodes].numpy())
    if keep is not None:
        neighbours = np.asarray(keep)[neighbours]
    return p, neighbours


def graph_predict(model: TrainedModel, u_t: np.ndarray, u_b: np.ndarray, pid: str, *, draws: int = DRAWS,
                  node_fraction: float = NODE_FRACTION, seed: int = 0) -> dict:
    """Insert one patient (features ``u_T``, ``u_B``, shape ``(1, d)``) into the stored graph and predict.

    Returns the probability, its subsampling interval and the graph neighbourhood.
    """
    from gliotype.population_graph import select_features

    node = select_features(np.atleast_2d(u_t), np.atleast_2d(u_b), model.meta["node_weight"])
    edge = select_features(np.atleast_2d(u_t), np.atleast_2d(u_b), model.meta["edge_weight"])
    node_x, edge_x = model.standardise(node, edge)
    p, neighbours = _graph_prediction(model, node_x, edge_x, pid)
    n = model.graph.num_nodes
    k = max(1, int(round(node_fraction * n)))
    rng = np.random.default_rng(seed)
    ps = np.array([_graph_prediction(model, node_x, edge_x, pid, np.sort(rng.choice(n, k, replace=False)))[0]
                   for _ in range(int(draws))]) if draws > 0 else np.array([p])
    lo, hi = np.percentile(ps, [2.5, 97.5])
    labels = model.labels[neighbours] if len(neighbours) else np.array([])
    decision = DECISIONS[int(p >= model.threshold)]
    return {
        "probability": p,
        "decision": decision,
        "interval": (float(lo), float(hi)),
        "draws": ps,
        "decision_agreement": float(np.mean((ps >= model.threshold) == (p >= model.threshold))),
        "neighbours": int(len(neighbours)),
        "neighbour_labels": {"IDH-mutant": int(np.sum(labels == 1)), "IDH-wildtype": int(np.sum(labels == 0)),
                             "unlabelled": int(np.sum(labels < 0))},
        "node_fraction": node_fraction,
        "subset_nodes": k,
        "seed": seed,
    }


# --------------------------------------------------------------------------- the pipeline


def _copy_model_parts(model: TrainedModel, work: Path) -> None:
    """The stored atlas sampling and self-supervised models into the work folder, where the stages read them."""
    bundle, work = ModelDir.of(model.folder), WorkDir.of(work)
    for source, target in ((bundle.atlas, work.atlas), (bundle.ssl, work.ssl)):
        target.root.mkdir(parents=True, exist_ok=True)
        for src, dst in zip(source.copied, target.copied):
            shutil.copyfile(src, dst)


def _input_checks(checked: dict, qc: dict, modalities: dict, graph: dict, model: TrainedModel) -> list[dict]:
    """The checks shown in the report and ``prediction.json`` (roles and numbers, never file names)."""
    info, cfg = checked["info"], model.config.preprocess
    rows = [
        {"check": "input files", "result": "t1, t1c, t2, flair and mask are readable 3D images with finite values",
         "ok": True},
        {"check": "t1c grid", "result": f"{' x '.join(map(str, info.get('shape', [])))} voxels of "
                                        f"{' x '.join(f'{s:g}' for s in info.get('spacing_mm', []))} mm", "ok": True},
        {"check": "mask labels", "result": ", ".join(map(str, info.get("labels", []))) +
         f" ({info.get('tumor_voxels', 0)} tumor voxels)", "ok": True},
    ]
    rows += [{"check": "grid", "result": w, "ok": True} for w in checked["warnings"]]
    ss = qc.get("skull_stripped", {})
    rows.append({"check": "skull stripping", "result": f"input skull-stripped: {'yes' if ss.get('detected') else 'no'}"
                 f"; brain mask {ss.get('brain_native_ml', 0):.0f} ml", "ok": True})
    rows.append({"check": "tumor inside the brain", "result": f"{100 * qc.get('tumor_inside_brain', 0):.0f}% "
                 f"(minimum {100 * cfg.min_tumor_in_brain:.0f}%)", "ok": True})
    rows.append({"check": "registration to the template", "result": str(qc.get("registration")), "ok": True})
    dice = qc.get("brain_dice")
    rows.append({"check": "brain mask Dice with the template", "result": f"{dice:.3f} (minimum {cfg.qc_min_dice})",
                 "ok": dice is not None and dice >= cfg.qc_min_dice})
    rows.append({"check": "tumor volume, native -> template",
                 "result": f"{qc.get('tumor_native_mm3', 0) / 1000:.1f} ml -> {qc.get('tumor_template_mm3', 0) / 1000:.1f}"
                           f" ml (linear scale {qc.get('linear_scale', 1):.2f})", "ok": True})
    trunc = float(modalities.get("truncated_fraction", 0.0))
    rows.append({"check": "tumor inside the crop x_I", "result": f"{100 * (1 - trunc):.1f}% of tumor voxels",
                 "ok": trunc <= 0.05})
    rows.append({"check": "tracts crossed by the tumor surface", "result": str(modalities.get("tracts_crossed")),
                 "ok": True})
    rows.append({"check": "population-graph neighbours (eq. 8, r >= theta)",
                 "result": f"{graph['neighbours']} of {model.graph.num_nodes} stored patients",
                 "ok": graph["neighbours"] > 0})
    return rows


def _publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out`` (replacing an earlier prediction there)."""
    os.chmod(staging, 0o777 & ~_umask())
    if out.exists():
        if any(out.iterdir()):
            trash = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, trash)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
            return
        out.rmdir()
    os.replace(staging, out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise GliotypeError(f"--out {out.name}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "prediction.json").exists():
        raise GliotypeError(f"--out {out.name}: the folder is not empty and holds no earlier prediction; "
                            "choose a new folder")


def predict_patient(
    model: TrainedModel,
    inputs: Mapping[str, str | Path],
    patient_id: str | None,
    out_dir: str | Path,
    *,
    draws: int = DRAWS,
    node_fraction: float = NODE_FRACTION,
    seed: int = 0,
    explain: bool = True,
    explainer_epochs: int | None = None,
) -> Prediction:
    """Predict one patient and write ``out_dir`` (``prediction.json``, ``report.html``, figures, maps).

    Args:
        model: from :func:`gliotype.prediction.load_model`.
        inputs: role -> file for ``t1``, ``t1c``, ``t2``, ``flair`` and ``mask`` (other roles ignored).
        patient_id: the ID written in the outputs (default: from the T1c file name).
        out_dir: created (or an earlier prediction there replaced) only when everything succeeded.
        draws, node_fraction, seed: the subsampling interval (``draws=0``: none).
        explain: compute Grad-CAM, the point maps and GNNExplainer (Figs. 7-8).
        explainer_epochs: GNNExplainer epochs (default 200).

    Raises :class:`CaseError` (one line: patient, file name, problem) for a bad input and
    :class:`GliotypeError` for a bad output folder; nothing is written then.
    """
    from gliotype.prediction.explain import EXPLAINER_EPOCHS
    from gliotype.prediction.report import write_report

    t_start = time.perf_counter()
    inputs = {r: Path(str(p)) for r, p in inputs.items() if p is not None and str(p) != "" and r in ROLES}
    pid = check_patient_id(patient_id if patient_id is not None else patient_id_from_files(inputs))
    out = Path(out_dir)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="gliotype-predict-") as tmp:
            record = _predict(model, inputs, pid, Path(tmp), staging, draws=draws, node_fraction=node_fraction,
                              seed=seed, explain=explain,
                              epochs=EXPLAINER_EPOCHS if explainer_epochs is None else int(explainer_epochs))
        record["seconds"]["total"] = round(time.perf_counter() - t_start, 2)
        atomic_write(staging / "prediction.json",
                     json.dumps(jsonable({k: v for k, v in record.items() if not k.startswith("_")}), indent=2))
        write_report(staging / "report.html", record, staging)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("patient %s: P(IDH mutant) = %.3f (%s), written to %s", pid, record["idh_mutant_probability"],
             record["decision"], out)
    features = record.pop("_features")
    return Prediction(pid, record["idh_mutant_probability"], record["decision"],
                      tuple(record["uncertainty"]["interval_95"]), record, out, features)


def _predict(model: TrainedModel, inputs: dict[str, Path], pid: str, work: Path, staging: Path, *, draws: int,
             node_fraction: float, seed: int, explain: bool, epochs: int) -> dict:
    from gliotype.modalities.build import build_case_modalities
    from gliotype.multimodal.stage import extract_features, feature_matrix
    from gliotype.preprocessing import preprocess_case
    from gliotype.self_supervised import encode_brain_networks

    config = model.config
    lap = Laps(ndigits=2)

    checked = check_inputs(inputs, pid)
    lap("input_checks")
    row = {"patient_id": pid, **{r: str(inputs[r]) for r in ROLES}, "fa": None}
    res = preprocess_case(row, work, config)
    if res.status != "done":
        raise CaseError(pid, None, res.reason or "preprocessing failed")
    qc = res.info.get("qc", {})
    lap("preprocessing")
    _copy_model_parts(model, work)
    mod = build_case_modalities(work, pid, config)
    if mod.status != "done":
        raise CaseError(pid, None, f"building the modalities failed: {mod.reason}")
    lap("modalities")
    bn = encode_brain_networks(work, [pid])
    if bn["status"].iloc[0] not in ("done", "skipped"):
        raise CaseError(pid, None, f"encoding the brain network failed: {bn['reason'].iloc[0]}")
    lap("brain_network")
    feats = extract_features(work, model.multimodal, [pid], config.multimodal, batch_size=1)
    u_t, u_b = feature_matrix(feats, "u_T"), feature_matrix(feats, "u_B")
    lap("features")
    with torch_threads(1):
        graph = graph_predict(model, u_t, u_b, pid, draws=draws, node_fraction=node_fraction, seed=seed)
    lap("population_graph")

    interpretation: dict = {}
    if explain:
        from gliotype.prediction.explain import explain_case

        interpretation = explain_case(model.multimodal, work, pid, staging, model.region_centroids,
                                      model.region_names, epochs=epochs, seed=seed)
        interpretation.pop("edge_probabilities", None)
        lap("explanations")

    p = graph["probability"]
    head = float(feats["p_head"].iloc[0]) if "p_head" in feats else None
    return {
        "patient_id": pid,
        "idh_mutant_probability": round(p, 6),
        "decision": graph["decision"],
        "threshold": round(model.threshold, 6),
        "uncertainty": {
            "interval_95": [round(graph["interval"][0], 6), round(graph["interval"][1], 6)],
            "method": "graph-node subsampling: the patient re-inserted into random subsets of the stored "
                      "population graph; 2.5 and 97.5 percentiles",
            "draws": int(draws),
            "node_fraction": node_fraction,
            "nodes_per_draw": graph["subset_nodes"],
            "seed": seed,
            "sd": round(float(np.std(graph["draws"])), 6),
            "decision_agreement": round(graph["decision_agreement"], 4),
        },
        "graph_neighbours": graph["neighbours"],
        "graph_neighbour_labels": graph["neighbour_labels"],
        "graph_nodes": model.graph.num_nodes,
        "multimodal_head_probability": None if head is None else round(head, 6),
        "model": {
            "gliotype_version": model.version,
            "config_hash": model.config_hash,
            "model_id": model.model_id,
            "preset": config.preset,
            "population_graph": f"node {model.meta['node_weight']}, edge r({model.meta['edge_weight']}), "
                                f"theta {model.theta:g}",
        },
        "gliotype_version": __version__,
        "input_checks": _input_checks(checked, qc, mod.info, graph, model),
        "interpretation": interpretation,
        "outputs": sorted(p.name for p in staging.iterdir()) + ["prediction.json", "report.html"],
        "seconds": lap.seconds,
        "_features": {"u_T": u_t, "u_B": u_b},
    }


__all__ = ["DRAWS", "NODE_FRACTION", "Prediction", "check_inputs", "check_patient_id", "graph_predict",
           "inputs_from_case", "patient_id_from_files", "predict_patient"]
