"""The stages of the method: one keyed, cached function each, called by everyone.

``gliotype run`` (:mod:`gliotype.experiment.run`), ``gliotype predict``
(:mod:`gliotype.prediction.predict`), the CLI and the test fixtures sequence the
stages through these functions only; each stage owns its cache key (what its files
depend on, upstream keys included), so a changed setting reruns that stage and every
stage after it, and an unchanged one is reused::

    stage              paper        function here               hands off (docs/architecture.md)
    cohort             4.1          cohort(...)                 usable manifest rows
                                    (scan(...), validate(...): its two halves)
    preprocess         4.2          preprocess(...)             WORKDIR/patients/<id>/ volumes
    modalities         3.2          modalities(...)             x_I, x_P, crossings, atlas samples
    self-supervised    3.2, eq. 1   self_supervised(...)        x_B = {v_N, v_E} per patient
    multi-modal        3.3-3.4      multimodal(...)             the trained network (RUNDIR/models/<row>)
    features           3.5          features(...)               u_I, u_P, u_T, u_B per patient
    population graph   3.5, eq. 8   population_graph(...)       Table 2 rows and the chosen GNN
    baselines          4.3          baselines(...)              Table 3's 3D CNN rows
    radiomics          (issue 16)   radiomics(...)              features of Table 3's radiomics rows
    evaluation         4.1          evaluate(...)               a table of AUC, ACC, SEN, SPE

:func:`prepare` is preprocess + modalities (the per-patient half of a run); the per-patient
stages run on the config's ``executor``: local processes, or a Dask cluster (docs/scale-out.md);
:func:`featurise_case` takes one new patient through every per-patient stage with the
parts a trained model holds (prediction). The tables' rows are selected by their key
(:attr:`gliotype.experiment.tables.Scored.key`), never by their printed name.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.config import GliotypeConfig
from gliotype.errors import CaseError
from gliotype.layout import WorkDir
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

#: The status of a patient in a stage's table that lets it go on to the next stage.
USABLE = ("done", "skipped")


def usable(status: pd.DataFrame) -> list[str]:
    """The patients of a stage's status table (``patient_id``, ``status``, ``reason``) that can go on."""
    return status.loc[status["status"].isin(USABLE), "patient_id"].astype(str).tolist()


#: ``timer(name)``: a context manager around one stage (``gliotype run`` times each stage).
StageTimer = Callable[[str], AbstractContextManager]


def _untimed(name: str) -> AbstractContextManager:
    return nullcontext()


def _engine(config: GliotypeConfig | None) -> AbstractContextManager:
    """The per-patient stages of ``config`` on its ``executor`` (a Dask cluster, or the current
    engine when local: :func:`gliotype.utils.executor.use_executor`)."""
    from gliotype.utils.executor import use_executor

    return use_executor(None if config is None else config.executor)


@dataclass
class Validation:
    """What :func:`validate` found: the manifest rows and one report per row (manifest order)."""

    manifest: pd.DataFrame
    reports: list

    @property
    def ok(self) -> list[str]:
        """The patients every check passed."""
        return [r.patient_id for r in self.reports if r.status == "ok"]

    @property
    def usable(self) -> pd.DataFrame:
        """The manifest rows of the patients every check passed."""
        ok = set(self.ok)
        return self.manifest[self.manifest["patient_id"].astype(str).isin(ok)].reset_index(drop=True)

    def status(self, warnings: bool = False) -> pd.DataFrame:
        """One row per case: ``patient_id``, ``status``, ``reason`` (and its ``warnings``)."""
        return pd.DataFrame([{"patient_id": r.patient_id, "status": r.status, "reason": r.reason,
                              **({"warnings": "; ".join(r.warnings)} if warnings else {})} for r in self.reports])

    def summary(self) -> str:
        """The table of every case, then the usable cohort (``gliotype cohort validate`` prints it)."""
        from gliotype.input import cohort_summary, validation_table

        return validation_table(self.reports) + "\n" + cohort_summary(self.usable)


