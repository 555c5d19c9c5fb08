"""The information audit of a run folder (issue 12): where along the pipeline the IDH signal is.

For every feature group (:mod:`gliotype.audit.groups`) a cross-validated linear-probe AUC
for IDH on the *training* patients (splits ssl, A and B with a label; never test), the
same on half B alone (the patients every group has, for a like-for-like comparison), and,
with the synthetic generator's truth (:mod:`gliotype.synthetic.truth`), how well the group
predicts each latent (:func:`gliotype.audit.probes.latent_association`). Beside them: the
edge homophily of each Table 1 graph (:mod:`gliotype.audit.homophily`) and the *observable
ceiling* (the probe on the hand-made descriptors fitted on the training patients, AUC on the
test patients). A cross-fitted run (``split.protocol: crossfit``) also gets the encoders'
stability across its two folds (:mod:`gliotype.audit.stability`).

Files (atomic, patient IDs only, never a path): ``audit.csv``, ``audit_homophily.csv``,
``audit_descriptors.csv``, ``audit.md`` and ``audit.json`` in ``RUNDIR/results`` (or ``out``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from gliotype.audit.ceiling import TRAINING_SPLITS, descriptor_ceiling
from gliotype.audit.descriptors import descriptor_table
from gliotype.audit.groups import (
    FeatureGroup,
    atlas_groups,
    brain_network_groups,
    descriptor_groups,
    learned_groups,
    reduce_group,
)
from gliotype.audit.homophily import table1_homophily
from gliotype.audit.probes import latent_association, probe_auc
from gliotype.audit.stability import HEAD, FoldStability, fold_stability, stability_sentence
from gliotype.config.schema import PopulationGraphConfig
from gliotype.errors import GliotypeError
from gliotype.layout import ResultsDir, RunDir
from gliotype.utils.io import atomic_write, write_csv_atomic
from gliotype.utils.logging import get_logger
from gliotype.utils.parallel import parallel_map

log = get_logger(__name__)

#: column of the generator's truth -> (audit column, kind of target).
LATENTS = {
    "z_image": ("rho_z_image", "continuous"),
    "z_shape": ("rho_z_shape", "continuous"),
    "z_network": ("rho_z_network", "continuous"),
    "location_group": ("location", "binary"),
    "site": ("site", "categorical"),
}
#: Table 1 feature names -> audit group names.
TABLE1_GROUPS = {"uT": "u_T", "uB": "u_B", "uT_uB": "<u_T, u_B>"}


@dataclass
class InformationAudit:
    """The audit of one run: ``groups`` (one row per feature group), ``homophily`` (one row per
    Table 1 graph), the observable ceiling on the test patients, the Bayes AUC when the truth has
    ``bayes_posterior``, the encoders' stability across the cross-fitting folds (None: the run is
    not cross-fitted), the patients per split and those without descriptors; where its files
    went and the report it was added to."""

    groups: pd.DataFrame
    homophily: pd.DataFrame
    observable_ceiling: float | None
    bayes_auc: float | None = None
    stability: FoldStability | None = None
    patients: dict = field(default_factory=dict)
    missing_descriptors: list[str] = field(default_factory=list)
    folder: Path | None = None  # where its files were written
    report: Path | None = None  # the run's report.html it was added to

    def to_markdown(self) -> str:
        return audit_markdown(self)

    def summary(self) -> str:
        """What ``gliotype audit`` prints: the Markdown, the report it went into, where its files are."""
        lines = [self.to_markdown()]
        if self.report is not None:
            lines.append(f"report: {self.report}")
        return "\n".join([*lines, f"audit files: {self.folder}"])


# --------------------------------------------------------------------------- run folder


@dataclass
class RunFolder:
    """What the audit reads from a run folder. ``features``: the full model's features of fold A
    (encoders on half A: half B and the test patients); ``features_b``: those of fold B (encoders on
    half B: half A and the test patients), None when the run is not cross-fitted."""

    root: Path
    work: Path
    splits: pd.DataFrame
    config: dict
    features: pd.DataFrame | None
    manifest: pd.DataFrame | None
    features_b: pd.DataFrame | None = None


def _first(*paths: Path) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def read_run_folder(rundir: str | Path | RunDir) -> RunFolder:
    """The splits, work folder, config, full-model features (of both folds when cross-fitted) and
    manifest of a run folder written by ``gliotype run`` (also a repeat folder
    ``RUN/repeats/split-seed-S``, whose work folder, config and manifest are the top folder's:
    :class:`~gliotype.layout.RunDir`); one clear error otherwise."""
    run = RunDir.of(rundir)
    root = run.root
    if not root.is_dir():
        raise GliotypeError(f"{root.name or rundir}: no such run folder")
    if not run.splits.exists():
        raise GliotypeError(f"{root.name}: not a run folder (no {run.splits.name}; run `gliotype run` first)")
    work = _first(run.work.root)
    if work is None:
        raise GliotypeError(f"{root.name}: the run's work folder is missing")
    splits = pd.read_csv(run.splits, dtype={"patient_id": str})
    if not {"patient_id", "split", "idh"} <= set(splits.columns):
        raise GliotypeError(f"{root.name}: {run.splits.name} lacks patient_id, split or idh")
    config_path = _first(run.config)
    config = (yaml.safe_load(config_path.read_text()) or {}) if config_path else {}
    features = _read_features(run, "A")
    features_b = _read_features(run, "B") if _cross_fitted(config) else None
    manifest_path = _first(run.manifest)
    manifest = pd.read_csv(manifest_path, dtype=str) if manifest_path else None
    return RunFolder(root, work, splits, config, features, manifest, features_b)


def _cross_fitted(config: dict) -> bool:
    """Whether the run's config (config.yaml) has ``split.protocol: crossfit``."""
    return (config.get("split") or {}).get("protocol") == "crossfit"


