"""Encode every patient's brain network x_B with the trained models (paper section 3.2).

x_B = {v_N, v_E}: 90 nodes and (default) 2,309 edges with 16-d attributes each, v_N
from the node autoencoder's encoder and v_E from the edge model's anatomical MRI branch
alone, so patients without FA get one too. Per patient
``patients/<id>/brain_network.safetensors`` and its record ``brain_network.json`` (the cache
key: the models' key and the patient's modalities record; the file's size and sha256: an
up-to-date, unchanged one is skipped); per cohort the status table ``brain_network_status.csv``
(``patient_id``, ``status`` done / skipped / failed, ``reason``).

A patient without some sequences (``input.missing_sequences``, recorded in its
``modalities.json``) is encoded with those blocks imputed
(:func:`~gliotype.self_supervised.models.impute_missing`). With ``variants`` (set when
``multimodal.sequence_dropout`` > 0) the file also holds, for every sequence ``s`` the patient
has, x_B encoded without it: ``x_without_<s>`` and ``edge_attr_without_<s>``
(:func:`load_brain_network_variants`); the patient's key says whether they are there.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from gliotype.errors import CaseError, one_line, stop_on_environment
from gliotype.layout import WorkDir
from gliotype.self_supervised.inputs import (
    available_patients,
    flag_tensor,
    patient_inputs,
    to_tensor,
)
from gliotype.self_supervised.models import EdgeContrastiveModel, NodeAutoencoder
from gliotype.self_supervised.train import SelfSupervisedModels
from gliotype.utils.io import atomic_path, write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.progress import progress
from gliotype.utils.records import record_digest, reusable_record, write_record

log = get_logger(__name__)


def _needs_tumor(node_model: NodeAutoencoder, edge_model: EdgeContrastiveModel) -> bool:
    return any(d is not None and d.tumor == "mask" for d in (node_model.deviation, edge_model.mri_deviation))


def encode_patient(models: SelfSupervisedModels, inputs: dict, missing=()) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v_N, v_E)`` of one patient's SSL inputs (:func:`~gliotype.self_supervised.inputs.patient_inputs`)
    with the sequences of ``missing`` imputed."""
    with torch.no_grad():
        v_n = models.node.attributes(to_tensor(inputs["node"]), flag_tensor(inputs, "node"), missing)
        v_e = models.edge.attributes(to_tensor(inputs["tract"]), flag_tensor(inputs, "tract"), missing)
    return v_n, v_e


def patient_inputs_for(models: SelfSupervisedModels, workdir: str | Path | WorkDir, patient_id: str) -> dict:
    """The SSL inputs of one patient as ``models`` need them (with the tumour flags under ``ssl.tumor = mask``)."""
    masked = _needs_tumor(models.node, models.edge)
    return patient_inputs(workdir, patient_id, models.sampling if masked else None, required=masked)


def encode_brain_networks(workdir: str | Path | WorkDir, patient_ids: list[str] | None = None,
                          models: SelfSupervisedModels | None = None, variants: bool = False) -> pd.DataFrame:
    """x_B for every patient: v_N = AE encoder(node samples), v_E = f(tract MRI samples).

    ``models``: the trained models to encode with (a trained model folder's); default
    the work folder's (``ssl/`` and ``atlas/``). With deviation inputs the stored
    normative statistics of the training patients are used for every patient; with
    ``tumor=mask`` the tumour-covered fraction of every region and tract is also written
    (``node_tumor_fraction``, ``edge_tumor_fraction``). A patient's missing sequences are imputed;
    ``variants``: also x_B without each present sequence (module docstring).
    """
    from gliotype.input import SEQUENCES
    from gliotype.modalities.build import missing_sequences

    workdir = WorkDir.of(workdir)
    if models is None:
        models = SelfSupervisedModels.load(workdir.ssl, workdir.atlas)
    node_model, edge_model, key = models.node, models.edge, models.key
    masked = _needs_tumor(node_model, edge_model)
    sampling = models.sampling if masked else None
    edge_index = torch.from_numpy(models.edge_index).contiguous()
    rows = []
    for pid in progress(patient_ids if patient_ids is not None else available_patients(workdir), "brain networks"):
        path = workdir.case(pid).brain_network
        try:
            record = workdir.case(pid).brain_network_record
            patient_key = f"{key}-{record_digest(workdir.case(pid).modalities_meta)[:20]}" + ("-v" if variants else "")
            if reusable_record(record, patient_key, what=f"patient {pid}") is not None:
                rows.append({"patient_id": pid, "status": "skipped", "reason": ""})
                continue
            s = patient_inputs(workdir, pid, sampling, required=masked)
            missing = missing_sequences(workdir, pid)
            v_n, v_e = encode_patient(models, s, missing)
            tensors = {
                "x": v_n.contiguous(),
                "edge_attr": v_e.contiguous(),
                "edge_index": edge_index,
            }
            for seq in (q for q in SEQUENCES if q not in missing) if variants else ():
                v_n, v_e = encode_patient(models, s, (*missing, seq))
                tensors[f"x_without_{seq}"], tensors[f"edge_attr_without_{seq}"] = v_n.contiguous(), v_e.contiguous()
            if masked:
                tensors["node_tumor_fraction"] = to_tensor(s["node_tumor"].mean(1))
                tensors["edge_tumor_fraction"] = to_tensor(s["tract_tumor"].mean(1))
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp))  # the key lives in the record, not in the file
            write_record(record, patient_key, [path.name])
            rows.append({"patient_id": pid, "status": "done", "reason": ""})
        except Exception as exc:  # one bad case never stops the cohort
            stop_on_environment(exc)  # a full disk does
            rows.append({"patient_id": pid, "status": "failed", "reason": one_line(exc)})
            log.warning("patient %s: brain network failed: %s", pid, rows[-1]["reason"])
    table = pd.DataFrame(rows, columns=["patient_id", "status", "reason"])
    write_csv_atomic(table, workdir.brain_network_status)
    return table


def load_brain_network(workdir: str | Path | WorkDir, patient_id: str):
    """x_B as a ``torch_geometric.data.Data``: ``x`` (R, 16) node attributes, ``edge_index``
    (2, T) 0-based region indices of each tract (one direction), ``edge_attr`` (T, 16)."""
    from torch_geometric.data import Data

    t = _load_tensors(workdir, patient_id)
    return Data(x=t["x"], edge_index=t["edge_index"], edge_attr=t["edge_attr"])


def _load_tensors(workdir: str | Path | WorkDir, patient_id: str) -> dict[str, torch.Tensor]:
    """Every tensor of a patient's ``brain_network.safetensors``; a missing or unreadable file is one line."""
    path = WorkDir.of(workdir).case(patient_id).brain_network
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CaseError(patient_id, path, "no brain network: run `gliotype ssl encode` first") from None
    except Exception:
        raise CaseError(patient_id, path, "unreadable (truncated or not a safetensors file): run "
                        "`gliotype ssl encode` again") from None


def load_brain_network_variants(workdir: str | Path | WorkDir, patient_id: str) -> dict[str, tuple]:
    """sequence -> ``(x, edge_attr)`` of x_B encoded without that sequence, for every stored variant
    (written by :func:`encode_brain_networks` with ``variants``; empty when there are none)."""
    t = _load_tensors(workdir, patient_id)
    prefix = "x_without_"
    return {k[len(prefix):]: (t[k], t[f"edge_attr_without_{k[len(prefix):]}"]) for k in sorted(t)
            if k.startswith(prefix)}
