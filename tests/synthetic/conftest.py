"""Tiny synthetic cohorts shared by the tests of this folder.

With pytest-xdist each worker would build its own copy of a module fixture; the cohorts
are instead written once per test run into a folder all workers share, under a file
lock (``generate_cohort`` resumes, so the second worker finds the cohort complete).
Tests only read these folders; the ones that modify a cohort copy it first.
"""

from __future__ import annotations

import os

import pytest

from gliotype.synthetic import SynthConfig, generate_cohort
from locks import locked


@pytest.fixture(scope="session")
def shared_cohort(tmp_path_factory):
    """``make(name, config) -> (folder, summary)``: the cohort of ``config``, written once per run."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by the workers (a fresh one every run)
    root = base / "synthetic-cohorts"
    root.mkdir(exist_ok=True)

    def make(name: str, config: SynthConfig):
        out = root / name
        with locked(root / f"{name}.lock"):
            summary = generate_cohort(out, config)
        return out, summary

    return make
