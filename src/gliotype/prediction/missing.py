"""What a missing sequence does to a trained model's prediction (``input.missing_sequences``,
docs/design.md point 37).

- :func:`measure_sequence_spread`: at export, for the classifier-training patients of the
  exported fold, the change of the exported model's logit when each sequence is removed (x_I
  channel zeroed, x_B encoded with the sequence imputed:
  :func:`gliotype.multimodal.stage.features_without`), each patient re-inserted into the stored
  population graph as a new node (its own node left out) as a prediction inserts a new patient;
  per sequence the SD of that change, written to ``sequence_spread.json`` of the model folder
  (:attr:`gliotype.layout.ModelDir.sequence_spread`, listed and hashed by the manifest);
- :func:`widen_draws`: at prediction, each uncertainty draw's logit gets an added N(0, sd_s^2)
  per missing sequence ``s`` (seeded), so the interval widens by the measured amount;
- :func:`insert_each`: patients' features inserted one at a time into a stored graph (the
  measurement above and ``benchmarks/missing_sequences.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.evaluation.calibration import logit
from gliotype.prediction.model import TrainedModel

#: Version of ``sequence_spread.json``.
SPREAD_FORMAT = 1
def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def insert_each(model: TrainedModel, features: pd.DataFrame, patient_ids: Sequence[str],
                leave_one_out: bool = False) -> np.ndarray:
    """P(IDH mutant) of each patient of ``features`` (rows by ``patient_id``) inserted alone as a new node
    into ``model``'s stored graph (:func:`gliotype.prediction.insertion.graph_predict`, no interval);
    ``leave_one_out``: a patient that is a stored node is first removed from the graph."""
    from gliotype.multimodal.stage import feature_matrix
    from gliotype.prediction.insertion import graph_predict

    rows = features.set_index(features["patient_id"].astype(str))
    stored = set(model.patient_ids)
    out = []
    for pid in map(str, patient_ids):
        one = rows.loc[[pid]]
        graph = model.without([pid]) if leave_one_out and pid in stored else model
        out.append(graph_predict(graph, feature_matrix(one, "u_T"), feature_matrix(one, "u_B"), pid,
                                 draws=0)["probability"])
    return np.asarray(out, dtype=np.float64)


def measure_sequence_spread(model: TrainedModel, work, patient_ids: Sequence[str]) -> dict:
    """Per sequence, the SD over ``patient_ids`` (the exported fold's classifier-training patients) of
    the change of the model's logit when that sequence is removed (module docstring). A patient already
    without the sequence is left out of its SD; fewer than two patients give SD 0."""
    from gliotype.input import SEQUENCES
    from gliotype.modalities.build import missing_sequences
    from gliotype.multimodal.stage import extract_features, features_without

    ids = [str(p) for p in patient_ids]
    cfg = model.config.multimodal
    full = insert_each(model, extract_features(work, model.multimodal, ids, cfg), ids, leave_one_out=True)
    sd, mean, counts = {}, {}, {}
    for seq in SEQUENCES:
        keep = [i for i, p in enumerate(ids) if seq not in missing_sequences(work, p)]
        kept = [ids[i] for i in keep]
        if kept:
            feats = features_without(work, model.multimodal, model.self_supervised, kept, seq, cfg)
            change = logit(insert_each(model, feats, kept, leave_one_out=True)) - logit(full[keep])
        else:
            change = np.zeros(0)
        sd[seq] = round(float(np.std(change, ddof=1)), 6) if len(change) >= 2 else 0.0
        mean[seq] = round(float(np.mean(change)), 6) if len(change) else 0.0
        counts[seq] = len(change)
    return {"format": SPREAD_FORMAT, "sd_logit": sd, "mean_logit_change": mean, "patients": counts,
            "method": "change of the exported model's logit when the sequence is removed (x_I channel zeroed, "
                      "x_B encoded with it imputed), each classifier-training patient re-inserted into the "
                      "stored population graph as a new node without its own node"}


def write_sequence_spread(path: str | Path, spread: dict) -> Path:
    from gliotype.utils.io import atomic_write

    atomic_write(path, json.dumps(spread, indent=2))
    return Path(path)


def widen_draws(draws: np.ndarray, missing: Sequence[str], spread: dict | None, seed: int = 0) -> np.ndarray:
    """The uncertainty draws (probabilities) with, per missing sequence ``s``, N(0, sd_s^2) added to each
    draw's logit (``spread``: ``sequence_spread.json``; seeded by ``seed``). Unchanged without
    ``spread`` or missing sequences."""
    if spread is None or not missing or len(draws) == 0:
        return np.asarray(draws, dtype=np.float64)
    rng = np.random.default_rng([int(seed), 37])
    z = logit(draws)
    for seq in missing:
        z = z + rng.normal(0.0, float(spread["sd_logit"].get(seq, 0.0)), size=z.shape)
    return sigmoid(z)


__all__ = ["SPREAD_FORMAT", "insert_each", "logit", "measure_sequence_spread", "sigmoid", "widen_draws",
           "write_sequence_spread"]
