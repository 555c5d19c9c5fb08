"""``MODEL_CARD.md``: what an exported model is for, what it was trained on and how well it did.

Written by the export (:func:`gliotype.experiment.export.export_model`) into the model folder
(:attr:`gliotype.layout.ModelDir.card`) before ``manifest.json``, so the manifest lists it and
:func:`gliotype.prediction.load_model` checks its sha256 like every other file: the numbers a
model is shared with cannot be edited apart from the model (re-export instead).

Everything in it comes from what the run knows (:class:`CardFacts`: counts, Table 3, the
ceilings) and from the exported model itself (its config, graph and threshold). It holds
counts, never a patient ID or a path, and no date: the same run writes the same bytes.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np
import pandas as pd

from gliotype import __version__
from gliotype.config import GliotypeConfig, config_hash

SYNTHETIC_WARNING = ("Trained on a synthetic cohort only: not for any clinical or research conclusion about "
                     "patients")
UNKNOWN_COHORT_WARNING = ("The training cohort of this model was not recorded (exported outside `gliotype run`): "
                          "draw no conclusion about patients from it")

#: the split roles of section 4.1, in the order the card lists them
ROLES = {"ssl": "self-supervised brain networks (patients with FA)", "A": "multi-modal encoders (half A)",
         "B": "population graph and classifiers (half B)", "test": "held-out test (unlabelled nodes of the graph)",
         "unlabelled": "unlabelled, outside the split"}
#: calibration columns of Table 3, shown when the run's table has them
CALIBRATION = {"brier": "Brier", "ece": "ECE"}
#: the packages whose versions the card records (distribution name -> shown name)
PACKAGES = {"torch": "torch", "torch_geometric": "torch_geometric", "monai": "monai", "scikit-learn": "scikit-learn",
            "numpy": "numpy"}


@dataclass(frozen=True)
class CardFacts:
    """What the run knows about a model's training and the model folder does not (counts only).

    ``synthetic``: the cohort is the synthetic generator's (None: not known); ``roles``: per split
    role, the patients and their IDH classes; ``sites``: patients per acquisition site (empty when
    the manifest has none); ``table3``: the run's Table 3; ``summary``: its ``summary.json``
    (split seed, protocol, the ceilings).
    """

    synthetic: bool | None = None
    roles: dict[str, dict[str, int]] = field(default_factory=dict)
    sites: dict[str, int] = field(default_factory=dict)
    table3: pd.DataFrame | None = None
    summary: dict = field(default_factory=dict)

    @classmethod
    def of_run(cls, splits: pd.DataFrame, cohort: pd.DataFrame | None, synthetic: bool,
               table3: pd.DataFrame | None = None, summary: dict | None = None) -> CardFacts:
        """From a run's ``splits`` (``patient_id, split, idh``) and ``cohort`` (the manifest rows,
        with ``site`` when the manifest has it): counts only, no ID is kept."""
        roles = {}
        for role in ROLES:
            idh = splits.loc[splits["split"] == role, "idh"]
            if len(idh):
                roles[role] = {"patients": int(len(idh)), "mutant": int((idh == 1).sum()),
                               "wildtype": int((idh == 0).sum()), "unknown": int(idh.isna().sum())}
        sites: dict[str, int] = {}
        if cohort is not None and "site" in cohort and cohort["site"].notna().any():
            used = cohort[cohort["patient_id"].astype(str).isin(set(splits["patient_id"].astype(str)))]
            counts = used["site"].dropna().astype(str).value_counts()
            sites = {str(k): int(counts[k]) for k in sorted(counts.index)}
        return cls(synthetic=synthetic, roles=roles, sites=sites, table3=table3, summary=dict(summary or {}))


def _f(v, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"


def _cell(v) -> str:
    """A Markdown table cell: one line, no column separator."""
    return " ".join(str(v).split()).replace("|", "\\|")


def _p(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if not np.isfinite(v) else ("<0.001" if v < 0.001 else f"{v:.3f}")


def software_versions() -> dict[str, str]:
    """gliotype, the numeric packages and Python (no build date, no path)."""
    out = {"gliotype": __version__}
    for dist, name in PACKAGES.items():
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


def model_card(config: GliotypeConfig, meta: dict, facts: CardFacts | None = None,
               own_test_auc: float | None = None) -> str:
    """The text of ``MODEL_CARD.md``.

    ``meta``: the exported ``population_graph/meta.json`` (graph row, theta, threshold, nodes);
    ``own_test_auc``: the exported GNN's AUC on its test nodes (None: not computable).
    """
    facts = facts or CardFacts()
    lines: list[str] = []
    if facts.synthetic:
        lines += [f"**WARNING: {SYNTHETIC_WARNING}.**", ""]
    elif facts.synthetic is None:
        lines += [f"**WARNING: {UNKNOWN_COHORT_WARNING}.**", ""]
    chash = config_hash(config)
    lines += [f"# Model card: gliotype IDH model (config {chash})", "",
              "Generated by `gliotype run` when it exported this folder, from what the run knew. It is listed in "
              "`manifest.json` with its sha256: `gliotype predict` refuses the folder when this file was edited.",
              ""]
    lines += _intended_use()
    lines += _limits(config, meta, facts)
    lines += _cohort(config, facts, chash)
    lines += _performance(facts, meta, own_test_auc)
    lines += _ceilings(facts)
    lines += ["## Software", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in software_versions().items()]
    return "\n".join(lines) + "\n"


def _intended_use() -> list[str]:
    return ["## Intended use", "",
            "Research use only. Predicts the IDH mutation status (IDH-mutant vs IDH-wildtype) of an adult diffuse "
            "glioma from one pre-operative MRI study: pre-contrast T1, post-contrast T1 (T1c), T2, T2-FLAIR and a "
            "tumour mask (BraTS labels), with `gliotype predict` (docs/prediction.md). Implements Wei et al., "
            "IEEE TMI 2023. Not a medical device: not for diagnosis, treatment or any clinical decision.", ""]


def _cap(k: int) -> str:
    """How ``population_graph.max_neighbours`` k keeps a new patient's eq. 8 edges ("" without a cap)."""
    if not k:
        return ""
    return (f"; an edge is kept when the stored patient is among the new patient's {k} most similar, or the new "
            f"patient among the stored one's {k}")


