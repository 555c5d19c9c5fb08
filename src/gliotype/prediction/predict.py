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
7. an interval from re-predicting with random subsets of the stored nodes, widened for every
   missing sequence by the spread the model measured at export (``sequence_spread.json``,
   :mod:`~gliotype.prediction.missing`);
   the applicability flags: the patient's registration, tumour and features against the
   model's training ranges (``applicability.json``, :mod:`~gliotype.prediction.applicability`;
   an unusual patient is flagged, never refused);
8. the explanations (Figs. 7-8, Grad-CAM maps) and ``report.html``.

Everything is written into a hidden folder beside ``out_dir`` and moved into place at the
end: a failed prediction leaves no output. See ``docs/prediction.md``.

This module owns the pipeline (:func:`predict_patient`, its result :class:`Prediction`);
the steps live beside it: :mod:`~gliotype.prediction.inputs` (finding and checking the
files, step 1), :mod:`~gliotype.prediction.insertion` (steps 6-7),
:mod:`~gliotype.prediction.explain` and :mod:`~gliotype.prediction.report` (step 8),
:mod:`~gliotype.prediction.publish` (the staging folder). The temporary work folder of
steps 2-5 holds only the patient's own files: the model's atlas and self-supervised
models are passed in memory (:class:`~gliotype.prediction.TrainedModel`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gliotype import __version__
from gliotype.input import InputRules
from gliotype.input.bids.derivatives import BidsOutput, ensure_dataset, write_prediction
from gliotype.prediction._util import jsonable
from gliotype.prediction.automask import as_segmenter, mask_for_prediction
from gliotype.prediction.inputs import check_inputs, prediction_config, prediction_row, row_paths
from gliotype.prediction.insertion import DRAWS, NODE_FRACTION, graph_predict
from gliotype.prediction.model import TrainedModel
from gliotype.prediction.publish import staging_folder
from gliotype.utils.io import atomic_write
from gliotype.utils.logging import get_logger
from gliotype.utils.timing import Laps
from gliotype.utils.training import torch_threads

log = get_logger(__name__)


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
    allow_missing: int | None = None,
    bids: BidsOutput | None = None,
    segmenter=None,
    workdir: str | Path | None = None,
    explainer=None,
    checked: dict | None = None,
) -> Prediction:
    """Predict one patient and write ``out_dir`` (``prediction.json``, ``report.html``, figures, maps).

    Args:
        model: from :func:`gliotype.prediction.load_model`.
        inputs: role -> file for ``t1``, ``t1c``, ``t2``, ``flair`` and ``mask`` (other roles ignored;
            a sequence may be missing when the model's ``input.missing_sequences`` allows it).
        patient_id: the ID written in the outputs (default: from the T1c file name).
        out_dir: created (or an earlier prediction there replaced) only when everything succeeded.
        draws, node_fraction, seed: the subsampling interval (``draws=0``: none).
        explain: compute Grad-CAM, the point maps and GNNExplainer (Figs. 7-8).
        explainer_epochs: GNNExplainer epochs (default 200).
        allow_missing: sequences the patient may lack, overriding the model's ``input.missing_sequences``.
        bids: where a patient of a BIDS dataset gets a copy of ``prediction.json`` as
            ``sub-XX[_ses-YY]_desc-idh_prediction.json`` (:func:`gliotype.input.bids.bids_output`
            of its manifest row); its derivative dataset is made before anything is computed.
        segmenter: a :class:`~gliotype.segmentation.Segmenter` (or its folder) that segments the tumour
            when ``inputs`` has no mask (:mod:`~gliotype.prediction.automask`); a given mask wins.
        workdir: the folder of the patient's intermediate files (default: a temporary one, removed at
            the end); ``gliotype predict`` passes the one :func:`~gliotype.prediction.preprocessing_ahead`
            preprocessed the patient into. It holds this patient's files only; the caller removes it.
        explainer: an :class:`~gliotype.prediction.ahead.ExplainerAhead` started with this model's
            folder: GNNExplainer (Fig. 8) then runs in its process, asked as soon as the patient's
            brain network is encoded, beside the population graph and Grad-CAM here; the same edges.
        checked: what :func:`~gliotype.prediction.check_inputs` returned for these inputs under the
            model's rules, when the caller checked them already (``gliotype predict`` does, while the
            patient is preprocessed); by default they are checked here.

    Raises :class:`CaseError` (one line: patient, file name, problem) for a bad input and
    :class:`GliotypeError` for a bad output folder; nothing is written then.
    """
    from gliotype.prediction.explain import EXPLAINER_EPOCHS
    from gliotype.prediction.report import write_report  # looked up per call: tests replace it

    t_start = time.perf_counter()
    row = prediction_row(patient_id, inputs)
    pid, inputs = row["patient_id"], row_paths(row)
    out = Path(out_dir)
    if bids is not None:
        ensure_dataset(bids.root)  # an unwritable derivatives folder stops before the work, not after
    segmenter = as_segmenter(segmenter)
    with staging_folder(out) as staging:
        segmentation = mask_for_prediction(inputs, pid, segmenter, staging, model.config)
        with tempfile.TemporaryDirectory(prefix="gliotype-predict-") if workdir is None else nullcontext(workdir) as tmp:
            record = _predict(model, inputs, pid, Path(tmp), staging, draws=draws, node_fraction=node_fraction,
                              seed=seed, explain=explain,
                              epochs=EXPLAINER_EPOCHS if explainer_epochs is None else int(explainer_epochs),
                              allow_missing=allow_missing, explainer=explainer, checked=checked)
        if segmentation is not None:
            record["segmentation"] = segmentation
        record["seconds"]["total"] = round(time.perf_counter() - t_start, 2)
        atomic_write(staging / "prediction.json",
                     json.dumps(jsonable({k: v for k, v in record.items() if not k.startswith("_")}), indent=2))
        write_report(staging / "report.html", record, staging)
    log.info("patient %s: P(IDH mutant) = %.3f (%s), written to %s", pid, record["idh_mutant_probability"],
             record["decision"], out)
    if bids is not None:
        write_prediction(bids, out / "prediction.json")
    features = record.pop("_features")
    return Prediction(pid, record["idh_mutant_probability"], record["decision"],
                      tuple(record["uncertainty"]["interval_95"]), record, out, features)


