"""The split protocol of section 4.1.

Patients with FA form the self-supervised set; the others are split 7:3 into training
and test, stratified by IDH; the training set is halved (stratified) into half A,
which trains the encoders, and half B, which trains the population-graph classifier.
Patients without an IDH label can only be used by the self-supervised stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

SPLITS = ("ssl", "A", "B", "test")


def make_splits(
    patients: pd.DataFrame, test_fraction: float = 0.3, seed: int = 0, ssl_column: str = "has_fa"
) -> pd.DataFrame:
    """``patient_id, split`` for every patient (``ssl``, ``A``, ``B``, ``test`` or ``unlabelled``).

    ``patients`` needs ``patient_id``, ``idh`` (1, 0 or NaN) and a boolean ``ssl_column``.
    """
    df = patients[["patient_id", "idh", ssl_column]].copy()
    df["patient_id"] = df["patient_id"].astype(str)
    if df["patient_id"].duplicated().any():
        raise ValueError("duplicate patient IDs")
    split = pd.Series("unlabelled", index=df.index)
    split[df[ssl_column].astype(bool)] = "ssl"
    pool = df[(split == "unlabelled") & df["idh"].notna()]
    y = pool["idh"].astype(int).to_numpy()
    if len(pool) < 8 or np.bincount(y, minlength=2).min() < 4:
        raise ValueError(f"too few labelled patients outside the self-supervised set to split: {len(pool)} "
                         f"({int((y == 1).sum())} mutant, {int((y == 0).sum())} wild-type); need at least 4 of each")
    train_idx, test_idx = train_test_split(pool.index, test_size=test_fraction, stratify=y, random_state=seed)
    a_idx, b_idx = train_test_split(train_idx, test_size=0.5, stratify=df.loc[train_idx, "idh"].astype(int),
                                    random_state=seed)
    split[test_idx], split[a_idx], split[b_idx] = "test", "A", "B"
    return pd.DataFrame({"patient_id": df["patient_id"], "split": split.to_numpy(), "idh": df["idh"]})


def check_splits(splits: pd.DataFrame) -> None:
    """No patient in two sets; A, B and test hold both classes."""
    if splits["patient_id"].duplicated().any():
        raise ValueError("a patient appears in two splits")
    for s in ("A", "B", "test"):
        y = splits.loc[splits["split"] == s, "idh"]
        if y.isna().any() or y.nunique() < 2:
            raise ValueError(f"split {s} must hold labelled patients of both classes")
