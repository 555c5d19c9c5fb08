"""Single-patient prediction and explanations with a trained model folder (paper sections 3.4, 4.5).

- :func:`load_model`: verify (sha256 manifest) and load ``RUNDIR/model`` without unpickling.
- :func:`predict_patient`: preprocess, build the modalities with the stored atlas sampling,
  encode, insert into the stored population graph (inductive) and predict; writes
  ``prediction.json``, ``report.html``, Figs. 7-8 and the Grad-CAM maps atomically.
- :func:`explain_run`: Figs. 7-8 and Grad-CAM maps for patients of a finished run, and the
  density of important edges by IDH group.

Modules: ``model`` loading a model folder, ``inputs`` a patient's files and ID,
``predict`` the pipeline, ``insertion`` the stored population graph, ``explain`` and
``report`` the explanations and the report, ``publish`` the all-or-nothing output folder,
``missing`` what a missing sequence does to a model (the export's sequence spread, the widened interval).

See ``docs/prediction.md``.
"""

from gliotype.prediction.explain import explain_case, explain_run
from gliotype.prediction.model import ModelError, TrainedModel, load_model, verify_manifest
from gliotype.prediction.inputs import (
    case_folder_inputs,
    case_folder_row,
    case_row,
    check_inputs,
    inputs_from_case,
    patient_id_from_files,
    row_inputs,
)
from gliotype.prediction.insertion import graph_predict
from gliotype.prediction.predict import Prediction, predict_patient

__all__ = [
    "ModelError",
    "Prediction",
    "TrainedModel",
    "case_folder_inputs",
    "case_folder_row",
    "case_row",
    "check_inputs",
    "explain_case",
    "explain_run",
    "graph_predict",
    "inputs_from_case",
    "load_model",
    "patient_id_from_files",
    "predict_patient",
    "row_inputs",
    "verify_manifest",
]