@dataclass
class Prepared:
    """What :func:`prepare` did: the two status tables and the patients ready for the model stages."""

    preprocessing: pd.DataFrame
    modalities: pd.DataFrame
    ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Patients per status of each stage and every failure's reason (``gliotype preprocess`` prints it)."""
        lines = []
        for status, what in ((self.preprocessing, "preprocessing"), (self.modalities, "modalities")):
            counts = status["status"].value_counts().to_dict()
            lines.append(f"{what}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
            failed = status[status["status"] == "failed"]
            lines += [f"  patient {r.patient_id}: {r.reason}" for r in failed.itertuples()]
        return "\n".join(lines)


# --------------------------------------------------------------------------- per patient


def scan(root: str | Path, manifest: str | Path, layout: str = "auto",
         labels: str | Path | None = None, dicom_overrides: str | Path | None = None) -> pd.DataFrame:
    """Find every patient's T1, T1c, T2, FLAIR, mask (and FA) under ``root`` (``layout``: auto
    or a named one; ``labels``: a CSV of IDH labels) and write the manifest CSV ``manifest``.

    DICOM studies are converted into ``dicom_nifti/`` beside the manifest (reused by the next
    scan while their files are unchanged); ``dicom_overrides``: a CSV of series roles that win
    over the heuristic (:mod:`gliotype.input.dicom`)."""
    from gliotype.input import scan_cohort, write_manifest
    from gliotype.layout import DICOM_NIFTI

    df = scan_cohort(root, layout=layout, labels=labels, convert_dir=Path(manifest).resolve().parent / DICOM_NIFTI,
                     dicom_overrides=dicom_overrides)
    write_manifest(df, manifest)
    return df


def validate(manifest: str | Path, workers: int = 1, report: str | Path | None = None,
             config: GliotypeConfig | None = None) -> Validation:
    """Check every case of the manifest CSV under ``config``'s input rules (``input.max_voxels``,
    ``preprocess.nonfinite``; the defaults when None); with ``report``, also write the table
    (with warnings) there."""
    from gliotype.input import InputRules, read_manifest, validate_manifest
    from gliotype.utils.io import write_csv_atomic

    df = read_manifest(manifest)
    rules = InputRules() if config is None else InputRules.of(config)
    with _engine(config):
        checked = Validation(df, validate_manifest(df, workers=workers, rules=rules))
    if report is not None:
        write_csv_atomic(checked.status(warnings=True), report)
    return checked


def cohort(data: Path | None, manifest: Path | None, out, workers: int,
           config: GliotypeConfig | None = None) -> pd.DataFrame:
    """Scan ``data`` (or read ``manifest``) and validate every case (under ``config``'s input
    rules, see :func:`validate`); returns the usable rows.

    Writes ``manifest.csv`` (when scanned) and ``validation.csv`` into the run folder ``out``;
    a rejected case is logged with its reason and left out.
    """
    from gliotype.errors import GliotypeError
    from gliotype.layout import RunDir
    from gliotype.utils.io import write_csv_atomic

    run = RunDir.of(out)
    if manifest is None:
        if data is None:
            raise GliotypeError("give --data DIR or --manifest CSV")
        scan(data, run.manifest, labels=data / "labels.csv" if (data / "labels.csv").exists() else None)
        manifest = run.manifest
    checked = validate(manifest, workers, config=config)
    write_csv_atomic(checked.status(), run.validation)
    for r in checked.reports:
        if r.status != "ok":
            log.warning("patient %s skipped: %s", r.patient_id, r.reason)
    if not checked.ok:
        raise GliotypeError("no usable case in the cohort")
    return checked.usable


def preprocess(rows: pd.DataFrame, work: str | Path | WorkDir, config: GliotypeConfig, workers: int = 1,
               bids_derivatives: str | Path | bool = False) -> pd.DataFrame:
    """Registration, normalisation, template warp of every manifest row (cached per patient).

    ``bids_derivatives``: for the rows scanned from a BIDS dataset, also copy the preprocessed
    volumes into a BIDS derivative dataset (:mod:`gliotype.input.bids.derivatives`): True into
    ``<BIDS root>/derivatives/gliotype``, a folder into that folder, False (default) not at all.
    """
    from gliotype.input.bids.derivatives import plan_derivatives, write_planned
    from gliotype.preprocessing import preprocess_cohort

    plan = plan_derivatives(rows, bids_derivatives)  # an unwritable folder stops before the work, not after
    with _engine(config):
        status = preprocess_cohort(rows, work, config, workers=workers)
    write_planned(plan, work)
    return status


def modalities(work: str | Path | WorkDir, ids: Sequence[str], config: GliotypeConfig, workers: int = 1) -> pd.DataFrame:
    """x_I, x_P, the crossings of eq. 2 and the atlas samples of every patient (cached per patient)."""
    from gliotype.modalities.build import build_modalities

    with _engine(config):
        return build_modalities(work, list(ids), config, workers=workers)


def prepare(rows: pd.DataFrame | str | Path, work: str | Path | WorkDir, config: GliotypeConfig, workers: int = 1,
            timer: StageTimer = _untimed, bids_derivatives: str | Path | bool = False) -> Prepared:
    """:func:`preprocess` then :func:`modalities` for the patients preprocessing could use.

    ``rows``: manifest rows or the manifest CSV; ``timer``: see :data:`StageTimer`;
    ``bids_derivatives``: see :func:`preprocess`.
    """
    if not isinstance(rows, pd.DataFrame):
        from gliotype.input import read_manifest

        rows = read_manifest(rows)
    from gliotype.utils.lock import folder_lock

    with folder_lock(WorkDir.of(work).lock, "work folder"), _engine(config):  # one command writes it at a time
        with timer("preprocessing"):
            pre = preprocess(rows, work, config, workers, bids_derivatives)
        with timer("modalities"):
            built = modalities(work, usable(pre), config, workers)
    return Prepared(pre, built, usable(built))


def self_supervised(work: str | Path | WorkDir, config: GliotypeConfig, train_ids: Sequence[str] | None,
                    ids: Sequence[str] | None = None) -> dict:
    """Train the node autoencoder and the edge model on ``train_ids`` (the FA patients), then
    write x_B for ``ids`` (every patient when None; with its variants without each sequence when
    ``multimodal.sequence_dropout`` > 0). Returns the training report."""
    from gliotype.self_supervised import encode_brain_networks, train_self_supervised

    report = train_self_supervised(work, config, None if train_ids is None else list(train_ids))
    encode_brain_networks(work, None if ids is None else list(ids), variants=config.multimodal.sequence_dropout > 0)
    return report


# --------------------------------------------------------------------------- the model


def image_pretraining(work: str | Path | WorkDir, config: GliotypeConfig, ids: Sequence[str]) -> None:
    """f_I pretrained on the compartments of ``ids`` (docs/design.md point 50; cached in the work
    folder), once, before the networks that start from it train side by side; nothing unless
    ``multimodal.image.pretrain_epochs`` > 0."""
    from gliotype.multimodal.pretrain import pretrain_image_encoder, pretrains_image

    if pretrains_image(config.multimodal):
        pretrain_image_encoder(work, list(ids), config)


def multimodal(work: str | Path | WorkDir, folder: str | Path, train_ids: Sequence[str], labels: Mapping[str, float],
               config: GliotypeConfig, unlabelled_ids: Sequence[str] | None = None,
               pretrain_ids: Sequence[str] | None = None, feature_ids: Sequence[str] | None = None):
    """The multi-modal network trained on ``train_ids`` (cached in ``folder`` under its key), starting
    from f_I pretrained on ``pretrain_ids`` when the config asks for it; with ``feature_ids``, also their
    features (:func:`features`, cached with the network), so a pool that trains networks side by side
    extracts them side by side too."""
    from gliotype.multimodal.stage import train_multimodal

    model = train_multimodal(work, folder, list(train_ids), labels, config,
                             unlabelled_ids=None if unlabelled_ids is None else list(unlabelled_ids),
                             pretrain_ids=None if pretrain_ids is None else list(pretrain_ids))
    if feature_ids is not None:
        features(work, folder, feature_ids, config)
    return model


def features(work: str | Path | WorkDir, folder: str | Path, ids: Sequence[str], config: GliotypeConfig) -> pd.DataFrame:
    """u_I, u_P, u_T, u_B of ``ids`` from the network in ``folder`` (cached with the network's key)."""
    from gliotype.multimodal.stage import features_for

    return features_for(work, folder, list(ids), config)


def population_graph(feats: pd.DataFrame, y: np.ndarray, in_train: np.ndarray, ids: Sequence[str],
                     config: GliotypeConfig, store=None, cohort: pd.DataFrame | None = None):
    """Every Table 2 population graph with its GNN (eq. 8 edges, section 3.5) and the one
    chosen for Table 3; returns ``(rows, chosen)``. ``store(node, edge)``: each row's folder
    (``RunDir(...).graph_row`` with the fold), where a trained row is cached under its key.
    ``cohort``: the manifest rows, whose ``age`` and ``sex`` weight the edges with
    ``population_graph.phenotype: age_sex``."""
    return population_graphs([GraphFold(feats, y, in_train, list(ids), store)], config, cohort)[0]


@dataclass
class GraphFold:
    """The population graphs of one fold: the full model's features of its patients ``ids``
    (classifier half + test), their labels ``y``, which are labelled (``in_train``) and where
    each Table 2 row is stored (``store(node, edge)``, or None)."""

    features: pd.DataFrame
    y: np.ndarray
    in_train: np.ndarray
    ids: list[str]
    store: Callable | None = None


def population_graphs(folds: Sequence[GraphFold], config: GliotypeConfig,
                      cohort: pd.DataFrame | None = None) -> list[tuple[list, object]]:
    """:func:`population_graph` of several folds at once: every fold's Table 2 rows share one pool of
    ``config.workers`` processes (each row is seeded on its own: the same rows as fold by fold).
    Returns ``(rows, chosen)`` per fold."""
    from gliotype.experiment.tables import chosen_population_graph, table2_tasks, train_table2
    from gliotype.multimodal.stage import feature_matrix
    from gliotype.population_graph.graph import phenotypes_of

    pg = config.population_graph
    tasks = [table2_tasks(feature_matrix(f.features, "u_T"), feature_matrix(f.features, "u_B"), f.y, f.in_train,
                          f.ids, pg, config.seed, store=f.store,
                          phenotypes=phenotypes_of(cohort, f.ids) if pg.phenotype != "none" else None)
             for f in folds]
    with _engine(config):
        trained = iter(train_table2([t for fold in tasks for t in fold], workers=config.workers))
    out = []
    for f, fold in zip(folds, tasks):
        rows = [next(trained) for _ in fold]
        out.append((rows, chosen_population_graph(rows, f.y[f.in_train], pg)))
    return out


def baselines(work: str | Path | WorkDir, run, train_ids: Sequence[str], threshold_ids: Sequence[str],
              test_ids: Sequence[str], labels: Mapping[str, float], config: GliotypeConfig) -> list:
    """Table 3's 3D CNNs on x_I, trained on ``train_ids`` (cached per model under
    ``RUNDIR/baselines``); each scores ``threshold_ids`` (its threshold is chosen on
    these fitted predictions) and ``test_ids``. Returns one ``Scored`` per model (its key: the
    model's name in ``baselines.models``). ``gliotype run`` trains them ahead, beside the
    self-supervised models (:func:`baseline_trainings`); here they are trained, or found cached,
    one after the other."""
    from gliotype.evaluation.baselines import predict_cnn
    from gliotype.experiment.tables import CNN_ROWS, Scored

    work = WorkDir.of(work)
    models = []
    for name, train in baseline_trainings(work, run, train_ids, labels, config).items():
        model = train()
        models.append(Scored(CNN_ROWS[name], predict_cnn(model, work, list(threshold_ids)),
                             predict_cnn(model, work, list(test_ids)), key=name))
    return models


def baseline_trainings(work: str | Path | WorkDir, run, train_ids: Sequence[str], labels: Mapping[str, float],
                       config: GliotypeConfig) -> dict[str, Callable]:
    """``{name: training}`` of every CNN baseline: a picklable call that trains it on ``train_ids``
    (or returns the cached one), so a run can train them ahead, beside other stages
    (:func:`gliotype.experiment.networks.train_networks`)."""
    from gliotype.config import config_hash
    from gliotype.evaluation.baselines import train_cnn
    from gliotype.layout import RunDir
    from gliotype.modalities.build import modalities_key

    run, work = RunDir.of(run), WorkDir.of(work)
    return {name: functools.partial(
        train_cnn, name, work, run.baseline(name), list(train_ids), labels, config.baselines, config.seed,
        inputs_key=config_hash(config, "modalities", "preprocess") + modalities_key(work, train_ids),
        train=config.train) for name in config.baselines.models}


def radiomics(work: str | Path | WorkDir, ids: Sequence[str], config: GliotypeConfig) -> pd.DataFrame:
    """pyradiomics features of the preprocessed sequences of ``ids`` (``radiomics`` settings;
    cached per patient under ``patients/<id>/radiomics/``): one row per patient, index
    ``patient_id``; a patient whose extraction failed is left out with one warning line."""
    from gliotype.evaluation.radiomics import radiomics_features

    with _engine(config):
        return radiomics_features(work, list(ids), config.radiomics, config.preprocess.min_tumor_voxels,
                                  config.workers)


def hand_made_features(work: str | Path | WorkDir, config: GliotypeConfig, radiomics_ids: Sequence[str],
                       descriptor_ids: Sequence[str]) -> None:
    """Fill the per-patient caches of the hand-made features a split reads after its networks: the
    radiomics of Table 3's radiomics rows (``radiomics_ids``, when ``radiomics.enabled``) and the
    audit's descriptors of the observable ceiling (``descriptor_ids``), in this one process. ``gliotype
    run`` gives it to the self-supervision stage's pool, where it takes the core the CNN baselines
    leave idle while f_I pretrains; the later stages then find every patient cached (a patient that
    failed here is tried, and reported, again there). Computes nothing else."""
    from gliotype.audit.descriptors import descriptor_table

    one = config.model_copy(update={"workers": 1})
    if config.radiomics.has_rows:
        radiomics(work, radiomics_ids, one)
    descriptor_table(work, list(descriptor_ids), workers=1)


def evaluate(models: list, y_train: np.ndarray, y_test: np.ndarray, config: GliotypeConfig,
             reference: str | None = None) -> pd.DataFrame:
    """AUC, ACC, SEN, SPE (threshold from the training predictions) of every scored model; with
    ``reference`` (a row's key), DeLong's p-value of each model against that row."""
    from gliotype.experiment.tables import table

    return table(models, y_train, y_test, config.evaluation, reference=reference, seed=config.seed)


# --------------------------------------------------------------------------- one new patient


@dataclass
class CaseFeatures:
    """One new patient taken through every per-patient stage (:func:`featurise_case`)."""

    patient_id: str
    qc: dict  # preprocessing quality control (qc.json)
    modalities: dict  # modalities.json information (crop, tracts crossed, ...)
    features: pd.DataFrame  # one row: u_I, u_P, u_T, u_B (and p_head)
    seconds: dict = field(default_factory=dict)
    preprocessed: str = "done"  # "skipped": found preprocessed in the work folder (under the same cache key)


def featurise_case(row: Mapping, work: str | Path | WorkDir, config: GliotypeConfig, network, *,
                   atlas=None, ssl=None, lap=None) -> CaseFeatures:
    """Preprocess, build the modalities, encode x_B and extract the features of one patient
    (``row``: patient_id and the five input files) with a trained model's parts:
    ``network`` (the multi-modal network), ``atlas`` (its atlas sampling) and ``ssl`` (its
    self-supervised models; both default to the work folder's). Raises :class:`CaseError`."""
    from gliotype.modalities.build import build_case_modalities
    from gliotype.multimodal.stage import extract_features
    from gliotype.preprocessing import preprocess_case
    from gliotype.self_supervised import encode_brain_networks

    pid = str(row["patient_id"])
    lap = lap or (lambda name: None)
    res = preprocess_case(dict(row), work, config)
    if res.status not in USABLE:
        raise CaseError(pid, None, res.reason or "preprocessing failed")
    lap("preprocessing")
    # preprocessed already under the same key (gliotype.prediction.preprocessing_ahead): its qc.json
    qc = res.info["qc"] if res.status == "done" else json.loads(WorkDir.of(work).case(pid).qc.read_text())
    mod = build_case_modalities(work, pid, config, atlas=atlas)
    if mod.status not in USABLE:
        raise CaseError(pid, None, f"building the modalities failed: {mod.reason}")
    lap("modalities")
    bn = encode_brain_networks(work, [pid], models=ssl)
    if bn["status"].iloc[0] not in USABLE:
        raise CaseError(pid, None, f"encoding the brain network failed: {bn['reason'].iloc[0]}")
    lap("brain_network")
    feats = extract_features(work, network, [pid], config.multimodal, batch_size=1)
    lap("features")
    return CaseFeatures(pid, qc, mod.info, feats, preprocessed=res.status)


__all__ = ["CaseFeatures", "Prepared", "StageTimer", "USABLE", "Validation", "baselines", "cohort", "evaluate",
           "featurise_case", "features", "modalities", "multimodal", "population_graph", "preprocess", "prepare",
           "radiomics", "scan", "self_supervised", "usable", "validate"]
