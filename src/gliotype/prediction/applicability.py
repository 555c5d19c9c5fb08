"""Is a new patient like the model's training cohort? The applicability flags (docs/design.md point 43).

A prediction is never refused for being unusual; it is flagged. Each check compares one
measure of the new patient with its range over the model's classifier-training patients
(the labelled nodes of the stored population graph):

- registration: the brain mask's Dice with the template's (low is unusual) and the Mattes
  mutual information of the registered sequence with the template T1 (high is unusual: lower
  is better), both from ``qc.json``;
- the tumour volume (native, mL, ``qc.json``), both ways;
- per sequence, the tumour's median on the *standardised* sequence (the preprocessed volume
  the model reads, template grid), both ways: what intensity normalisation cannot make
  alike (a sequence given in place of another, another contrast), while a plain rescaling of
  the intensities, which the normalisation removes, is not flagged;
- the distance of the patient's [u_T, u_B] (z-scored with the training patients' statistics;
  root mean square over the features) to its nearest training patient, against the training
  patients' own leave-one-out nearest-neighbour distances (high is unusual: far from every
  training patient).

The training range is the ``prediction.applicability_percentiles`` band (default 1st-99th
percentile) with the minimum and maximum beside it.

- :func:`case_measures`: the measures of one preprocessed patient, the same function for the
  training patients (export) and a new one (predict);
- :func:`measure_reference` / :func:`write_reference` (export): ``applicability.json`` of the
  model folder (:attr:`gliotype.layout.ModelDir.applicability`, listed in the manifest);
- :func:`load_reference` (``load_model``): it, with the training patients' standardised
  embeddings from the stored ``nodes.npz``;
- :func:`flag_values` / :func:`flag_case` (predict): the ``applicability`` block of
  ``prediction.json`` (per check: value, range, ``inside`` / ``outside`` with its side, a
  one-line reason; ``in_domain`` overall). A model without the file gives ``in_domain: null``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliotype.input.manifest import SEQUENCE_NAMES  # the sequences whose tumour intensity is checked
from gliotype.layout import CaseDir, WorkDir
from gliotype.preprocessing.cache import PREPROCESS_VERSION

#: Version of ``applicability.json``.
APPLICABILITY_FORMAT = 1
#: Said when the model folder has no ``applicability.json``.
UNKNOWN = ("unknown: the model has no applicability reference (applicability.json; exported before gliotype "
           "measured it): re-export the model to get the checks")


@dataclass(frozen=True)
class Measure:
    """One check: its key, plain name, unit, which side is unusual (``both``, ``low``, ``high``), digits shown."""

    key: str
    name: str
    unit: str = ""
    sides: str = "both"
    digits: int = 1


#: Every check, in the order shown.
MEASURES: tuple[Measure, ...] = (
    Measure("brain_dice", "registration: brain mask Dice with the template", sides="low", digits=4),
    Measure("similarity_mattes_mi", "registration: Mattes mutual information with the template T1 (lower is "
            "better)", sides="high", digits=4),
    Measure("tumour_volume_ml", "tumour volume", unit="mL"),
    *(Measure(f"tumour_intensity_{s}", f"tumour median intensity on the standardised {name}")
      for s, name in SEQUENCE_NAMES.items()),
    Measure("embedding_distance", "distance to the nearest training patient in feature space", sides="high",
            digits=2),
)
EMBEDDING = "embedding_distance"
#: The preprocessing version (``PREPROCESS_VERSION``) since which a measure has its present definition: a
#: model whose training range is older says "unknown" for it (3: the QC's Mattes MI over every voxel).
DEFINED_SINCE = {"similarity_mattes_mi": 3}
#: The version of a reference that does not record one.
FIRST_RECORDED_VERSION = 2


def _round(v) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def case_measures(case: CaseDir) -> dict[str, float | None]:
    """The measures of one preprocessed patient (``qc.json`` and its volumes on the template grid), the
    embedding aside; None for what it lacks (a missing sequence, an older ``qc.json``)."""
    import nibabel as nib

    qc = json.loads(case.qc.read_text())
    volume = qc.get("tumor_native_mm3")
    out = {"brain_dice": _round(qc.get("brain_dice")), "similarity_mattes_mi": _round(qc.get("similarity_mattes_mi")),
           "tumour_volume_ml": None if volume is None else _round(volume / 1000.0)}
    tumour = np.asarray(nib.load(case.mask).dataobj) > 0
    missing = set(qc.get("missing_sequences") or [])
    for s in SEQUENCE_NAMES:
        out[f"tumour_intensity_{s}"] = None if s in missing or not tumour.any() else \
            _round(np.median(np.asarray(nib.load(case.sequence(s)).dataobj, dtype=np.float32)[tumour]))
    return out


def embedding(u_t: np.ndarray, u_b: np.ndarray) -> np.ndarray:
    """[u_T, u_B] of each patient, one row each (float64)."""
    return np.concatenate([np.atleast_2d(u_t), np.atleast_2d(u_b)], axis=1).astype(np.float64)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root-mean-square difference of every row of ``a`` to every row of ``b`` (standardised units)."""
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0) / a.shape[1])


