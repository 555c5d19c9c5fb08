"""Radiomics baselines of Table 3 (issue 16; not in the paper): the standard of IDH papers.

Features: pyradiomics (``RadiomicsFeatureExtractor`` with explicit settings) on the
**preprocessed** sequences of the work folder, the template-grid volumes the method
sees (:class:`gliotype.layout.CaseDir`), inside the tumour region of
``radiomics.labels`` (``whole``: every label > 0; ``core``: 1, 3, 4; a region under
``preprocess.min_tumor_voxels`` falls back to the whole tumour, as the modalities do):

- IBSI-style classes of ``radiomics.features`` (shape, first order, GLCM, GLRLM, GLSZM by
  default) on the original image of each sequence of ``radiomics.sequences``, plus the
  ``radiomics.filters`` (``wavelet``, ``log`` with ``log_sigma_mm``; none by default);
- fixed bin width ``radiomics.bin_width`` (intensity units of the normalised volumes), no
  resampling (``resampledPixelSpacing`` None: the template grid is isotropic already), no
  further normalisation, 3D; the shape class is computed once (it depends on the mask only);
- volumes cropped to the region's bounding box + :data:`PAD` voxels first (pyradiomics
  crops to the box + 5 itself; the crop only saves its work on the whole volume) and
  SimpleITK on one thread.

Columns: ``original_shape_<F>`` and ``<sequence>_<image type>_<class>_<F>``. Each patient's
features are cached in ``patients/<id>/radiomics/features.json`` with a record
(:mod:`gliotype.utils.records`) whose key covers the preprocessing record's digest, every
radiomics setting, the fallback minimum and the pyradiomics and gliotype versions. A
patient whose extraction fails gets one warning line naming it and the file and is left
out of the radiomics rows; the run goes on.

Classifiers (:func:`radiomics_classifier`): median imputation -> variance threshold ->
standardisation -> ``SelectKBest(f_classif, select_k)`` -> L2 logistic regression or RBF
SVM (Platt probabilities), C chosen by seeded inner stratified CV; every step is fitted
inside each training fold, so no test (or held-out fold) patient reaches the scaling or the
selection.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from gliotype import __version__
from gliotype.config.schema import FeatureClassifiersConfig, RadiomicsConfig
from gliotype.errors import one_line, stop_on_environment
from gliotype.layout import WorkDir
from gliotype.utils.io import atomic_write
from gliotype.utils.logging import get_logger
from gliotype.utils.parallel import parallel_map
from gliotype.utils.records import record_digest, reusable_record, write_record

log = get_logger(__name__)

#: voxels kept around the region's bounding box before pyradiomics (it pads by 5 itself)
PAD = 10
#: pyradiomics image type names of the filters of ``radiomics.filters``
FILTERS = {"wavelet": "Wavelet", "log": "LoG"}


def extractor_settings(config: RadiomicsConfig) -> dict:
    """The explicit pyradiomics settings (every one that changes a value is named)."""
    return {"binWidth": float(config.bin_width), "resampledPixelSpacing": None, "interpolator": "sitkBSpline",
            "normalize": False, "force2D": False, "label": 1, "correctMask": False, "additionalInfo": False,
            "padDistance": 5, "minimumROIDimensions": 2, "minimumROISize": None, "voxelArrayShift": 0,
            "preCrop": False}


def radiomics_key(work: WorkDir, patient_id: str, config: RadiomicsConfig, min_voxels: int) -> str:
    """What a patient's features depend on: its preprocessed volumes (the preprocessing record's
    key and file hashes), every radiomics setting, the fallback minimum, the versions."""
    import radiomics

    settings = config.model_dump(mode="json", include={"features", "filters", "bin_width", "labels", "sequences"})
    if "log" in config.filters:
        settings["log_sigma_mm"] = list(config.log_sigma_mm)
    text = json.dumps([record_digest(work.case(patient_id).done), settings, extractor_settings(config),
                       int(min_voxels), radiomics.__version__, __version__], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _extractors(config: RadiomicsConfig):
    """(texture extractor or None, shape extractor or None) for the configured classes and filters."""
    import logging

    from radiomics import featureextractor, setVerbosity

    setVerbosity(logging.ERROR)  # errors only: pyradiomics logs every feature class at INFO
    logging.getLogger("radiomics").setLevel(logging.ERROR)  # and its records propagate to the root logger
    settings = extractor_settings(config)
    if "log" in config.filters:
        settings["sigma"] = [float(s) for s in config.log_sigma_mm]

    def make(classes, image_types):
        ext = featureextractor.RadiomicsFeatureExtractor(**settings)
        ext.disableAllFeatures()
        ext.enableFeaturesByName(**{c: [] for c in classes})
        ext.disableAllImageTypes()
        for name in image_types:
            ext.enableImageTypeByName(name, customArgs={})
        return ext

    texture = [c for c in config.features if c != "shape"]
    return (make(texture, ["Original", *(FILTERS[f] for f in config.filters)]) if texture else None,
            make(["shape"], ["Original"]) if "shape" in config.features else None)


def _image(array: np.ndarray, spacing: Sequence[float], origin: Sequence[float]):
    """A SimpleITK image of a (x, y, z) array (SimpleITK indexes z, y, x)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in origin])
    return img


