"""Single-patient prediction and explanations with a trained model folder (paper sections 3.4, 4.5).

- :func:`load_model`: verify (sha256 manifest) and load ``RUNDIR/model`` without unpickling.
- :func:`predict_patient`: preprocess, build the modalities with the stored atlas sampling,
  encode, insert into the stored population graph (inductive) and predict; writes
  ``prediction.json``, ``report.html``, Figs. 7-8 and the Grad-CAM maps atomically.
- :func:`explain_run`: Figs. 7-8 and Grad-CAM maps for patients of a finished run, and the
  density of important edges by IDH group.

Modules: ``opened`` verifying a model folder and reading its configuration, ``model`` loading
its networks, ``ahead`` the child processes started before they load (the patient's
preprocessing, the explainer), ``inputs`` a patient's files and ID,
``predict`` the pipeline, ``insertion`` the stored population graph, ``explain`` and
``report`` the explanations and the report, ``publish`` the all-or-nothing output folder,
``missing`` what a missing sequence does to a model (the export's sequence spread, the widened interval).

See ``docs/prediction.md``.
"""

import importlib

#: name -> the module of this package that defines it. Imported when first asked for (PEP 562),
#: so the light modules (``opened``, ``ahead``, ``inputs``) load without the networks' libraries:
#: ``gliotype predict`` starts the patient's preprocessing before it imports torch.
_WHERE = {
    "ModelError": "model", "TrainedModel": "model", "load_model": "model", "verify_manifest": "model",
    "OpenedModel": "opened", "open_model": "opened",
    "preprocessing_ahead": "ahead", "explainer_ahead": "ahead",
    "case_folder_inputs": "inputs", "case_folder_row": "inputs", "case_row": "inputs", "check_inputs": "inputs",
    "inputs_from_case": "inputs", "patient_id_from_files": "inputs", "row_inputs": "inputs",
    "explain_case": "explain", "explain_run": "explain",
    "graph_predict": "insertion",
    "Prediction": "predict", "predict_patient": "predict", "warm_up": "predict",
    "prediction_config": "inputs", "prediction_row": "inputs",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [  # noqa: F822 (defined lazily by __getattr__)
    "OpenedModel",
    "ModelError",
    "Prediction",
    "TrainedModel",
    "case_folder_inputs",
    "case_folder_row",
    "case_row",
    "check_inputs",
    "explain_case",
    "explain_run",
    "explainer_ahead",
    "graph_predict",
    "inputs_from_case",
    "load_model",
    "open_model",
    "patient_id_from_files",
    "predict_patient",
    "prediction_config",
    "prediction_row",
    "preprocessing_ahead",
    "row_inputs",
    "verify_manifest",
    "warm_up",
]