def _predict(model: TrainedModel, inputs: dict[str, Path], pid: str, work: Path, staging: Path, *, draws: int,
             node_fraction: float, seed: int, explain: bool, epochs: int, allow_missing: int | None = None,
             explainer=None, checked: dict | None = None) -> dict:
    from gliotype.layout import WorkDir
    from gliotype.modalities.build import missing_sequences
    from gliotype.multimodal.stage import feature_matrix
    from gliotype.prediction.applicability import flag_case
    from gliotype.prediction.missing import widen_draws
    from gliotype.prediction.report import input_checks
    from gliotype.stages import featurise_case

    config = prediction_config(model.config, allow_missing)
    lap = Laps(ndigits=2)

    if checked is None:
        checked = check_inputs(inputs, pid, InputRules.of(config))
        lap("input_checks")
    case = featurise_case(prediction_row(pid, inputs), work, config, model.multimodal, atlas=model.atlas,
                          ssl=model.self_supervised, lap=lap)
    feats, qc = case.features, case.qc
    # the child explains the brain network (read from the work folder) while the graph and Grad-CAM run here
    edges_ahead = explainer.submit(work, pid, epochs, seed) if explain and explainer is not None else None
    missing = list(missing_sequences(work, pid))
    u_t, u_b = feature_matrix(feats, "u_T"), feature_matrix(feats, "u_B")
    applicability = flag_case(model.applicability, WorkDir.of(work).case(pid), u_t, u_b)  # flagged, never refused
    with torch_threads(1):
        graph = graph_predict(model, u_t, u_b, pid, draws=draws, node_fraction=node_fraction, seed=seed)
    lap("population_graph")
    spread = model.sequence_spread
    widened = missing and spread is not None and draws > 0
    interval = graph["interval"]
    if widened:
        ps = widen_draws(graph["draws"], missing, spread, seed)
        interval = tuple(float(v) for v in np.percentile(ps, [2.5, 97.5]))
        agreement = float(np.mean((ps >= model.threshold) == (graph["probability"] >= model.threshold)))
    else:
        ps, agreement = graph["draws"], graph["decision_agreement"]

    interpretation: dict = {}
    if explain:
        from gliotype.prediction.explain import explain_case

        interpretation = explain_case(model.multimodal, work, pid, staging, model.region_centroids,
                                      model.region_names, epochs=epochs, seed=seed, edges_ahead=edges_ahead)
        interpretation.pop("edge_probabilities", None)
        lap("explanations")

    p = graph["probability"]
    head = float(feats["p_head"].iloc[0]) if "p_head" in feats else None
    return {
        "patient_id": pid,
        "idh_mutant_probability": round(p, 6),
        "decision": graph["decision"],
        "threshold": round(model.threshold, 6),
        "missing_sequences": missing,
        "uncertainty": {
            "interval_95": [round(interval[0], 6), round(interval[1], 6)],
            "method": "graph-node subsampling: the patient re-inserted into random subsets of the stored "
                      "population graph; 2.5 and 97.5 percentiles" +
                      ("; each draw's logit plus N(0, sd^2) per missing sequence, sd measured at export "
                       "(sequence_spread.json)" if widened else ""),
            "draws": int(draws),
            "node_fraction": node_fraction,
            "nodes_per_draw": graph["subset_nodes"],
            "seed": seed,
            "sd": round(float(np.std(ps)), 6),
            "decision_agreement": round(agreement, 4),
            "missing_sequence_spread": _spread_record(missing, spread, draws, graph["interval"]),
        },
        "applicability": applicability,
        "calibration": model.calibration.describe(p, interval),
        "graph_neighbours": graph["neighbours"],
        "graph_neighbour_labels": graph["neighbour_labels"],
        "graph_nodes": model.graph.num_nodes,
        "multimodal_head_probability": None if head is None else round(head, 6),
        "model": {
            "gliotype_version": model.version,
            "config_hash": model.config_hash,
            "model_id": model.model_id,
            "signature_key_id": model.signed_by,  # the key its signature was checked with (None: not checked)
            "preset": config.preset,
            "population_graph": f"node {model.meta['node_weight']}, edge r({model.meta['edge_weight']}), "
                                f"theta {model.theta:g}",
        },
        "gliotype_version": __version__,
        "input_checks": input_checks(checked, qc, case.modalities, graph, model),
        "interpretation": interpretation,
        "outputs": sorted(p.name for p in staging.iterdir()) + ["prediction.json", "report.html"],
        # the child's preprocessing (gliotype.prediction.preprocessing_ahead) beside the model's loading
        "seconds": {**lap.seconds, **({"preprocessing_ahead": qc.get("seconds")} if case.preprocessed == "skipped"
                                      else {})},
        "_features": {"u_T": u_t, "u_B": u_b},
    }