def _limits(config: GliotypeConfig, meta: dict, facts: CardFacts) -> list[str]:
    split = config.split
    nodes, labelled = int(meta.get("nodes", 0)), int(meta.get("labelled_nodes", 0))
    seed = facts.summary.get("split_seed", split.seed)
    protocol = facts.summary.get("protocol", split.protocol)
    missing = config.input.missing_sequences
    lines = ["## Limits", "",
             f"- **Single-split model.** Trained on one draw of the split protocol (split seed {seed}, protocol "
             f"`{protocol}`, test fraction {split.test_fraction:g}); its test metrics below come from one test set of "
             f"{facts.roles.get('test', {}).get('patients', 'a few')} patients, and the width of the AUC's interval "
             "says how little that is. With `--repeats`, the run's "
             "`results/repeats_table3.csv` gives the spread over other draws (the exported model is the first "
             "draw's)."]
    if protocol == "crossfit":
        lines.append("- **Cross-fitted run, one fold exported.** Table 3's Multi-modal + GNN row averages the two "
                     "folds' probabilities; this folder holds the first fold's model (encoders on half A, graph on "
                     "half B + test), whose own test AUC is given below the table.")
    lines += [
        f"- **Population graph, transductive in training.** The GNN was trained on a graph of {nodes} patients: "
        f"{labelled} labelled (the classifier-training patients) and {nodes - labelled} unlabelled test patients. "
        "A new patient is inserted as a new node linked by eq. 8 (r >= theta = "
        f"{_f(meta.get('theta'), 2)}{_cap(config.population_graph.max_neighbours)}) to these stored patients, "
        "without retraining: its prediction depends on the "
        "stored cohort, and a patient unlike all of them (another scanner, site, protocol or population) has few "
        "or no neighbours (the report says how many).",
        f"- **Decision threshold {_f(meta.get('threshold'))}**, chosen on the training predictions "
        f"({'Youden' + chr(39) + 's J' if config.evaluation.threshold == 'youden' else '0.5'}); the probability "
        "is the GNN's output, not a calibrated risk.",
        "- **Inputs.** The four sequences and a tumour mask (labels 0-4) of one pre-operative study, as NIfTI or "
        "DICOM, each a readable 3D image; preprocessing registers them to the ICBM152 2009 template "
        f"({config.preprocess.registration}, {config.preprocess.spacing_mm:g} mm). "
        "Post-operative, paediatric or non-glioma cases are outside what it was trained on.",
        ("- **Missing sequences.** None allowed (`input.missing_sequences: 0`): a case without all four sequences "
         "is refused." if missing == 0 else
         f"- **Missing sequences.** Up to {missing} of the four may be missing (`input.missing_sequences: "
         f"{missing}`): a missing sequence is an empty volume in the tumour image and imputed in the brain "
         "network; the report widens the interval by the spread measured at export (`sequence_spread.json`)."),
        f"- **Stored patients.** `population_graph/nodes.npz` holds the features and IDs of the {nodes} graph "
        "patients: share this folder only where those patients' derived data may go.",
        ""]
    return lines


