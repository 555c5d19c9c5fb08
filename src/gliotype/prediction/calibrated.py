"""What the exported model's probability means: a calibrated probability and a conformal prediction set.

Measured at export on the exported population graph's **out-of-fit** predictions of its
classifier-training patients (``population_graph.threshold_folds`` or ``val_fraction``; never
its fitted ones) and stored as ``calibration.json`` (:attr:`gliotype.layout.ModelDir.calibration`,
optional in the bundle, listed in the manifest):

- a calibrator (``prediction.calibration``: ``platt``, ``isotonic`` or ``none``;
  :func:`gliotype.evaluation.calibration.fit_calibrator`) that maps the model's P(mutant) to
  the fraction of such patients who are mutant;
- a split-conformal predictor at ``evaluation.conformal_alpha`` (class-conditional with
  ``evaluation.conformal_class_conditional``; :mod:`gliotype.evaluation.conformal`) that turns
  the model's P(mutant) into the set of classes it cannot rule out.

``gliotype predict`` applies both to the new patient's P(mutant) (the decision stays the
threshold on the model's own probability). A model without out-of-fit predictions stores why
(:class:`NoCalibration`); one exported before this file existed predicts without them and says so.
docs/design.md point 44.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliotype.evaluation.calibration import Calibrator, fit_calibrator
from gliotype.evaluation.conformal import ConformalPredictor, fit_conformal
from gliotype.utils.io import atomic_write

#: The sets in words (wild-type, mutant in the set).
SET_NAMES = {(False, True): ["IDH-mutant"], (True, False): ["IDH-wildtype"],
             (True, True): ["IDH-wildtype", "IDH-mutant"], (False, False): []}

NO_OUT_OF_FIT = ("the model has no out-of-fit predictions of its training patients to calibrate on "
                 "(population_graph.threshold_folds or val_fraction)")
NOT_EXPORTED = "the model folder has no calibration.json (exported before it existed)"


@dataclass(frozen=True)
class Calibration:
    """The exported model's calibrator and conformal predictor, with what they were fitted on."""

    method: str
    calibrator: Calibrator
    conformal: ConformalPredictor
    patients: int
    mutant: int

    def to_dict(self) -> dict:
        return {"method": self.method, "calibrator": self.calibrator.to_dict(),
                "conformal": self.conformal.to_dict(), "patients": self.patients, "mutant": self.mutant}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(str(data["method"]), Calibrator.from_dict(data["calibrator"]),
                   ConformalPredictor.from_dict(data["conformal"]), int(data["patients"]), int(data["mutant"]))

    def describe(self, p: float, interval: tuple[float, float] | None = None) -> dict:
        """The ``calibration`` block of ``prediction.json`` for the model's P(mutant) ``p``."""
        calibrated = float(self.calibrator(np.array([p]))[0])
        members = tuple(bool(v) for v in self.conformal.sets(np.array([p]))[0])
        out = {"available": True, "method": self.method, "calibrated_probability": round(calibrated, 6),
               "prediction_set": SET_NAMES[members], "coverage": round(1 - self.conformal.alpha, 6),
               "class_conditional": self.conformal.class_conditional,
               "fitted_on": f"out-of-fit predictions of the model's {self.patients} classifier-training patients "
                            f"({self.mutant} IDH-mutant)"}
        if interval is not None:
            out["calibrated_interval_95"] = [round(float(v), 6) for v in self.calibrator(np.asarray(interval))]
        if getattr(self.calibrator, "a", None) == 0.0:  # Platt without a slope (evaluation.calibration)
            out["note"] = ("the out-of-fit predictions did not rank the training patients the right way round, so "
                           "the calibrated probability is their prevalence whatever the model says")
        return out


def fit_model_calibration(y: np.ndarray, p_out_of_fit: np.ndarray | None, method: str, alpha: float,
                          class_conditional: bool) -> Calibration | None:
    """The exported model's :class:`Calibration` from its training patients' labels ``y`` and out-of-fit
    predictions (NaN where fitted); None without any (or without both classes among them)."""
    if p_out_of_fit is None:
        return None
    p = np.asarray(p_out_of_fit, dtype=float)
    used = np.isfinite(p)
    y = np.asarray(y, dtype=float)[used]
    if len(np.unique(y)) < 2:
        return None
    return Calibration(method, fit_calibrator(y, p[used], method), fit_conformal(y, p[used], alpha, class_conditional),
                       int(used.sum()), int(y.sum()))


def write_calibration(path: Path, calibration: Calibration | None) -> None:
    """``calibration.json`` (atomic); None: the reason there is none."""
    atomic_write(path, json.dumps((calibration or NoCalibration(NO_OUT_OF_FIT)).to_dict(), indent=2))


@dataclass(frozen=True)
class NoCalibration:
    """A model without a calibration, and why."""

    reason: str

    def to_dict(self) -> dict:
        return {"available": False, "reason": self.reason}

    def describe(self, p: float, interval: tuple[float, float] | None = None) -> dict:
        """The ``calibration`` block of ``prediction.json``: unavailable, with the reason."""
        return self.to_dict()


def read_calibration(data: dict | None) -> Calibration | NoCalibration:
    """What ``calibration.json`` holds (``data``; None: the model folder has none)."""
    if data is None:
        return NoCalibration(NOT_EXPORTED)
    if data.get("available") is False:
        return NoCalibration(str(data.get("reason", "")))
    return Calibration.from_dict(data)


__all__ = ["Calibration", "NOT_EXPORTED", "NO_OUT_OF_FIT", "NoCalibration", "SET_NAMES", "fit_model_calibration",
           "read_calibration", "write_calibration"]