def _read_features(run: RunDir, fold: str) -> pd.DataFrame | None:
    """The full model's ``features.csv`` of fold ``fold`` (None when it is missing)."""
    from gliotype.experiment.ablations import FULL_MODEL

    path = run.model_row(FULL_MODEL, fold).features
    return pd.read_csv(path, dtype={"patient_id": str}) if path.exists() else None


def read_truth(path: str | Path) -> pd.DataFrame:
    """The generator's truth (its file, or the synthetic cohort folder holding it) indexed by
    patient ID, only the columns the audit uses (missing ones are fine)."""
    from gliotype.synthetic.truth import read_truth as read_cohort_truth
    from gliotype.synthetic.truth import read_truth_file

    path = Path(path)
    truth = read_cohort_truth(path) if path.is_dir() else read_truth_file(path)
    if truth is None:
        raise GliotypeError(f"{path.name}: no truth file in this folder (a synthetic cohort has one)")
    return _audit_columns(truth)


def _audit_columns(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[[c for c in (*LATENTS, "bayes_posterior") if c in truth]]


def _targets(run: RunFolder, truth: pd.DataFrame | None) -> pd.DataFrame | None:
    """The latents to correlate with: truth's columns; without truth, the manifest's site (when it
    names at least two sites), so a real cohort is checked for site effects too."""
    if truth is not None:
        cols = [c for c in LATENTS if c in truth]
        return truth[cols] if cols else None
    m = run.manifest
    if m is not None and "site" in m and "patient_id" in m:
        sites = m.set_index("patient_id")["site"].replace("", np.nan)
        if sites.dropna().nunique() >= 2:
            return sites.to_frame()
    return None


# --------------------------------------------------------------------------- the audit


def _latent_group(truth: pd.DataFrame | None, ids: list[str]) -> list[FeatureGroup]:
    """The generator's IDH latents themselves (z_image, z_shape, z_network, location_group), a
    reference row: what the probe reaches with these patients when it is given the answer."""
    cols = [c for c in ("z_image", "z_shape", "z_network", "location_group") if truth is not None and c in truth]
    have = [p for p in ids if truth is not None and p in truth.index]
    if not cols or not have:
        return []
    x = truth.loc[have, cols].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    return [FeatureGroup("generator latents (reference)", "truth", have, x)]


def _probe_group(task: tuple) -> dict:
    """The audit row of one feature group (a :func:`parallel_map` item): its probes on the group
    reduced to ``components`` principal components when wider than ``max_dims``."""
    group, train, half_b, labels, targets, seed, folds, repeats, max_dims, components = task
    x = reduce_group(group, train, max_dims, components, seed)
    return _row(group, x, train, half_b, labels, targets, seed, folds, repeats)


def _row(group: FeatureGroup, x: np.ndarray, train: list[str], half_b: list[str], labels: dict, targets,
         seed: int, folds: int, repeats: int) -> dict:
    tr, b = group.rows(train), group.rows(half_b)
    train_ids = [group.patient_ids[i] for i in tr]
    y = np.array([labels[p] for p in train_ids], dtype=int)
    y_b = np.array([labels[group.patient_ids[i]] for i in b], dtype=int)
    row = {"group": group.name, "stage": group.stage, "dims": group.dims, "probe_dims": int(x.shape[1]),
           "patients": len(tr), "probe_auc": probe_auc(x[tr], y, seed, folds, repeats),
           "patients_b": len(b), "probe_auc_b": probe_auc(x[b], y_b, seed, folds, repeats)}
    if targets is not None:
        for column, (name, kind) in LATENTS.items():
            if column in targets:
                values = targets[column].reindex(train_ids).to_numpy()
                if kind == "continuous":
                    values = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()
                row[name] = latent_association(x[tr], values, kind, seed, folds)
    return row


def audit_run(
    rundir: str | Path | RunDir,
    truth: str | Path | pd.DataFrame | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    workers: int = 1,
    folds: int = 5,
    repeats: int = 3,
    max_dims: int = 2048,
    components: int = 32,
    report: bool = False,
) -> InformationAudit:
    """Audit a run folder and write its files to ``out`` (default ``RUNDIR/results``).

    ``truth``: the synthetic generator's truth (its file, its cohort folder or the table of
    :func:`gliotype.synthetic.truth.read_truth`); ``seed`` defaults to the run's; ``folds`` x
    ``repeats`` is the outer cross-validation of every probe; groups wider than ``max_dims``
    are reduced to ``components`` principal components fitted on the training patients.
    ``report``: also put the audit into the run's ``results/report.html`` when there is one.
    """
    run = read_run_folder(rundir)
    if isinstance(truth, pd.DataFrame):
        truth_df = _audit_columns(truth)
    else:
        truth_df = read_truth(truth) if truth is not None else None
    seed = int(run.config.get("seed", 0) if seed is None else seed)
    splits = run.splits
    labelled = splits[splits["idh"].notna()]
    labels = dict(zip(labelled["patient_id"], labelled["idh"].astype(int)))
    ids = {s: labelled.loc[labelled["split"] == s, "patient_id"].tolist() for s in (*TRAINING_SPLITS, "test")}
    train = [p for s in TRAINING_SPLITS for p in ids[s]]
    everyone = train + ids["test"]

    descriptors = descriptor_table(run.work, everyone, workers=workers)
    missing = sorted(set(everyone) - set(descriptors["patient_id"]))
    groups: list[FeatureGroup] = _latent_group(truth_df, train)
    groups += descriptor_groups(descriptors) if len(descriptors) else []
    groups += atlas_groups(run.work, train)
    groups += brain_network_groups(run.work, train)
    if run.features is not None:
        groups += learned_groups(run.features)
    else:
        log.warning("no features of the full model in this run folder: u_I, u_P, u_T, u_B left out")
    targets = _targets(run, truth_df)

    # one probe row per group, ``workers`` groups at a time (each row is seeded on its own)
    tasks = [(group, train, ids["B"], labels, targets, seed, folds, repeats, max_dims, components) for group in groups]
    table = pd.DataFrame(parallel_map(_probe_group, tasks, workers, desc="audit", unit="group"))

    ceiling = descriptor_ceiling(descriptors, train, ids["test"], labels, seed) if len(descriptors) else None
    homophily = _homophily(run, ids, labels, table)
    bayes = _bayes(truth_df, ids["test"], labels)
    results = RunDir(run.root).results
    audit = InformationAudit(table, homophily, ceiling, bayes, _stability(run, ids, labels),
                             {s: len(v) for s, v in ids.items()}, missing,
                             folder=Path(out) if out is not None else results.root)
    write_audit(audit, descriptors, audit.folder)
    if report and results.report.exists():
        from gliotype.experiment.report import add_audit_section

        audit.report = add_audit_section(results.report, audit)
    return audit


def _homophily(run: RunFolder, ids: dict, labels: dict, table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 graphs on half B + test as the run built them, with the probes of their features."""
    if run.features is None:
        return pd.DataFrame()
    from gliotype.multimodal.stage import feature_matrix

    feats = run.features.set_index("patient_id", drop=False)
    graph_ids = [p for p in ids["B"] + ids["test"] if p in feats.index]
    f = feats.loc[graph_ids]
    u_t, u_b = feature_matrix(f, "u_T"), feature_matrix(f, "u_B")
    if not (u_t.shape[1] and u_b.shape[1]):
        return pd.DataFrame()
    in_b = set(ids["B"])
    y = np.array([labels[p] if p in in_b else -1 for p in graph_ids], dtype=float)
    out = table1_homophily(u_t, u_b, y, _graph_options(run.config))
    probe = dict(zip(table["group"], table["probe_auc_b"]))
    out["node_probe_auc_b"] = [probe.get(TABLE1_GROUPS[n], np.nan) for n in out["node_weight"]]
    out["edge_probe_auc_b"] = [probe.get(TABLE1_GROUPS[e], np.nan) for e in out["edge_weight"]]
    return out


def _stability(run: RunFolder, ids: dict, labels: dict) -> FoldStability | None:
    """The two folds' heads compared (:func:`~gliotype.audit.stability.fold_stability`); None when
    the run is not cross-fitted or a fold's features (or its head) are missing."""
    if not _cross_fitted(run.config):
        return None
    folds = (run.features, run.features_b)
    if any(f is None or HEAD not in f for f in folds):
        log.warning("a cross-fitted run without both folds' head probabilities: no encoder stability")
        return None
    return fold_stability(*folds, ids, labels)


def _graph_options(config: dict) -> PopulationGraphConfig:
    """The run's ``population_graph`` options (config.yaml; an option this version lacks is ignored,
    one it added takes its default)."""
    section = config.get("population_graph", {}) or {}
    return PopulationGraphConfig(**{k: v for k, v in section.items() if k in PopulationGraphConfig.model_fields})


def _bayes(truth: pd.DataFrame | None, test_ids: list[str], labels: dict) -> float | None:
    if truth is None or "bayes_posterior" not in truth:
        return None
    from sklearn.metrics import roc_auc_score

    ids = [p for p in test_ids if p in truth.index]
    y = [labels[p] for p in ids]
    return float(roc_auc_score(y, truth.loc[ids, "bayes_posterior"])) if len(set(y)) == 2 else None


# --------------------------------------------------------------------------- output


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.3f}"
    return str(v)


def _markdown_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines)