def _loo_nearest(z: np.ndarray) -> np.ndarray:
    """Each training patient's distance to its nearest *other* training patient."""
    d = _distances(z, z)
    np.fill_diagonal(d, np.inf)
    return d.min(1)


def _summary(values: Sequence[float], percentiles: Sequence[float]) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if not len(v):
        return {"n": 0}
    # band ends are training patients' values: a small cohort's band is its min-max, never narrower
    lo, hi = np.percentile(v, percentiles[0], method="lower"), np.percentile(v, percentiles[1], method="higher")
    return {"n": int(len(v)), "min": _round(v.min()), "max": _round(v.max()), "low": _round(lo), "high": _round(hi)}


def measure_reference(work, patient_ids: Sequence[str], u_t: np.ndarray, u_b: np.ndarray,
                      percentiles: Sequence[float] = (1.0, 99.0)) -> dict:
    """``applicability.json``: per measure the training range over ``patient_ids`` (the classifier-training
    patients; ``u_t``, ``u_b`` their rows, same order) from their records in the work folder ``work``."""
    from gliotype.population_graph.graph import column_stats

    work, ids = WorkDir.of(work), [str(p) for p in patient_ids]
    pct = [float(p) for p in percentiles]
    per_patient = [case_measures(work.case(p)) for p in ids]
    x = embedding(u_t, u_b)
    mean, std = column_stats(x)
    loo = _loo_nearest((x - mean) / std) if len(ids) >= 2 else np.full(len(ids), np.nan)
    for row, d in zip(per_patient, loo):
        row[EMBEDDING] = _round(d)
    ref = {
        "format": APPLICABILITY_FORMAT,
        "preprocess_version": PREPROCESS_VERSION,
        "patients": len(ids),
        "percentiles": pct,
        "measures": {m.key: _summary([r[m.key] for r in per_patient], pct) for m in MEASURES},
        "embedding": {"features": ["u_T", "u_B"], "mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "method": "per measure, the training range over the classifier-training patients (the labelled nodes of the "
                  "stored graph): low and high are the percentiles (lower / higher: training values), min and max the "
                  "extremes; embedding_distance is "
                  "each training patient's root-mean-square distance of its z-scored [u_T, u_B] to its nearest other "
                  "training patient (leave one out)",
    }
    outside = sum(flag_values(ref, r)["in_domain"] is False for r in per_patient)
    # in sample: how often a check fires on the training patients themselves (how to read one flag)
    ref["training_outside"] = {"patients": int(outside), "share": round(outside / len(ids), 4) if ids else None}
    return ref


def write_reference(path: str | Path, reference: dict) -> Path:
    from gliotype.utils.io import atomic_write

    atomic_write(path, json.dumps(reference, indent=2))
    return Path(path)


@dataclass(frozen=True)
class Reference:
    """``applicability.json`` as loaded, with the training patients' standardised [u_T, u_B] (``training``)."""

    data: dict
    training: np.ndarray  # (n, d)

    def standardise(self, u_t: np.ndarray, u_b: np.ndarray) -> np.ndarray:
        e = self.data["embedding"]
        return (embedding(u_t, u_b) - np.asarray(e["mean"])) / np.asarray(e["std"])

    def nearest_distance(self, u_t: np.ndarray, u_b: np.ndarray) -> float | None:
        """The distance of one patient to its nearest training patient (None: no training patient)."""
        if not len(self.training):
            return None
        return _round(_distances(self.standardise(u_t, u_b), self.training).min())


def load_reference(data: dict, u_t: np.ndarray, u_b: np.ndarray, labelled: np.ndarray) -> Reference:
    """``data`` (``applicability.json``) with the stored graph's features (``nodes.npz``: u_T, u_B and the
    labelled flag of every node): the training patients' embeddings. Raises ``ValueError`` when they do
    not match (another graph)."""
    labelled = np.asarray(labelled, dtype=bool)
    e = data["embedding"]
    x = embedding(u_t[labelled], u_b[labelled])
    if int(data["patients"]) != len(x) or x.shape[1] != len(e["mean"]) or len(e["std"]) != len(e["mean"]):
        raise ValueError("its training patients are not the labelled nodes of the stored graph")
    return Reference(data, (x - np.asarray(e["mean"])) / np.asarray(e["std"]))


# --------------------------------------------------------------------------- the flags


def _nums(m: Measure, value: float, *others: float) -> list[str]:
    """``value`` and ``others`` as shown (with the measure's unit), with enough digits that ``value`` differs."""
    digits = m.digits
    while digits < 6 and any(f"{value:.{digits}f}" == f"{o:.{digits}f}" for o in others):
        digits += 1
    unit = f" {m.unit}" if m.unit else ""
    return [f"{v:.{digits}f}{unit}" for v in (value, *others)]


def ordinal(p: float) -> str:
    """1st, 2nd, 99th, 0.5th."""
    if float(p).is_integer():
        n = int(p)
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"
    return f"{p:g}th"


def _reason(m: Measure, value: float, side: str, band: float, extreme: float, percentile: float) -> str:
    """One line: the value, the side, the training range (``band``: its percentile end, ``extreme``)."""
    word = "min" if side == "below" else "max"
    beyond = value < extreme if side == "below" else value > extreme
    v, b, e = _nums(m, value, band, extreme)
    if m.key == EMBEDDING:
        every = "every training patient's distance to its nearest other training patient"
        band_of = "the training patients' distances to their nearest other training patient"
    else:
        every, band_of = "every training patient's", "the training patients"
    if beyond:
        far = ": far from every training patient" if m.key == EMBEDDING else ""
        return f"{m.name} {v} is {side} {every} ({word} {e}){far}"
    return f"{m.name} {v} is {side} the {ordinal(percentile)} percentile of {band_of} ({b}; {word} {e})"


def _row(m: Measure, value: float | None) -> dict:
    """What every check of ``m`` shows, whatever its flag."""
    return {"measure": m.key, "name": m.name, "unit": m.unit or None, "value": value,
            "unusual_when": {"both": "below or above", "low": "below", "high": "above"}[m.sides]}


def _check(m: Measure, value: float | None, ref: Mapping | None, percentiles: Sequence[float]) -> dict:
    row = _row(m, value)
    if not ref or not ref.get("n"):
        return {**row, "flag": "unknown", "side": None, "reason": None,
                "note": "no training patient has this measure"}
    row.update({"range": [ref["low"], ref["high"]], "min": ref["min"], "max": ref["max"],
                "percentiles": list(percentiles), "training_patients": ref["n"]})
    if value is None:
        return {**row, "flag": "unknown", "side": None, "reason": None, "note": "not measured for this patient"
                + (" (the sequence is missing)" if m.key.startswith("tumour_intensity_") else "")}
    below = m.sides in ("both", "low") and value < ref["low"]
    above = m.sides in ("both", "high") and value > ref["high"]
    if not (below or above):
        return {**row, "flag": "inside", "side": None, "reason": None}
    if below:
        reason = _reason(m, value, "below", ref["low"], ref["min"], percentiles[0])
    else:
        reason = _reason(m, value, "above", ref["high"], ref["max"], percentiles[1])
    return {**row, "flag": "outside", "side": "below" if below else "above", "reason": reason}


def _older(m: Measure, value: float | None, version: int) -> dict:
    """The check of a measure whose training range has another definition than ``value`` (:data:`DEFINED_SINCE`)."""
    return {**_row(m, value), "flag": "unknown", "side": None, "reason": None,
            "note": f"the model's training range was measured by preprocessing v{version}, this patient by "
                    f"v{PREPROCESS_VERSION}, which defines it otherwise: re-export the model to check it"}


def flag_values(reference: Mapping | None, values: Mapping[str, float | None]) -> dict:
    """The ``applicability`` block of ``prediction.json`` for the measures ``values`` (key -> value, as
    :func:`case_measures` with ``embedding_distance``) against ``reference`` (``applicability.json``;
    None: a model without it)."""
    if reference is None:
        return {"in_domain": None, "summary": UNKNOWN, "reasons": [], "checks": []}
    pct = reference["percentiles"]
    version = int(reference.get("preprocess_version", FIRST_RECORDED_VERSION))
    checks = [_check(m, values.get(m.key), reference["measures"].get(m.key), pct)
              if version >= DEFINED_SINCE.get(m.key, 0) else _older(m, values.get(m.key), version) for m in MEASURES]
    flags = [c["flag"] for c in checks]
    known = [f for f in flags if f != "unknown"]
    outside = [c["reason"] for c in checks if c["flag"] == "outside"]
    if outside:
        summary = f"outside the training range on {len(outside)} of {len(known)} checks"
    elif known:
        summary = f"inside the training range on all {len(known)} checks"
    else:
        summary = "unknown: no check could be made"
    if known and len(known) < len(flags):
        summary += f" ({len(flags) - len(known)} not checked)"
    share = (reference.get("training_outside") or {}).get("share")
    return {
        "in_domain": (not outside) if known else None,
        "summary": summary,
        "reasons": outside,
        "checks": checks,
        "percentiles": list(pct),
        "training_patients": reference["patients"],
        "training_outside_share": share,
    }


def flag_case(reference: Reference | None, case: CaseDir, u_t: np.ndarray, u_b: np.ndarray) -> dict:
    """The ``applicability`` block of a new patient: its preprocessed ``case`` and features u_T, u_B ``(1, d)``."""
    if reference is None:
        return flag_values(None, {})
    values = {**case_measures(case), EMBEDDING: reference.nearest_distance(u_t, u_b)}
    return flag_values(reference.data, values)


__all__ = ["APPLICABILITY_FORMAT", "DEFINED_SINCE", "MEASURES", "Measure", "Reference", "UNKNOWN", "case_measures",
           "embedding", "flag_case", "flag_values", "load_reference", "measure_reference", "ordinal", "write_reference"]