def _values(result: dict, prefix: str = "") -> dict[str, float]:
    """pyradiomics' result without its diagnostics, as floats, names prefixed."""
    return {f"{prefix}{k}": float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def extract_case(work: str | Path | WorkDir, patient_id: str, config: RadiomicsConfig,
                 min_voxels: int = 10) -> tuple[dict[str, float], str]:
    """The radiomics features of one preprocessed patient and a note ('' or the region's fallback).

    Raises :class:`gliotype.CaseError` naming the patient and the file being read or
    measured when anything fails."""
    import nibabel as nib
    import SimpleITK as sitk

    from gliotype.errors import CaseError
    from gliotype.modalities.tumor_image import tumor_binary_mask, tumor_region

    case = WorkDir.of(work).case(patient_id)
    current = case.mask
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # small crops: threads cost more than they save
    try:
        img = nib.load(str(current))
        mask = np.asarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
        region, fell_back = tumor_region(mask, config.labels, min_voxels)
        if not region.any():
            raise ValueError("the tumour mask is empty")
        note = (f"whole tumour used: radiomics region {config.labels} has "
                f"{int(tumor_binary_mask(mask, config.labels).sum())} voxels (< {min_voxels})") if fell_back else ""
        idx = np.argwhere(region)
        lo, hi = np.maximum(idx.min(0) - PAD, 0), np.minimum(idx.max(0) + PAD + 1, region.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        origin = affine[:3, :3] @ lo + affine[:3, 3]
        roi = _image(region[box].astype(np.uint8), spacing, origin)
        texture, shape = _extractors(config)
        out: dict[str, float] = {}
        for i, seq in enumerate(config.sequences):
            current = case.sequence(seq)
            image = _image(np.asarray(nib.load(str(current)).dataobj, dtype=np.float32)[box], spacing, origin)
            if i == 0 and shape is not None:
                out.update(_values(shape.execute(image, roi)))
            if texture is not None:
                out.update(_values(texture.execute(image, roi), f"{seq}_"))
    except Exception as exc:
        stop_on_environment(exc)  # a full disk stops the stage
        if isinstance(exc, CaseError):
            raise
        if isinstance(exc, FileNotFoundError) or not Path(current).is_file():
            problem = "the preprocessed file is missing (rerun preprocessing)"
        else:  # no directory in the line: it may go into shared logs
            problem = f"{type(exc).__name__}: {one_line(exc).replace(str(case.root), '...')}"
        raise CaseError(patient_id, current, f"radiomics failed: {problem}") from None
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    return out, note


def _cached(work: WorkDir, pid: str, key: str) -> dict[str, float] | None:
    case = work.case(pid)
    if reusable_record(case.radiomics_record, key, what=f"patient {pid}") is None:
        return None
    try:
        return {str(k): float(v) for k, v in json.loads(case.radiomics_features.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return None


def _extract_task(task: tuple) -> tuple[str, dict | None, str]:
    """One patient in a worker: extract, write the features and their record; (pid, features or
    None, the warning line or the note)."""
    root, pid, config, min_voxels, key = task
    work = WorkDir.of(root)
    try:
        features, note = extract_case(work, pid, config, min_voxels)
    except Exception as exc:
        stop_on_environment(exc)
        return pid, None, one_line(exc, 300)
    case = work.case(pid)
    case.radiomics.mkdir(parents=True, exist_ok=True)
    atomic_write(case.radiomics_features, json.dumps(features, indent=1, sort_keys=True))
    write_record(case.radiomics_record, key, [case.radiomics_features.name], features=len(features), note=note)
    return pid, features, note


def _crashed(task: tuple) -> tuple[str, None, str]:
    return task[1], None, f"patient {task[1]}: radiomics failed: the worker process died (out of memory?)"


def radiomics_features(work: str | Path | WorkDir, patient_ids: Sequence[str], config: RadiomicsConfig,
                       min_voxels: int = 10, workers: int = 1) -> pd.DataFrame:
    """Features of ``patient_ids`` (rows, in that order; index ``patient_id``), cached per patient;
    a patient whose extraction failed is absent (one warning line each). Uncached patients
    are extracted in ``workers`` processes."""
    work = WorkDir.of(work)
    ids = [str(p) for p in patient_ids]
    keys = {pid: radiomics_key(work, pid, config, min_voxels) for pid in ids}
    found = {pid: f for pid in ids if (f := _cached(work, pid, keys[pid])) is not None}
    todo = [(str(work.root), pid, config, int(min_voxels), keys[pid]) for pid in ids if pid not in found]
    if todo:
        log.info("radiomics: extracting %d patient(s) (%d cached), %d worker(s)", len(todo), len(found), workers)
        # fork (no re-import): the workers run no torch and no OpenMP (pyradiomics' C code, SimpleITK
        # on one thread, numpy), so a parent that trained networks cannot hang them
        for pid, features, line in parallel_map(_extract_task, todo, workers, desc="radiomics", start="fork",
                                                on_crash=_crashed):
            if features is None:
                log.warning("%s; left out of the radiomics rows", line)
            else:
                found[pid] = features
                if line:
                    log.info("patient %s: %s", pid, line)
    rows = [pd.Series(found[pid], name=pid) for pid in ids if pid in found]
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="patient_id"))
    df = pd.DataFrame(rows)
    df.index.name = "patient_id"
    return df[sorted(df.columns)]  # the same order whether extracted now or read back


# --------------------------------------------------------------------------- classifiers


def fold_plan(kind: str, y, fc: FeatureClassifiersConfig | None = None, out_of_fold: bool = False,
              tuned: bool = True) -> tuple[int | None, list[int]]:
    """(outer folds of the out-of-fold predictions or None, [inner CV folds when ``tuned``
    (C chosen among several), then the SVM's Platt folds]) for labels ``y``, each no more
    than the smaller class allows (ValueError when it allows fewer than 2)."""
    from gliotype.evaluation.baselines import nested_folds

    fc = fc or FeatureClassifiersConfig()
    if kind not in ("lr", "svm"):
        raise ValueError(f"unknown radiomics classifier {kind!r}: lr or svm")
    wanted = (([fc.inner_folds] if out_of_fold else []) + ([fc.inner_folds] if tuned else [])
              + ([5] if kind == "svm" else []))
    plan = nested_folds(y, wanted)
    return (plan[0], plan[1:]) if out_of_fold else (None, plan)


def radiomics_classifier(kind: str, y, config: RadiomicsConfig | None = None,
                         fc: FeatureClassifiersConfig | None = None, seed: int = 0, out_of_fold: bool = False):
    """The unfitted ``Radiomics + LR`` (``lr``) or ``+ SVM`` (``svm``) model for training labels ``y``.

    A seeded ``GridSearchCV`` over C (``config.cs``, criterion ``fc.scoring``; one C: the
    pipeline itself) of the pipeline
    median imputation -> ``VarianceThreshold`` -> ``StandardScaler`` -> ``SelectKBest(f_classif,
    k)`` (all columns when fewer than k are left) -> L2 ``LogisticRegression`` / RBF ``SVC``
    with Platt probabilities: each inner fold refits every step on its own training part.
    Fold counts follow the smaller class (:func:`gliotype.evaluation.baselines.nested_folds`);
    ``out_of_fold`` leaves room for the outer folds of
    :func:`gliotype.evaluation.baselines.out_of_fold_proba`.
    """
    config, fc = config or RadiomicsConfig(), fc or FeatureClassifiersConfig()
    tuned = len(config.cs) > 1
    _, folds = fold_plan(kind, y, fc, out_of_fold, tuned)
    c = float(config.cs[0])
    if kind == "lr":
        clf, grid = LogisticRegression(C=c, max_iter=5000), "clf__C"
    else:
        clf = CalibratedClassifierCV(SVC(kernel="rbf", C=c, random_state=seed), method="sigmoid", cv=folds[-1],
                                     ensemble=False)
        grid = "clf__estimator__C"
    pipe = Pipeline([("impute", SimpleImputer(strategy="median")), ("variance", VarianceThreshold()),
                     ("scale", StandardScaler()), ("select", SelectKBest(f_classif, k=config.select_k)),
                     ("clf", clf)])
    if not tuned:
        return pipe
    inner = StratifiedKFold(folds[0], shuffle=True, random_state=seed)
    return GridSearchCV(pipe, {grid: [float(c) for c in config.cs]}, cv=inner, scoring=fc.scoring)


@contextmanager
def quiet_selection():
    """Silence what a small fold says and does not matter: k above the columns left (all are
    kept), a constant column's F statistic, the logistic regression stopping at max_iter."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"k=\d+ is greater than n_features")
        warnings.filterwarnings("ignore", message="Features .* are constant", category=UserWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning, message="invalid value encountered")
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def finite_matrix(df: pd.DataFrame) -> np.ndarray:
    """Features as float64 with every non-finite value NaN (imputed inside the pipeline)."""
    x = df.to_numpy(dtype=np.float64, copy=True)
    x[~np.isfinite(x)] = np.nan
    return x


def selected_columns(model, columns: Sequence[str]) -> list[str]:
    """The feature names the fitted model's selection kept (its best estimator's)."""
    pipe = getattr(model, "best_estimator_", model)
    kept = np.asarray(columns)[pipe.named_steps["variance"].get_support()]
    return [str(c) for c in kept[pipe.named_steps["select"].get_support()]]


__all__ = ["FILTERS", "PAD", "extract_case", "extractor_settings", "finite_matrix", "fold_plan", "quiet_selection",
           "radiomics_classifier", "radiomics_features", "radiomics_key", "selected_columns"]