def audit_markdown(audit: InformationAudit) -> str:
    """The audit as Markdown: the groups, the Table 1 graphs, the ceilings and the encoders' stability."""
    p = audit.patients
    parts = ["## Information audit",
             f"Linear-probe AUC for IDH, cross-validated on the training patients (ssl {p.get('ssl', 0)}, "
             f"A {p.get('A', 0)}, B {p.get('B', 0)}; `probe_auc_b`: half B only); test patients never enter "
             "a probe.", "", _markdown_table(audit.groups.drop(columns=["stage"]))]
    if len(audit.homophily):
        cols = ["graph", "edges", "mean_degree", "labelled_edges", "homophily", "random_pairs", "node_probe_auc_b",
                "edge_probe_auc_b"]
        parts += ["", "Edge homophily of the Table 1 graphs (edges between half-B patients):", "",
                  _markdown_table(audit.homophily[cols])]
    parts.append("")
    if audit.observable_ceiling is not None:
        parts.append(f"Observable ceiling (probe on the hand-made descriptors, training -> test, "
                     f"{p.get('test', 0)} test patients): AUC {audit.observable_ceiling:.3f}")
    if audit.bayes_auc is not None:
        parts.append(f"Bayes-optimal AUC on the same test patients: {audit.bayes_auc:.3f}")
    if audit.stability is not None:
        parts.append(stability_sentence(audit.stability))
    if audit.missing_descriptors:
        parts.append(f"Patients without descriptors: {', '.join(audit.missing_descriptors)}")
    return "\n".join(parts) + "\n"


def write_audit(audit: InformationAudit, descriptors: pd.DataFrame, out: str | Path | ResultsDir) -> None:
    """``audit.csv``, ``audit_homophily.csv``, ``audit_descriptors.csv``, ``audit.md``, ``audit.json``
    into ``out``, laid out as a results folder (:class:`~gliotype.layout.ResultsDir`)."""
    out = ResultsDir.of(out)
    write_csv_atomic(audit.groups, out.audit, float_format="%.6g")
    write_csv_atomic(audit.homophily, out.audit_homophily, float_format="%.6g")
    write_csv_atomic(descriptors, out.audit_descriptors, float_format="%.6g")
    atomic_write(out.audit_markdown, audit_markdown(audit))
    summary = {"observable_ceiling": audit.observable_ceiling, "bayes_auc": audit.bayes_auc,
               "stability": audit.stability.to_dict() if audit.stability is not None else None,
               "patients": audit.patients, "missing_descriptors": audit.missing_descriptors}
    atomic_write(out.audit_json, json.dumps(summary, indent=2) + "\n")
