"""Helpers of the preprocessing tests: tiny synthetic cohorts as manifests, built once per run.

With pytest-xdist each worker would build its own copy of a module fixture; :func:`once`
instead builds into a folder all workers of the run share, under a file lock, and
keeps the builder's JSON result next to it (as ``tests/synthetic/conftest.py`` does).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from gliotype.config import load_config
from locks import locked

BRATS = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair", "mask": "seg", "fa": "fa"}


def brats_row(folder: Path) -> dict:
    """A manifest row for a BraTS-2021 layout patient folder (``<id>/<id>_t1ce.nii.gz``...)."""
    pid = folder.name
    row = {"patient_id": pid, "idh": 0, "age": 50.0, "site": "s"}
    for role, suffix in BRATS.items():
        path = folder / f"{pid}_{suffix}.nii.gz"
        row[role] = str(path) if path.exists() else None
    return row


def manifest(root: Path) -> pd.DataFrame:
    return pd.DataFrame([brats_row(p) for p in sorted(Path(root).iterdir()) if p.is_dir()])


def config(**preprocess):
    """The tiny preset with ``preprocess`` fields overridden."""
    cfg = load_config("tiny")
    return cfg.model_copy(update={"preprocess": cfg.preprocess.model_copy(update=preprocess)})


def synth(out: Path, **kwargs) -> Path:
    """Generate a tiny synthetic cohort (one process) and return its folder."""
    from gliotype.synthetic import SynthConfig, generate_cohort

    kwargs.setdefault("workers", 1)
    generate_cohort(out, SynthConfig(**kwargs))
    return out


def once(tmp_path_factory, name: str, build):
    """``(folder, build(folder))``, built once per test run (shared by the xdist workers)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by the workers (a fresh one every run)
    root = base / "preprocessing-shared"
    root.mkdir(exist_ok=True)
    folder = root / name
    with locked(root / f"{name}.lock"):
        marker = root / f"{name}.json"
        if marker.exists():
            return folder, json.loads(marker.read_text())
        folder.mkdir(exist_ok=True)
        result = build(folder)
        marker.write_text(json.dumps(result))
        return folder, result
