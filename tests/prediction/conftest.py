"""One tiny trained model per test run, shared by the xdist workers (file lock).

The model folder is written as ``gliotype run`` writes it (``export_model``) from a
14-patient synthetic cohort on the template grid, trained with the tiny preset on the
stage API (:mod:`gliotype.stages`; the tables and baselines of ``gliotype run`` are not needed here).
Tests only read these folders; tests that change a model copy it first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from locks import shared_once

COHORT = dict(patients=14, fa_cases=3, prevalence=0.5, seed=3, workers=1)


def _splits(cohort: pd.DataFrame) -> pd.DataFrame:
    """FA patients -> ssl; the others alternately A, B, test within each class (A and B get both classes)."""
    rows = []
    for r in cohort.itertuples():
        if r.has_fa:
            rows.append((r.patient_id, "ssl", r.idh))
    for y in (0.0, 1.0):
        ids = sorted(cohort.loc[~cohort["has_fa"] & (cohort["idh"] == y), "patient_id"])
        assert len(ids) >= 3, f"the synthetic cohort has too few patients of class {y}"
        for k, pid in enumerate(ids):
            rows.append((pid, ("A", "B", "test")[k % 3] if k < 6 else "test", y))
    return pd.DataFrame(rows, columns=["patient_id", "split", "idh"])


def build_tiny_run(root: Path) -> Path:
    """Synthetic cohort + tiny trained model under ``root`` (``cohort/``, ``run/{work,model,splits.csv}``),
    through the stage API that ``gliotype run`` uses (:mod:`gliotype.stages`)."""
    from gliotype import stages
    from gliotype.config import load_config
    from gliotype.experiment.export import export_model
    from gliotype.input import has_fa, scan_cohort
    from gliotype.synthetic import SynthConfig, generate_cohort

    cohort_dir, run = root / "cohort", root / "run"
    generate_cohort(cohort_dir, SynthConfig(**COHORT))
    config = load_config("tiny", overrides=["population_graph.epochs=30"])
    work = run / "work"
    df = scan_cohort(cohort_dir, labels=cohort_dir / "labels.csv")
    df["patient_id"] = df["patient_id"].astype(str)
    ids = stages.prepare(df, work, config).ids
    df["has_fa"] = has_fa(df)
    splits = _splits(df)
    run.mkdir(parents=True, exist_ok=True)
    splits.to_csv(run / "splits.csv", index=False)
    by = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("ssl", "A", "B", "test")}
    labels = dict(zip(splits["patient_id"], splits["idh"]))
    stages.self_supervised(work, config, by["ssl"], ids)
    mm_dir = run / "models" / "full"
    stages.multimodal(work, mm_dir, by["A"], labels, config)
    graph_ids = by["B"] + by["test"]
    feats = stages.features(work, mm_dir, graph_ids, config)
    in_b = np.arange(len(graph_ids)) < len(by["B"])
    y = np.array([labels[p] for p in graph_ids])
    _, chosen = stages.population_graph(feats, y, in_b, graph_ids, config)
    export_model(run / "model", config, work, mm_dir, feats, graph_ids, in_b, y, chosen)
    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """``root`` with ``cohort/`` (synthetic, BraTS 2021 layout) and ``run/`` (work, model, splits.csv)."""
    return shared_once(tmp_path_factory, "prediction-tiny-model", "run/model/manifest.json",
                       build_tiny_run)


@pytest.fixture(scope="session")
def tiny_model(tiny_run):
    from gliotype.prediction import load_model

    return load_model(tiny_run / "run" / "model")