#: What a prediction imports after its networks are loaded (the per-patient stages, ANTs for the
#: way back to native space, the explanations and their figures, the report): :func:`warm_up`.
LATER_MODULES = ("gliotype.stages", "gliotype.prediction.applicability", "gliotype.prediction.missing",
                 "gliotype.prediction.explain", "gliotype.prediction.report", "gliotype.interpretation",
                 "gliotype.preprocessing.transforms", "torch_geometric.explain", "nilearn.plotting")


def warm_up() -> None:
    """Import :data:`LATER_MODULES` and ANTs now: ``gliotype predict`` does it while the patient's
    preprocessing runs in a child process (:func:`~gliotype.prediction.preprocessing_ahead`), so the
    seconds it takes are not spent after. It computes nothing; a prediction is the same without it."""
    import importlib

    from gliotype.preprocessing.ants_runtime import ants_module
    from gliotype.utils.plotting import pyplot

    pyplot()  # matplotlib on its Agg backend before nilearn's plotting imports it
    for name in LATER_MODULES:
        importlib.import_module(name)
    ants_module()


def _spread_record(missing: list[str], spread: dict | None, draws: int, interval: tuple[float, float]) -> dict:
    """How the interval accounts for the missing sequences (``prediction.json``; the report reads it)."""
    if not missing:
        return {"included": False, "reason": "no missing sequence"}
    if spread is None:
        return {"included": False, "reason": "the model has no sequence_spread.json (exported before it was "
                                             "measured): the interval does not include the missing-sequence spread"}
    if draws <= 0:
        return {"included": False, "reason": "no uncertainty draws (--draws 0)"}
    return {"included": True, "sd_logit": {s: spread["sd_logit"].get(s, 0.0) for s in missing},
            "interval_95_without": [round(interval[0], 6), round(interval[1], 6)]}


__all__ = ["LATER_MODULES", "Prediction", "predict_patient", "warm_up"]