def _cohort(config: GliotypeConfig, facts: CardFacts, chash: str) -> list[str]:
    lines = ["## Training cohort", ""]
    if facts.synthetic:
        lines.append("Synthetic: the cohort generator of gliotype (docs/synthetic.md), not patients.")
    elif facts.synthetic is False:
        lines.append("A cohort of patients (not synthetic).")
    else:
        lines.append("Not recorded: the folder was exported outside `gliotype run`.")
    lines.append("")
    if facts.roles:
        lines += ["| split role | patients | IDH-mutant | IDH-wildtype | unknown |", "|---|---|---|---|---|"]
        total = {k: 0 for k in ("patients", "mutant", "wildtype", "unknown")}
        for role, c in facts.roles.items():
            lines.append(f"| {role}: {ROLES[role]} | {c['patients']} | {c['mutant']} | {c['wildtype']} | "
                         f"{c['unknown']} |")
            total = {k: total[k] + c[k] for k in total}
        lines.append(f"| all | {total['patients']} | {total['mutant']} | {total['wildtype']} | {total['unknown']} |")
        known = total["mutant"] + total["wildtype"]
        if known:
            lines += ["", f"IDH balance: {100 * total['mutant'] / known:.0f}% mutant of the {known} patients with a "
                          "label."]
        lines.append("")
    if facts.sites:
        lines += [f"Acquisition sites: {len(facts.sites)}.", "", "| site | patients |", "|---|---|"]
        lines += [f"| {_cell(k)} | {v} |" for k, v in facts.sites.items()] + [""]
    lines += [f"Preset `{config.preset}`; config hash `{chash}` (`config.yaml` in this folder).", ""]
    return lines


def _performance(facts: CardFacts, meta: dict, own_test_auc: float | None) -> list[str]:
    lines = ["## Test performance", ""]
    t3 = facts.table3
    if t3 is None or not len(t3):
        lines += ["Not recorded: the folder was exported outside `gliotype run` (no Table 3).", ""]
    else:
        n_test = facts.roles.get("test", {}).get("patients")
        calib = [c for c in CALIBRATION if c in t3]
        head = ["model", "AUC (95% CI)", "ACC", "SEN", "SPE", *(CALIBRATION[c] for c in calib)]
        if "delong_p" in t3:
            head.append("DeLong p vs GNN")
        lines += [f"Table 3 of the run, on the {n_test or 'held-out'} test patients: AUC with its 95% bootstrap "
                  "interval; accuracy, sensitivity and specificity at each model's threshold (chosen on its "
                  "training predictions). Multi-modal + GNN is this folder's model.", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in t3.to_dict("records"):
            cells = [_cell(r["model"]), f"{_f(r['auc'])} ({_f(r['auc_low'])}-{_f(r['auc_high'])})",
                     _f(r["acc"]), _f(r["sen"]), _f(r["spe"]), *(_f(r[c]) for c in calib)]
            if "delong_p" in t3:
                cells.append(_p(r["delong_p"]))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"Population graph `{meta.get('node_weight')}`, `{meta.get('edge_weight')}`; the exported GNN's "
                 f"own AUC on its test nodes: {_f(own_test_auc)}.")
    lines.append("")
    return lines


def _ceilings(facts: CardFacts) -> list[str]:
    s = facts.summary
    bayes, observable = s.get("bayes_auc_test"), s.get("observable_auc_test")
    ratio = s.get("ceiling_ratio") or {}
    lines = ["## Ceilings", ""]
    if bayes is None and observable is None:
        return lines + ["Not known for this model (no synthetic truth and no observable ceiling recorded).", ""]
    lines += ["| ceiling of the test patients | AUC | Multi-modal + GNN / ceiling |", "|---|---|---|"]
    for key, name, value in (("bayes", "Bayes-optimal (the generator's latents)", bayes),
                             ("observable", "observable (hand-made descriptors, docs/audit.md)", observable)):
        if value is not None:
            lines.append(f"| {name} | {_f(value)} | {_f(ratio.get(key), 2)} |")
    return lines + [""]


def write_model_card(path, config: GliotypeConfig, meta: dict, facts: CardFacts | None = None,
                     own_test_auc: float | None = None):
    """Write :func:`model_card` to ``path`` (atomically); returns the path."""
    from gliotype.utils.io import atomic_write

    atomic_write(path, model_card(config, meta, facts, own_test_auc))
    return path


__all__ = ["CardFacts", "SYNTHETIC_WARNING", "model_card", "software_versions", "write_model_card"]
