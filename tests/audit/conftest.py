"""One tiny `gliotype run` folder per test run, shared by the audit tests (and xdist workers).

A 22-patient synthetic cohort on the template grid, run end to end by
:func:`gliotype.experiment.run_experiment` with the tiny preset, without the ablations
and the CNN baselines, cross-fitted (``split.protocol=crossfit``: encoders on half A and
on half B, so the audit compares the two folds). The cohort is already on the template
grid, so registration is the identity (``preprocess.registration=none``), which keeps the
build to about a minute.
Tests only read these folders; a test that changes one writes a copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from locks import shared_once

COHORT = dict(patients=22, fa_cases=4, prevalence=0.5, seed=3, workers=1)
OVERRIDES = ["preprocess.registration=none", "workers=1", "split.protocol=crossfit"]


@pytest.fixture(scope="session")
def audit_run_dir(tmp_path_factory) -> Path:
    """``root`` with ``cohort/`` (synthetic, truth.csv) and ``run/`` (written by ``gliotype run``)."""
    from gliotype.config import load_config
    from gliotype.experiment import run_experiment
    from gliotype.synthetic import SynthConfig, generate_cohort

    def build(root: Path) -> None:
        generate_cohort(root / "cohort", SynthConfig(**COHORT))
        run_experiment(root / "run", load_config("tiny", overrides=OVERRIDES), data=root / "cohort",
                       ablations=False, baselines=False)

    return shared_once(tmp_path_factory, "audit-tiny-run", "run/results/summary.json", build)
