"""The observable ceiling of a split (issue 12): what simple hand-made features of the images reach.

The Bayes AUC of a synthetic cohort counts every latent, also those the images barely
show. The observable ceiling is an oracle on what the images *do* show: the linear probe
(:func:`gliotype.audit.probes.observable_ceiling`) on the hand-made descriptors
(:mod:`gliotype.audit.descriptors`), fitted on the training patients (ssl, A, B with a
label) and scored on the test patients. Printed beside the Bayes AUC, it separates
"the method loses signal" from "the images do not carry it".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.audit.descriptors import DESCRIPTOR_COLUMNS, descriptor_table
from gliotype.audit.probes import observable_ceiling

TRAINING_SPLITS = ("ssl", "A", "B")


def descriptor_ceiling(descriptors: pd.DataFrame, train_ids, test_ids, labels, seed: int = 0) -> float | None:
    """Observable ceiling from a descriptor table (patients it lacks are left out); None when a set
    lacks a class."""
    d = descriptors.set_index("patient_id")
    tr = [p for p in train_ids if p in d.index]
    te = [p for p in test_ids if p in d.index]
    cols = list(DESCRIPTOR_COLUMNS)
    value = observable_ceiling(d.loc[tr, cols].to_numpy(np.float64), [labels[p] for p in tr],
                               d.loc[te, cols].to_numpy(np.float64), [labels[p] for p in te], seed)
    return None if np.isnan(value) else float(value)


def _observable_sets(splits: pd.DataFrame) -> tuple[list[str], list[str], dict[str, int]]:
    """The labelled training and test patients of a split (``splits.csv``) and their labels."""
    lab = splits[splits["idh"].notna()]
    labels = dict(zip(lab["patient_id"].astype(str), lab["idh"].astype(int)))
    train = lab.loc[lab["split"].isin(TRAINING_SPLITS), "patient_id"].astype(str).tolist()
    test = lab.loc[lab["split"] == "test", "patient_id"].astype(str).tolist()
    return train, test, labels


def observable_ids(splits: pd.DataFrame) -> list[str]:
    """The patients whose descriptors :func:`split_observable_ceiling` reads: the labelled ones of the
    training splits, then of the test split."""
    train, test, _ = _observable_sets(splits)
    return train + test


def split_observable_ceiling(work: str | Path, splits: pd.DataFrame, seed: int = 0, workers: int = 1) -> float | None:
    """Observable ceiling of one split (``splits.csv``: patient_id, split, idh) of a work folder;
    descriptors are cached per patient, so a second call (or the audit) reuses them."""
    train, test, labels = _observable_sets(splits)
    return descriptor_ceiling(descriptor_table(work, train + test, workers=workers), train, test, labels, seed)
